// The Linux platform packages as they ship: every ELF file runs on old glibc,
// the x86-64 baseline build runs on a CPU without AVX, and the arm64 package
// (cross-compiled here) transcribes and loads under qemu.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { packPlatform } from '../scripts/package.mjs'
import { TARGETS } from '../scripts/targets.mjs'
import { ARM64_DEBIAN_RUNTIME, ARM64_SYSROOT, arm64Node } from '../scripts/test-tools.mjs'
import { JFK_WAV, missingPhrases, ROOT, TINY_EN } from './helpers.mjs'

const T = { timeout: 900_000 }
const LINUX_X64 = process.platform === 'linux' && process.arch === 'x64'
const skip = LINUX_X64 ? false : 'the Linux packages are built and checked on x86-64 Linux'
/** The newest glibc a shipped file may need: Debian 10, RHEL 8, Ubuntu 18.10. */
const GLIBC_LIMIT = [2, 28]
const JFK_PHRASES = ['and so my fellow americans', 'ask not what your country can do for you', 'ask what you can do for your country']

function unpack(tarball) {
  const dir = mkdtempSync(join(tmpdir(), 'pw-pkg-'))
  const r = spawnSync('tar', ['-xzf', tarball, '-C', dir])
  assert.equal(r.status, 0, `tar -xzf ${tarball}`)
  return join(dir, 'package')
}

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]))
}

const isElf = (file) => readFileSync(file).subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))

