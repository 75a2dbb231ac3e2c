// npm run bench -- --only live [--rounds N] [--model tiny.en|base|PATH]
//
// Live dictation measured: pauses.wav (two utterances with pauses) written
// in 100 ms chunks at the pace of a microphone, to one engine (worker
// backend, the defaults) while the rest of the machine is idle. Reports the
// final's latency (from the moment the audio that ends the utterance's
// pause was written to the 'final' event: what a user waits after they stop
// speaking, less the pause the VAD needs to hear) against the time the idle
// engine takes for the same utterance as a file (and whether the texts are
// the same), how often partials came and how stale they were, and the
// real-time factor of the VAD alone.
// Prints JSON; writes no file.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { FIXTURES } from '../scripts/paths.mjs'
import { median, percentile } from './measure.mjs'

const { PersistentWhisperEngine } = createRequire(import.meta.url)('..')
const RATE = 16000
const CHUNK_MS = 100
const PAD_MS = 200

function samplesOf(file) {
  const bytes = readFileSync(file)
  const at = bytes.indexOf('data', 12, 'latin1')
  const data = bytes.subarray(at + 8, at + 8 + bytes.readUInt32LE(at + 4))
  return new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + (data.length & ~1)))
}

const sleepUntil = (t) => new Promise((resolve) => setTimeout(resolve, Math.max(0, t - performance.now())))

/** One session at a microphone's pace: per utterance, when its audio was written and when its events came. */
async function realTime(engine, samples, minSilenceMs) {
  const session = engine.listen({ minSilenceMs })
  const written = [] // [samples written, wall time]
  const finals = []
  const partials = []
  session.on('partial', (p) => partials.push({ ...p, at: performance.now() }))
  session.on('final', (f) => finals.push({ ...f, at: performance.now() }))
  const step = (RATE * CHUNK_MS) / 1000
  const t0 = performance.now()
  for (let i = 0, n = 0; i < samples.length; i += step, n++) {
    await sleepUntil(t0 + n * CHUNK_MS)
    session.write(samples.subarray(i, i + step))
    written.push([Math.min(i + step, samples.length), performance.now()])
  }
  await session.end()
  /** When the audio up to `ms` had been written. */
  const writtenAt = (ms) => (written.find(([n]) => (n / RATE) * 1000 >= ms) ?? written.at(-1))[1]
  // An utterance's end is padded (speechPadMs, 200 ms) after the speech; the VAD decides minSilenceMs after it.
  const decidable = (f) => writtenAt(f.endMs - PAD_MS + minSilenceMs)
  return {
    finals,
    finalLatencyMs: finals.map((f) => f.at - decidable(f)),
    partialGapsMs: partials.slice(1).map((p, i) => (p.utterance === partials[i].utterance ? p.at - partials[i].at : null)).filter((g) => g !== null),
    partialLagMs: partials.map((p) => p.at - writtenAt(p.endMs)),
    partials: partials.length,
    utterances: finals.length,
  }
}

/** Each final's utterance transcribed as a file (its samples) on the idle engine: time and text. */
async function asFiles(engine, samples, finals) {
  const out = []
  for (const f of finals) {
    const clip = Float32Array.from(samples.subarray((f.startMs * RATE) / 1000, (f.endMs * RATE) / 1000), (v) => v / 32768)
    const t0 = performance.now()
    const r = await engine.transcribe(clip, { priority: 'high' })
    out.push({ ms: performance.now() - t0, same: r.text === f.text })
  }
  return out
}

/** The VAD alone: the same audio written at once, timed to its last event. */
async function vadSpeed(engine, samples) {
  const session = engine.listen({ partials: false })
  const t0 = performance.now()
  let lastSpeechEnd = t0
  session.on('speechEnd', () => (lastSpeechEnd = performance.now()))
  session.write(samples)
  await session.end()
  return samples.length / RATE / ((lastSpeechEnd - t0) / 1000)
}

export async function live(opts) {
  const samples = samplesOf(join(FIXTURES, 'pauses.wav'))
  const engine = new PersistentWhisperEngine({ modelPath: opts.model, language: 'en', logLevel: 'silent' })
  await engine.initialize()
  const rows = { finalLatencyMs: [], fileMs: [], ratio: [], sameText: [], partialGapsMs: [], partialLagMs: [], vadRealTime: [] }
  let utterances = 0
  try {
    await vadSpeed(engine, samples) // starts the VAD process, warms the caches
    for (let round = 0; round < opts.rounds; round++) {
      process.stderr.write(`\r\x1b[K[bench] live round ${round + 1} of ${opts.rounds}`)
      const r = await realTime(engine, samples, 500)
      const files = await asFiles(engine, samples, r.finals)
      rows.finalLatencyMs.push(...r.finalLatencyMs)
      rows.fileMs.push(...files.map((f) => f.ms))
      rows.ratio.push(...r.finalLatencyMs.map((ms, i) => ms / files[i].ms))
      rows.sameText.push(...files.map((f) => f.same))
      rows.partialGapsMs.push(...r.partialGapsMs)
      rows.partialLagMs.push(...r.partialLagMs)
      rows.vadRealTime.push(await vadSpeed(engine, samples))
      utterances += r.utterances
    }
  } finally {
    await engine.shutdown()
  }
  const summary = (xs) => ({ p50: Math.round(median(xs)), p95: Math.round(percentile(xs, 95)), n: xs.length })
  process.stderr.write('\n')
  process.stdout.write(
    `${JSON.stringify(
      {
        model: opts.modelName,
        audio: 'pauses.wav, 100 ms chunks at real time, minSilenceMs 500, partialIntervalMs 500',
        utterances,
        finalLatencyMs: summary(rows.finalLatencyMs),
        sameUtteranceAsFileMs: summary(rows.fileMs),
        finalOverFileRatio: { p50: Number(median(rows.ratio).toFixed(2)), max: Number(Math.max(...rows.ratio).toFixed(2)) },
        finalEqualsFileText: `${rows.sameText.filter(Boolean).length} of ${rows.sameText.length}`,
        partialIntervalMs: summary(rows.partialGapsMs),
        partialLagMs: summary(rows.partialLagMs),
        vadTimesRealTime: Math.round(median(rows.vadRealTime)),
      },
      null,
      2,
    )}\n`,
  )
}
