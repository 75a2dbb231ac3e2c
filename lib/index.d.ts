// persistent-whisper's public types: the engine class (an EventEmitter over
// the native addon), the types generated from the Rust source (../index.d.ts),
// and the error codes.
import { EventEmitter } from 'node:events'
import type {
  DeviceStatus,
  EngineStatus,
  ListenOptions,
  PersistentWhisperOptions,
  ProgramStatus,
  QueueStatus,
  TranscribeOptions,
  TranscriptionResult,
  TranscriptionSegment,
  WorkerStatus,
} from '../index'

export type {
  DeviceStatus,
  EngineStatus,
  ListenOptions,
  PersistentWhisperOptions,
  PoolStats,
  ProcessingRequest,
  ProgramStatus,
  QueuedRequest,
  QueueStatus,
  TranscribeOptions,
  TranscriptionResult,
  TranscriptionSegment,
  WorkerStatus,
} from '../index'

/** Every `code` an Error from persistent-whisper carries. */
export type ErrorCode =
  | 'ERR_NOT_INITIALIZED'
  | 'ERR_INVALID_OPTIONS'
  | 'ERR_WHISPER_NOT_FOUND'
  | 'ERR_MODEL_LOAD'
  | 'ERR_AUDIO_NOT_FOUND'
  | 'ERR_AUDIO_UNREADABLE'
  | 'ERR_TIMEOUT'
  | 'ERR_QUEUE_FULL'
  | 'ERR_ABORTED'
  | 'ERR_SHUTDOWN'
  | 'ERR_WORKER_CRASHED'
  | 'ERR_WHISPER_FAILED'
  /** A model download failed: the network, an HTTP status, or the disk. */
  | 'ERR_DOWNLOAD_FAILED'
  /** A downloaded model is not the file its checksum names; it was deleted. */
  | 'ERR_CHECKSUM_MISMATCH'
  /** Thrown by require('persistent-whisper') on a platform without a package. */
  | 'ERR_UNSUPPORTED_PLATFORM'
  /** Thrown by require('persistent-whisper') when the platform package is missing or broken. */
  | 'ERR_ADDON_LOAD'

/** A rejection (or load error) of persistent-whisper: an Error with a stable `code`. */
export interface PersistentWhisperError extends Error {
  code: ErrorCode
}

/** Why a worker left the pool. */
export type WorkerExitReason = 'replaced' | 'recycled' | 'idle' | 'shutdown'

/** The engine's events and what their listeners receive. */
export interface PersistentWhisperEvents {
  /** A worker took its place (for 'server': its process is up with the model loaded). */
  workerStarted: [event: { workerId: string; pid?: number }]
  workerExited: [event: { workerId: string; reason: WorkerExitReason }]
  requestCompleted: [event: { requestId: string; workerId: string; queueTimeMs: number; processingTimeMs: number }]
  /** Every rejected transcribe(), with its code. */
  requestFailed: [event: { requestId: string; workerId?: string; code: ErrorCode; message: string }]
  /**
   * A request's whisper process died under it through no proven fault of its
   * own (a neighbour crashed it, the OOM killer, a kill): it runs again on a
   * fresh process, alone. `message` says how the process ended.
   */
  requestRetried: [event: { requestId: string; workerId: string; message: string }]
  queueFull: [event: { requestId: string; maxQueueSize: number }]
  /** The queue is empty and every worker idle. */
  drain: []
  /**
   * The default backend ('worker') cannot run on this machine (its program
   * is missing or fails its start-up check): the engine runs `backend`
   * ('cli') instead. `message` says why.
   */
  backendFallback: [event: { backend: 'cli'; message: string }]
  /**
   * No GPU is used although `gpu` allowed one: at initialize(), none works
   * here (`device` is the CPU the engine runs on instead); or mid-run, the
   * GPU failed and the worker backend moved to the CPU build, its requests
   * in flight running again there (no `device`). `message` says why.
   */
  deviceFallback: [event: { message: string; device?: DeviceStatus }]
  /** initialize() downloading a catalogue model (autoDownload). */
  downloadProgress: [event: DownloadProgress & { model: string }]
  /** A failure in the background that no Promise reports (a worker that cannot be restarted). */
  error: [error: PersistentWhisperError]
}

/** A file path, 16 kHz mono samples, or an audio file's bytes. */
export type AudioInput = string | Float32Array | Uint8Array

/**
 * A pool of whisper.cpp worker processes. Every method returns a Promise and
 * never throws; every rejection is an Error with a stable `code`.
 */
