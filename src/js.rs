//! JS-facing types (`#[napi(object)]`, which also generate index.d.ts) and
//! their conversions to and from the core's types.

use crate::engine::EngineStatus as CoreEngineStatus;
use crate::error::WhisperError;
use crate::locate::Located;
use crate::options::{RawEngineOptions, RawTranscribeOptions};
use crate::pool::{
    PoolStats as CorePoolStats, QueueStatus as CoreQueueStatus, TranscriptionResult as CoreResult,
};
use crate::worker::WorkerStatus as CoreWorkerStatus;
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The JS Error for a core error: `message` says what to do, `code` is stable.
pub fn to_js_error(env: &Env, error: &WhisperError) -> Error {
    let made = env
        .create_error(Error::new(Status::GenericFailure, error.to_string()))
        .and_then(|mut obj| {
            obj.set("code", error.code())?;
            Ok(Error::from(obj.to_unknown()))
        });
    made.unwrap_or_else(|e| e)
}

/// napi's own conversion messages ("Missing field `modelPath`", "... on
/// PersistentWhisperOptions.poolSize") turned into a coded error naming the option.
pub fn conversion_error(reason: &str) -> WhisperError {
    if let Some(field) = reason
        .strip_prefix("Missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return WhisperError::invalid(field, "is required");
    }
    let field = [" on PersistentWhisperOptions.", " on TranscribeOptions."]
        .iter()
        .find_map(|struct_name| reason.rsplit_once(struct_name));
    match field {
        Some((what, field)) => WhisperError::invalid(field, format!("has the wrong type ({what})")),
        None => WhisperError::invalid("options", reason),
    }
}

/// Thrown synchronously (constructor): napi sets `code` from the status string.
pub fn to_thrown(error: WhisperError) -> Error<&'static str> {
    Error::new(error.code(), error.to_string())
}

#[napi(object)]
pub struct PersistentWhisperOptions {
    /// Path of a ggml whisper model, e.g. `.whisper/models/ggml-tiny.en.bin`.
    pub model_path: String,
    /// whisper-cli binary. Default: $WHISPER_CLI_PATH, then this checkout's
    /// provisioned build (`npm run setup`), then `whisper-cli` on the PATH.
    pub whisper_path: Option<String>,
    /// whisper-server binary (backend 'server'). Default: $WHISPER_SERVER_PATH,
    /// then beside `whisperPath`, then the provisioned build, then the PATH.
    pub server_path: Option<String>,
    /// How a worker runs whisper. 'cli' (default): one whisper-cli process per
    /// request. 'server': one whisper-server per worker, model loaded once.
    #[napi(ts_type = "'cli' | 'server'")]
    pub backend: Option<String>,
    /// Backend 'server': first port to try for the workers' servers on
    /// 127.0.0.1 (ports in use are skipped). Default: ports the OS picks.
    pub base_port: Option<f64>,
    /// Backend 'server': milliseconds between health checks of an idle
    /// worker's server; three failures in a row replace it. Default 5000.
    pub health_check_interval: Option<f64>,
    /// Worker processes. Default 3.
    pub pool_size: Option<f64>,
    /// Milliseconds one request may run before its process is killed.
    /// Default: 30 s plus the audio's duration times a factor that grows with
    /// the model's size (3x for tiny.en, 6x for base); see README.
    pub timeout: Option<f64>,
    /// whisper threads per worker. Default max(1, floor(cpus / poolSize)).
    pub threads: Option<f64>,
    /// Spoken language code, or 'auto' to detect it. Default 'en'.
    pub language: Option<String>,
    /// Requests that may wait for a worker; beyond it transcribe() rejects
    /// with ERR_QUEUE_FULL. Default 1000.
    pub max_queue_size: Option<f64>,
    /// Failed requests in a row after which a worker is replaced. Default 3.
    pub max_consecutive_failures: Option<f64>,
    /// Replace a worker (and its process) after it has served this many
    /// requests, for memory hygiene. Default: never.
    pub max_requests_per_worker: Option<f64>,
    /// Passed to whisper-cli verbatim (e.g. ['-bs', '1']); flags the engine
    /// sets itself are refused.
    pub extra_args: Option<Vec<String>>,
    /// Default 'warn': quiet while things work.
    #[napi(ts_type = "'silent' | 'error' | 'warn' | 'info' | 'debug'")]
    pub log_level: Option<String>,
}

