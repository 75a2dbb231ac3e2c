'use strict'
// persistent-whisper/bullmq: a transcription fleet on BullMQ and Redis.
// createTranscriptionWorker() makes a BullMQ Worker whose jobs run on a
// PersistentWhisperEngine; producers use BullMQ's own Queue. BullMQ brings
// the rest: workers on any number of hosts, retries with backoff, and the
// stalled-job check that hands a dead host's job to another host.
const { hostname } = require('node:os')
const { PersistentWhisperEngine } = require('..')
const { AUDIO_DEFAULTS, codedError, jobAudio } = require('./fleet/job-audio')
const { cancelTopic, cancelTranscription, listenForCancels } = require('./fleet/remote-cancel')

let bullmq
try {
  bullmq = require('bullmq')
} catch (err) {
  if (err.code !== 'MODULE_NOT_FOUND') throw err
  err.message = `persistent-whisper/bullmq needs the bullmq package (6.x), an optional peer dependency: npm install bullmq ioredis\n${err.message}`
  throw err
}
const { Worker, UnrecoverableError } = bullmq

/** Codes that no retry can change: the job itself is wrong. */
const BAD_INPUT = new Set(['ERR_INVALID_OPTIONS', 'ERR_AUDIO_NOT_FOUND', 'ERR_AUDIO_UNREADABLE'])

/** The abort reason when this host lost a job's lock: another host owns it now. */
const LOCK_LOST = 'persistent-whisper: the lock on this job was lost; another host runs it'

/**
 * BullMQ's defaults, but for maxStalledCount and stalledInterval. The lock
 * (30 s) is renewed every 15 s by the host's event loop, which the engine
 * keeps free (whisper runs in child processes), so a transcription of any
 * length keeps it. A dead host's job is back in the queue within
 * lockDuration + stalledInterval (45 s at most). A host dying under a job
 * is no fault of the job, so a job may stall twice before it fails.
 */
const LOCK_DEFAULTS = Object.freeze({ lockDuration: 30_000, stalledInterval: 15_000, maxStalledCount: 2 })

/** This module's own options; every other one goes to BullMQ's Worker. */
const OWN = ['engine', 'pathRoot', 'maxBase64Bytes', 'maxUrlBytes', 'urlTimeout', 'allowUrl', 'remoteCancel']

function invalid(message) {
  return codedError('ERR_INVALID_OPTIONS', message)
}

/** Our options checked, with defaults; throws ERR_INVALID_OPTIONS naming the bad one. */
function audioLimits(options) {
  const limits = { ...AUDIO_DEFAULTS }
  for (const name of ['maxBase64Bytes', 'maxUrlBytes', 'urlTimeout']) {
    const value = options[name]
    if (value === undefined) continue
    if (!Number.isSafeInteger(value) || value < 1) throw invalid(`invalid option \`${name}\`: must be a whole number of ${name === 'urlTimeout' ? 'milliseconds' : 'bytes'}, 1 or more`)
    limits[name] = value
  }
  if (options.pathRoot !== undefined && options.pathRoot !== null) {
    if (typeof options.pathRoot !== 'string' || !options.pathRoot) throw invalid('invalid option `pathRoot`: must be a folder path (a string)')
    limits.pathRoot = options.pathRoot
  }
  if (options.allowUrl !== undefined && options.allowUrl !== null) {
    if (typeof options.allowUrl !== 'function') throw invalid('invalid option `allowUrl`: must be a function (url: URL) => boolean')
    limits.allowUrl = options.allowUrl
  }
  return limits
}

/** The job's `data` read and checked: { audio, options }. */
function readJob(data) {
  if (data === null || typeof data !== 'object') throw invalid('the job\'s data must be an object: { audio, options? }')
  const { audio, options } = data
  if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
    throw invalid('the job\'s data.options must be an object of transcribe() options: { language, timeout, priority, ... }')
  }
  return { audio, options: options ?? {} }
}

/**
 * The Error a job fails with: `failedReason` starts with the code. Bad input
 * and cancellation are UnrecoverableError (no retry); a crash, a timeout or
 * a host shutting down are retried with the job's attempts and backoff.
 */
