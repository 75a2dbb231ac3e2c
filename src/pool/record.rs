//! One record per pool worker, which owns its whole state: its phase (which
//! also holds its current request and that request's process), its
//! statistics, its backend, its health checks in a row, its idle timer, and
//! the outcome of its start for whoever awaits it. The public state (idle,
//! processing, completed, failed, terminated) is derived from the record,
//! never stored beside it.

use crate::backend::Backend;
use crate::cancel::CancelToken;
use crate::error::WhisperError;
use crate::log::Logger;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// How a worker's start ended: None while it starts.
pub(super) type Started = Option<Result<(), WhisperError>>;

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
    /// The process serving it, when it has one of its own (whisper-cli).
    pub pid: Option<u32>,
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
    /// Cancelled when it leaves the pool; ends its monitor.
    pub gone: CancelToken,
    /// Since when it has been ready without work: least recently used goes first.
    pub idle_since: Instant,
    /// Retires it when it has been idle too long; disarmed when it takes work.
    idle_timer: Option<AbortHandle>,
    /// Health checks failed in a row while idle.
    pub health_failures: u32,
    /// How its start ended, for whoever awaits it.
    started: watch::Sender<Started>,
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
    /// The device it decodes on, and how many decodes run there at once
    /// (its worker process's word; else the device chosen for the backend).
    pub device: Option<(persistent_whisper_protocol::device::Device, Option<u32>)>,
}

impl Drop for WorkerRecord {
    fn drop(&mut self) {
        self.disarm_idle_timer();
    }
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
            gone: CancelToken::default(),
            idle_since: Instant::now(),
            idle_timer: None,
            health_failures: 0,
            started: watch::channel(None).0,
        }
    }

    /// The process serving it: its request's (whisper-cli), or its own for
    /// its lifetime (a server, a worker program's process).
    pub fn pid(&self) -> Option<u32> {
        self.busy()
            .and_then(|b| b.pid)
            .or_else(|| self.backend.pid())
    }

    /// Resolves with how its start ends (Ok if it left before it did).
    pub fn started(&self) -> watch::Receiver<Started> {
        self.started.subscribe()
    }

    /// Its start ended: tells whoever awaits it.
    pub fn start_ended(&mut self, result: Result<(), WhisperError>) {
        self.started.send_replace(Some(result));
    }

    /// Arms the timer that retires it if it stays idle (replacing any).
    pub fn arm_idle_timer(&mut self, timer: AbortHandle) {
        self.disarm_idle_timer();
        self.idle_timer = Some(timer);
    }

    fn disarm_idle_timer(&mut self) {
        if let Some(timer) = self.idle_timer.take() {
            timer.abort();
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
        self.disarm_idle_timer();
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
        self.disarm_idle_timer();
        // A start that had not ended is no failure: it was ended.
        if self.started.borrow().is_none() {
            self.start_ended(Ok(()));
        }
        self.gone.cancel(crate::cancel::CancelReason::Shutdown);
    }

    pub fn status(&self) -> WorkerStatus {
        let s = &self.stats;
        WorkerStatus {
            id: self.id.clone(),
            state: self.state(),
            pid: match self.phase {
                Phase::Terminated => None,
                _ => self.pid(),
            },
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
            device: self.backend.placement().map(|(d, n)| (d, Some(n))),
        }
    }
}