impl From<PersistentWhisperOptions> for RawEngineOptions {
    fn from(o: PersistentWhisperOptions) -> Self {
        RawEngineOptions {
            model_path: Some(o.model_path),
            whisper_path: o.whisper_path,
            server_path: o.server_path,
            backend: o.backend,
            base_port: o.base_port,
            health_check_interval: o.health_check_interval,
            pool_size: o.pool_size,
            timeout: o.timeout,
            threads: o.threads,
            language: o.language,
            max_queue_size: o.max_queue_size,
            max_consecutive_failures: o.max_consecutive_failures,
            max_requests_per_worker: o.max_requests_per_worker,
            extra_args: o.extra_args,
            log_level: o.log_level,
        }
    }
}

#[napi(object)]
pub struct TranscribeOptions<'a> {
    /// Overrides the engine's language for this request.
    pub language: Option<String>,
    /// Overrides the engine's timeout (ms) for this request.
    pub timeout: Option<f64>,
    /// 'high' requests (dictation) go before queued 'normal' ones; FIFO within
    /// a priority. Default 'normal'.
    #[napi(ts_type = "'high' | 'normal'")]
    pub priority: Option<String>,
    /// Aborting it rejects the request with ERR_ABORTED: a queued request
    /// leaves the queue, a running one has its whisper work stopped.
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<Object<'a>>,
}

impl TranscribeOptions<'_> {
    pub fn raw(&self) -> RawTranscribeOptions {
        RawTranscribeOptions {
            language: self.language.clone(),
            timeout: self.timeout,
            priority: self.priority.clone(),
        }
    }
}

#[napi(object)]
pub struct TranscriptionSegment {
    /// Milliseconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
}

#[napi(object)]
pub struct TranscriptionResult {
    pub text: String,
    pub segments: Vec<TranscriptionSegment>,
    pub language: String,
    pub request_id: String,
    pub worker_id: String,
    pub queue_time_ms: f64,
    pub processing_time_ms: f64,
}

impl From<CoreResult> for TranscriptionResult {
    fn from(r: CoreResult) -> Self {
        TranscriptionResult {
            text: r.transcript.text,
            segments: r
                .transcript
                .segments
                .into_iter()
                .map(|s| TranscriptionSegment {
                    start: s.start_ms as f64,
                    end: s.end_ms as f64,
                    text: s.text,
                })
                .collect(),
            language: r.transcript.language,
            request_id: r.request_id,
            worker_id: r.worker_id,
            queue_time_ms: ms(r.queue_time),
            processing_time_ms: ms(r.processing_time),
        }
    }
}

#[napi(object)]
pub struct WorkerStatus {
    pub id: String,
    #[napi(ts_type = "'idle' | 'processing' | 'completed' | 'failed' | 'terminated'")]
    pub state: String,
    /// The whisper process serving the current request, if any.
    pub pid: Option<u32>,
    pub requests_processed: f64,
    pub requests_failed: f64,
    pub consecutive_failures: u32,
    pub average_processing_time: f64,
    pub current_request: Option<String>,
    pub last_error: Option<String>,
    /// Backend 'server': its whisper-server is up with the model loaded.
    pub model_loaded: bool,
}

impl From<CoreWorkerStatus> for WorkerStatus {
    fn from(w: CoreWorkerStatus) -> Self {
        WorkerStatus {
            id: w.id,
            state: w.state.as_str().to_owned(),
            pid: w.pid,
            requests_processed: w.requests_processed as f64,
            requests_failed: w.requests_failed as f64,
            consecutive_failures: w.consecutive_failures,
            average_processing_time: w.average_processing_time_ms,
            current_request: w.current_request,
            last_error: w.last_error,
            model_loaded: w.model_loaded,
        }
    }
}

#[napi(object)]
pub struct PoolStats {
    pub total_workers: u32,
    pub available_workers: u32,
    pub busy_workers: u32,
    /// Workers whose whisper-server has the model loaded ('server').
    pub loaded_workers: u32,
    pub queue_length: u32,
    /// Busy workers as a percentage of all workers.
    pub pool_utilization: f64,
    pub total_requests_submitted: f64,
    pub total_requests_processed: f64,
    pub total_requests_failed: f64,
    pub total_requests_aborted: f64,
    /// Replaced after a crash, timeout, hang or too many failures.
    pub workers_replaced: f64,
    /// Replaced after serving maxRequestsPerWorker requests.
    pub workers_recycled: f64,
    /// Milliseconds, over completed requests.
    pub average_processing_time: f64,
    pub average_queue_time: f64,
    /// Queue time plus processing time.
    pub average_latency: f64,
}

