// persistent-whisper/bullmq: a transcription fleet on BullMQ and Redis.
// Producers use BullMQ's own Queue; hosts run createTranscriptionWorker().
import type { ConnectionOptions, Job, Queue, Relay, Worker, WorkerOptions } from 'bullmq'
import type { ErrorCode, PersistentWhisperEngine, PersistentWhisperOptions, TranscribeOptions, TranscriptionResult } from './index'

/**
 * Where a job's audio is, exactly one of:
 * - `{ path }`: a file on storage every host sees (absolute, or inside the worker's `pathRoot`);
 * - `{ url }`: http or https, fetched by the host that runs the job, at most `maxUrlBytes`;
 * - `{ base64 }`: the bytes of a WAV, MP3, FLAC or OGG file, at most `maxBase64Bytes` (small clips: it travels through Redis).
 */
export type TranscriptionAudio = { path: string; url?: never; base64?: never } | { url: string; path?: never; base64?: never } | { base64: string; path?: never; url?: never }

/** transcribe()'s options that travel in a job (plain JSON: no signal, no callbacks). */
export type TranscriptionJobOptions = Omit<TranscribeOptions, 'signal' | 'onProgress' | 'onSegment'>

/** A job's data: `queue.add('transcribe', { audio, options })`. */
export interface TranscriptionJobData {
  audio: TranscriptionAudio
  options?: TranscriptionJobOptions
}

/** The host that ran a job. */
export interface TranscriptionHost {
  /** os.hostname() of the host. */
  hostname: string
  /** The host's Node process. */
  pid: number
  /** The BullMQ worker's name (option `name`; default `<hostname>:<pid>`). */
  worker: string
}

/** A job's return value: the transcription, and which host (and which of its engine's workers, `workerId`) made it. */
export interface TranscriptionJobResult extends TranscriptionResult {
  host: TranscriptionHost
}

/** A transcription job, as a producer's Queue and QueueEvents see it. Progress is the percent done. */
export type TranscriptionJob = Job<TranscriptionJobData, TranscriptionJobResult, string>

export interface TranscriptionWorkerOptions extends Omit<WorkerOptions, 'connection' | 'concurrency'> {
  /** BullMQ's Redis connection (options or an ioredis instance). */
  connection: ConnectionOptions
  /** The engine jobs run on, or its options (then the worker makes it). close() shuts it down either way. */
  engine: PersistentWhisperEngine | PersistentWhisperOptions
  /** Jobs this host runs at once. Default: the engine's `maxWorkers`. */
  concurrency?: number
  /** `{ path }` jobs must resolve inside this folder (symbolic links followed); relative paths resolve against it. Default: none (absolute paths only). */
  pathRoot?: string | null
  /** The largest `{ base64 }` job, in decoded bytes. Default 10 MiB. */
  maxBase64Bytes?: number
  /** The largest file a `{ url }` job may fetch, in bytes. Default 100 MiB. */
  maxUrlBytes?: number
  /** ms a `{ url }` download may take. Default 60000. */
  urlTimeout?: number
  /** Decides which URLs (the job's, and each redirect) this host fetches. Default: every http and https URL. */
  allowUrl?: ((url: URL) => boolean) | null
  /** Subscribe to the queue's cancellation topic on BullMQ's Relay, so that cancelTranscription() from any process reaches this host. Default true. */
  remoteCancel?: boolean
  /** Default 30000 (BullMQ's): renewed every lockDuration / 2 while a job runs. */
  lockDuration?: number
  /** Default 15000. */
  stalledInterval?: number
  /** Default 2: a job may lose its host twice; the third time it fails. */
  maxStalledCount?: number
}

/**
 * A BullMQ Worker that runs transcription jobs. Everything BullMQ's Worker
 * does (events, cancelJob, pause ...), plus: close() waits for running jobs,
 * then shuts the engine down; close(true) leaves them to other hosts.
 */
export declare class TranscriptionWorker extends Worker<TranscriptionJobData, TranscriptionJobResult, string> {
  /** The engine this worker's jobs run on. */
  readonly engine: PersistentWhisperEngine
  /** Connected to Redis and, with remoteCancel, subscribed to cancellations. */
  waitUntilReady(): Promise<void>
  close(force?: boolean): Promise<void>
}

/**
 * Starts the engine (made from options, or the one given) and a worker on
 * `queueName`. Rejects with an Error whose `code` is ERR_INVALID_OPTIONS for
 * bad options, or the engine's initialize() code (ERR_MODEL_LOAD ...).
 */
export declare function createTranscriptionWorker(queueName: string, options: TranscriptionWorkerOptions): Promise<TranscriptionWorker>

/** What cancelTranscription() did. */
export type CancelOutcome = 'removed' | 'signalled' | 'finished' | 'missing'

/**
 * Cancels a job from any process: a waiting job is removed; a running one is
 * aborted on its host through BullMQ's Relay (it fails with ERR_ABORTED, no retry).
 */
export declare function cancelTranscription(via: { queue: Queue; relay: Relay }, jobId: string, reason?: string): Promise<CancelOutcome>

/** The Relay topic of a queue's cancellations: `jobs.<queue name, percent-encoded>.cancel`. */
export declare function cancelTopic(queueName: string): string

/** The lock settings a worker uses unless given others. */
export declare const LOCK_DEFAULTS: Readonly<{ lockDuration: number; stalledInterval: number; maxStalledCount: number }>

/** The code at the start of a failed job's `failedReason` (`'ERR_AUDIO_UNREADABLE: ...'`). */
export type TranscriptionFailureCode = ErrorCode
