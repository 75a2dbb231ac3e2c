// npm run bench -- --only live [--rounds N] [--model tiny.en|base|PATH]
//
// Live dictation measured: pauses.wav (two utterances with pauses) written
// in 100 ms chunks at the pace of a microphone, to one engine (worker
// backend, the defaults) while the rest of the machine is idle. Reports the
// final's latency (from the moment the audio that ends the utterance's
// pause was written to the 'final' event: what a user waits after they stop
// speaking, less the pause the VAD needs to hear), how often partials came
// and how stale they were, and the real-time factor of the VAD alone.
// Prints JSON; writes no file.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { FIXTURES } from '../scripts/paths.mjs'
import { median, percentile } from './measure.mjs'

const { PersistentWhisperEngine } = createRequire(import.meta.url)('..')
const RATE = 16000
const CHUNK_MS = 100

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
  /** When the audio up to `ms` (plus the pause the VAD waits for) had been written. */
  const heardAt = (ms) => (written.find(([n]) => (n / RATE) * 1000 >= ms + minSilenceMs) ?? written.at(-1))[1]
  return {
    finalLatencyMs: finals.map((f) => f.at - heardAt(f.endMs)),
    partialGapsMs: partials.slice(1).map((p, i) => (p.utterance === partials[i].utterance ? p.at - partials[i].at : null)).filter((g) => g !== null),
    partialLagMs: partials.map((p) => p.at - written.find(([n]) => (n / RATE) * 1000 >= p.endMs)[1]),
    partials: partials.length,
    utterances: finals.length,
  }
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
  const engine = new PersistentWhisperEngine({ modelPath: opts.model, logLevel: 'silent' })
  await engine.initialize()
  const rows = { finalLatencyMs: [], partialGapsMs: [], partialLagMs: [], vadRealTime: [] }
  let utterances = 0
  try {
    await vadSpeed(engine, samples) // starts the VAD process, warms the caches
    for (let round = 0; round < opts.rounds; round++) {
      process.stderr.write(`\r\x1b[K[bench] live round ${round + 1} of ${opts.rounds}`)
      const r = await realTime(engine, samples, 500)
      rows.finalLatencyMs.push(...r.finalLatencyMs)
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
        partialIntervalMs: summary(rows.partialGapsMs),
        partialLagMs: summary(rows.partialLagMs),
        vadTimesRealTime: Math.round(median(rows.vadRealTime)),
      },
      null,
      2,
    )}\n`,
  )
}
