// The pool grows while requests wait and shrinks when idle; it tells what it
// does through events; its statistics carry percentiles. Real whisper.cpp
// for the pool's behaviour, the FAKE whisper-cli (fault injection only) for
// many quick requests.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BACKENDS, clips, FAKE_WHISPER_CLI, FAKES_RUN, missingPhrases, newEngine, TINY_EN, waitFor, withCode } from './helpers.mjs'

const T = { timeout: 300_000 }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Every event the engine emits, in order, as [type, payload]. */
function record(engine) {
  const seen = []
  for (const type of ['workerStarted', 'workerExited', 'requestCompleted', 'requestFailed', 'queueFull', 'drain', 'error']) {
    engine.on(type, (payload) => seen.push([type, payload]))
  }
  return seen
}

for (const backend of BACKENDS) {
  test(`${backend}: the pool grows to maxWorkers under load, shrinks to minWorkers when idle, and loses no request as it shrinks`, T, async () => {
    const engine = newEngine({ backend, minWorkers: 1, maxWorkers: 3, idleTimeout: 500 })
    const seen = record(engine)
    await engine.initialize()
    let stats = (await engine.getStatus()).poolStats
    assert.deepEqual([stats.totalWorkers, stats.minWorkers, stats.maxWorkers], [1, 1, 3])

    const batch = clips.slice(0, 6)
    const pending = batch.map((c) => engine.transcribe(c.path))
    stats = (await engine.getStatus()).poolStats
    assert.equal(stats.totalWorkers, 3, 'grew while requests waited')
    const results = await Promise.all(pending)
    results.forEach((r, i) => assert.deepEqual(missingPhrases(r.text, batch[i].keyPhrases), [], batch[i].file))
    assert.equal(new Set(results.map((r) => r.workerId)).size, 3)

    // Requests keep arriving while the extra workers reach their idle timeout.
    const late = []
    for (let t = 0; t < 900; t += 60) {
      late.push(engine.transcribe(clips[t % 3 === 0 ? 2 : 4].path))
      await sleep(60)
    }
    for (const r of await Promise.all(late)) assert.ok(r.text.length > 0)

    await waitFor('the pool to shrink back', async () => (await engine.getStatus()).poolStats.totalWorkers === 1, 20_000)
    const exits = seen.filter(([type]) => type === 'workerExited').map(([, e]) => e.reason)
    assert.ok(exits.length >= 2 && exits.every((r) => r === 'idle'), `${exits}`)
    const final = (await engine.getStatus()).poolStats
    assert.equal(final.totalRequestsProcessed, batch.length + late.length)
    assert.equal(final.totalRequestsFailed, 0)
    await engine.shutdown()
  })

  test(`${backend}: events fire in order with their payloads, and a throwing listener changes nothing`, T, async () => {
    const engine = newEngine({ backend, poolSize: 2, maxQueueSize: 1 })
    const seen = record(engine)
    engine.on('requestCompleted', () => {
      throw new Error('a listener with a bug')
    })
    const heardAfterBug = []
    engine.on('requestCompleted', (e) => heardAfterBug.push(e.requestId))
    await engine.initialize()

    const ok = [engine.transcribe(clips[0].path), engine.transcribe(clips[1].path), engine.transcribe(clips[2].path)]
    const full = engine.transcribe(clips[3].path)
    await assert.rejects(full, withCode('ERR_QUEUE_FULL'))
    await assert.rejects(engine.transcribe('/no/such/file.wav'), withCode('ERR_AUDIO_NOT_FOUND'))
    const results = await Promise.all(ok)
    await waitFor('drain', () => seen.some(([type]) => type === 'drain'))
    await engine.shutdown()
    await waitFor('the exits', () => seen.filter(([type]) => type === 'workerExited').length === 2)

    const types = seen.map(([type]) => type)
    assert.deepEqual(types.slice(0, 2), ['workerStarted', 'workerStarted'])
    assert.deepEqual(seen.slice(0, 2).map(([, e]) => e.workerId).sort(), ['worker-1', 'worker-2'])
    const completed = seen.filter(([type]) => type === 'requestCompleted').map(([, e]) => e)
    assert.deepEqual(completed.map((e) => e.requestId).sort(), results.map((r) => r.requestId).sort())
    for (const e of completed) {
      const r = results.find((x) => x.requestId === e.requestId)
      assert.equal(e.workerId, r.workerId)
      assert.equal(e.queueTimeMs, r.queueTimeMs)
      assert.equal(e.processingTimeMs, r.processingTimeMs)
    }
    const queueFull = seen.findIndex(([type]) => type === 'queueFull')
    assert.ok(queueFull >= 0)
    assert.deepEqual(seen[queueFull + 1][0], 'requestFailed')
    assert.equal(seen[queueFull + 1][1].code, 'ERR_QUEUE_FULL')
    assert.equal(seen[queueFull][1].maxQueueSize, 1)
    const notFound = seen.find(([type, e]) => type === 'requestFailed' && e.code === 'ERR_AUDIO_NOT_FOUND')
    assert.ok(notFound && notFound[1].message.includes('/no/such/file.wav'))
    const lastCompleted = types.lastIndexOf('requestCompleted')
    assert.ok(types.indexOf('drain', lastCompleted) > lastCompleted, 'drain after the last completion')
    assert.deepEqual(
      seen.slice(-2).map(([type, e]) => [type, e.reason]),
      [['workerExited', 'shutdown'], ['workerExited', 'shutdown']],
    )
    // The listener after the throwing one heard every completion.
    assert.deepEqual(heardAfterBug.sort(), results.map((r) => r.requestId).sort())
  })
}

test('poolStats percentiles equal a direct computation over the same requests', { ...T, ...FAKES_RUN }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-pct-'))
  writeFileSync(join(dir, 'model.bin'), readFileSync(TINY_EN).subarray(0, 48))
  const files = [0, 0.01, 0.03, 0.05, 0.08].map((seconds, i) => {
    const p = join(dir, `job-${i}.wav`)
    writeFileSync(p, `work ${seconds} x\n`)
    return p
  })
  const engine = newEngine({ modelPath: join(dir, 'model.bin'), whisperPath: FAKE_WHISPER_CLI, poolSize: 3 })
  await engine.initialize()
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => engine.transcribe(files[i % files.length])))
  const stats = (await engine.getStatus()).poolStats
  await engine.shutdown()
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  const nearestRank = (values, p) => {
    const sorted = [...values].sort((a, b) => a - b)
    return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]
  }
  for (const [field, key] of [['queueTime', 'queueTimeMs'], ['processingTime', 'processingTimeMs']]) {
    const values = results.map((r) => r[key])
    for (const p of [50, 95, 99]) {
      assert.equal(stats[`${field}P${p}`], nearestRank(values, p), `${field} p${p}`)
    }
  }
  assert.ok(stats.processingTimeP99 > stats.processingTimeP50, 'the work varied')
})
