// Live dictation: engine.listen() with the real worker program's Silero VAD
// and real whisper on real speech (pauses.wav: two clips with silence around
// and between them), fed in chunks as a microphone would.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { childProcesses, clips, FIXTURES, missingPhrases, newEngine, ROOT, samplesOf, TINY_EN, waitFor, withCode } from './helpers.mjs'

const RATE = 16000
/** ms a boundary may move: the VAD pads speech and works in 32 ms windows. */
const SLACK_MS = 450
const T = { timeout: 300_000 }

/** pauses.wav's samples and where its two clips' speech is (ms). */
function pauses() {
  const layout = JSON.parse(readFileSync(join(FIXTURES, 'pauses.json'), 'utf8'))
  const spans = []
  let at = 0
  for (const part of layout.parts) {
    if (part.silence) {
      at += part.silence * RATE
      continue
    }
    const samples = samplesOf(join(FIXTURES, part.clip))
    const loud = (v) => Math.abs(v) > 0.01
    // tiny.en hears kitchen.wav's "lights" as "light" when the clip is cut
    // out with little silence around it: the live tests check the rest.
    const { keyPhrases } = part.clip === 'kitchen.wav' ? { keyPhrases: ['in the kitchen'] } : clips.find((c) => c.file === part.clip)
    spans.push({ keyPhrases, startMs: ((at + samples.findIndex(loud)) / RATE) * 1000, endMs: ((at + samples.findLastIndex(loud)) / RATE) * 1000 })
    at += samples.length
  }
  return { samples: samplesOf(join(FIXTURES, layout.file)), spans }
}

/** Every event of a session, in the order they came, with the summary or error 'close' carried. */
function record(session) {
  const events = []
  for (const type of ['speechStart', 'partial', 'speechEnd', 'final', 'error', 'close']) {
    session.on(type, (value) => events.push({ type, ...(value instanceof Error ? { code: value.code, message: value.message } : value) }))
  }
  return events
}

