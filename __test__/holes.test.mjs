// Holes an adversarial test run found in the engine, each closed, each tried
// here the way it was found: with real whisper.cpp, the real model and real
// speech, and for the port hijack an attacker running as another user.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import {
  BASE,
  childProcesses,
  clips,
  commandLine,
  cpuTicks,
  isGone,
  JFK_WAV,
  missingPhrases,
  newEngine,
  PersistentWhisperEngine,
  TINY_EN,
  waitFor,
  wav,
  withCode,
  working,
} from './helpers.mjs'

const T = { timeout: 300_000 }
const jfk = clips.at(-1)
const linuxRoot = process.platform === 'linux' && process.getuid?.() === 0

// Another local user: finds the engine's whisper-server in /proc, takes its
// port while the model loads, and answers as if it were the server. With
// 'once' it takes one port and stops; otherwise every port it sees.
const ATTACKER = `
const http = require('node:http')
const fs = require('node:fs')
const [logFile, mode] = process.argv.slice(2)
let taken = 0
const log = (line) => fs.appendFileSync(logFile, line + '\\n')
const seen = new Set()
function scan() {
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\\d+$/.test(pid) || seen.has(pid)) continue
    let argv
    try { argv = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0') } catch { continue }
    if (!argv[0].endsWith('whisper-server') || !argv.includes('--port')) continue
    seen.add(pid)
    if (mode === 'once' && taken++ > 0) continue
    const port = Number(argv[argv.indexOf('--port') + 1])
    const server = http.createServer((req, res) => {
      log('request ' + req.method + ' ' + req.url)
      if (req.url.endsWith('/health')) return res.end('{"status":"ok"}')
      res.end(JSON.stringify({ language: 'english', text: ' hijacked', segments: [{ text: ' hijacked', start: 0, end: 1 }] }))
    })
    server.on('error', () => {})
    server.listen(port, '127.0.0.1', () => log('bound ' + port))
  }
}
setInterval(scan, 1)
log('ready')
`

/** Starts the attacker as `nobody`; returns its process and its log file. */
async function attacker(mode) {
  const dir = mkdtempSync(join(tmpdir(), 'pw-hijack-'))
  const script = join(dir, 'attacker.js')
  const logFile = join(dir, 'attacker.log')
  writeFileSync(script, ATTACKER)
  writeFileSync(logFile, '')
  spawnSync('chmod', ['-R', 'a+rwX', dir])
  const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, script, logFile, mode], { stdio: 'ignore' })
  await waitFor('the attacker to watch', () => readFileSync(logFile, 'utf8').includes('ready'))
  return { child, log: () => readFileSync(logFile, 'utf8') }
}

const asNobody = { ...T, skip: linuxRoot ? false : 'needs root to run an attacker as nobody' }

test('server: another local user who takes a starting server\'s port gets nothing, and the engine serves', asNobody, async () => {
  const { child, log } = await attacker('once')
  try {
    // base loads slowly enough for the attacker to bind the port first.
    const engine = newEngine({ backend: 'server', poolSize: 1, modelPath: BASE })
    await engine.initialize()
    const result = await engine.transcribe(jfk.path)
    const status = await engine.getStatus()
    const [worker] = await engine.getWorkerStatuses()
    const argv = commandLine(worker.pid)
    const port = Number(argv[argv.indexOf('--port') + 1])
    await engine.shutdown()
    const seen = log()
    assert.match(seen, /^bound \d+$/m, 'the attacker did take a port')
    assert.doesNotMatch(seen, /^request /m, 'nothing was sent to the attacker')
    assert.deepEqual(missingPhrases(result.text, jfk.keyPhrases), [], result.text)
    assert.ok(!result.text.includes('hijacked'))
    const hijacked = [...seen.matchAll(/^bound (\d+)$/gm)].map((m) => Number(m[1]))
    assert.ok(!hijacked.includes(port), `the engine's server listens on ${port}, not on a taken port (${hijacked})`)
    assert.equal(status.poolStats.workersReplaced, 0, 'no replacement loop')
  } finally {
    child.kill('SIGKILL')
  }
})

test('server: a local user who takes every port denies the start, a bounded number of times, and still gets nothing', asNobody, async () => {
  const { child, log } = await attacker('every')
  try {
    const engine = newEngine({ backend: 'server', poolSize: 1, modelPath: BASE })
    await assert.rejects(engine.initialize(), (err) => withCode('ERR_WHISPER_FAILED')(err) && /no port of its own/.test(err.message))
    assert.deepEqual(childProcesses('whisper-server'), [])
    const seen = log()
    assert.equal([...seen.matchAll(/^bound /gm)].length, 8, 'eight ports, then it stopped')
    assert.doesNotMatch(seen, /^request /m, 'nothing was sent to the attacker')
  } finally {
    child.kill('SIGKILL')
  }
})

