// The server backend's own promises: a worker whose whisper-server dies or
// hangs is replaced, ports in use are skipped, the route prefix stays secret.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { clips, commandLine, isGone, JFK_WAV, LINUX_ONLY, missingPhrases, newEngine, ROOT, TINY_EN, waitFor, withCode, working } from './helpers.mjs'

const T = { timeout: 180_000 }
/** Tests that read /proc (argv, CPU time). */
const TL = { ...T, ...LINUX_ONLY }
/** SIGSTOP: not on Windows. */
const TU = { ...T, skip: process.platform === 'win32' && 'SIGSTOP does not exist on Windows' }

const portOf = (pid) => {
  const argv = commandLine(pid)
  return Number(argv[argv.indexOf('--port') + 1])
}

test('a server killed with SIGKILL mid-request is restarted and its request runs again; killed again, the request fails with a code', TL, async () => {
  const engine = newEngine({ backend: 'server', poolSize: 2 })
  await engine.initialize()
  const pending = engine.transcribe(JFK_WAV)
  const [busy] = (await engine.getWorkerStatuses()).filter((w) => w.state === 'processing')
  await working(busy.pid) // mid-request: the server is decoding it
  process.kill(busy.pid, 'SIGKILL')
  // The second run: on the other worker, or the replacement.
  const again = await waitFor('the request to run again', async () =>
    (await engine.getWorkerStatuses()).find((w) => w.state === 'processing' && w.pid !== busy.pid),
  )
  await working(again.pid)
  process.kill(again.pid, 'SIGKILL')
  await assert.rejects(pending, (err) => withCode('ERR_WORKER_CRASHED')(err) && err.message.includes('SIGKILL'))

  const workers = await waitFor('a replacement with its model loaded', async () => {
    const ws = await engine.getWorkerStatuses()
    return ws.length === 2 && ws.every((w) => w.modelLoaded) && !ws.some((w) => w.id === busy.id) && ws
  })
  assert.ok(isGone(busy.pid))
  assert.ok(workers.every((w) => w.pid !== busy.pid && !isGone(w.pid)))
  const results = await Promise.all(clips.slice(0, 4).map((c) => engine.transcribe(c.path)))
  results.forEach((r, i) => assert.deepEqual(missingPhrases(r.text, clips[i].keyPhrases), []))
  const stats = (await engine.getStatus()).poolStats
  assert.equal(stats.workersReplaced, 2)
  assert.equal(stats.totalRequestsFailed, 1)
  assert.equal(stats.totalRequestsRetried, 1)
  await engine.shutdown()
})

test('a server that stops answering health checks is replaced', TU, async () => {
  const engine = newEngine({ backend: 'server', poolSize: 1, healthCheckInterval: 100 })
  await engine.initialize()
  const [hung] = await engine.getWorkerStatuses()
  process.kill(hung.pid, 'SIGSTOP')
  const [fresh] = await waitFor('the hung worker replaced', async () => {
    const ws = await engine.getWorkerStatuses()
    return ws[0]?.id !== hung.id && ws[0]?.modelLoaded && ws
  })
  await waitFor('the stopped server killed', () => isGone(hung.pid))
  assert.match((await engine.getStatus()).lastError, /health checks/)
  const r = await engine.transcribe(clips[0].path)
  assert.equal(r.workerId, fresh.id)
  await engine.shutdown()
})

test('a port already in use does not stop initialize()', TL, async () => {
  const blocker = createServer()
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  const taken = blocker.address().port
  try {
    const engine = newEngine({ backend: 'server', poolSize: 2, basePort: taken })
    await engine.initialize()
    const ports = (await engine.getWorkerStatuses()).map((w) => portOf(w.pid))
    assert.ok(ports.every((p) => p > taken), `servers on ${ports}, ${taken} was taken`)
    assert.equal(new Set(ports).size, 2)
    const r = await engine.transcribe(clips[2].path)
    assert.deepEqual(missingPhrases(r.text, clips[2].keyPhrases), [])
    await engine.shutdown()
  } finally {
    blocker.close()
  }
})

test('models that cannot load: ERR_MODEL_LOAD from initialize(), or from the request when only whisper-cli can tell', T, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-model-'))
  // ggml's magic number, then noise: the engine's header check rejects it.
  const corrupt = join(dir, 'corrupt.bin')
  writeFileSync(corrupt, Buffer.concat([Buffer.from('lmgg'), randomBytes(4096)]))
  // A real model cut short: the header is fine; whisper finds the rest missing.
  const truncated = join(dir, 'truncated.bin')
  writeFileSync(truncated, readFileSync(TINY_EN).subarray(0, 10_000_000))
  for (const backend of ['cli', 'server']) {
    await assert.rejects(newEngine({ backend, modelPath: corrupt }).initialize(), withCode('ERR_MODEL_LOAD'))
  }
  // whisper-server loads the model at start, so initialize() reports it...
  await assert.rejects(newEngine({ backend: 'server', modelPath: truncated }).initialize(), withCode('ERR_MODEL_LOAD'))
  // ...whisper-cli loads it per request, so the request does.
  const cli = newEngine({ backend: 'cli', modelPath: truncated, poolSize: 1 })
  await cli.initialize()
  await assert.rejects(cli.transcribe(clips[0].path), withCode('ERR_MODEL_LOAD'))
  await cli.shutdown()
})

test('the random route prefix appears in neither status nor logs', TL, async () => {
  // A child process, so that its stderr (where logs go) can be read.
  const script = `
    const { readFileSync } = require('node:fs')
    const { PersistentWhisperEngine } = require(${JSON.stringify(ROOT)})
    ;(async () => {
      const e = new PersistentWhisperEngine({ modelPath: ${JSON.stringify(TINY_EN)}, backend: 'server', poolSize: 2, logLevel: 'debug' })
      await e.initialize()
      await e.transcribe(${JSON.stringify(clips[4].path)})
      const workers = await e.getWorkerStatuses()
      const argv = (pid) => readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0')
      const prefixes = workers.map((w) => argv(w.pid)[argv(w.pid).indexOf('--request-path') + 1])
      const status = JSON.stringify([workers, await e.getStatus(), await e.getQueueStatus()])
      await e.shutdown()
      console.log(JSON.stringify({ prefixes, status }))
    })()`
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  assert.equal(child.status, 0, child.stderr)
  const { prefixes, status } = JSON.parse(child.stdout)
  assert.equal(prefixes.length, 2)
  for (const prefix of prefixes) {
    assert.match(prefix, /^\/[0-9a-f]{32}$/)
    assert.ok(!status.includes(prefix.slice(1)), 'prefix in status')
    assert.ok(!child.stderr.includes(prefix.slice(1)), 'prefix in logs')
  }
  assert.match(child.stderr, /\[ProcessWorker:worker-1\] ready/, 'the debug log was captured')
})