/** Writes `samples` in chunks of `chunkMs`, yielding to the event loop between them. */
async function feed(session, samples, { rate = RATE, chunkMs = 100 } = {}) {
  const step = Math.round((rate * chunkMs) / 1000)
  for (let i = 0; i < samples.length; i += step) {
    assert.equal(session.write(samples.subarray(i, i + step)), true, 'an open session takes audio')
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** Checks a session's finals against pauses.wav's two clips. */
function assertTwoUtterances(events, spans) {
  const finals = events.filter((e) => e.type === 'final')
  assert.equal(finals.length, 2, `two utterances: ${JSON.stringify(finals)}`)
  finals.forEach((f, i) => {
    assert.equal(f.utterance, i)
    assert.deepEqual(missingPhrases(f.text, spans[i].keyPhrases), [], f.text)
    assert.ok(f.startMs <= spans[i].startMs + SLACK_MS && f.startMs >= spans[i].startMs - SLACK_MS, `utterance ${i} starts at ${f.startMs}, speech at ${spans[i].startMs}`)
    assert.ok(f.endMs >= spans[i].endMs - SLACK_MS && f.endMs <= spans[i].endMs + 1000, `utterance ${i} ends at ${f.endMs}, speech at ${spans[i].endMs}`)
    // Segment times are the session's, as the utterance's are.
    for (const s of f.segments) assert.ok(s.start >= f.startMs - 50 && s.end <= f.endMs + 500, `segment ${JSON.stringify(s)} lies within the utterance ${f.startMs}..${f.endMs}`)
  })
  // Per utterance: speechStart, any partials, speechEnd, then final; 'close' comes last.
  for (const u of [0, 1]) {
    const own = events.filter((e) => e.utterance === u).map((e) => e.type)
    assert.equal(own[0], 'speechStart', own.join())
    assert.deepEqual(own.slice(-2), ['speechEnd', 'final'], own.join())
    assert.ok(own.slice(1, -2).every((t) => t === 'partial'), own.join())
  }
  assert.equal(events.at(-1).type, 'close')
  assert.equal(events.filter((e) => e.type === 'close').length, 1)
}

test('a live session turns speech with pauses into one final per utterance, in order, with partials', T, async () => {
  const engine = newEngine({ maxWorkers: 2 })
  await engine.initialize()
  try {
    const { samples, spans } = pauses()
    const session = engine.listen({ partialIntervalMs: 300 })
    const events = record(session)
    // Half of the first utterance, then nothing until its partial comes: the
    // utterance is under way, so one must.
    const middle = Math.round(((spans[0].startMs + spans[0].endMs) / 2 / 1000) * RATE)
    const partial = new Promise((resolve) => session.once('partial', resolve))
    await feed(session, samples.subarray(0, middle))
    const first = await Promise.race([partial, new Promise((_, reject) => setTimeout(() => reject(new Error('no partial while the utterance was under way')), 120_000).unref())])
    assert.equal(first.utterance, 0)
    assert.ok(first.text.trim().length > 0, 'a partial has the text so far')
    assert.ok(first.endMs <= (middle / RATE) * 1000 + 1, 'it covers only what was written')
    await feed(session, samples.subarray(middle))
    const finals = await session.end()
    assertTwoUtterances(events, spans)
    // end() gives the finals, as they were emitted; 'close' the summary.
    assert.deepEqual(finals, events.filter((e) => e.type === 'final').map(({ type, ...f }) => f))
    const close = events.at(-1)
    assert.equal(close.utterances, 2)
    assert.equal(Math.round(close.durationMs), Math.round((samples.length / RATE) * 1000))
    assert.equal(session.closed, true)
    assert.equal(session.write(samples.subarray(0, 160)), false, 'a closed session takes no more audio')
    // Partials are transcriptions of the utterance so far: text, inside its span.
    for (const p of events.filter((e) => e.type === 'partial')) {
      assert.equal(typeof p.text, 'string')
      assert.ok(p.endMs > p.startMs)
    }
  } finally {
    await engine.shutdown()
  }
})

test('48 kHz Int16 audio, as an AudioContext records it, is resampled and gives the same utterances', T, async () => {
  const engine = newEngine()
  await engine.initialize()
  try {
    const { samples, spans } = pauses()
    // Linear interpolation up to 48 kHz: what a microphone at 48 kHz would give, near enough.
    const up = new Int16Array(samples.length * 3)
    for (let i = 0; i < up.length; i++) {
      const at = i / 3
      const a = samples[Math.floor(at)]
      const b = samples[Math.min(Math.floor(at) + 1, samples.length - 1)]
      up[i] = Math.round((a + (b - a) * (at - Math.floor(at))) * 32767)
    }
    const session = engine.listen({ sampleRate: 48000, partials: false })
    const events = record(session)
    await feed(session, up, { rate: 48000, chunkMs: 20 })
    await session.end()
    assertTwoUtterances(events, spans)
    assert.equal(events.filter((e) => e.type === 'partial').length, 0, 'partials: false makes none')
  } finally {
    await engine.shutdown()
  }
})

test('a Buffer of 16-bit little-endian samples is taken as audio, split anywhere, even mid-sample', T, async () => {
  const engine = newEngine()
  await engine.initialize()
  try {
    const { samples, spans } = pauses()
    const bytes = Buffer.alloc(samples.length * 2)
    samples.forEach((v, i) => bytes.writeInt16LE(Math.round(v * 32767), i * 2))
    const session = engine.listen({ partials: false })
    const events = record(session)
    // Odd-sized pieces: a sample's two bytes arrive in different writes.
    for (let i = 0; i < bytes.length; i += 3201) session.write(bytes.subarray(i, i + 3201))
    await session.end()
    assertTwoUtterances(events, spans)
  } finally {
    await engine.shutdown()
  }
})

test('silence gives no utterance, and end() resolves', T, async () => {
  const engine = newEngine()
  await engine.initialize()
  try {
    const session = engine.listen()
    const events = record(session)
    await feed(session, new Float32Array(RATE * 4))
    assert.deepEqual(await session.end(), [])
    assert.deepEqual(events.map((e) => e.type), ['close'])
    assert.equal(events[0].utterances, 0)
  } finally {
    await engine.shutdown()
  }
})

test('noise alone gives no final with text', T, async () => {
  const engine = newEngine()
  await engine.initialize()
  try {
    // White noise at -26 dBFS from a fixed seed: no speech in it.
    let seed = 12345
    const noise = Float32Array.from({ length: RATE * 5 }, () => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return (seed / 2147483648 - 0.5) * 0.1
    })
    const session = engine.listen({ vad: { minSilenceMs: 400 } })
    await feed(session, noise)
    const finals = await session.end()
    assert.deepEqual(finals.filter((f) => f.text.trim()), [], JSON.stringify(finals))
  } finally {
    await engine.shutdown()
  }
})

test('end() in the middle of speech finishes the utterance under way', T, async () => {
  const engine = newEngine()
  await engine.initialize()
  try {
    const { samples, spans } = pauses()
    const cut = Math.round(((spans[0].endMs + spans[1].startMs) / 2 / 1000) * RATE)
    const stop = Math.round((spans[1].startMs / 1000) * RATE) + 2 * RATE // two seconds into the second clip
    const session = engine.listen({ partials: false })
    const events = record(session)
    await feed(session, samples.subarray(0, stop))
    const finals = await session.end()
    assert.equal(finals.length, 2)
    assert.ok(finals[1].text.trim().length > 0, 'the cut utterance was transcribed')
    assert.ok(finals[1].endMs <= (stop / RATE) * 1000 + 1, 'it ends where the audio did')
    assert.ok(finals[1].startMs >= (cut / RATE) * 1000 - SLACK_MS)
  } finally {
    await engine.shutdown()
  }
})

test('abort() ends the session with ERR_ABORTED; the batch request beside it is untouched; no process outlives shutdown()', T, async () => {
  const engine = newEngine({ maxWorkers: 2 })
  await engine.initialize()
  try {
    const { samples } = pauses()
    const session = engine.listen({ partialIntervalMs: 100 })
    const events = record(session)
    const speaking = new Promise((resolve) => session.once('speechStart', resolve))
    const batch = engine.transcribe(clips[0].path)
    await feed(session, samples.subarray(0, Math.round(RATE * 1.5)))
    await speaking
    session.abort()
    await assert.rejects(session.end(), withCode('ERR_ABORTED'))
    assert.equal(session.closed, true)
    const close = events.filter((e) => e.type === 'close')
    assert.equal(close.length, 1)
    assert.equal(close[0].error?.code, 'ERR_ABORTED')
    const result = await batch
    assert.deepEqual(missingPhrases(result.text, clips[0].keyPhrases), [], result.text)
  } finally {
    await engine.shutdown()
  }
  if (process.platform === 'linux') assert.deepEqual(childProcesses('persistent-whis'), [], 'no worker process, the VAD one included, outlives shutdown()')
})

test("an AbortSignal aborts a session; signal: null is no signal", T, async () => {
  const engine = newEngine()
  await engine.initialize()
  try {
    const plain = engine.listen({ signal: null })
    plain.write(new Float32Array(RATE))
    assert.deepEqual(await plain.end(), [])

    const controller = new AbortController()
    const session = engine.listen({ signal: controller.signal })
    const closed = new Promise((resolve) => session.once('close', resolve))
    session.write(new Float32Array(RATE))
    controller.abort()
    const close = await closed
    assert.equal(close.error?.code, 'ERR_ABORTED')
    await assert.rejects(session.end(), withCode('ERR_ABORTED'))

    const already = new AbortController()
    already.abort()
    await assert.rejects(engine.listen({ signal: already.signal }).end(), withCode('ERR_ABORTED'))
  } finally {
    await engine.shutdown()
  }
})

test('bad options reject with ERR_INVALID_OPTIONS; bad audio is an error event, never a throw', T, async () => {
  const engine = newEngine()
  await engine.initialize()
  try {
    for (const options of [{ sampleRate: 'x' }, { sampleRate: 100 }, { vadThreshold: 2 }, { minSilenceMs: -1 }, { language: 'xx-nope' }, { partialIntervalMs: 1 }, { signal: {} }, 'fast', { vad: false }, { vad: { threshold: 3 } }, { vad: { silence: 300 } }]) {
      // Never a throw: the session says it could not start, and end() rejects.
      const session = engine.listen(options)
      const error = new Promise((resolve) => session.once('error', resolve))
      await assert.rejects(session.end(), withCode('ERR_INVALID_OPTIONS'), JSON.stringify(options))
      assert.equal((await error).code, 'ERR_INVALID_OPTIONS')
      assert.equal(session.closed, true)
    }
    const session = engine.listen()
    const errors = []
    session.on('error', (e) => errors.push(e))
    for (const bad of ['samples', 42, null, {}, [0.1, 0.2], new Float64Array(4)]) {
      assert.equal(session.write(bad), false)
    }
    assert.equal(errors.length, 6)
    assert.ok(errors.every((e) => e instanceof Error && e.code === 'ERR_INVALID_OPTIONS' && /Float32Array/.test(e.message)))
    assert.equal(session.closed, false, 'a bad write does not end the session')
    assert.deepEqual(await session.end(), [])
  } finally {
    await engine.shutdown()
  }
})

test('listen() before initialize() and after shutdown() rejects with a code', T, async () => {
  const engine = newEngine()
  await assert.rejects(engine.listen().end(), withCode('ERR_NOT_INITIALIZED'))
  await engine.initialize()
  await engine.shutdown()
  await assert.rejects(engine.listen().end(), withCode('ERR_SHUTDOWN'))
})

test('without a VAD model listen() and transcribe({ vad: true }) reject with ERR_MODEL_LOAD and say how to get one', T, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-novad-'))
  const model = join(dir, 'ggml-tiny.en.bin')
  symlinkSync(TINY_EN, model)
  const engine = newEngine({ modelPath: model })
  try {
    await engine.initialize()
    await assert.rejects(engine.listen().end(), (e) => e.code === 'ERR_MODEL_LOAD' && /silero/i.test(e.message))
    await assert.rejects(engine.transcribe(clips[0].path, { vad: true }), (e) => e.code === 'ERR_MODEL_LOAD' && /silero/i.test(e.message))
    // Without vad, the same engine transcribes.
    const r = await engine.transcribe(clips[0].path)
    assert.deepEqual(missingPhrases(r.text, clips[0].keyPhrases), [])
  } finally {
    await engine.shutdown()
    rmSync(dir, { recursive: true, force: true })
  }
  await assert.rejects(
    newEngine({ vadModelPath: join(dir, 'missing.bin') }).initialize(),
    withCode('ERR_MODEL_LOAD'),
  )
})

