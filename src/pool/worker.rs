//! One record per worker: its phase (which also holds its current request),
//! its statistics, its backend. The public state (idle, processing,
//! completed, failed, terminated) is derived from the record, never stored
//! beside it.

use crate::backend::Backend;
use crate::cancel::CancelToken;
use crate::error::WhisperError;
use crate::log::Logger;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a worker leaves the pool; the first reason given sticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// Crashed, timed out, hung, or failed too often.
    Failure,
    /// Served `maxRequestsPerWorker` requests.
    Recycle,
    /// Idle past `idleTimeout` above `minWorkers`.
    Idle,
    /// restart().
    Restart,
    /// shutdown().
    Shutdown,
}

impl Retirement {
    pub fn exit_reason(self) -> crate::events::ExitReason {
        use crate::events::ExitReason;
        match self {
            Retirement::Failure | Retirement::Restart => ExitReason::Replaced,
            Retirement::Recycle => ExitReason::Recycled,
            Retirement::Idle => ExitReason::Idle,
            Retirement::Shutdown => ExitReason::Shutdown,
        }
    }
}

/// How hard to try to start a worker's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempts {
    /// At initialize(): a failure is the caller's to see at once.
    Once,
    /// A replacement or growth: retried with a growing pause.
    Retried,
}

impl Attempts {
    pub fn count(self) -> u32 {
        match self {
            Attempts::Once => 1,
            Attempts::Retried => 3,
        }
    }
}

/// The request a busy worker serves.
pub(super) struct Busy {
    pub request: String,
    pub path: String,
    pub started: Instant,
    pub cancel: CancelToken,
    pub threads: usize,
    /// Tells a backend that adjusts threads (the worker) of a new count.
    pub live_threads: Option<tokio::sync::watch::Sender<usize>>,
    /// Leave the pool once this request settles.
    pub retire: Option<Retirement>,
    /// It runs alone in its process (a suspect after a crash).
    pub alone: bool,
}

pub(super) enum Phase {
    /// Its process is starting (persistent backends only).
    Starting,
    /// Takes work.
    Ready,
    Busy(Busy),
    /// Out of the pool; its process was ended (after shutdown()).
    Terminated,
}

/// How its last request ended: what an idle worker shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LastOutcome {
    None,
    Completed,
    Failed,
}

#[derive(Debug, Clone, Default)]
pub(super) struct WorkerStats {
    pub processed: u64,
    pub failed: u64,
    pub consecutive_failures: u32,
    pub processing_time: Duration,
    /// Requests it has started, whatever their outcome.
    pub served: u64,
    pub last_error: Option<String>,
}

pub(super) struct WorkerRecord {
    pub id: String,
    pub phase: Phase,
    pub last: LastOutcome,
    pub stats: WorkerStats,
    pub backend: Arc<Backend>,
    pub log: Logger,
    /// The process serving it: per request (cli) or for its lifetime (server).
    pub pid: Option<u32>,
    /// Cancelled when it leaves the pool; ends its monitor.
    pub gone: CancelToken,
    /// Since when it has been ready without work: least recently used goes first.
    pub idle_since: Instant,
    /// Counts the times it became idle, so an idle timer knows it is still the same idleness.
    pub idle_round: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Idle,
    Processing,
    Completed,
    Failed,
    Terminated,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Processing => "processing",
            WorkerState::Completed => "completed",
            WorkerState::Failed => "failed",
            WorkerState::Terminated => "terminated",
        }
    }
}

/// A snapshot for getWorkerStatuses().
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStatus {
    pub id: String,
    pub state: WorkerState,
    pub pid: Option<u32>,
    pub requests_processed: u64,
    pub requests_failed: u64,
    pub consecutive_failures: u32,
    pub average_processing_time_ms: f64,
    pub current_request: Option<String>,
    pub last_error: Option<String>,
    /// Its process keeps the model loaded (server backend, once started).
    pub model_loaded: bool,
}

