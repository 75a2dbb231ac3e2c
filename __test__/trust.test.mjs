// The worker backend, trusted: no request fails for what another did, every
// phase of a request stops when asked without costing its process, and no
// input costs what its bytes do not justify. Real persistent-whisper-worker,
// real models, real speech.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, ftruncateSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hostTarget, TARGETS } from '../scripts/targets.mjs'
import { stockDir } from '../scripts/whisper-build.mjs'
import { BASE, JFK_MP3, LINUX_ONLY, childProcesses, clips, longSpeech, missingPhrases, newEngine, processName, waitFor, wav, withCode } from './helpers.mjs'

const T = { timeout: 600_000 }

const scratch = mkdtempSync(join(tmpdir(), 'pw-trust-'))
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }))

/** A process's peak resident memory in bytes (Linux /proc). */
function peakRss(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'))
  return Number(line.split(/\s+/)[1]) * 1024
}

const onePid = async (engine) => {
  const pids = [...new Set((await engine.getWorkerStatuses()).map((w) => w.pid))]
  assert.equal(pids.length, 1, `one worker process: ${pids}`)
  return pids[0]
}

/** Resolves once onProgress reports work on every one of `n` requests. */
function progressTracker(n) {
  const seen = new Array(n).fill(false)
  return {
    options: (i) => ({ onProgress: (p) => p > 0 && (seen[i] = true) }),
    all: () => waitFor(`progress on all ${n} requests`, () => seen.every(Boolean), 120_000),
  }
}

// Threads fixed: a file's text then does not depend on what runs beside it,
// so a re-run must give exactly the text of an undisturbed run.
const steady = { backend: 'worker', poolSize: 3, processes: 1, threads: 1 }

test('worker: kill -9 of a process with three requests in flight loses none of them', T, async () => {
  const engine = newEngine(steady)
  const retried = []
  engine.on('requestRetried', (e) => retried.push(e))
  await engine.initialize()
  const audio = longSpeech(1)
  const undisturbed = await engine.transcribe(audio)
  const pid = await onePid(engine)
  const progress = progressTracker(3)
  const running = [0, 1, 2].map((i) => engine.transcribe(audio, progress.options(i)))
  await progress.all()
  process.kill(pid, 'SIGKILL')
  for (const r of await Promise.all(running)) {
    assert.equal(r.text, undisturbed.text, r.requestId)
    assert.deepEqual(r.segments, undisturbed.segments, r.requestId)
  }
  assert.equal(retried.length, 3, JSON.stringify(retried))
  assert.ok(retried.every((e) => /killed by SIGKILL/.test(e.message)), retried[0]?.message)
  const stats = (await engine.getStatus()).poolStats
  assert.equal(stats.totalRequestsRetried, 3)
  assert.equal(stats.totalRequestsFailed, 0)
  assert.notEqual(await onePid(engine), pid, 'a fresh process serves')
  await engine.shutdown()
  assert.deepEqual(childProcesses(processName('worker')), [])
})