for (const backend of ['cli', 'server', 'worker']) {
  test(`transcribe({ vad: true }) on the ${backend} backend skips the pauses and keeps the speech and its times`, { timeout: 700_000 }, async () => {
    const engine = newEngine({ backend, maxWorkers: 1 })
    await engine.initialize()
    try {
      const { spans } = pauses()
      // whisper-cli and whisper-server run their VAD on 4 threads whatever -t says: on 2 busy cores that takes minutes.
      const r = await engine.transcribe(join(FIXTURES, 'pauses.wav'), { vad: true, timeout: 600_000 })
      for (const span of spans) assert.deepEqual(missingPhrases(r.text, span.keyPhrases), [], r.text)
      // Times stay those of the original audio: no segment starts in the long pause.
      for (const s of r.segments.filter((s) => s.text.trim())) {
        const inside = spans.some((sp) => s.start >= sp.startMs - 1000 && s.start <= sp.endMs + 500)
        assert.ok(inside, `segment at ${s.start} ms "${s.text}" lies in speech`)
      }
    } finally {
      await engine.shutdown()
    }
  })
}

test('two live sessions at once and a batch request share the engine; each gets its own utterances', T, async () => {
  const engine = newEngine({ maxWorkers: 2 })
  await engine.initialize()
  try {
    const { samples, spans } = pauses()
    const a = engine.listen({ partials: false })
    const b = engine.listen({ partials: false })
    const [ea, eb] = [record(a), record(b)]
    const batch = engine.transcribe(clips[0].path)
    await Promise.all([feed(a, samples), feed(b, samples)])
    await Promise.all([a.end(), b.end()])
    assertTwoUtterances(ea, spans)
    assertTwoUtterances(eb, spans)
    assert.deepEqual(missingPhrases((await batch).text, clips[0].keyPhrases), [])
  } finally {
    await engine.shutdown()
  }
})