test('server: a model load someone else asks for (POST /load) gets the server replaced', { ...T, skip: process.platform === 'linux' ? false : 'reads /proc' }, async () => {
  const engine = newEngine({ backend: 'server', poolSize: 1 })
  const exits = []
  engine.on('workerExited', (e) => exits.push(e))
  await engine.initialize()
  const [before] = await engine.getWorkerStatuses()
  // What any local user can do: read the prefix from ps, and post to /load.
  const argv = commandLine(before.pid)
  const url = `http://127.0.0.1:${argv[argv.indexOf('--port') + 1]}${argv[argv.indexOf('--request-path') + 1]}/load`
  const form = new FormData()
  form.append('model', BASE)
  await fetch(url, { method: 'POST', body: form }).catch(() => {})
  const [after] = await waitFor('a fresh server', async () => {
    const ws = await engine.getWorkerStatuses()
    return ws[0]?.id !== before.id && ws[0]?.modelLoaded && ws
  })
  assert.ok(isGone(before.pid), 'the tampered server was ended')
  assert.deepEqual(exits.map((e) => [e.workerId, e.reason]), [[before.id, 'replaced']])
  assert.match((await engine.getStatus()).lastError, /POST \/load/)
  const r = await engine.transcribe(jfk.path)
  assert.equal(r.workerId, after.id)
  assert.deepEqual(missingPhrases(r.text, jfk.keyPhrases), [])
  await engine.shutdown()
})

test('a crafted WAV of empty chunks never blocks the JS thread', T, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-junk-'))
  const file = join(dir, 'junk.wav')
  const chunk = Buffer.from('JUNK\0\0\0\0', 'latin1')
  writeFileSync(file, Buffer.concat([Buffer.from('RIFF\0\0\0\0WAVE', 'latin1'), Buffer.alloc(40 * 1024 * 1024 - 12, chunk)]))
  const engine = newEngine({ poolSize: 1 })
  await engine.initialize()
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const t0 = performance.now()
  const pending = engine.transcribe(file)
  const callMs = performance.now() - t0
  await pending.catch((e) => e)
  delay.disable()
  await engine.shutdown()
  // It took 2.2 s of the JS thread before the file work moved off it.
  assert.ok(callMs < 100, `transcribe() held the JS thread for ${callMs.toFixed(0)} ms`)
  assert.ok(delay.max / 1e6 < 500, `the event loop stalled for ${(delay.max / 1e6).toFixed(0)} ms`)
})

test('a bad signal or a throwing option rejects with ERR_INVALID_OPTIONS before anything is queued; null means no signal', T, async () => {
  const engine = newEngine({ poolSize: 1 })
  await engine.initialize()
  const submitted = async () => (await engine.getStatus()).poolStats.totalRequestsSubmitted
  class NotQuiteASignal extends EventTarget {}
  const cases = [
    [{ signal: {} }, /`signal`/],
    [{ signal: 42 }, /`signal`.*a number/],
    [{ signal: () => {} }, /`signal`.*a function/],
    [{ signal: 'abort' }, /`signal`.*a string/],
    [{ signal: new NotQuiteASignal() }, /`signal`/],
    [{ get priority() { throw new Error('boom') } }, /`priority`.*boom/],
    [{ get signal() { throw new Error('kaboom') } }, /`signal`.*kaboom/],
    [{ language: 7 }, /`language`.*wrong type/],
  ]
  for (const [options, message] of cases) {
    const before = await submitted()
    let pending
    assert.doesNotThrow(() => {
      pending = engine.transcribe(jfk.path, options)
    })
    await assert.rejects(pending, (err) => withCode('ERR_INVALID_OPTIONS')(err) && message.test(err.message))
    assert.equal(await submitted(), before, 'nothing was queued')
  }
  for (const signal of [null, undefined]) {
    const r = await engine.transcribe(jfk.path, { signal })
    assert.deepEqual(missingPhrases(r.text, jfk.keyPhrases), [])
  }
  assert.throws(
    () => new PersistentWhisperEngine({ modelPath: TINY_EN, get poolSize() { throw new Error('no size') } }),
    (err) => withCode('ERR_INVALID_OPTIONS')(err) && /`poolSize`.*no size/.test(err.message),
  )
  await engine.shutdown()
})