function jobError(err, signal) {
  let code = typeof err?.code === 'string' ? err.code : 'ERR_WHISPER_FAILED'
  let message = err?.message ?? String(err)
  const cancelled = signal.aborted && signal.reason !== LOCK_LOST
  if (cancelled) {
    code = 'ERR_ABORTED'
    message = `the job was cancelled${typeof signal.reason === 'string' && signal.reason ? `: ${signal.reason}` : ''}`
  }
  const Kind = cancelled || BAD_INPUT.has(code) ? UnrecoverableError : Error
  const out = new Kind(`${code}: ${message}`)
  out.code = code
  return out
}

/**
 * onProgress → job.updateProgress(), one Redis write at a time: a newer
 * percentage replaces one still waiting. flush() waits for the last, so
 * that no progress lands after the job has completed.
 */
function progressReporter(job) {
  let inFlight = null
  let next = null
  const send = (percent) => {
    inFlight = Promise.resolve()
      .then(() => job.updateProgress(percent))
      .catch(() => {}) // progress is a courtesy; the job goes on without it
      .then(() => {
        inFlight = null
        if (next !== null) {
          const value = next
          next = null
          send(value)
        }
      })
  }
  return {
    report: (percent) => (inFlight ? (next = percent) : send(percent)),
    async flush() {
      while (inFlight) await inFlight
    },
  }
}

/** Runs one job on the engine: the processor BullMQ calls, with its signal. */
async function transcribeJob(context, job, jobSignal) {
  // Our own signal, fed by BullMQ's, so that the engine always gets a native AbortSignal.
  const controller = new AbortController()
  const forward = () => controller.abort(jobSignal.reason)
  if (jobSignal?.aborted) forward()
  jobSignal?.addEventListener('abort', forward)
  const signal = controller.signal
  const progress = progressReporter(job)
  try {
    const { audio, options } = readJob(job.data)
    const input = await jobAudio(audio, context.limits, signal)
    const result = await context.engine.transcribe(input, { ...options, signal, onProgress: progress.report, onSegment: undefined })
    await progress.flush()
    return { ...result, host: context.host }
  } catch (err) {
    throw jobError(err, signal)
  } finally {
    jobSignal?.removeEventListener('abort', forward)
  }
}

/** The engine to run jobs on: the one given, or one made from options. */
function engineFrom(engine) {
  if (engine && typeof engine.transcribe === 'function' && typeof engine.shutdown === 'function') return { engine, made: false }
  if (engine === null || typeof engine !== 'object') {
    throw invalid('invalid option `engine`: pass a PersistentWhisperEngine, or its options ({ modelPath, ... })')
  }
  return { engine: new PersistentWhisperEngine(engine), made: true }
}

/**
 * A BullMQ Worker that transcribes. close() waits for the running jobs (as
 * BullMQ's does), then closes the cancellation relay and shuts the engine
 * down; close(true) leaves running jobs to other hosts.
 */
class TranscriptionWorker extends Worker {
  #engine
  #relay
  #closing = null

  constructor(queueName, context, workerOptions, remoteCancel) {
    super(queueName, (job, token, signal) => transcribeJob(context, job, signal), workerOptions)
    this.#engine = context.engine
    if (remoteCancel) {
      this.#relay = listenForCancels(bullmq, this, queueName, workerOptions)
      // Without it the worker still runs; cancelJob() works in this process.
      this.#relay.ready.catch((err) => this.emit('error', err))
    }
    // This host's lock on a job is gone (Redis lost it, or it expired while
    // the host was frozen): another host runs the job now, and this host's
    // result would be refused, so its whisper stops at once.
    this.on('lockRenewalFailed', (jobIds) => {
      for (const id of jobIds) this.cancelJob(id, LOCK_LOST)
    })
  }

  /** The engine this worker's jobs run on. */
  get engine() {
    return this.#engine
  }