export declare class PersistentWhisperEngine extends EventEmitter {
  /** Validates the options; throws ERR_INVALID_OPTIONS naming the bad one. Starts nothing. */
  constructor(options: PersistentWhisperOptions)
  /** Finds the whisper program, checks the model, and starts the workers. */
  initialize(): Promise<void>
  /**
   * Transcribes a file (path), 16 kHz mono samples (Float32Array), or the
   * bytes of a WAV, MP3, FLAC or OGG file (Buffer/Uint8Array); nothing is
   * written to disk. onProgress and onSegment run before the Promise settles.
   */
  transcribe(audio: AudioInput, options?: TranscribeOptions): Promise<TranscriptionResult>
  /**
   * Live dictation: returns a session at once; write audio to it as it is
   * recorded (what comes before its voice activity detector runs is held).
   * It needs the Silero VAD model beside the whisper model, or
   * vadModelPath. A session that cannot start emits 'error' and 'close', and
   * its end() rejects: ERR_NOT_INITIALIZED, ERR_MODEL_LOAD (no VAD model),
   * ERR_WHISPER_NOT_FOUND (no persistent-whisper-worker),
   * ERR_INVALID_OPTIONS or ERR_ABORTED.
   */
  listen(options?: LiveListenOptions): LiveSession
  getStatus(): Promise<EngineStatus>
  getWorkerStatuses(): Promise<WorkerStatus[]>
  getQueueStatus(): Promise<QueueStatus>
  /** Rejects queued requests with ERR_SHUTDOWN, ends every worker process, resolves when none is left. */
  shutdown(): Promise<void>
  /** Replaces every worker; queued requests wait, running ones start over. */
  restart(): Promise<void>

  on<E extends keyof PersistentWhisperEvents>(event: E, listener: (...args: PersistentWhisperEvents[E]) => void): this
  once<E extends keyof PersistentWhisperEvents>(event: E, listener: (...args: PersistentWhisperEvents[E]) => void): this
  off<E extends keyof PersistentWhisperEvents>(event: E, listener: (...args: PersistentWhisperEvents[E]) => void): this
  addListener<E extends keyof PersistentWhisperEvents>(event: E, listener: (...args: PersistentWhisperEvents[E]) => void): this
  removeListener<E extends keyof PersistentWhisperEvents>(event: E, listener: (...args: PersistentWhisperEvents[E]) => void): this
  emit<E extends keyof PersistentWhisperEvents>(event: E, ...args: PersistentWhisperEvents[E]): boolean
}

/** A span of a live session, in ms from its first sample. */
export interface UtteranceSpan {
  /** 0 for the session's first utterance, then 1, 2 ... */
  utterance: number
  startMs: number
  endMs: number
}

/** A live session's events and what their listeners receive, for each utterance in this order. */
export interface LiveSessionEvents {
  /** Speech began (the padding before it included). */
  speechStart: [event: { utterance: number; startMs: number }]
  /** A quick hypothesis of the utterance so far (greedy decoding); the final may differ. */
  partial: [event: UtteranceSpan & { text: string }]
  /** The speaker paused; the final is on its way. */
  speechEnd: [event: UtteranceSpan]
  /** The utterance's text with the engine's settings; segment times are the session's. */
  final: [event: LiveFinal]
  /**
   * An utterance that could not be transcribed (`utterance` set; the session
   * goes on), or the session failing (no `utterance`; 'close' follows).
   * Unheard, it is logged, never thrown.
   */
  error: [error: PersistentWhisperError & { utterance?: number }]
  /** The session is over: ended, aborted or failed. */
  close: [event: LiveSummary | { error: PersistentWhisperError }]
}

/** Voice activity detection settings of a live session, as one object (the same as the flat options). */
export interface LiveVadSettings {
  /** Speech probability from which a 32 ms window counts as speech, 0.05 to 0.95. Default 0.5. */
  threshold?: number
  /** A pause this long ends an utterance. Default 500. */
  minSilenceMs?: number
  /** Speech shorter than this is no utterance. Default 250. */
  minSpeechMs?: number
  /** Audio kept before and after the speech. Default 200. */
  speechPadMs?: number
  /** A longer utterance is cut there and goes on as the next. Default 28000. */
  maxUtteranceMs?: number
}

/** listen()'s options: the flat ones, or the VAD's as `vad: { ... }`. */
export type LiveListenOptions = ListenOptions & { vad?: true | LiveVadSettings }

/** An utterance's final text. */
export type LiveFinal = UtteranceSpan & { text: string; segments: TranscriptionSegment[]; language: string }

export interface LiveSummary {
  /** Utterances heard. */
  utterances: number
  /** Audio heard, in ms. */
  durationMs: number
  /** The most audio the session held at once, in ms: the utterance under way and what waited for the detector. */
  peakBufferedMs: number
}

/**
 * Audio in as it is recorded; text out as events. Methods never throw.
 */
export declare class LiveSession extends EventEmitter {
  /** True once the session is over: write() takes nothing more. */
  readonly closed: boolean
  /**
   * Queues mono samples at the session's sampleRate: Float32Array (-1..1),
   * Int16Array, or a Buffer of 16-bit little-endian PCM (as `arecord -f
   * S16_LE` writes). False once the session is over; false and an 'error'
   * event (ERR_INVALID_OPTIONS) for anything else.
   */
  write(samples: Float32Array | Int16Array | Uint8Array): boolean
  /**
   * No more audio: resolves with the session's finals, in order, once the
   * last is out; rejects with what ended the session (ERR_ABORTED after
   * abort(), or why it could not start).
   */
  end(): Promise<LiveFinal[]>
  /** Stops at once; transcriptions in flight are aborted; 'close' follows. */
  abort(): void