test('the CLI: `listen` prints one line per utterance, from a WAV file and from raw PCM on stdin', T, async () => {
  const { spans } = pauses()
  const wavFile = join(FIXTURES, 'pauses.wav')
  const bin = join(ROOT, 'bin', 'persistent-whisper.js')
  const fromFile = spawnSync(process.execPath, [bin, 'listen', wavFile, '--model', TINY_EN, '--timestamps'], { encoding: 'utf8', timeout: 300_000 })
  assert.equal(fromFile.status, 0, fromFile.stderr)
  const lines = fromFile.stdout.trim().split('\n')
  assert.equal(lines.length, 2, fromFile.stdout)
  lines.forEach((line, i) => {
    assert.match(line, /^\[\d\d:\d\d\.\d --> \d\d:\d\d\.\d\] /)
    assert.deepEqual(missingPhrases(line, spans[i].keyPhrases), [], line)
  })
  // The WAV's samples as a microphone pipe gives them: raw s16le, no header.
  const { data } = (() => {
    const bytes = readFileSync(wavFile)
    return { data: bytes.subarray(bytes.indexOf('data') + 8) }
  })()
  const fromStdin = spawnSync(process.execPath, [bin, 'listen', '--model', TINY_EN], { input: data, encoding: 'utf8', timeout: 300_000 })
  assert.equal(fromStdin.status, 0, fromStdin.stderr)
  const said = fromStdin.stdout.trim().split('\n')
  assert.equal(said.length, 2, fromStdin.stdout)
  said.forEach((line, i) => assert.deepEqual(missingPhrases(line, spans[i].keyPhrases), [], line))
  const refused = spawnSync(process.execPath, [bin, 'listen', '--model', TINY_EN, '--encoding', 'mp3'], { input: '', encoding: 'utf8' })
  assert.equal(refused.status, 2)
  assert.match(refused.stderr, /--encoding must be s16le or f32le/)
})

