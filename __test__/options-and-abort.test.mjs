// Options checked at construction, and AbortSignal with real whisper.cpp.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BACKENDS, clips, isGone, JFK_WAV, newEngine, PersistentWhisperEngine, TINY_EN, waitFor, withCode } from './helpers.mjs'

const T = { timeout: 180_000 }

test('every invalid option throws ERR_INVALID_OPTIONS naming the option and its range', () => {
  const cases = [
    [{ poolSize: 0 }, /`poolSize`.*1 to 64/],
    [{ poolSize: -2 }, /`poolSize`.*1 to 64/],
    [{ poolSize: NaN }, /`poolSize`.*1 to 64.*NaN/],
    [{ poolSize: 1e6 }, /`poolSize`.*1 to 64/],
    [{ poolSize: '3' }, /`poolSize`.*wrong type/],
    [{ timeout: -1 }, /`timeout`.*from 1/],
    [{ threads: 0 }, /`threads`.*from 1/],
    [{ maxQueueSize: -1 }, /`maxQueueSize`.*0 to/],
    [{ maxRequestsPerWorker: 0 }, /`maxRequestsPerWorker`/],
    [{ modelPath: '' }, /`modelPath`/],
    [{ modelPath: undefined }, /`modelPath`/],
    [{ backend: 'gpu' }, /`backend`.*"cli", "server" or "worker"/],
    [{ backend: 'worker', processes: 0 }, /`processes`.*1 to 64/],
    [{ backend: 'worker', poolSize: 2, processes: 3 }, /`processes`.*3 > 2/],
    [{ backend: 'worker', extraArgs: ['-dtw', 'tiny'] }, /`extraArgs`.*backend 'worker'/],
    [{ extraArgs: ['--vad'] }, /`extraArgs`.*-vm/],
    [{ extraArgs: ['-bs', '9'] }, /`extraArgs`.*-bs must be from 1 to 8/],
    [{ extraArgs: ['-ot', '-500'] }, /`extraArgs`.*-ot must be from 0/],
    [{ extraArgs: ['-d', '-1'] }, /`extraArgs`.*-d must be from 0/],
    [{ maxDuration: 10 }, /`maxDuration`.*1000 to/],
    [{ maxFileSize: 0 }, /`maxFileSize`.*1 to/],
    [{ workerPath: 42 }, /`workerPath`.*wrong type/],
    [{ language: 'klingon' }, /`language`/],
    [{ logLevel: 'loud' }, /`logLevel`/],
    [{ extraArgs: ['-m', 'other.bin'] }, /`extraArgs`.*modelPath/],
    // An allow-list: nothing that moves the server or what it serves.
    [{ backend: 'server', extraArgs: ['--host', '0.0.0.0'] }, /`extraArgs`.*--host/],
    [{ backend: 'server', extraArgs: ['--public', '/etc'] }, /`extraArgs`.*--public/],
    [{ backend: 'server', extraArgs: ['--port', '8080'] }, /`extraArgs`.*--port/],
    [{ backend: 'server', extraArgs: ['--request-path', '/x'] }, /`extraArgs`.*--request-path/],
    [{ extraArgs: ['-of', 'out'] }, /`extraArgs`.*-of/],
    [{ extraArgs: ['-bs'] }, /`extraArgs`.*needs a value/],
    [{ minWorkers: 4, maxWorkers: 2 }, /`minWorkers`.*4 > 2/],
    [{ idleTimeout: -1 }, /`idleTimeout`/],
    [{ basePort: 80 }, /`basePort`.*1024 to 65535/],
  ]
  for (const [bad, message] of cases) {
    assert.throws(
      () => new PersistentWhisperEngine({ modelPath: TINY_EN, ...bad }),
      (err) => withCode('ERR_INVALID_OPTIONS')(err) && message.test(err.message),
      JSON.stringify(bad),
    )
  }
  assert.throws(() => new PersistentWhisperEngine(), withCode('ERR_INVALID_OPTIONS'))
})

for (const backend of BACKENDS) {
  test(`${backend}: an AbortSignal cancels queued and running requests, and the caller's listeners still fire`, T, async () => {
    const engine = newEngine({ backend, poolSize: 1 })
    await engine.initialize()

    await assert.rejects(engine.transcribe(clips[0].path, { signal: AbortSignal.abort() }), withCode('ERR_ABORTED'))

    const running = new AbortController()
    const queued = new AbortController()
    const heard = []
    running.signal.onabort = () => heard.push('onabort')
    running.signal.addEventListener('abort', () => heard.push('listener'))
    const first = engine.transcribe(JFK_WAV, { signal: running.signal })
    const second = engine.transcribe(clips[1].path, { signal: queued.signal })
    const third = engine.transcribe(clips[2].path)

    queued.abort()
    await assert.rejects(second, withCode('ERR_ABORTED'))
    assert.equal((await engine.getQueueStatus()).queueLength, 1, 'the aborted request left the queue')

    const worker = await waitFor('the request to run', async () => (await engine.getWorkerStatuses()).find((w) => w.pid))
    running.abort()
    await assert.rejects(first, withCode('ERR_ABORTED'))
    assert.deepEqual(heard.sort(), ['listener', 'onabort'])
    // The rejection comes at once; the kill follows.
    if (backend === 'cli') await waitFor('its whisper-cli to be killed', () => isGone(worker.pid), 10_000)
    else assert.ok(!isGone(worker.pid), 'the server stays')

    const after = await third
    assert.ok(after.text.length > 0)
    const stats = (await engine.getStatus()).poolStats
    assert.equal(stats.totalRequestsAborted, 2)
    assert.equal(stats.workersReplaced, 0, 'aborting is not a worker failure')
    await engine.shutdown()
  })
}