test('a signal whose removeEventListener throws still settles its request at once', T, async () => {
  class BadSignal extends EventTarget {
    aborted = false
    removeEventListener() {
      throw new Error('cannot remove')
    }
  }
  const engine = newEngine({ poolSize: 1 })
  await engine.initialize()
  const r = await engine.transcribe(jfk.path, { signal: new BadSignal() })
  assert.deepEqual(missingPhrases(r.text, jfk.keyPhrases), [])
  await engine.shutdown()
})

test('lifecycle calls take effect in the order they were made', T, async (t) => {
  if (childProcesses('whisper-server') === null) return t.skip('needs /proc')
  // initialize(); await shutdown(): nothing may start after shutdown() resolved.
  for (let i = 0; i < 20; i++) {
    const e = newEngine({ backend: 'server', poolSize: 1 })
    const init = e.initialize()
    await e.shutdown()
    await init
    assert.deepEqual(childProcesses('whisper-server'), [], `run ${i}`)
    assert.equal((await e.getStatus()).isRunning, false)
  }
  // restart(); shutdown(): the restart's workers end too.
  const cli = newEngine({ backend: 'cli', poolSize: 2 })
  await cli.initialize()
  const busy = cli.transcribe(jfk.path).then(() => 'ok', (e) => e.code)
  const restarted = cli.restart()
  await cli.shutdown()
  await restarted
  assert.equal(await busy, 'ERR_SHUTDOWN')
  assert.deepEqual(childProcesses('whisper-cli'), [])
  // A re-used engine: every call answers as if each had waited for the one before.
  const e = newEngine({ backend: 'server', poolSize: 1 })
  const outcomes = await Promise.all(
    [e.initialize(), e.shutdown(), e.initialize(), e.shutdown(), e.shutdown()].map((p) => p.then(() => 'ok', (err) => err.code)),
  )
  assert.deepEqual(outcomes, ['ok', 'ok', 'ok', 'ok', 'ERR_SHUTDOWN'])
  assert.deepEqual(childProcesses('whisper-server'), [])
})

test('server: a server that keeps working after an abort is made idle within 500 ms', { ...T, skip: process.platform === 'linux' ? false : 'reads /proc' }, async () => {
  // An hour of audio: whisper-server works on it long before it decodes,
  // and only decoding notices a closed connection.
  const hour = join(tmpdir(), 'pw-hour.wav')
  if (!existsSync(hour)) writeFileSync(hour, wav(Buffer.alloc(3600 * 32000)))
  const engine = newEngine({ backend: 'server', poolSize: 1 })
  await engine.initialize()
  const [worker] = await engine.getWorkerStatuses()
  const controller = new AbortController()
  const long = engine.transcribe(hour, { signal: controller.signal })
  const idle = cpuTicks(worker.pid)
  await waitFor('the server to work on it', () => cpuTicks(worker.pid) > idle + 50)
  controller.abort()
  await assert.rejects(long, withCode('ERR_ABORTED'))
  await new Promise((r) => setTimeout(r, 600))
  const [now] = await engine.getWorkerStatuses()
  if (now.pid === worker.pid && !isGone(worker.pid)) {
    const before = cpuTicks(worker.pid)
    await new Promise((r) => setTimeout(r, 300))
    assert.ok(cpuTicks(worker.pid) - before <= 3, 'the server still works on the aborted file')
  }
  const started = performance.now()
  const next = await engine.transcribe(clips[0].path)
  assert.deepEqual(missingPhrases(next.text, clips[0].keyPhrases), [])
  assert.ok(performance.now() - started < 10_000, 'the next request waited for the aborted one')
  await engine.shutdown()
  rmSync(hour, { force: true })
})

for (const backend of ['cli', 'server', 'worker']) {
  test(`${backend}: restart() after the model was deleted rejects with ERR_MODEL_LOAD naming it`, T, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pw-gone-model-'))
    const model = join(dir, 'ggml-tiny.en.bin')
    copyFileSync(TINY_EN, model)
    const engine = newEngine({ backend, modelPath: model, poolSize: 1 })
    await engine.initialize()
    rmSync(model)
    await assert.rejects(engine.restart(), (err) => withCode('ERR_MODEL_LOAD')(err) && err.message.includes(model) && !/ on :/.test(err.message))
    await engine.shutdown()
  })
}
