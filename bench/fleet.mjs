// npm run bench -- --only fleet [--rounds N] [--clips a.wav,b.wav]
//
// The fleet (persistent-whisper/bullmq) measured, not claimed: the same batch
// through one worker host and through two, each host pinned to a core of its
// own with taskset (its engine: one worker, one thread), Redis and the
// producer unpinned; and the latency the queue adds to a job: a producer's
// wall time from queue.add() to the completion event, less the engine's own
// time for the job, one job at a time into an idle host. Prints JSON; writes
// no file.
import { readFileSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { basename, join } from 'node:path'
import { startRedis } from '../__test__/fleet-redis.mjs'
import { startHost, startProducer } from '../__test__/fleet-harness.mjs'
import { FIXTURES } from '../scripts/paths.mjs'
import { median, percentile } from './measure.mjs'

const ENGINE = { backend: 'worker', poolSize: 1, threads: 1 }

/** Seconds of audio in a 16-bit PCM WAV, from its header. */
function audioSeconds(file) {
  const bytes = readFileSync(file)
  const at = bytes.indexOf('data', 12, 'latin1')
  return bytes.readUInt32LE(at + 4) / bytes.readUInt32LE(28)
}

/** Hosts on cores 0 .. count-1, each with its own queue name so that rounds never mix. */
async function hosts(redis, queue, count, model) {
  return Promise.all(Array.from({ length: count }, (_, core) => startHost(redis, { queue, name: `host-${core}`, pin: core, worker: {}, engine: { ...ENGINE, modelPath: model } })))
}

/** Makespan of the batch, submitted at once, through `count` hosts. */
async function batch(redis, files, count, round, model) {
  const queue = `bench-${count}-${round}`
  const started = await hosts(redis, queue, count, model)
  const producer = await startProducer(redis, queue)
  try {
    const t0 = performance.now()
    const jobs = await producer.queue.addBulk(files.map((path) => ({ name: 'transcribe', data: { audio: { path } } })))
    const results = await Promise.all(jobs.map((job) => job.waitUntilFinished(producer.events)))
    const makespanMs = performance.now() - t0
    const perHost = Object.fromEntries(started.map((h) => [h.name, results.filter((r) => r.host.worker === h.name).length]))
    return { makespanMs, perHost }
  } finally {
    await producer.close()
    await Promise.all(started.map((h) => h.close()))
  }
}

/** Added latency per job: wall time from add to completion, less the engine's queue and processing time. */
async function latency(redis, clip, count, model) {
  const queue = 'bench-latency'
  const [host] = await hosts(redis, queue, 1, model)
  const producer = await startProducer(redis, queue)
  const added = []
  try {
    for (let i = 0; i < count + 1; i++) {
      const t0 = performance.now()
      const job = await producer.queue.add('transcribe', { audio: { path: clip } })
      const result = await job.waitUntilFinished(producer.events)
      const wall = performance.now() - t0
      // The first job pays for a cold start of the host's whisper; it is left out.
      if (i > 0) added.push(wall - result.processingTimeMs - result.queueTimeMs)
    }
  } finally {
    await producer.close()
    await host.close()
  }
  return added
}

export async function fleet(files, opts) {
  if (availableParallelism() < 2) throw new Error('--only fleet needs 2 cores: one per host')
  // Other work on the machine skews the figures: the load average says how much there was.
  const loadBefore = loadavg()[0]
  const redis = await startRedis()
  try {
    const runs = { 1: [], 2: [] }
    for (let round = 0; round < opts.rounds; round++) {
      for (const count of round % 2 ? [2, 1] : [1, 2]) {
        process.stderr.write(`[bench] fleet round ${round + 1}/${opts.rounds}: ${files.length} files through ${count} host(s)\n`)
        runs[count].push(await batch(redis, files, count, round, opts.model))
      }
    }
    process.stderr.write('[bench] fleet: added latency per job\n')
    const clip = join(FIXTURES, 'kitchen.wav')
    const added = await latency(redis, clip, opts.quick ? 5 : 20, opts.model)
    const one = median(runs[1].map((r) => r.makespanMs))
    const two = median(runs[2].map((r) => r.makespanMs))
    const audio = files.reduce((sum, f) => sum + audioSeconds(f), 0)
    const report = {
      files: files.length,
      audioSeconds: audio,
      rounds: opts.rounds,
      oneHost: { makespanS: one / 1000, audioSecondsPerSecond: audio / (one / 1000), runs: runs[1] },
      twoHosts: { makespanS: two / 1000, audioSecondsPerSecond: audio / (two / 1000), runs: runs[2] },
      scaling: one / two,
      loadAverage: { before: loadBefore, after: loadavg()[0] },
      addedLatency: { clip: basename(clip), n: added.length, p50Ms: percentile(added, 50), p95Ms: percentile(added, 95), maxMs: Math.max(...added) },
    }
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
  } finally {
    await redis.remove()
  }
}