impl WorkerRecord {
    pub fn new(id: String, backend: Arc<Backend>, log: Logger) -> Self {
        let phase = if backend.is_persistent() {
            Phase::Starting
        } else {
            Phase::Ready
        };
        WorkerRecord {
            id,
            phase,
            last: LastOutcome::None,
            stats: WorkerStats::default(),
            backend,
            log,
            pid: None,
            gone: CancelToken::default(),
            idle_since: Instant::now(),
            idle_round: 0,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    pub fn busy(&self) -> Option<&Busy> {
        match &self.phase {
            Phase::Busy(b) => Some(b),
            _ => None,
        }
    }

    pub fn busy_mut(&mut self) -> Option<&mut Busy> {
        match &mut self.phase {
            Phase::Busy(b) => Some(b),
            _ => None,
        }
    }

    pub fn state(&self) -> WorkerState {
        match (&self.phase, self.last) {
            (Phase::Busy(_), _) => WorkerState::Processing,
            (Phase::Terminated, _) => WorkerState::Terminated,
            (_, LastOutcome::None) => WorkerState::Idle,
            (_, LastOutcome::Completed) => WorkerState::Completed,
            (_, LastOutcome::Failed) => WorkerState::Failed,
        }
    }

    /// Starts serving a request.
    pub fn begin(&mut self, busy: Busy) {
        debug_assert!(self.is_ready());
        self.stats.served += 1;
        self.phase = Phase::Busy(busy);
    }

    /// Back to ready after a request; returns why it must leave, if it must.
    fn end_request(&mut self) -> Option<Retirement> {
        let retire = match std::mem::replace(&mut self.phase, Phase::Ready) {
            Phase::Busy(b) => b.retire,
            _ => None,
        };
        self.idle_since = Instant::now();
        self.idle_round += 1;
        retire
    }

    pub fn succeed(&mut self, elapsed: Duration) -> Option<Retirement> {
        self.last = LastOutcome::Completed;
        self.stats.processed += 1;
        self.stats.consecutive_failures = 0;
        self.stats.processing_time += elapsed;
        self.end_request()
    }

    /// Records a failed request; returns why the worker must leave, if it must.
    pub fn fail(
        &mut self,
        error: &WhisperError,
        max_consecutive_failures: u32,
    ) -> Option<Retirement> {
        self.last = LastOutcome::Failed;
        self.stats.failed += 1;
        self.stats.last_error = Some(error.to_string());
        if error.counts_against_worker() {
            self.stats.consecutive_failures += 1;
        }
        let asked = self.end_request();
        let worn_out =
            error.needs_new_worker() || self.stats.consecutive_failures >= max_consecutive_failures;
        asked.or(worn_out.then_some(Retirement::Failure))
    }

    /// Its process died under its request, which is the pool's to judge:
    /// the worker is replaced, its request not counted against it.
    pub fn lose_process(&mut self, detail: &str) -> Option<Retirement> {
        self.stats.last_error = Some(detail.to_owned());
        self.end_request().or(Some(Retirement::Failure))
    }

    /// The request ended with no verdict on either (aborted, or sent back to
    /// the queue): the worker is as it was.
    pub fn release(&mut self) -> Option<Retirement> {
        self.end_request()
    }

    /// Marks a busy worker to leave once its request settles.
    pub fn retire_after(&mut self, why: Retirement) {
        if let Phase::Busy(b) = &mut self.phase {
            b.retire.get_or_insert(why);
        }
    }

    pub fn terminate(&mut self) {
        self.phase = Phase::Terminated;
        self.pid = None;
        self.gone.cancel(crate::cancel::CancelReason::Shutdown);
    }

    pub fn status(&self) -> WorkerStatus {
        let s = &self.stats;
        WorkerStatus {
            id: self.id.clone(),
            state: self.state(),
            pid: self.pid,
            requests_processed: s.processed,
            requests_failed: s.failed,
            consecutive_failures: s.consecutive_failures,
            average_processing_time_ms: if s.processed == 0 {
                0.0
            } else {
                s.processing_time.as_secs_f64() * 1000.0 / s.processed as f64
            },
            current_request: self.busy().map(|b| b.request.clone()),
            last_error: s.last_error.clone(),
            model_loaded: self.backend.is_persistent()
                && matches!(self.phase, Phase::Ready | Phase::Busy(_)),
        }
    }
}
