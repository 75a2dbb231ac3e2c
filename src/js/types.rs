//! What JavaScript gets back (`#[napi(object)]`, which also generates
//! index.d.ts), converted from the core's types.

use crate::engine::EngineStatus as CoreEngineStatus;
use crate::events::Event;
use crate::locate::Located;
use crate::pool::{
    Percentiles, PoolStats as CorePoolStats, QueueStatus as CoreQueueStatus,
    TranscriptionResult as CoreResult, WorkerStatus as CoreWorkerStatus,
};
use napi_derive::napi;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[napi(object)]
pub struct TranscriptionSegment {
    /// Milliseconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// The text as whisper produced it, untrimmed (usually with a leading
    /// space): what whisper-cli writes into captions (toSrt, toVtt, toText).
    pub raw_text: String,
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

impl From<crate::transcript::Segment> for TranscriptionSegment {
    fn from(s: crate::transcript::Segment) -> Self {
        TranscriptionSegment {
            start: s.start_ms as f64,
            end: s.end_ms as f64,
            text: s.text,
            raw_text: s.raw,
        }
    }
}

/// One report on a running request, for lib/index.js to hand to the
/// caller's onProgress / onSegment; 'end' comes after every other.
#[napi(object)]
pub struct RequestReport {
    #[napi(ts_type = "'progress' | 'segment' | 'end'")]
    pub r#type: String,
    pub percent: Option<u32>,
    pub segment: Option<TranscriptionSegment>,
}

impl RequestReport {
    pub fn end() -> Self {
        RequestReport {
            r#type: "end".into(),
            percent: None,
            segment: None,
        }
    }
}

impl From<crate::observe::Report> for RequestReport {
    fn from(r: crate::observe::Report) -> Self {
        use crate::observe::Report;
        match r {
            Report::Progress(p) => RequestReport {
                r#type: "progress".into(),
                percent: Some(p.into()),
                segment: None,
            },
            Report::Segment(s) => RequestReport {
                r#type: "segment".into(),
                percent: None,
                segment: Some(s.into()),
            },
        }
    }
}

impl From<CoreResult> for TranscriptionResult {
    fn from(r: CoreResult) -> Self {
        TranscriptionResult {
            text: r.transcript.text,
            segments: r
                .transcript
                .segments
                .into_iter()
                .map(TranscriptionSegment::from)
                .collect(),
            language: r.transcript.language,
            request_id: r.request_id,
            worker_id: r.worker_id,
            queue_time_ms: ms(r.queue_time),
            processing_time_ms: ms(r.processing_time),
        }
    }
}

/// The device whisper decodes on.
#[napi(object)]
pub struct DeviceStatus {
    /// 'cpu', or the GPU backend: 'vulkan' (Linux and Windows), 'metal'
    /// (Apple silicon), 'cuda' (a build of your own).
    #[napi(ts_type = "'cpu' | 'vulkan' | 'metal' | 'cuda'")]
    pub kind: String,
    /// The device's name, e.g. 'NVIDIA GeForce RTX 4070', or the CPU's.
    pub name: String,
    /// A GPU's memory, in bytes.
    pub memory_bytes: Option<f64>,
    /// Backend 'worker' on a GPU: how many decodes its process runs there
    /// at once (what the GPU's free memory fits, at most the workers of
    /// that process); the other requests wait their turn.
    pub decodes: Option<u32>,
}

impl DeviceStatus {
    pub fn of(device: persistent_whisper_protocol::device::Device, decodes: Option<u32>) -> Self {
        DeviceStatus {
            kind: device.kind,
            name: device.name,
            memory_bytes: device.memory_bytes.map(|b| b as f64),
            decodes,
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
    /// The device it decodes on (none once it is terminated).
    pub device: Option<DeviceStatus>,
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
            device: w.device.map(|(d, n)| DeviceStatus::of(d, n)),
        }
    }
}

#[napi(object)]
pub struct PoolStats {
    /// The current size, between minWorkers and maxWorkers.
    pub total_workers: u32,
    pub min_workers: u32,
    pub max_workers: u32,
    pub available_workers: u32,
    pub busy_workers: u32,
    /// Workers whose process has the model loaded ('server', 'worker').
    pub loaded_workers: u32,
    pub queue_length: u32,
    /// Busy workers as a percentage of all workers.
    pub pool_utilization: f64,
    pub total_requests_submitted: f64,
    pub total_requests_processed: f64,
    pub total_requests_failed: f64,
    pub total_requests_aborted: f64,
    /// Runs again on a fresh process after a process died under them
    /// (each run counts; see README, "Nothing lost").
    pub total_requests_retried: f64,
    /// Replaced after a crash, timeout, hang or too many failures.
    pub workers_replaced: f64,
    /// Replaced after serving maxRequestsPerWorker requests.
    pub workers_recycled: f64,
    /// Milliseconds, over completed requests.
    pub average_processing_time: f64,
    pub average_queue_time: f64,
    /// Queue time plus processing time.
    pub average_latency: f64,
    /// Milliseconds in the queue over the last 1000 completed requests
    /// (nearest-rank percentiles).
    pub queue_time_p50: f64,
    pub queue_time_p95: f64,
    pub queue_time_p99: f64,
    /// Milliseconds of processing over the last 1000 completed requests.
    pub processing_time_p50: f64,
    pub processing_time_p95: f64,
    pub processing_time_p99: f64,
}

impl From<CorePoolStats> for PoolStats {
    fn from(s: CorePoolStats) -> Self {
        let Percentiles {
            p50: q50,
            p95: q95,
            p99: q99,
        } = s.queue_time;
        let Percentiles {
            p50: r50,
            p95: r95,
            p99: r99,
        } = s.processing_time;
        PoolStats {
            total_workers: s.total_workers as u32,
            min_workers: s.min_workers as u32,
            max_workers: s.max_workers as u32,
            available_workers: s.available_workers as u32,
            busy_workers: s.busy_workers as u32,
            loaded_workers: s.loaded_workers as u32,
            queue_length: s.queue_length as u32,
            pool_utilization: s.pool_utilization,
            total_requests_submitted: s.total_requests_submitted as f64,
            total_requests_processed: s.total_requests_processed as f64,
            total_requests_failed: s.total_requests_failed as f64,
            total_requests_aborted: s.total_requests_aborted as f64,
            total_requests_retried: s.total_requests_retried as f64,
            workers_replaced: s.workers_replaced as f64,
            workers_recycled: s.workers_recycled as f64,
            average_processing_time: s.average_processing_time_ms,
            average_queue_time: s.average_queue_time_ms,
            average_latency: s.average_latency_ms,
            queue_time_p50: q50,
            queue_time_p95: q95,
            queue_time_p99: q99,
            processing_time_p50: r50,
            processing_time_p95: r95,
            processing_time_p99: r99,
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
    /// Threads a request gets: the fixed count, or with a thread budget
    /// (threadBudget) what a lone request gets, every core.
    pub threads_per_worker: u32,
    /// Each request gets the cores that running requests leave free.
    pub thread_budget: bool,
    /// The whisper program the workers run (once initialized), and where it was found.
    pub program: Option<ProgramStatus>,
    /// The device whisper decodes on (the `gpu` option), once initialized;
    /// none for a whisper-cli or whisper-server you named, whose device
    /// the engine cannot tell.
    pub device: Option<DeviceStatus>,
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
    /// Backend 'worker', once a worker process runs: this project's changes
    /// to whisper.cpp its build has ('liveThreads', 'zeroedKvPages',
    /// 'sharedEncoders'); empty for a build of stock whisper.cpp, which
    /// works without them (threads fixed per request, more memory per
    /// concurrent request).
    pub whisper_features: Option<Vec<String>>,
}

impl ProgramStatus {
    pub fn of(l: Located, whisper_features: Option<Vec<String>>) -> Self {
        ProgramStatus {
            path: l.path.display().to_string(),
            found_by: l.found_by.as_str().to_owned(),
            variant: l.variant,
            whisper_features,
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
            thread_budget: s.thread_budget,
            program: s
                .program
                .map(|p| ProgramStatus::of(p, s.whisper_features.clone())),
            device: s.device.map(|(d, n)| DeviceStatus::of(d, n)),
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

/// One event for the JS layer (lib/index.js), which emits it under `type`
/// with the other fields that are set.
#[napi(object)]
pub struct EngineEvent {
    #[napi(
        ts_type = "'workerStarted' | 'workerExited' | 'requestCompleted' | 'requestFailed' | 'requestRetried' | 'queueFull' | 'drain' | 'backendFallback' | 'deviceFallback' | 'error'"
    )]
    pub r#type: String,
    pub worker_id: Option<String>,
    pub pid: Option<u32>,
    #[napi(ts_type = "'replaced' | 'recycled' | 'idle' | 'shutdown'")]
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub queue_time_ms: Option<f64>,
    pub processing_time_ms: Option<f64>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub max_queue_size: Option<u32>,
    /// backendFallback: the backend the engine runs instead.
    pub backend: Option<String>,
    /// deviceFallback at initialize(): the device the engine runs on instead.
    pub device: Option<DeviceStatus>,
}

impl EngineEvent {
    fn named(kind: &str) -> Self {
        EngineEvent {
            r#type: kind.to_owned(),
            worker_id: None,
            pid: None,
            reason: None,
            request_id: None,
            queue_time_ms: None,
            processing_time_ms: None,
            code: None,
            message: None,
            max_queue_size: None,
            backend: None,
            device: None,
        }
    }
}

impl From<Event> for EngineEvent {
    fn from(event: Event) -> Self {
        match event {
            Event::WorkerStarted { worker_id, pid } => EngineEvent {
                worker_id: Some(worker_id),
                pid,
                ..EngineEvent::named("workerStarted")
            },
            Event::WorkerExited { worker_id, reason } => EngineEvent {
                worker_id: Some(worker_id),
                reason: Some(reason.as_str().to_owned()),
                ..EngineEvent::named("workerExited")
            },
            Event::RequestCompleted {
                request_id,
                worker_id,
                queue_time,
                processing_time,
            } => EngineEvent {
                request_id: Some(request_id),
                worker_id: Some(worker_id),
                queue_time_ms: Some(ms(queue_time)),
                processing_time_ms: Some(ms(processing_time)),
                ..EngineEvent::named("requestCompleted")
            },
            Event::RequestFailed {
                request_id,
                worker_id,
                error,
            } => EngineEvent {
                request_id: Some(request_id),
                worker_id,
                code: Some(error.code().to_owned()),
                message: Some(error.to_string()),
                ..EngineEvent::named("requestFailed")
            },
            Event::RequestRetried {
                request_id,
                worker_id,
                reason,
            } => EngineEvent {
                request_id: Some(request_id),
                worker_id: Some(worker_id),
                message: Some(reason),
                ..EngineEvent::named("requestRetried")
            },
            Event::QueueFull {
                request_id,
                max_queue_size,
            } => EngineEvent {
                request_id: Some(request_id),
                max_queue_size: Some(max_queue_size as u32),
                ..EngineEvent::named("queueFull")
            },
            Event::Drain => EngineEvent::named("drain"),
            Event::BackendFallback {
                from: _,
                to,
                reason,
            } => EngineEvent {
                backend: Some(to.to_owned()),
                message: Some(reason),
                ..EngineEvent::named("backendFallback")
            },
            Event::DeviceFallback { device, reason } => EngineEvent {
                device: device.map(|d| DeviceStatus::of(d, None)),
                message: Some(reason),
                ..EngineEvent::named("deviceFallback")
            },
            Event::Error { error } => EngineEvent {
                code: Some(error.code().to_owned()),
                message: Some(error.to_string()),
                ..EngineEvent::named("error")
            },
        }
    }
}