  /** Resolves once connected to Redis and, with remoteCancel, subscribed to cancellations. */
  async waitUntilReady() {
    await super.waitUntilReady()
    await this.#relay?.ready.catch(() => {})
  }

  close(force = false) {
    this.#closing ??= (async () => {
      let failure
      try {
        if (force) {
          // BullMQ first, so that the jobs the engine now fails with
          // ERR_SHUTDOWN are left to the stalled check, not failed here.
          await super.close(true)
          await this.#engine.shutdown().catch(() => {})
        } else {
          await super.close(false)
        }
      } catch (err) {
        failure = err
      }
      await this.#relay?.close().catch(() => {})
      await this.#engine.shutdown().catch(() => {})
      if (failure) throw failure
    })()
    return this.#closing
  }
}

/**
 * Creates a BullMQ Worker for `queueName` that transcribes its jobs on a
 * PersistentWhisperEngine. Resolves once the engine has started (so a host
 * that cannot transcribe takes no job); rejects with a coded Error otherwise.
 *
 * options: `connection` (BullMQ's), `engine` (an engine or its options),
 * `concurrency` (default: the engine's maxWorkers), the audio limits
 * `pathRoot`, `maxBase64Bytes`, `maxUrlBytes`, `urlTimeout`, `allowUrl`,
 * `remoteCancel` (default true), and any other BullMQ WorkerOptions.
 */
async function createTranscriptionWorker(queueName, options) {
  if (typeof queueName !== 'string' || !queueName || queueName.includes(':')) {
    throw invalid('createTranscriptionWorker(queueName, options): queueName must be a non-empty string without `:` (BullMQ\'s rule)')
  }
  if (options === null || typeof options !== 'object') throw invalid('createTranscriptionWorker(queueName, options): options must be an object with `connection` and `engine`')
  const own = {}
  const workerOptions = {}
  for (const [key, value] of Object.entries(options)) (OWN.includes(key) ? own : workerOptions)[key] = value
  if (workerOptions.connection === undefined || workerOptions.connection === null) {
    throw invalid('invalid option `connection`: BullMQ\'s Redis connection, e.g. { host, port }')
  }
  const { concurrency } = workerOptions
  if (concurrency !== undefined && (!Number.isSafeInteger(concurrency) || concurrency < 1)) {
    throw invalid('invalid option `concurrency`: must be a whole number, 1 or more (default: the engine\'s maxWorkers)')
  }
  // Checked here, before anything starts: BullMQ's Worker checks them only after it has opened its connection.
  for (const [name, min] of [['lockDuration', 1], ['stalledInterval', 1], ['maxStalledCount', 0]]) {
    const value = workerOptions[name]
    if (value !== undefined && (!Number.isSafeInteger(value) || value < min)) {
      throw invalid(`invalid option \`${name}\`: must be a whole number, ${min} or more (default ${LOCK_DEFAULTS[name]})`)
    }
  }
  if (own.remoteCancel !== undefined && typeof own.remoteCancel !== 'boolean') throw invalid('invalid option `remoteCancel`: must be a boolean')
  const limits = audioLimits(own)
  let made
  try {
    made = engineFrom(own.engine)
  } catch (err) {
    throw err.code ? err : invalid(`invalid option \`engine\`: ${err.message}`)
  }
  const { engine } = made
  let worker
  try {
    await engine.initialize()
    const name = workerOptions.name ?? `${hostname()}:${process.pid}`
    const context = { engine, limits, host: { hostname: hostname(), pid: process.pid, worker: name } }
    worker = new TranscriptionWorker(
      queueName,
      context,
      { ...LOCK_DEFAULTS, ...workerOptions, name, concurrency: concurrency ?? (await engine.getStatus()).poolStats.maxWorkers },
      own.remoteCancel !== false && typeof bullmq.Relay === 'function',
    )
  } catch (err) {
    if (made.made) await engine.shutdown().catch(() => {})
    throw err.code ? err : invalid(`invalid worker options: ${err.message}`)
  }
  return worker
}

module.exports = { createTranscriptionWorker, cancelTranscription, cancelTopic, TranscriptionWorker, LOCK_DEFAULTS }