/** The glibc versions an ELF file's symbols need (readelf reads any architecture). */
function glibcNeeds(file) {
  const r = spawnSync('readelf', ['-V', '-W', file], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  return [...new Set([...r.stdout.matchAll(/Name: GLIBC_(\d+)\.(\d+)/g)].map((m) => `${m[1]}.${m[2]}`))]
}

const newer = (version, [major, minor]) => {
  const [a, b] = version.split('.').map(Number)
  return a > major || (a === major && b > minor)
}

/** whisper-cli's text output on the JFK sample, run by `argv` (qemu and its flags first). */
function transcribeJfk(argv, cli) {
  // Emulation is about 100 times slower than the CPU itself, and the encoder
  // is most of the work: greedy decoding, and an audio context of 576 frames
  // (11.5 s, enough for the 11 s sample) instead of 30 s, cut it to a minute.
  const args = ['-m', TINY_EN, '-f', JFK_WAV, '-t', '2', '-np', '-nt', '-bs', '1', '-bo', '1', '-ac', '576']
  const r = spawnSync(argv[0], [...argv.slice(1), cli, ...args], {
    encoding: 'utf8',
    timeout: 600_000,
  })
  assert.equal(r.status, 0, r.stderr)
  return r.stdout
}

/**
 * The worker program's transcript of the JFK sample, run by `argv` (qemu and
 * its flags first): one request in its framed protocol, with the settings of
 * transcribeJfk(). Its stdin closes once the answer is in.
 */
async function workerTranscribesJfk(argv, worker) {
  const child = spawn(argv[0], [...argv.slice(1), worker, '--model', TINY_EN], { stdio: ['pipe', 'pipe', 'ignore'] })
  const frame = (message, payload = Buffer.alloc(0)) => {
    const json = Buffer.from(JSON.stringify(message))
    const head = Buffer.alloc(4)
    head.writeUInt32LE(json.length)
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(BigInt(payload.length))
    return Buffer.concat([head, json, len, payload])
  }
  // Settings left out take whisper-cli's defaults (worker-protocol's Decoding).
  const params = { language: 'en', threads: 2, decoding: { beamSize: 1, bestOf: 1, audioCtx: 576 }, maxSamples: 16000 * 3600, progress: false }
  child.stdin.write(frame({ type: 'transcribe', id: 1, audio: { kind: 'file' }, params }, readFileSync(JFK_WAV)))
  let out = Buffer.alloc(0)
  const replies = []
  for await (const chunk of child.stdout) {
    out = Buffer.concat([out, chunk])
    while (out.length >= 4 && out.length >= 4 + out.readUInt32LE(0) + 8) {
      const n = out.readUInt32LE(0)
      replies.push(JSON.parse(out.subarray(4, 4 + n).toString()))
      out = out.subarray(4 + n + 8)
    }
    if (replies.some((r) => r.type === 'done' || r.type === 'failed' || r.type === 'fatal')) break
  }
  child.stdin.end()
  const [code] = await once(child, 'exit')
  assert.equal(code, 0, JSON.stringify(replies))
  assert.ok(replies.some((r) => r.type === 'done'), JSON.stringify(replies))
  // The segments come one message each, as whisper decodes them.
  return replies
    .filter((r) => r.type === 'segment')
    .map((r) => r.segment.text)
    .join('')
}

for (const target of ['linux-x64-gnu', 'linux-arm64-gnu']) {
  test(`${target}: every ELF file in the package needs glibc ${GLIBC_LIMIT.join('.')} or older`, { ...T, skip }, () => {
    const pkg = unpack(packPlatform(target))
    const elves = files(pkg).filter(isElf)
    const names = elves.map((f) => relative(pkg, f)).sort()
    assert.ok(names.includes(`persistent-whisper.${target}.node`), `${names}`)
    for (const program of ['whisper-cli', 'whisper-server', 'persistent-whisper-worker']) {
      // Each CPU variant's, and each shipped GPU build's (bin/vulkan/).
      const variants = names.filter((n) => n.endsWith(`/${program}`))
      assert.equal(variants.length, TARGETS[target].variants.length + (TARGETS[target].gpu ?? []).length, `${program}: ${names}`)
    }
    for (const file of elves) {
      const needs = glibcNeeds(file)
      assert.ok(needs.length > 0, `${relative(pkg, file)} names no glibc version`)
      assert.deepEqual(needs.filter((v) => newer(v, GLIBC_LIMIT)), [], relative(pkg, file))
      // Executables keep their execute bit through npm pack.
      if (!file.endsWith('.node')) assert.ok(statSync(file).mode & 0o100, `${relative(pkg, file)} is executable`)
    }
  })
}

test('linux-x64-gnu: the x86-64-v2 whisper-cli and worker transcribe on a CPU without AVX (qemu -cpu Nehalem)', { ...T, skip }, async () => {
  const pkg = unpack(packPlatform('linux-x64-gnu'))
  const cli = join(pkg, 'bin', 'x86-64-v2', 'whisper-cli')
  const nehalem = ['qemu-x86_64-static', '-cpu', 'Nehalem']
  // The AVX2 build cannot run there, which is why the engine picks per CPU.
  const avx2 = spawnSync(nehalem[0], [...nehalem.slice(1), join(pkg, 'bin', 'x86-64-v3', 'whisper-cli'), '-m', TINY_EN, '-f', JFK_WAV], { encoding: 'utf8' })
  assert.notEqual(avx2.status, 0, 'the x86-64-v3 build should not run without AVX2')
  const text = transcribeJfk(nehalem, cli)
  assert.deepEqual(missingPhrases(text, JFK_PHRASES), [], text)
  const worker = await workerTranscribesJfk(nehalem, join(pkg, 'bin', 'x86-64-v2', 'persistent-whisper-worker'))
  assert.deepEqual(missingPhrases(worker, JFK_PHRASES), [], worker)
})

test('linux-arm64-gnu: whisper-cli and the worker transcribe under qemu-aarch64 on glibc 2.17, and the addon loads in an arm64 Node', { ...T, skip }, async () => {
  const pkg = unpack(packPlatform('linux-arm64-gnu'))
  const text = transcribeJfk(['qemu-aarch64-static', '-L', ARM64_SYSROOT], join(pkg, 'bin', 'armv8-a', 'whisper-cli'))
  assert.deepEqual(missingPhrases(text, JFK_PHRASES), [], text)
  const worker = await workerTranscribesJfk(['qemu-aarch64-static', '-L', ARM64_SYSROOT], join(pkg, 'bin', 'armv8-a', 'persistent-whisper-worker'))
  assert.deepEqual(missingPhrases(worker, JFK_PHRASES), [], worker)

  // The addon in Node 20 for arm64 (from npm), with Debian's arm64 C library.
  const script = `
    const addon = require(${JSON.stringify(join(pkg, 'persistent-whisper.linux-arm64-gnu.node'))})
    addon.locateWhisper().then((found) => console.log(JSON.stringify({ arch: process.arch, codes: addon.errorCodes(), found })))`
  const r = spawnSync('qemu-aarch64-static', ['-L', ARM64_DEBIAN_RUNTIME, arm64Node(), '-e', script], { encoding: 'utf8', timeout: 120_000 })
  assert.equal(r.status, 0, r.stderr)
  const { arch, codes, found } = JSON.parse(r.stdout)
  assert.equal(arch, 'arm64')
  assert.ok(codes.includes('ERR_TIMEOUT'))
  // Loaded from the package folder, it finds the package's own arm64 whisper-cli.
  assert.equal(found.foundBy, 'package')
  assert.equal(found.variant, 'armv8-a')
  assert.equal(found.path, join(pkg, 'bin', 'armv8-a', 'whisper-cli'))
})

test('the engine picks the x86-64 build this CPU runs', { skip }, async () => {
  const { locateWhisper } = (await import('./helpers.mjs')).pw
  const cpu = readFileSync('/proc/cpuinfo', 'utf8')
  const expected = /\bavx512bw\b/.test(cpu) ? 'x86-64-v4' : /\bavx2\b/.test(cpu) ? 'x86-64-v3' : 'x86-64-v2'
  const found = await locateWhisper()
  assert.equal(found.variant, expected)
  assert.equal(found.foundBy, 'checkout')
  assert.ok(found.path.startsWith(join(ROOT, '.whisper')), found.path)
})
