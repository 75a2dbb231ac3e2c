//! What the engine tells its listeners as it works (JavaScript's
//! EventEmitter events). Events are emitted in the order the state changes
//! happen; a sink must not block.

use crate::error::WhisperError;
use std::sync::Arc;
use std::time::Duration;

/// Why a worker left the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// It crashed, hung, timed out or failed too often, or restart() replaced it.
    Replaced,
    /// It served `maxRequestsPerWorker` requests.
    Recycled,
    /// It was idle for `idleTimeout` with more than `minWorkers` in the pool.
    Idle,
    /// shutdown().
    Shutdown,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Replaced => "replaced",
            ExitReason::Recycled => "recycled",
            ExitReason::Idle => "idle",
            ExitReason::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A worker took its place in the pool (for a persistent backend: its
    /// process is up with the model loaded).
    WorkerStarted { worker_id: String, pid: Option<u32> },
    WorkerExited {
        worker_id: String,
        reason: ExitReason,
    },
    RequestCompleted {
        request_id: String,
        worker_id: String,
        queue_time: Duration,
        processing_time: Duration,
    },
    /// Every rejection of a transcribe(), with its code.
    RequestFailed {
        request_id: String,
        worker_id: Option<String>,
        error: WhisperError,
    },
    /// A request's process died under it through no proven fault of its
    /// own: it goes back to the queue to run again on a fresh process.
    RequestRetried {
        request_id: String,
        worker_id: String,
        reason: String,
    },
    /// A request was refused because `maxQueueSize` requests wait.
    QueueFull {
        request_id: String,
        max_queue_size: usize,
    },
    /// The queue is empty and every worker idle.
    Drain,
    /// The default backend's program cannot start here: the engine runs
    /// `to` instead.
    BackendFallback {
        from: &'static str,
        to: &'static str,
        reason: String,
    },
    /// A failure in the background that no Promise reports, such as a
    /// worker that cannot be restarted.
    Error { error: WhisperError },
    /// No GPU is used although `gpu` allowed one: none works here (at
    /// initialize(); `device` is the CPU the engine runs on instead), or
    /// the GPU failed mid-run and the worker backend moved to the CPU.
    DeviceFallback {
        device: Option<persistent_whisper_protocol::device::Device>,
        reason: String,
    },
}

pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops everything (no listeners).
pub fn ignore() -> EventSink {
    Arc::new(|_| {})
}
