// `npm install persistent-whisper` as a user does it: the packed main package
// and this platform's package go into a new app outside the checkout, which
// then transcribes with only `modelPath` given, with whisper-cli and with the
// worker program. On Linux (as root) the app
// runs in a mount namespace that hides the checkout, with nothing but `node`
// on the PATH: no compiler, cargo or cmake, no provisioned build to fall back on.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { packageAll } from '../scripts/package.mjs'
import { JFK_WAV, missingPhrases, ROOT, TINY_EN } from './helpers.mjs'

const T = { timeout: 600_000 }
const canHide = process.platform === 'linux' && process.getuid?.() === 0 && spawnSync('unshare', ['--mount', 'true']).status === 0

const APP = `
const { PersistentWhisperEngine } = require('persistent-whisper')
const { execSync } = require('node:child_process')
;(async () => {
  const engine = new PersistentWhisperEngine({ modelPath: './ggml-tiny.en.bin' })
  await engine.initialize()
  const result = await engine.transcribe('./jfk.wav')
  const { program } = await engine.getStatus()
  await engine.shutdown()
  const worker = new PersistentWhisperEngine({ modelPath: './ggml-tiny.en.bin', backend: 'worker' })
  await worker.initialize()
  const fromMemory = await worker.transcribe(require('node:fs').readFileSync('./jfk.wav'))
  const workerProgram = (await worker.getStatus()).program
  await worker.shutdown()
  const onPath = (cmd) => { try { execSync('command -v ' + cmd, { stdio: 'ignore' }); return true } catch { return false } }
  console.log(JSON.stringify({
    text: result.text,
    program,
    workerText: fromMemory.text,
    workerProgram,
    resolved: require.resolve('persistent-whisper'),
    toolchain: ['cc', 'gcc', 'cargo', 'cmake'].filter(onPath),
  }))
})().catch((err) => { console.error(err.code, err.message); process.exit(1) })
`

test('a packed install in a fresh app transcribes with only modelPath, using the platform package\'s programs', T, async () => {
  const { main, platform } = packageAll()
  const app = realpathSync(mkdtempSync(join(tmpdir(), 'pw-app-')))
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', version: '1.0.0', private: true }))
  const shell = process.platform === 'win32'
  // --offline: nothing comes from the registry; the other platforms' optional packages are skipped.
  const install = spawnSync('npm', ['install', '--offline', '--no-audit', '--no-fund', main, platform], { cwd: app, encoding: 'utf8', shell })
  assert.equal(install.status, 0, install.stderr)
  copyFileSync(TINY_EN, join(app, 'ggml-tiny.en.bin'))
  copyFileSync(JFK_WAV, join(app, 'jfk.wav'))
  writeFileSync(join(app, 'app.js'), APP)

  let run
  if (canHide) {
    // Only node on the PATH, and the checkout (addon, .whisper builds) hidden under an empty tmpfs.
    const bin = join(app, '.path')
    mkdirSync(bin)
    symlinkSync(process.execPath, join(bin, 'node'))
    run = spawnSync(
      'unshare',
      ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs tmpfs "$1" && cd "$2" && exec env -i PATH="$3" HOME="$2" node app.js', 'sh', ROOT, app, bin],
      { encoding: 'utf8' },
    )
  } else {
    run = spawnSync(process.execPath, ['app.js'], { cwd: app, encoding: 'utf8' })
  }
  assert.equal(run.status, 0, run.stderr)
  const out = JSON.parse(run.stdout)
  assert.deepEqual(missingPhrases(out.text, ['ask not what your country can do for you']), [], out.text)
  assert.equal(out.resolved, join(app, 'node_modules', 'persistent-whisper', 'lib', 'index.js'))
  assert.equal(out.program.foundBy, 'package')
  const target = basename(platform).replace(/^persistent-whisper-/, '').replace(/-\d+\.\d+\.\d+\.tgz$/, '')
  assert.ok(out.program.path.startsWith(join(app, 'node_modules', `persistent-whisper-${target}`, 'bin', out.program.variant)), out.program.path)
  // The worker program ships beside whisper-cli and transcribes audio from memory.
  assert.equal(out.workerText, out.text)
  assert.equal(out.workerProgram.foundBy, 'package')
  assert.equal(out.workerProgram.path, join(dirname(out.program.path), 'persistent-whisper-worker'))
  if (canHide) assert.deepEqual(out.toolchain, [], 'nothing but node on the PATH')
  // npx persistent-whisper: the bin is linked and runs.
  const help = spawnSync(join(app, 'node_modules', '.bin', process.platform === 'win32' ? 'persistent-whisper.cmd' : 'persistent-whisper'), ['models', 'list', '--dir', app], { encoding: 'utf8', shell })
  assert.equal(help.status, 0, help.stderr)
  assert.match(help.stdout, /^tiny\.en +[\d.]+ MB +downloaded$/m)
})

test('an unsupported platform gets an Error naming it and the supported ones', () => {
  const script = `
    Object.defineProperty(process, 'arch', { value: 'riscv64' })
    try { require(${JSON.stringify(ROOT)}) } catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })) }`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  const { code, message } = JSON.parse(r.stdout)
  assert.equal(code, 'ERR_UNSUPPORTED_PLATFORM')
  assert.match(message, new RegExp(`\\(${process.platform}-riscv64`))
  for (const supported of ['linux-x64-gnu', 'linux-arm64-gnu', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']) {
    assert.ok(message.includes(supported), message)
  }
})
