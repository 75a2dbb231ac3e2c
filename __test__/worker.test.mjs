// The worker backend with the real persistent-whisper-worker (whisper.cpp
// 1.9.1 linked in) and real models: its transcripts equal whisper-cli's, a
// process holds the model for several slots, abort keeps the process, and the
// process dies with its host by the stdin rule alone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { BASE, childProcesses, clips, isGone, longSpeech, newEngine, processName, ROOT, TINY_EN, waitFor, withCode } from './helpers.mjs'

const T = { timeout: 600_000 }

/** Each clip transcribed one at a time, on a fresh engine of the backend. */
async function transcribeAll(options) {
  const engine = newEngine(options)
  await engine.initialize()
  const results = []
  for (const clip of clips) results.push(await engine.transcribe(clip.path))
  await engine.shutdown()
  return results
}

for (const [name, modelPath] of [
  ['tiny.en', TINY_EN],
  ['base', BASE],
]) {
  test(`worker: transcripts equal whisper-cli's on every clip with ${name}`, T, async () => {
    const cli = await transcribeAll({ backend: 'cli', modelPath, poolSize: 1, threads: 2 })
    const worker = await transcribeAll({ backend: 'worker', modelPath, poolSize: 1, threads: 2 })
    clips.forEach((clip, i) => {
      assert.equal(worker[i].text, cli[i].text, clip.file)
      assert.deepEqual(worker[i].segments, cli[i].segments, clip.file)
      assert.equal(worker[i].language, cli[i].language, clip.file)
    })
  })
}

test('worker: concurrent decodes in one process give the text of decodes one at a time', T, async () => {
  const engine = newEngine({ backend: 'worker', poolSize: 3, processes: 1, threads: 1 })
  await engine.initialize()
  const statuses = await engine.getWorkerStatuses()
  assert.equal(new Set(statuses.map((w) => w.pid)).size, 1, 'one process serves the three slots')
  const alone = []
  for (const clip of clips) alone.push(await engine.transcribe(clip.path))
  const together = await Promise.all(clips.map((clip) => engine.transcribe(clip.path)))
  assert.ok(new Set(together.map((r) => r.workerId)).size > 1, 'the decodes ran side by side')
  clips.forEach((clip, i) => {
    assert.equal(together[i].text, alone[i].text, clip.file)
    assert.deepEqual(together[i].segments, alone[i].segments, clip.file)
  })
  await engine.shutdown()
})

test('worker: abort stops the decode, and the same process serves the next request', T, async () => {
  const engine = newEngine({ backend: 'worker', poolSize: 1 })
  await engine.initialize()
  const [before] = await engine.getWorkerStatuses()
  const controller = new AbortController()
  let progressed
  const reached = new Promise((resolve) => (progressed = resolve))
  const long = engine.transcribe(longSpeech(6), { signal: controller.signal, onProgress: (p) => p > 0 && progressed() })
  await reached
  controller.abort()
  await assert.rejects(long, withCode('ERR_ABORTED'))
  const next = await engine.transcribe(clips[0].path)
  assert.ok(next.text.length > 0)
  const [after] = await engine.getWorkerStatuses()
  assert.equal(after.pid, before.pid, 'the process kept its model')
  assert.equal(after.id, before.id)
  const stats = (await engine.getStatus()).poolStats
  assert.equal(stats.workersReplaced, 0)
  assert.equal(stats.totalRequestsAborted, 1)
  await engine.shutdown()
})

test('worker: a process killed mid-request costs its requests nothing: they run again; another process serves on', T, async () => {
  const engine = newEngine({ backend: 'worker', poolSize: 2, processes: 2 })
  await engine.initialize()
  const statuses = await engine.getWorkerStatuses()
  const pids = [...new Set(statuses.map((w) => w.pid))]
  assert.equal(pids.length, 2)
  // Progress proves each process received its request and is decoding it
  // (a request still being written to a dying process goes elsewhere).
  const progressed = [false, false]
  const running = [0, 1].map((i) => engine.transcribe(longSpeech(2), { onProgress: () => (progressed[i] = true) }))
  await waitFor('both processes decoding', () => progressed.every(Boolean))
  process.kill(pids[0], 'SIGKILL')
  const results = await Promise.all(running)
  for (const r of results) assert.ok(r.text.length > 0)
  assert.equal((await engine.getStatus()).poolStats.totalRequestsRetried, 1)
  const after = await engine.transcribe(clips[1].path)
  assert.ok(after.text.length > 0)
  const now = new Set((await engine.getWorkerStatuses()).map((w) => w.pid))
  assert.ok(!now.has(pids[0]) && now.has(pids[1]), `${pids} -> ${[...now]}`)
  await engine.shutdown()
  assert.deepEqual(childProcesses(processName('worker')), [])
})

test('worker: with the parent-death signal off, SIGKILL of the host still ends its worker process', T, async () => {
  const host = spawn(
    process.execPath,
    [
      '-e',
      `
      const { PersistentWhisperEngine } = require(${JSON.stringify(ROOT)})
      const engine = new PersistentWhisperEngine({ modelPath: ${JSON.stringify(TINY_EN)}, backend: 'worker', poolSize: 2, logLevel: 'silent' })
      engine.initialize().then(async () => {
        engine.transcribe(${JSON.stringify(clips[0].path)})
        const pids = (await engine.getWorkerStatuses()).map((w) => w.pid)
        console.log(JSON.stringify(pids))
      })
      setInterval(() => {}, 1000)
      `,
    ],
    { env: { ...process.env, PERSISTENT_WHISPER_NO_PDEATHSIG: '1' }, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const [line] = await once(host.stdout, 'data')
  const [pid] = JSON.parse(line.toString())
  assert.ok(pid > 0 && !isGone(pid))
  host.kill('SIGKILL')
  await once(host, 'exit')
  await waitFor(`worker ${pid} to exit`, () => isGone(pid), 10_000)
})

test('worker: initialize() names a missing worker program and a model that does not load', T, async () => {
  await assert.rejects(
    newEngine({ backend: 'worker', workerPath: '/no/bin/persistent-whisper-worker' }).initialize(),
    (err) => withCode('ERR_WHISPER_NOT_FOUND')(err) && err.message.includes('workerPath'),
  )
  await assert.rejects(newEngine({ backend: 'worker', modelPath: ROOT + '/package.json' }).initialize(), withCode('ERR_MODEL_LOAD'))
})
