// One measurement in a fresh process, so that variants never share a heap,
// threads or children: `node bench/runner.mjs '<json job>'` prints one JSON line.
import { spawnSync } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { startMeasuring } from './measure.mjs'
import { VARIANTS, WHISPER_CLI, engine, singleServer } from './variants.mjs'
import { ROOT } from '../scripts/paths.mjs'
import { wav } from '../scripts/wav.mjs'

const job = JSON.parse(process.argv[2])

/** Every file submitted at once; latency is from submission to result. */
async function batch() {
  const variant = job.custom ? engine(job.custom) : VARIANTS[job.variant].make(job)
  await variant.start()
  const measuring = startMeasuring()
  const t0 = performance.now()
  const latencies = await Promise.all(job.files.map((f) => variant.transcribe(f).then(() => performance.now() - t0)))
  const makespanMs = performance.now() - t0
  const measured = await measuring.stop()
  await variant.stop()
  return { makespanMs, latenciesMs: latencies, ...measured }
}

/** One file at a time into an idle, started variant. */
async function sequential() {
  const variant = job.custom ? engine(job.custom) : VARIANTS[job.variant].make(job)
  await variant.start()
  const latenciesMs = []
  for (const file of job.files) {
    await new Promise((r) => setTimeout(r, job.gapMs ?? 100))
    const t0 = performance.now()
    await variant.transcribe(file)
    latenciesMs.push(performance.now() - t0)
  }
  await variant.stop()
  return { latenciesMs }
}

/** Single-thread processing time per file: one whisper-server with -t 1, model loaded. */
async function limit() {
  const server = singleServer({ model: job.model, threads: 1 })
  await server.start()
  const ms = {}
  for (const file of job.files) {
    await server.transcribe(file) // warm
    const t0 = performance.now()
    await server.transcribe(file)
    ms[file] = performance.now() - t0
  }
  await server.stop()
  return { ms }
}

/**
 * The engine's own cost: many requests to the FAKE whisper-server, which
 * answers at once. Reports the synchronous transcribe() call, early and late
 * in a long queue, and the cycle time per request on one worker.
 */
async function overhead() {
  const { PersistentWhisperEngine } = createRequire(import.meta.url)('..')
  const dir = mkdtempSync(join(tmpdir(), 'pw-overhead-'))
  writeFileSync(join(dir, 'model.bin'), readFileSync(job.model).subarray(0, 48))
  const file = join(dir, 'job.wav')
  writeFileSync(file, 'ok fine\n')
  const e = new PersistentWhisperEngine({
    modelPath: join(dir, 'model.bin'),
    backend: 'server',
    serverPath: join(ROOT, 'tests', 'fake-whisper', 'fake-whisper-server'),
    poolSize: 1,
    maxQueueSize: job.requests,
    logLevel: 'silent',
  })
  await e.initialize()
  await e.transcribe(file) // warm
  const submitUs = []
  const submittedAt = []
  const pending = []
  const t0 = performance.now()
  for (let i = 0; i < job.requests; i++) {
    const s = performance.now()
    pending.push(e.transcribe(file))
    submittedAt.push(s)
    submitUs.push((performance.now() - s) * 1000)
  }
  const results = await Promise.all(pending)
  const makespanMs = performance.now() - t0
  await e.shutdown()
  // On one worker, request i+1 starts one cycle after request i: the cycle is
  // its processing (the HTTP exchange) plus the pool's own work in between.
  const startedAt = results.map((r, i) => submittedAt[i] + r.queueTimeMs)
  const poolMs = results.slice(0, -1).map((r, i) => startedAt[i + 1] - startedAt[i] - r.processingTimeMs)
  return { submitUs, poolMs, makespanMs, processingMs: results.map((r) => r.processingTimeMs) }
}

/** One whisper-cli program, run on each file in turn: wall time per file. */
async function program() {
  const ms = []
  for (const file of job.files) {
    const t0 = performance.now()
    const r = spawnSync(job.program, ['-m', job.model, '-f', file, '-t', String(job.threads), '-l', 'en', '-np', '-nt'], { stdio: 'ignore' })
    if (r.status !== 0) throw new Error(`${job.program} exited with ${r.status ?? r.signal}`)
    ms.push(performance.now() - t0)
  }
  return { ms }
}

/**
 * Memory: peak RSS of the whisper processes alone, for one whisper-cli run on
 * the file, or for an engine from initialize() through `concurrent` requests
 * for the file at once.
 */
async function memory() {
  if (job.backend === 'one-cli') {
    const measuring = startMeasuring({ childrenOnly: true })
    const r = spawnSync(WHISPER_CLI, ['-m', job.model, '-f', job.file, '-l', 'en', '-np', '-nt'], { stdio: 'ignore' })
    if (r.status !== 0) throw new Error(`whisper-cli exited with ${r.status ?? r.signal}`)
    return { peakRssMb: (await measuring.stop()).peakRssMb }
  }
  const measuring = startMeasuring({ childrenOnly: true })
  // 'worker-processes': one worker process per request instead of one for all.
  const [backend, processes] = job.backend === 'worker-processes' ? ['worker', job.concurrent] : [job.backend, undefined]
  const variant = engine({ model: job.model, backend, poolSize: job.concurrent, processes })
  await variant.start()
  await Promise.all(Array.from({ length: job.concurrent }, () => variant.transcribe(job.file)))
  const { peakRssMb } = await measuring.stop()
  await variant.stop()
  return { peakRssMb }
}

/** A WAV of the clips' speech, repeated to about `seconds`. */
function longWav(files, seconds) {
  const parts = files.map((f) => {
    const bytes = readFileSync(f)
    const at = bytes.indexOf('data', 12, 'latin1')
    return bytes.subarray(at + 8)
  })
  const data = []
  let length = 0
  while (length < seconds * 32000) {
    for (const p of parts) {
      data.push(p)
      length += p.length
    }
  }
  return wav(Buffer.concat(data))
}

/**
 * Abort: a long file runs on a one-worker engine for `afterMs`, is aborted,
 * and a short clip follows. Reports abort() to rejection, and the short
 * clip's latency after the abort against its latency on the idle engine:
 * the difference is what the aborted decode (or a model load) cost it.
 */
async function abort() {
  const { PersistentWhisperEngine } = createRequire(import.meta.url)('..')
  const e = new PersistentWhisperEngine({ modelPath: job.model, backend: job.backend, poolSize: 1, logLevel: 'silent' })
  await e.initialize()
  const long = longWav(job.files, 120)
  await e.transcribe(job.clip) // warm
  let t = performance.now()
  await e.transcribe(job.clip)
  const idleMs = performance.now() - t
  const controller = new AbortController()
  const running = e.transcribe(long, { signal: controller.signal }).catch((err) => err.code)
  await new Promise((r) => setTimeout(r, job.afterMs))
  t = performance.now()
  controller.abort()
  const code = await running
  const abortMs = performance.now() - t
  t = performance.now()
  await e.transcribe(job.clip)
  const nextMs = performance.now() - t
  await e.shutdown()
  if (code !== 'ERR_ABORTED') throw new Error(`the aborted request settled with ${code}`)
  return { abortMs, idleMs, nextMs }
}

const scenarios = { batch, sequential, limit, overhead, program, memory, abort }
const result = await scenarios[job.scenario]()
// Exit once the line is flushed: a pipe takes 64 KB at a time.
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
