// Lifecycle under load with real whisper.cpp, both backends: shutdown with a
// full queue, restart under load, a host killed without shutdown, a worker
// killed mid-request. Nothing is lost, nothing is left running.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BACKENDS, childProcesses, clips, isGone, missingPhrases, newEngine, processName, ROOT, TINY_EN, waitFor, wav, wavParts, withCode } from './helpers.mjs'

const T = { timeout: 300_000 }

/** Two minutes of speech (the clips, repeated), written once. */
function longWav() {
  const file = join(tmpdir(), 'pw-long-speech.wav')
  if (!existsSync(file)) {
    const parts = clips.filter((c) => c.file.endsWith('.wav')).map((c) => wavParts(c.path).data)
    const data = Buffer.concat(Array.from({ length: 40 }, (_, i) => parts[i % parts.length]))
    writeFileSync(file, wav(data))
  }
  return file
}
const outcome = (p) => p.then(() => 'ok', (e) => e.code)

for (const backend of BACKENDS) {
  test(`${backend}: shutdown with 3 running and 50 queued settles all 53 and leaves no process`, T, async () => {
    const engine = newEngine({ backend, poolSize: 3 })
    await engine.initialize()
    await engine.initialize() // harmless
    const pending = Array.from({ length: 53 }, (_, i) => outcome(engine.transcribe(clips[i % clips.length].path)))
    const queue = await engine.getQueueStatus()
    assert.equal(queue.processingRequests.length, 3)
    assert.equal(queue.queueLength, 50)
    await engine.shutdown()
    const outcomes = await Promise.all(pending)
    assert.equal(outcomes.length, 53)
    assert.deepEqual([...new Set(outcomes)], ['ERR_SHUTDOWN'])
    assert.deepEqual(childProcesses(processName(backend)) ?? [], [])
    const stats = (await engine.getStatus()).poolStats
    assert.equal(stats.totalRequestsSubmitted, 53)
    assert.equal(stats.totalRequestsFailed, 53)
    await assert.rejects(engine.shutdown(), withCode('ERR_SHUTDOWN'))
    await assert.rejects(engine.transcribe(clips[0].path), withCode('ERR_SHUTDOWN'))
  })

  test(`${backend}: restart() under load loses no request`, T, async () => {
    const engine = newEngine({ backend, poolSize: 3 })
    await engine.initialize()
    const files = [...clips, ...clips].slice(0, 12)
    const pending = files.map((c) => engine.transcribe(c.path))
    await engine.restart()
    const results = await Promise.all(pending)
    results.forEach((r, i) => assert.deepEqual(missingPhrases(r.text, files[i].keyPhrases), [], files[i].file))
    const ids = (await engine.getWorkerStatuses()).map((w) => w.id)
    assert.ok(ids.every((id) => Number(id.split('-')[1]) > 3), `${ids}`)
    assert.ok(results.every((r) => ids.includes(r.workerId)), 'everything ran on the new workers')
    await engine.shutdown()
  })

  for (const watchdog of [false, true]) {
    const how = watchdog ? 'the watchdog alone (parent-death signal off, as on macOS)' : 'the parent-death signal'
    test(`${backend}: a host killed with SIGKILL leaves no whisper process behind, by ${how}`, T, async (t) => {
      if (process.platform !== 'linux') return t.skip('Linux: the test switches the parent-death signal off')
      const env = { ...process.env }
      if (watchdog) env.PERSISTENT_WHISPER_NO_PDEATHSIG = '1'
      // A long file keeps each whisper-cli busy long after its host is gone.
      const long = longWav()
      const script = `
        const { PersistentWhisperEngine } = require(${JSON.stringify(ROOT)})
        ;(async () => {
          const e = new PersistentWhisperEngine({ modelPath: ${JSON.stringify(TINY_EN)}, backend: ${JSON.stringify(backend)}, poolSize: 2, logLevel: 'silent' })
          await e.initialize()
          for (let i = 0; i < 4; i++) e.transcribe(${JSON.stringify(long)}).catch(() => {})
          for (;;) {
            const pids = (await e.getWorkerStatuses()).map((w) => w.pid)
            if (pids.every(Boolean)) { console.log(JSON.stringify(pids)); break }
            await new Promise((r) => setTimeout(r, 10))
          }
          setInterval(() => {}, 1000)
        })()`
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env })
      const pids = await new Promise((resolve, reject) => {
        child.stdout.once('data', (d) => resolve(JSON.parse(d)))
        child.once('exit', (code) => reject(new Error(`child exited early (${code})`)))
      })
      assert.equal(pids.length, 2)
      assert.ok(pids.every((p) => !isGone(p)), 'whisper processes were running')
      child.kill('SIGKILL')
      await waitFor('the whisper processes to die with their host', () => pids.every(isGone), 10_000)
    })
  }
}

test('cli: a whisper-cli killed with SIGKILL runs its request again; killed again, the request fails alone and the pool heals', T, async () => {
  const engine = newEngine({ backend: 'cli', poolSize: 2 })
  await engine.initialize()
  const kill = async (previous) => {
    const worker = await waitFor('a whisper-cli to start', async () =>
      (await engine.getWorkerStatuses()).find((w) => w.pid && w.pid !== previous && w.state === 'processing'),
    )
    process.kill(worker.pid, 'SIGKILL')
    return worker
  }
  // Killed once (the OOM killer, say): the caller sees only a later result.
  const survivor = engine.transcribe(clips.at(-1).path)
  const first = await kill()
  assert.deepEqual(missingPhrases((await survivor).text, clips.at(-1).keyPhrases), [])
  // Killed every time it runs: it is the cause, and fails alone.
  const victim = engine.transcribe(clips.at(-1).path)
  const second = await kill(first.pid)
  await kill(second.pid)
  await assert.rejects(victim, (err) => withCode('ERR_WORKER_CRASHED')(err) && /SIGKILL/.test(err.message))
  const stats = (await engine.getStatus()).poolStats
  assert.equal(stats.totalRequestsRetried, 2)
  assert.equal(stats.totalRequestsFailed, 1)
  const ids = (await engine.getWorkerStatuses()).map((w) => w.id)
  assert.ok(!ids.includes(first.id) && ids.length === 2, `${ids}`)
  const results = await Promise.all(clips.slice(0, 3).map((c) => engine.transcribe(c.path)))
  results.forEach((r, i) => assert.deepEqual(missingPhrases(r.text, clips[i].keyPhrases), []))
  await engine.shutdown()
})
