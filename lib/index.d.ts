// persistent-whisper's public types: the generated ones of the native addon
// (../index.d.ts, from the Rust source), and the error codes.
export {
  PersistentWhisperEngine,
  locateWhisper,
  PersistentWhisperOptions,
  TranscribeOptions,
  TranscriptionResult,
  TranscriptionSegment,
  EngineStatus,
  PoolStats,
  WorkerStatus,
  QueueStatus,
  QueuedRequest,
  ProcessingRequest,
  ProgramStatus,
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
  /** Thrown by require('persistent-whisper') on a platform without a package. */
  | 'ERR_UNSUPPORTED_PLATFORM'
  /** Thrown by require('persistent-whisper') when the platform package is missing or broken. */
  | 'ERR_ADDON_LOAD'

/** A rejection (or load error) of persistent-whisper: an Error with a stable `code`. */
export interface PersistentWhisperError extends Error {
  code: ErrorCode
}

/** Every ErrorCode, at run time. */
export declare const ERROR_CODES: readonly ErrorCode[]

/** The platforms persistent-whisper ships a package for, e.g. 'linux-x64-gnu'. */
export declare const SUPPORTED_PLATFORMS: readonly string[]

/** Narrows an unknown caught value to a PersistentWhisperError. */
export declare function isPersistentWhisperError(err: unknown): err is PersistentWhisperError