/** The worker process running the VAD (its command line has --vad-model). */
function vadProcess() {
  return (childProcesses('persistent-whis') ?? []).find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('--vad-model')
    } catch {
      return false
    }
  })
}

test('a VAD process killed mid-session is replaced, and the session loses no utterance', { ...T, skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const engine = newEngine()
  await engine.initialize()
  try {
    const { samples, spans } = pauses()
    const session = engine.listen({ partials: false })
    const events = record(session)
    const half = Math.round(((spans[0].endMs + spans[1].startMs) / 2 / 1000) * RATE)
    const heard = new Promise((resolve) => session.once('speechEnd', resolve))
    await feed(session, samples.subarray(0, half))
    // The first utterance was heard: the VAD process is running, between two calls or in one.
    await heard
    const first = await waitFor('the VAD process', () => vadProcess())
    process.kill(first, 'SIGKILL')
    await feed(session, samples.subarray(half))
    await session.end()
    assertTwoUtterances(events, spans)
    const second = vadProcess()
    assert.ok(second && second !== first, 'a fresh VAD process runs')
  } finally {
    await engine.shutdown()
  }
})

test('a long session lets go of the audio of finished utterances: what it holds stays near one utterance', { timeout: 600_000 }, async () => {
  const engine = newEngine({ maxWorkers: 2 })
  await engine.initialize()
  try {
    const { samples, spans } = pauses()
    // Ten times pauses.wav with 25 s of silence after each: 6 minutes, 20 utterances.
    const gap = new Float32Array(RATE * 25)
    const rounds = 10
    const session = engine.listen({ partials: false })
    const events = record(session)
    // At twenty times real time, as a fast producer would.
    const chunk = RATE / 10
    const t0 = performance.now()
    let written = 0
    for (let r = 0; r < rounds; r++) {
      for (const part of [samples, gap]) {
        for (let i = 0; i < part.length; i += chunk) {
          session.write(part.subarray(i, i + chunk))
          written += Math.min(chunk, part.length - i)
          const due = t0 + (written / RATE) * 50
          if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()))
        }
      }
    }
    const finals = await session.end()
    assert.equal(finals.length, rounds * 2)
    finals.forEach((f, i) => assert.deepEqual(missingPhrases(f.text, spans[i % 2].keyPhrases), [], f.text))
    const close = events.at(-1)
    assert.equal(Math.round(close.durationMs), Math.round((written / RATE) * 1000))
    // Retaining the session's audio would hold 6 minutes; one utterance is about 4 s.
    assert.ok(close.peakBufferedMs < 20_000, `held at most ${close.peakBufferedMs} ms of ${close.durationMs} ms`)
  } finally {
    await engine.shutdown()
  }
})
