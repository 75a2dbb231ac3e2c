// The command line end to end on real speech: several files to SRT and VTT
// with a missing one among them, stdout for a single file, the plain output
// off a terminal and the live view on one (through `script`, a
// pseudo-terminal), model downloads from a local server, SIGINT, and strict
// argument parsing; and what it refuses up front: two inputs with one output
// name, an output that is an input, a FIFO; file names with control
// characters printed escaped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { clips, isGone, JFK_MP3, JFK_WAV, LINUX_ONLY, longSpeech, missingPhrases, ROOT, TINY_EN, waitFor } from './helpers.mjs'
import { modelServer } from './model-server.mjs'

const T = { timeout: 300_000 }
/** /proc, or util-linux's `script -e -c`: Linux only. */
const TL = { ...T, ...LINUX_ONLY }
const BIN = join(ROOT, 'bin', 'persistent-whisper.js')
const scratch = () => mkdtempSync(join(tmpdir(), 'pw-cli-'))

function cli(args, options = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 240_000, ...options })
}

/** Runs the CLI in a pseudo-terminal (`script`), as a user at a terminal would. */
function onTerminal(args) {
  const cmd = [process.execPath, BIN, ...args]
  const quoted = cmd.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
  return spawnSync('script', ['-q', '-e', '-c', quoted, '/dev/null'], { encoding: 'utf8', timeout: 240_000, env: { ...process.env, COLUMNS: '100', LINES: '30' } })
}

/** Processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid) {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid
      } catch {
        return false
      }
    })
    .map(Number)
}

test('transcribe: several files to SRT and to VTT, a missing one among them; exit 1, the others written', T, () => {
  const out = scratch()
  const files = clips.slice(0, 3).map((c) => c.path)
  const missing = join(out, 'missing.wav')
  for (const format of ['srt', 'vtt']) {
    const r = cli(['transcribe', ...files, missing, '--model', TINY_EN, '--format', format, '--output-dir', out, '--pool-size', '2'])
    assert.equal(r.status, 1, r.stderr)
    assert.equal(r.stdout, '')
    clips.slice(0, 3).forEach((clip) => {
      const written = readFileSync(join(out, clip.file.replace(/\.wav$/, `.${format}`)), 'utf8')
      if (format === 'vtt') assert.ok(written.startsWith('WEBVTT\n\n'))
      assert.match(written, /00:00:0\d[,.]\d{3} --> /)
      assert.deepEqual(missingPhrases(written.replace(/^.*-->.*$/gm, ''), clip.keyPhrases), [], written)
    })
    // Off a terminal: one line per finished file, and the failures at the end.
    const lines = r.stderr.split('\n')
    assert.equal(lines.filter((l) => l.startsWith('done ')).length, 3, r.stderr)
    assert.ok(lines.some((l) => l.startsWith('failed ') && l.includes('missing.wav')), r.stderr)
    assert.match(r.stderr, /1 of 4 files failed:\n {2}.*missing\.wav: ERR_AUDIO_NOT_FOUND/)
    assert.ok(!r.stderr.includes('\x1b['), 'no terminal control codes in a pipe')
  }
})

test('transcribe: a single file without --output-dir goes to stdout; exit 0', T, () => {
  const r = cli(['transcribe', clips[0].path, '--model', TINY_EN, '--format', 'txt', '--pool-size', '1'])
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(missingPhrases(r.stdout, clips[0].keyPhrases), [], r.stdout)
  assert.ok(!existsSync(clips[0].path.replace(/\.wav$/, '.txt')), 'nothing written beside the input')
})

test('transcribe on a terminal: the live view shows the workers, files done, speed and ETA', TL, () => {
  const out = scratch()
  const r = onTerminal(['transcribe', clips[0].path, clips[1].path, '--model', TINY_EN, '--output-dir', out, '--pool-size', '2'])
  assert.equal(r.status, 0, r.stdout)
  assert.match(r.stdout, /worker-1 +(idle|processing|completed)/)
  assert.match(r.stdout, /worker-2/)
  assert.match(r.stdout, /files 2\/2 done · [\d.]+ s of audio per s · ETA 0:00/)
  assert.match(r.stdout, /\x1b\[\d+F\x1b\[J/, 'the view is redrawn in place')
  assert.equal(readdirSync(out).sort().join(), [clips[0].file, clips[1].file].map((f) => f.replace('.wav', '.txt')).sort().join())
})

test('SIGINT during a run aborts every request and leaves no whisper process', TL, async () => {
  const dir = scratch()
  const long = join(dir, 'long.wav')
  writeFileSync(long, longSpeech(4))
  const child = spawn(process.execPath, [BIN, 'transcribe', long, clips[0].path, '--model', TINY_EN, '--output-dir', dir, '--pool-size', '2'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const workers = await waitFor('the worker processes', () => {
    const found = childrenOf(child.pid)
    return found.length > 0 && found
  })
  child.kill('SIGINT')
  const [code] = await once(child, 'exit')
  assert.equal(code, 130, stderr)
  assert.match(stderr, /ERR_ABORTED/)
  for (const pid of workers) await waitFor(`worker ${pid} to exit`, () => isGone(pid), 5_000)
})

test('models download --url with --sha256 from a local server, and through PERSISTENT_WHISPER_MODEL_BASE_URL', T, async () => {
  const model = readFileSync(TINY_EN)
  const server = await modelServer({ '/ggml-tiny.en.bin': model, '/custom/tiny.bin': model })
  const dir = scratch()
  const sha256 = createHash('sha256').update(model).digest('hex')
  const run = (args, env = {}) =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d) => (stdout += d))
      child.stderr.on('data', (d) => (stderr += d))
      child.on('exit', (status) => resolve({ status, stdout, stderr }))
    })
  const ok = await run(['models', 'download', '--url', `${server.base}/custom/tiny.bin`, '--sha256', sha256, '--dir', dir])
  assert.equal(ok.status, 0, ok.stderr)
  assert.equal(ok.stdout.trim(), join(dir, 'tiny.bin'))
  assert.ok(readFileSync(join(dir, 'tiny.bin')).equals(model))

  // The mirror serves the converted tiny.en, not the official file: the checksum catches it.
  const mirrored = await run(['models', 'download', 'tiny.en', '--dir', dir], { PERSISTENT_WHISPER_MODEL_BASE_URL: server.base })
  assert.equal(mirrored.status, 1, mirrored.stderr)
  assert.match(mirrored.stderr, /ERR_CHECKSUM_MISMATCH/)
  assert.ok(server.requests.some((r) => r.url === '/ggml-tiny.en.bin'), 'the mirror was used')
  assert.ok(!existsSync(join(dir, 'ggml-tiny.en.bin')))
  await server.close()

  const noSum = await run(['models', 'download', '--url', `${server.base}/custom/tiny.bin`, '--dir', dir])
  assert.equal(noSum.status, 2)
  assert.match(noSum.stderr, /--sha256/)
})

test('models list and models path report what is downloaded', () => {
  const dir = scratch()
  copyFileSync(TINY_EN, join(dir, 'ggml-tiny.en.bin'))
  const list = cli(['models', 'list', '--dir', dir])
  assert.equal(list.status, 0, list.stderr)
  assert.match(list.stdout, /^tiny\.en +[\d.]+ MB +downloaded$/m)
  assert.match(list.stdout, /^large-v3-turbo +\d(\.\d)? GB +-$/m)
  const found = cli(['models', 'path', 'tiny.en', '--dir', dir])
  assert.equal(found.status, 0)
  assert.equal(found.stdout.trim(), join(dir, 'ggml-tiny.en.bin'))
  const absent = cli(['models', 'path', 'base.en', '--dir', dir])
  assert.equal(absent.status, 1)
  assert.match(absent.stderr, /models download base\.en/)
})

test('--help for each command; unknown flags and commands are refused with a clear message', () => {
  for (const args of [['--help'], ['transcribe', '--help'], ['models', '--help'], ['models', 'download', '--help'], ['models', 'list', '--help'], ['models', 'path', '--help']]) {
    const r = cli(args)
    assert.equal(r.status, 0, `${args}: ${r.stderr}`)
    assert.match(r.stdout, /^usage: persistent-whisper/, args.join(' '))
  }
  for (const [args, message] of [
    [['transcribe', 'a.wav', '--bogus'], /unknown option --bogus/],
    [['transcribe', 'a.wav', '--format', 'docx'], /--format must be txt, json, srt or vtt/],
    [['transcribe', 'a.wav', '--pool-size', 'many'], /--pool-size must be a whole number/],
    [['transcribe'], /no files given/],
    [['models', 'list', '--url', 'x'], /unknown option --url/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ]) {
    const r = cli(args)
    assert.equal(r.status, 2, `${args}: ${r.stderr}`)
    assert.match(r.stderr, message)
  }
  const missingModel = cli(['transcribe', clips[0].path, '--model', 'tiny.en', '--model-dir', scratch()])
  assert.equal(missingModel.status, 1)
  assert.match(missingModel.stderr, /ERR_MODEL_LOAD: .*npx persistent-whisper models download tiny\.en/)
})

test('two inputs that would write one output name are refused before transcribing (exit 2)', T, () => {
  const dir = scratch()
  mkdirSync(join(dir, 'a'))
  mkdirSync(join(dir, 'b'))
  copyFileSync(clips[0].path, join(dir, 'a', 'x.wav'))
  copyFileSync(clips[1].path, join(dir, 'b', 'x.wav'))
  copyFileSync(JFK_WAV, join(dir, 'jfk.wav'))
  copyFileSync(JFK_MP3, join(dir, 'jfk.mp3'))
  const out = join(dir, 'o')
  for (const [args, target] of [
    [[join(dir, 'a', 'x.wav'), join(dir, 'b', 'x.wav'), '--output-dir', out], join(out, 'x.txt')],
    [[join(dir, 'jfk.wav'), join(dir, 'jfk.mp3')], join(dir, 'jfk.txt')],
    [[join(dir, 'jfk.wav'), join(dir, 'jfk.wav'), '--format', 'srt'], join(dir, 'jfk.srt')],
  ]) {
    const r = cli(['transcribe', ...args, '--model', TINY_EN, '--pool-size', '1'])
    assert.equal(r.status, 2, r.stderr)
    assert.ok(r.stderr.includes(target) && /would both be written to|is given twice/.test(r.stderr), r.stderr)
    assert.ok(!existsSync(target), 'nothing was transcribed')
  }
})

test('an output that would overwrite an input is refused before transcribing (exit 2), the input intact', T, () => {
  const dir = scratch()
  // Audio files whose names end like transcripts: stella.txt (the default format) and fox.srt.
  copyFileSync(clips[1].path, join(dir, 'stella.txt'))
  copyFileSync(clips[0].path, join(dir, 'fox.srt'))
  copyFileSync(clips[2].path, join(dir, 'weather.wav'))
  const original = readFileSync(join(dir, 'stella.txt'))
  for (const args of [
    [join(dir, 'stella.txt'), join(dir, 'weather.wav')],
    [join(dir, 'fox.srt'), '--format', 'srt', '--output-dir', dir],
  ]) {
    const r = cli(['transcribe', ...args, '--model', TINY_EN, '--pool-size', '1'])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /would be written over the input/)
  }
  assert.ok(readFileSync(join(dir, 'stella.txt')).equals(original))
  assert.ok(readFileSync(join(dir, 'fox.srt')).equals(readFileSync(clips[0].path)))
  assert.ok(!existsSync(join(dir, 'weather.txt')), 'refused before transcribing anything')
})

test('a FIFO among the inputs is refused up front, without opening it (no hang)', { ...T, skip: process.platform === 'win32' && 'no FIFOs on Windows' }, () => {
  const dir = scratch()
  const fifo = join(dir, 'pipe.wav')
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0)
  const r = cli(['transcribe', clips[0].path, fifo, '--model', TINY_EN, '--output-dir', dir, '--pool-size', '1'], { timeout: 60_000 })
  assert.notEqual(r.signal, 'SIGTERM', 'the CLI hung on the FIFO')
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /pipe\.wav is not a regular file/)
})

test('file names with escape sequences or newlines are printed escaped, in the log, the failures and the live view', TL, () => {
  const dir = scratch()
  const evil = join(dir, 'evil\x1b[31mred\nline.wav')
  copyFileSync(clips[0].path, evil)
  const gone = join(dir, 'gone\x1b[2J.wav')
  const r = cli(['transcribe', evil, gone, '--model', TINY_EN, '--output-dir', dir, '--pool-size', '2'])
  assert.equal(r.status, 1, r.stderr)
  assert.ok(!r.stderr.includes('\x1b'), JSON.stringify(r.stderr))
  assert.ok(r.stderr.includes(String.raw`evil\x1b[31mred\nline.wav`), r.stderr)
  assert.ok(r.stderr.includes(String.raw`gone\x1b[2J.wav: ERR_AUDIO_NOT_FOUND`), r.stderr)
  assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('done ')).length, 1, 'one line for the one file done')
  // On a terminal the view's own control codes stay; the names' do not get through.
  const t = onTerminal(['transcribe', evil, '--model', TINY_EN, '--output-dir', scratch(), '--pool-size', '1'])
  assert.equal(t.status, 0, t.stdout)
  assert.ok(!t.stdout.includes('\x1b[31m') && !/red\r?\nline/.test(t.stdout), JSON.stringify(t.stdout))
  assert.ok(t.stdout.includes(String.raw`evil\x1b[31mred\nline.wav`))
})