impl From<CorePoolStats> for PoolStats {
    fn from(s: CorePoolStats) -> Self {
        PoolStats {
            total_workers: s.total_workers as u32,
            available_workers: s.available_workers as u32,
            busy_workers: s.busy_workers as u32,
            loaded_workers: s.loaded_workers as u32,
            queue_length: s.queue_length as u32,
            pool_utilization: s.pool_utilization,
            total_requests_submitted: s.total_requests_submitted as f64,
            total_requests_processed: s.total_requests_processed as f64,
            total_requests_failed: s.total_requests_failed as f64,
            total_requests_aborted: s.total_requests_aborted as f64,
            workers_replaced: s.workers_replaced as f64,
            workers_recycled: s.workers_recycled as f64,
            average_processing_time: s.average_processing_time_ms,
            average_queue_time: s.average_queue_time_ms,
            average_latency: s.average_latency_ms,
        }
    }
}

#[napi(object)]
pub struct EngineStatus {
    pub is_running: bool,
    pub is_ready: bool,
    /// Whether workers keep the model loaded between requests ('server', once started).
    pub model_loaded: bool,
    pub requests_processed: f64,
    /// Milliseconds from transcribe() to result, averaged over completed requests.
    pub average_latency: f64,
    pub last_error: Option<String>,
    pub pool_stats: Option<PoolStats>,
    pub worker_count: u32,
    pub available_workers: u32,
    pub pool_utilization: f64,
    pub backend: String,
    pub threads_per_worker: u32,
    /// The whisper program the workers run (once initialized), and where it was found.
    pub program: Option<ProgramStatus>,
}

#[napi(object)]
pub struct ProgramStatus {
    /// Absolute path of the program.
    pub path: String,
    /// Where it was found: the option, its environment variable, beside the
    /// whisper-cli you named, the installed platform package, a development
    /// checkout's build, or the PATH.
    #[napi(ts_type = "'option' | 'environment' | 'beside' | 'package' | 'checkout' | 'path'")]
    pub found_by: String,
    /// The CPU variant of the build chosen for this machine (package or checkout), e.g. 'x86-64-v3'.
    pub variant: Option<String>,
}

impl From<Located> for ProgramStatus {
    fn from(l: Located) -> Self {
        ProgramStatus {
            path: l.path.display().to_string(),
            found_by: l.found_by.as_str().to_owned(),
            variant: l.variant,
        }
    }
}

impl From<CoreEngineStatus> for EngineStatus {
    fn from(s: CoreEngineStatus) -> Self {
        EngineStatus {
            is_running: s.is_running,
            is_ready: s.is_ready,
            model_loaded: s.model_loaded,
            requests_processed: s.requests_processed as f64,
            average_latency: s.average_latency_ms,
            last_error: s.last_error,
            pool_stats: s.pool_stats.map(Into::into),
            worker_count: s.worker_count as u32,
            available_workers: s.available_workers as u32,
            pool_utilization: s.pool_utilization,
            backend: s.backend.to_owned(),
            threads_per_worker: s.threads_per_worker as u32,
            program: s.program.map(Into::into),
        }
    }
}

#[napi(object)]
pub struct QueuedRequest {
    pub id: String,
    pub audio_file_path: String,
    /// Milliseconds since it was submitted.
    pub waiting_time: f64,
}

#[napi(object)]
pub struct ProcessingRequest {
    pub id: String,
    pub audio_file_path: String,
    pub worker_id: String,
    /// Milliseconds since a worker took it.
    pub running_time: f64,
}

#[napi(object)]
pub struct QueueStatus {
    pub queue_length: u32,
    pub max_queue_size: u32,
    pub queued_requests: Vec<QueuedRequest>,
    pub processing_requests: Vec<ProcessingRequest>,
}

impl From<CoreQueueStatus> for QueueStatus {
    fn from(q: CoreQueueStatus) -> Self {
        QueueStatus {
            queue_length: q.queue_length as u32,
            max_queue_size: q.max_queue_size as u32,
            queued_requests: q
                .queued_requests
                .into_iter()
                .map(|r| QueuedRequest {
                    id: r.id,
                    audio_file_path: r.audio_file_path,
                    waiting_time: r.waiting_ms,
                })
                .collect(),
            processing_requests: q
                .processing_requests
                .into_iter()
                .map(|r| ProcessingRequest {
                    id: r.id,
                    audio_file_path: r.audio_file_path,
                    worker_id: r.worker_id,
                    running_time: r.running_ms,
                })
                .collect(),
        }
    }
}