test('worker: a request whose process is killed every time it runs fails alone; the two beside it complete', T, async () => {
  const engine = newEngine(steady)
  await engine.initialize()
  const audio = longSpeech(1)
  const undisturbed = await engine.transcribe(audio)
  // The poison: its process dies whenever it has begun work.
  const poison = join(scratch, 'poison.wav')
  writeFileSync(poison, audio)
  // Every process seen running it is killed, once all three run side by
  // side and then wherever it runs again, however soon it would finish
  // (waiting for its progress raced its end: a re-run alone reports only 100).
  const killed = new Set()
  let hunting = false
  let done = false
  const hunt = async () => {
    while (!done) {
      const { processingRequests } = await engine.getQueueStatus()
      const mine = processingRequests.find((r) => r.audioFilePath === poison)
      const worker = mine && (await engine.getWorkerStatuses()).find((w) => w.id === mine.workerId)
      if (hunting && worker?.pid && !killed.has(worker.pid)) {
        killed.add(worker.pid)
        process.kill(worker.pid, 'SIGKILL')
      }
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  const progress = progressTracker(3)
  const innocent = [0, 1].map((i) => engine.transcribe(audio, progress.options(i)))
  const poisoned = engine.transcribe(poison, progress.options(2))
  const hunter = hunt()
  await progress.all()
  hunting = true
  try {
    await assert.rejects(poisoned, (err) => withCode('ERR_WORKER_CRASHED')(err) && /running it alone/.test(err.message))
  } finally {
    done = true
    await hunter
  }
  const kills = killed.size
  for (const r of await Promise.all(innocent)) assert.equal(r.text, undisturbed.text)
  assert.ok(kills >= 2, `${kills} kills`)
  const stats = (await engine.getStatus()).poolStats
  assert.equal(stats.totalRequestsFailed, 1)
  assert.equal(stats.totalRequestsProcessed, 3)
  await engine.shutdown()
})

/** An MP3 of `times` copies of jfk.mp3: whisper decodes it frame by frame. */
function longMp3(times) {
  const file = join(scratch, `long-${times}.mp3`)
  writeFileSync(file, Buffer.concat(Array.from({ length: times }, () => readFileSync(JFK_MP3))))
  return file
}

test('worker: an abort in any phase (decoding, spectrogram, language detection, decode) leaves the process serving', T, async () => {
  const engine = newEngine({ backend: 'worker', modelPath: BASE, poolSize: 2, processes: 1, language: 'auto' })
  await engine.initialize()
  const pid = await onePid(engine)
  // 44 minutes of MP3 to decode, 44 of WAV for the spectrogram, and every
  // request detects its language (an encoder pass) before it decodes.
  const inputs = [longMp3(240), longSpeech(120)]
  for (const input of inputs) {
    for (const delay of [20, 400, 1500, 4000]) {
      const controller = new AbortController()
      const aborted = engine.transcribe(input, { signal: controller.signal })
      // A neighbour in the same process, which must not notice.
      const neighbour = engine.transcribe(clips[0].path, { language: 'en' })
      await new Promise((resolve) => setTimeout(resolve, delay))
      controller.abort()
      await assert.rejects(aborted, withCode('ERR_ABORTED'))
      const r = await neighbour
      assert.deepEqual(missingPhrases(r.text, clips[0].keyPhrases), [], `after an abort at ${delay} ms`)
      // The aborted request's slot is free again once its process answered.
      await waitFor('the slot to be free', async () => (await engine.getWorkerStatuses()).every((w) => w.state !== 'processing'))
      assert.equal(await onePid(engine), pid, `the process survived an abort at ${delay} ms`)
    }
  }
  const stats = (await engine.getStatus()).poolStats
  assert.equal(stats.workersReplaced, 0)
  assert.equal(stats.totalRequestsRetried, 0)
  await engine.shutdown()
})

/** A 62-byte AIFF whose COMM chunk claims 0xFFFFFFFF frames at 16 kHz. */
function aiffClaiming4GFrames() {
  const b = Buffer.alloc(54)
  b.write('FORM', 0)
  b.writeUInt32BE(46, 4)
  b.write('AIFFCOMM', 8)
  b.writeUInt32BE(18, 16)
  b.writeUInt16BE(1, 20)
  b.writeUInt32BE(0xffffffff, 22)
  b.writeUInt16BE(16, 26)
  Buffer.from([0x40, 0x0c, 0xfa, 0, 0, 0, 0, 0, 0, 0]).copy(b, 28)
  b.write('SSND', 38)
  b.writeUInt32BE(8, 42)
  return b
}

/** A WAV of `bytes` bytes of 8-bit samples at `rate` Hz. */
function lowRateWav(rate, bytes) {
  const w = wav(Buffer.alloc(bytes, 128))
  w.writeUInt32LE(rate, 24)
  w.writeUInt32LE(rate, 28)
  w.writeUInt16LE(1, 32)
  w.writeUInt16LE(8, 34)
  return w
}

// Peak memory from /proc.
test('worker: crafted headers cost next to nothing and reject at once; a request beside them succeeds', { ...T, ...LINUX_ONLY }, async () => {
  const engine = newEngine({ backend: 'worker', poolSize: 2, processes: 1 })
  await engine.initialize()
  const pid = await onePid(engine)
  const before = peakRss(pid)
  const aiff = join(scratch, 'claims.aiff')
  writeFileSync(aiff, aiffClaiming4GFrames())
  const oneHz = join(scratch, 'one-hz.wav')
  writeFileSync(oneHz, lowRateWav(1, 100_000))
  const neighbour = engine.transcribe(clips[1].path)
  for (const crafted of [aiff, oneHz, readFileSync(aiff), readFileSync(oneHz)]) {
    await assert.rejects(engine.transcribe(crafted), withCode('ERR_AUDIO_UNREADABLE'))
  }
  assert.deepEqual(missingPhrases((await neighbour).text, clips[1].keyPhrases), [])
  const grown = peakRss(pid) - before
  assert.ok(grown < 100 * 2 ** 20, `the worker grew by ${grown} bytes`)
  assert.equal(await onePid(engine), pid)
  await engine.shutdown()
})

test('cli and server: a header that claims more than maxDuration is refused before whisper sizes a buffer by it', T, async () => {
  const aiff = join(scratch, 'claims-cli.aiff')
  writeFileSync(aiff, aiffClaiming4GFrames())
  const huge = wav(Buffer.alloc(3200))
  huge.writeUInt32LE(0xfffffff0, 40) // the data chunk claims 37 hours
  for (const backend of ['cli', 'server']) {
    const engine = newEngine({ backend, poolSize: 1 })
    await engine.initialize()
    for (const crafted of [aiff, huge]) {
      await assert.rejects(
        engine.transcribe(crafted),
        (err) => withCode('ERR_AUDIO_UNREADABLE')(err) && err.message.includes('maxDuration'),
        backend,
      )
    }
    await assert.rejects(engine.transcribe(lowRateWav(1, 100_000)), (err) => /1 Hz/.test(err.message), backend)
    await engine.shutdown()
  }
})

test('limits: maxDuration and maxFileSize refuse what exceeds them, naming the option', T, async () => {
  // A 5 GiB file (sparse: it costs no disk) is refused unread.
  const big = join(scratch, 'big.wav')
  const fd = openSync(big, 'w')
  ftruncateSync(fd, 5 * 2 ** 30)
  closeSync(fd)
  for (const backend of ['worker', 'cli']) {
    const engine = newEngine({ backend, poolSize: 1, maxDuration: 2000, maxFileSize: 4 * 2 ** 30 })
    await engine.initialize()
    await assert.rejects(engine.transcribe(big), (err) => withCode('ERR_AUDIO_UNREADABLE')(err) && err.message.includes('maxFileSize'))
    // The clips are longer than 2 s: a file, its bytes, and its samples.
    for (const input of [clips[1].path, readFileSync(clips[1].path)]) {
      await assert.rejects(engine.transcribe(input), (err) => withCode('ERR_AUDIO_UNREADABLE')(err) && err.message.includes('maxDuration'))
    }
    await assert.rejects(engine.transcribe(new Float32Array(16_000 * 3)), (err) => err.message.includes('maxDuration'))
    await engine.shutdown()
  }
  // A compressed file's length shows only as it decodes: the worker stops there.
  const engine = newEngine({ backend: 'worker', poolSize: 1, maxDuration: 5000 })
  await engine.initialize()
  await assert.rejects(engine.transcribe(JFK_MP3), (err) => withCode('ERR_AUDIO_UNREADABLE')(err) && err.message.includes('maxDuration'))
  await engine.shutdown()
  for (const [name, bad] of [
    ['maxDuration', 0],
    ['maxDuration', 25 * 3600 * 1000],
    ['maxFileSize', -1],
  ]) {
    assert.throws(() => newEngine({ [name]: bad }), (err) => withCode('ERR_INVALID_OPTIONS')(err) && err.message.includes(name))
  }
})

test('worker: 64 requests in a pool of 64 on 2 cores all finish: the default timeout counts the cores they share', T, async () => {
  const engine = newEngine({ backend: 'worker', minWorkers: 0, maxWorkers: 64 })
  await engine.initialize()
  const outcomes = await Promise.allSettled(Array.from({ length: 64 }, () => engine.transcribe(clips[1].path)))
  const failed = outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason.code)
  assert.deepEqual(failed, [])
  await engine.shutdown()
})

test('threads fixed: the same file gives the same text however busy the engine is', T, async () => {
  const engine = newEngine({ backend: 'worker', poolSize: 3, threads: 1 })
  await engine.initialize()
  const alone = await engine.transcribe(clips[5].path)
  const [busy] = await Promise.all([engine.transcribe(clips[5].path), engine.transcribe(clips[0].path), engine.transcribe(clips[2].path)])
  assert.equal(busy.text, alone.text)
  assert.deepEqual(busy.segments, alone.segments)
  await engine.shutdown()
})

/** A worker program that is there but cannot run here (dies of SIGILL, as a build for a newer CPU would). */
function brokenWorker() {
  const file = join(scratch, 'sigill-worker')
  writeFileSync(file, '#!/bin/sh\nkill -ILL $$\n')
  chmodSync(file, 0o755)
  return file
}

test('the default backend is the worker; where its program cannot run, the engine runs cli and says so; a chosen backend fails instead', T, async () => {
  const engine = newEngine({ poolSize: 1 })
  await engine.initialize()
  assert.equal((await engine.getStatus()).backend, 'worker')
  await engine.shutdown()
  const saved = process.env.PERSISTENT_WHISPER_WORKER_PATH
  try {
    for (const missing of [join(scratch, 'no-such-worker'), brokenWorker()]) {
      process.env.PERSISTENT_WHISPER_WORKER_PATH = missing
      const fallen = newEngine({ poolSize: 1 })
      const events = []
      fallen.on('backendFallback', (e) => events.push(e))
      await fallen.initialize()
      assert.equal(events.length, 1, missing)
      assert.equal(events[0].backend, 'cli')
      assert.match(events[0].message, /persistent-whisper-worker/)
      const status = await fallen.getStatus()
      assert.equal(status.backend, 'cli')
      assert.match(status.program.path, /whisper-cli$/)
      assert.deepEqual(missingPhrases((await fallen.transcribe(clips[3].path)).text, clips[3].keyPhrases), [])
      await fallen.shutdown()
      await assert.rejects(newEngine({ backend: 'worker', poolSize: 1 }).initialize(), withCode('ERR_WHISPER_NOT_FOUND'))
    }
  } finally {
    if (saved === undefined) delete process.env.PERSISTENT_WHISPER_WORKER_PATH
    else process.env.PERSISTENT_WHISPER_WORKER_PATH = saved
  }
})

test('worker on stock whisper.cpp (the patch series off): the same transcripts, and its status says which changes it lacks', T, async () => {
  const target = hostTarget()
  const stockWorker = join(stockDir(target), 'bin', TARGETS[target].variants[0], 'persistent-whisper-worker')
  const texts = async (options) => {
    const engine = newEngine({ backend: 'worker', poolSize: 1, threads: 2, ...options })
    await engine.initialize()
    const out = []
    for (const clip of clips) out.push((await engine.transcribe(clip.path)).text)
    out.push((await engine.getStatus()).program.whisperFeatures)
    await engine.shutdown()
    return out
  }
  const patched = await texts({})
  const stock = await texts({ workerPath: stockWorker })
  assert.deepEqual(patched.pop(), ['liveThreads', 'zeroedKvPages', 'sharedEncoders'])
  assert.deepEqual(stock.pop(), [])
  assert.deepEqual(stock, patched)
})

test('status answers at once while initialize() downloads the model, even from a server that never answers', T, async () => {
  const sockets = []
  const silent = createServer((socket) => sockets.push(socket))
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const saved = process.env.PERSISTENT_WHISPER_MODEL_BASE_URL
  process.env.PERSISTENT_WHISPER_MODEL_BASE_URL = `http://127.0.0.1:${silent.address().port}`
  try {
    const engine = newEngine({ modelPath: 'tiny.en', modelDir: join(scratch, 'models'), autoDownload: true })
    let initialized = false
    const init = engine.initialize().then(
      () => (initialized = true),
      () => (initialized = true),
    )
    await waitFor('the download to connect', () => sockets.length > 0)
    const status = await engine.getStatus()
    assert.equal(initialized, false, 'the download is still under way')
    assert.equal(status.isRunning, false)
    assert.equal(status.isReady, false)
    assert.deepEqual(await engine.getWorkerStatuses(), [])
    assert.equal((await engine.getQueueStatus()).queueLength, 0)
    await engine.shutdown()
    await init
  } finally {
    if (saved === undefined) delete process.env.PERSISTENT_WHISPER_MODEL_BASE_URL
    else process.env.PERSISTENT_WHISPER_MODEL_BASE_URL = saved
    for (const s of sockets) s.destroy()
    silent.close()
  }
})
