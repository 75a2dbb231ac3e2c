// The engine with real whisper.cpp, the real tiny.en model and real speech,
// once per backend: the same assertions for 'cli' and 'server'.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BACKENDS, clips, childProcesses, missingPhrases, newEngine, processName, withCode, TINY_EN } from './helpers.mjs'

const T = { timeout: 180_000 }

for (const backend of BACKENDS) {
  test(`${backend}: six files at once on three workers: three run, three wait, all come back right`, T, async () => {
    const engine = newEngine({ backend, poolSize: 3 })
    await engine.initialize()
    const files = clips.slice(0, 6)
    const pending = files.map((c) => engine.transcribe(c.path))

    const workers = await engine.getWorkerStatuses()
    assert.deepEqual(workers.map((w) => w.state), ['processing', 'processing', 'processing'])
    const queue = await engine.getQueueStatus()
    assert.equal(queue.queueLength, 3)
    assert.deepEqual(queue.queuedRequests.map((q) => q.audioFilePath), files.slice(3).map((c) => c.path))
    assert.equal(queue.processingRequests.length, 3)

    const results = await Promise.all(pending)
    results.forEach((r, i) => {
      assert.deepEqual(missingPhrases(r.text, files[i].keyPhrases), [], `${files[i].file}: "${r.text}"`)
      assert.equal(r.language, 'en')
      assert.ok(r.segments.length > 0 && r.segments.every((s) => s.start < s.end), JSON.stringify(r.segments))
      assert.ok(r.processingTimeMs > 0)
    })
    assert.equal(new Set(results.map((r) => r.requestId)).size, 6)
    assert.deepEqual([...new Set(results.map((r) => r.workerId))].sort(), ['worker-1', 'worker-2', 'worker-3'])
    // The first three never waited; the last three waited for a worker.
    assert.ok(results.slice(3).every((r) => r.queueTimeMs > results[0].queueTimeMs))

    const status = await engine.getStatus()
    const stats = status.poolStats
    assert.equal(status.backend, backend)
    assert.equal(status.modelLoaded, backend !== 'cli')
    assert.equal(status.requestsProcessed, 6)
    assert.equal(stats.totalRequestsSubmitted, 6)
    assert.equal(stats.totalRequestsProcessed, 6)
    assert.equal(stats.totalRequestsFailed, 0)
    assert.equal(stats.busyWorkers, 0)
    assert.equal(stats.queueLength, 0)
    assert.equal(status.poolUtilization, 0)
    const after = await engine.getWorkerStatuses()
    assert.equal(after.reduce((n, w) => n + w.requestsProcessed, 0), 6)
    assert.ok(after.every((w) => w.state === 'completed'))
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length
    assert.ok(Math.abs(stats.averageProcessingTime - mean(results.map((r) => r.processingTimeMs))) < 1)
    assert.ok(Math.abs(stats.averageQueueTime - mean(results.map((r) => r.queueTimeMs))) < 1)
    await engine.shutdown()
  })

  test(`${backend}: error codes for a missing file and unreadable audio; the engine serves on`, T, async () => {
    const engine = newEngine({ backend, poolSize: 1 })
    await engine.initialize()
    await assert.rejects(engine.transcribe('/no/such/file.wav'), withCode('ERR_AUDIO_NOT_FOUND'))
    const dir = mkdtempSync(join(tmpdir(), 'pw-'))
    const text = join(dir, 'notes.wav')
    writeFileSync(text, 'this is text, not audio\n')
    await assert.rejects(engine.transcribe(text), withCode('ERR_AUDIO_UNREADABLE'))
    const ok = await engine.transcribe(clips[0].path)
    assert.deepEqual(missingPhrases(ok.text, clips[0].keyPhrases), [])
    await engine.shutdown()
  })

  test(`${backend}: error codes for a missing model and a missing binary`, T, async () => {
    await assert.rejects(newEngine({ backend, modelPath: '/no/model.bin' }).initialize(), withCode('ERR_MODEL_LOAD'))
    const binary = {
      cli: { whisperPath: '/no/bin/whisper-cli' },
      server: { serverPath: '/no/bin/whisper-server' },
      worker: { workerPath: '/no/bin/persistent-whisper-worker' },
    }[backend]
    await assert.rejects(
      newEngine({ backend, ...binary }).initialize(),
      (err) => withCode('ERR_WHISPER_NOT_FOUND')(err) && err.message.includes(Object.values(binary)[0]),
    )
    assert.throws(() => newEngine({ backend, poolSize: 0 }), withCode('ERR_INVALID_OPTIONS'))
    const idle = newEngine({ backend })
    await assert.rejects(idle.transcribe(TINY_EN), withCode('ERR_NOT_INITIALIZED'))
    for (const bad of ['fast', { priority: 'urgent' }, { timeout: 'soon' }, { language: 'klingon' }]) {
      await assert.rejects(idle.transcribe(TINY_EN, bad), withCode('ERR_INVALID_OPTIONS'), JSON.stringify(bad))
    }
    await assert.rejects(idle.transcribe(42), withCode('ERR_INVALID_OPTIONS'))
  })

  test(`${backend}: restart() replaces the workers and keeps serving`, T, async () => {
    const engine = newEngine({ backend, poolSize: 2 })
    await engine.initialize()
    const before = await engine.getWorkerStatuses()
    const during = engine.transcribe(clips[1].path)
    await engine.restart()
    const after = await engine.getWorkerStatuses()
    assert.deepEqual(before.map((w) => w.id), ['worker-1', 'worker-2'])
    assert.equal(after.length, 2)
    assert.ok(after.every((w) => !before.some((b) => b.id === w.id)), `${after.map((w) => w.id)}`)
    if (backend !== 'cli') {
      assert.ok(after.every((w) => w.modelLoaded && w.pid && !before.some((b) => b.pid === w.pid)))
    }
    assert.deepEqual(missingPhrases((await during).text, clips[1].keyPhrases), [])
    const next = await engine.transcribe(clips[2].path)
    assert.deepEqual(missingPhrases(next.text, clips[2].keyPhrases), [])
    assert.ok(after.some((w) => w.id === next.workerId))
    await engine.shutdown()
  })

  test(`${backend}: after shutdown() no whisper process of the engine exists`, T, async (t) => {
    const name = processName(backend)
    if (childProcesses(name) === null) return t.skip('needs /proc')
    const engine = newEngine({ backend, poolSize: 3 })
    await engine.initialize()
    const pending = clips.map((c) => engine.transcribe(c.path).then(() => 'ok', (e) => e.code))
    await Promise.race(pending)
    assert.ok(childProcesses(name).length > 0, 'whisper processes were running')
    await engine.shutdown()
    assert.deepEqual(childProcesses(name), [])
    const outcomes = await Promise.all(pending)
    assert.ok(outcomes.every((o) => o === 'ok' || o === 'ERR_SHUTDOWN'), `${outcomes}`)
    assert.ok(outcomes.includes('ERR_SHUTDOWN'))
    assert.ok((await engine.getWorkerStatuses()).every((w) => w.state === 'terminated'))
    await assert.rejects(engine.transcribe(clips[0].path), withCode('ERR_SHUTDOWN'))
    await assert.rejects(engine.shutdown(), withCode('ERR_SHUTDOWN'))
  })
}