  on<E extends keyof LiveSessionEvents>(event: E, listener: (...args: LiveSessionEvents[E]) => void): this
  once<E extends keyof LiveSessionEvents>(event: E, listener: (...args: LiveSessionEvents[E]) => void): this
  off<E extends keyof LiveSessionEvents>(event: E, listener: (...args: LiveSessionEvents[E]) => void): this
  addListener<E extends keyof LiveSessionEvents>(event: E, listener: (...args: LiveSessionEvents[E]) => void): this
  removeListener<E extends keyof LiveSessionEvents>(event: E, listener: (...args: LiveSessionEvents[E]) => void): this
  emit<E extends keyof LiveSessionEvents>(event: E, ...args: LiveSessionEvents[E]): boolean
}

/**
 * Which whisper program the engine would run here when no path is given, and
 * where it was found (environment, platform package, checkout, PATH).
 */
export declare function locateWhisper(program?: 'whisper-cli' | 'whisper-server' | 'persistent-whisper-worker'): Promise<ProgramStatus>

/**
 * A model of the catalogue: whisper.cpp's official ggml models with a
 * published SHA-1, and the Silero VAD model (kind 'vad', by SHA-256) that
 * `vad: true` and listen() use.
 */
export interface CatalogueModel {
  /** e.g. 'base.en', 'large-v3-turbo-q5_0', 'silero-v6.2.0'. */
  name: string
  kind: 'whisper' | 'vad'
  /** e.g. 'ggml-base.en.bin'. */
  file: string
  /** Where it is downloaded from (PERSISTENT_WHISPER_MODEL_BASE_URL replaces the base). */
  url: string
  /** The size whisper.cpp's models/README.md states (rounded). */
  approxBytes: number
  /** The most bytes a download of it may bring (approxBytes plus 10%): a server that sends more is cut off. */
  maxBytes: number
  /** A whisper model's checksum. */
  sha1?: string
  /** A VAD model's checksum. */
  sha256?: string
  multilingual: boolean
  quantized: boolean
  /** Its file in the folder listModels() looked in. */
  path: string
  downloaded: boolean
}

/** Any other model: its URL and a checksum (sha256 or sha1), and optionally its size in bytes. */
export type ModelSpec = { url: string; size?: number } & ({ sha256: string; sha1?: never } | { sha1: string; sha256?: never })

export interface DownloadProgress {
  bytes: number
  /** Bytes in all, when the server says. */
  total?: number
  percent?: number
}

export interface DownloadOptions {
  /** Default: defaultModelDir(). */
  dir?: string
  onProgress?: (progress: DownloadProgress) => void
  signal?: AbortSignal | null
  /** ms without a byte from the server after which an attempt ends and the next resumes (default 30000). */
  idleTimeout?: number
}

/** The catalogue, with what is downloaded in `dir` (default: defaultModelDir()). */
export declare function listModels(options?: { dir?: string }): CatalogueModel[]

/**
 * Downloads a catalogue model (by name) or any model (by URL and checksum)
 * and resolves with its path: verified before it appears, resumed after an
 * interruption, safe with several processes at once. Rejects with
 * ERR_DOWNLOAD_FAILED, ERR_CHECKSUM_MISMATCH, ERR_ABORTED or ERR_INVALID_OPTIONS.
 */
export declare function downloadModel(model: string | ModelSpec, options?: DownloadOptions): Promise<string>

/** The platform's cache folder for models: XDG_CACHE_HOME or ~/.cache, ~/Library/Caches, %LOCALAPPDATA%; under persistent-whisper/models. */
export declare function defaultModelDir(): string

/** The catalogue's model names. */
export declare const MODEL_NAMES: readonly string[]

/** What captions need of a result: its segments (rawText as whisper wrote it). */
export type CaptionSource = Pick<TranscriptionResult, 'segments'>

/** SubRip captions, as whisper-cli writes them with -osrt. */
export declare function toSrt(result: CaptionSource): string
/** WebVTT captions, as whisper-cli writes them with -ovtt. */
export declare function toVtt(result: CaptionSource): string
/** Plain text, one segment per line, as whisper-cli writes it with -otxt. */
export declare function toText(result: CaptionSource): string

/** Every ErrorCode, at run time. */
export declare const ERROR_CODES: readonly ErrorCode[]

/** The platforms persistent-whisper ships a package for, e.g. 'linux-x64-gnu'. */
export declare const SUPPORTED_PLATFORMS: readonly string[]

/** Narrows an unknown caught value to a PersistentWhisperError. */
export declare function isPersistentWhisperError(err: unknown): err is PersistentWhisperError
