//! ProcessWorker: one worker's state machine and statistics. It serves one
//! request at a time; the pool decides what it runs and when it is replaced.

use crate::error::WhisperError;
use std::time::{Duration, Instant};

/// Why a worker takes no more work and is to be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// Crashed, timed out, hung, or failed too often.
    Failure,
    /// Served `maxRequestsPerWorker` requests.
    Recycle,
    /// restart() or shutdown().
    Replaced,
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
    /// Its process keeps the model loaded (server backend).
    pub model_loaded: bool,
}

#[derive(Debug)]
pub struct ProcessWorker {
    id: String,
    state: WorkerState,
    pid: Option<u32>,
    requests_processed: u64,
    requests_failed: u64,
    consecutive_failures: u32,
    processing_time: Duration,
    current_request: Option<String>,
    last_error: Option<String>,
    /// When it last finished a request: the pool picks the least recently used.
    last_used: Option<Instant>,
    /// Set when it must not take more work.
    retiring: Option<Retirement>,
    /// Requests it has started, whatever their outcome.
    served: u64,
    model_loaded: bool,
}

impl ProcessWorker {
    pub fn new(id: String) -> Self {
        ProcessWorker {
            id,
            state: WorkerState::Idle,
            pid: None,
            requests_processed: 0,
            requests_failed: 0,
            consecutive_failures: 0,
            processing_time: Duration::ZERO,
            current_request: None,
            last_error: None,
            last_used: None,
            retiring: None,
            served: 0,
            model_loaded: false,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> WorkerState {
        self.state
    }

    pub fn last_used(&self) -> Option<Instant> {
        self.last_used
    }

    pub fn is_retiring(&self) -> bool {
        self.retiring.is_some()
    }

    pub fn retirement(&self) -> Option<Retirement> {
        self.retiring
    }

    pub fn served(&self) -> u64 {
        self.served
    }

    /// Idle, completed, or failed below the failure threshold.
    pub fn is_available(&self, max_consecutive_failures: u32) -> bool {
        self.retiring.is_none()
            && match self.state {
                WorkerState::Idle | WorkerState::Completed => true,
                WorkerState::Failed => self.consecutive_failures < max_consecutive_failures,
                WorkerState::Processing | WorkerState::Terminated => false,
            }
    }

    pub fn begin(&mut self, request_id: &str) {
        debug_assert!(
            self.state != WorkerState::Processing && self.state != WorkerState::Terminated
        );
        self.state = WorkerState::Processing;
        self.current_request = Some(request_id.to_owned());
        self.served += 1;
    }

    /// The process serving it: per request (cli) or for its lifetime (server).
    pub fn set_pid(&mut self, pid: Option<u32>) {
        self.pid = pid;
    }

    pub fn set_loaded(&mut self, loaded: bool) {
        self.model_loaded = loaded;
    }

    pub fn succeed(&mut self, elapsed: Duration) {
        self.state = WorkerState::Completed;
        self.requests_processed += 1;
        self.consecutive_failures = 0;
        self.processing_time += elapsed;
        self.end_request();
    }

    /// Records a failed request. Returns true when the worker must be replaced.
    pub fn fail(&mut self, error: &WhisperError, max_consecutive_failures: u32) -> bool {
        self.state = WorkerState::Failed;
        self.requests_failed += 1;
        self.last_error = Some(error.to_string());
        if error.counts_against_worker() {
            self.consecutive_failures += 1;
        }
        self.end_request();
        if error.needs_new_worker() || self.consecutive_failures >= max_consecutive_failures {
            self.retire(Retirement::Failure);
        }
        self.is_retiring()
    }

    /// The request went back to the queue (restart): no verdict on either.
    pub fn release(&mut self) {
        self.state = WorkerState::Idle;
        self.end_request();
    }

    /// The first reason sticks.
    pub fn retire(&mut self, why: Retirement) {
        self.retiring.get_or_insert(why);
    }

    pub fn terminate(&mut self) {
        self.state = WorkerState::Terminated;
        self.retire(Retirement::Replaced);
        self.pid = None;
        self.model_loaded = false;
        self.current_request = None;
    }

    fn end_request(&mut self) {
        self.current_request = None;
        self.last_used = Some(Instant::now());
    }

    pub fn status(&self) -> WorkerStatus {
        WorkerStatus {
            id: self.id.clone(),
            state: self.state,
            pid: self.pid,
            requests_processed: self.requests_processed,
            requests_failed: self.requests_failed,
            consecutive_failures: self.consecutive_failures,
            average_processing_time_ms: if self.requests_processed == 0 {
                0.0
            } else {
                self.processing_time.as_secs_f64() * 1000.0 / self.requests_processed as f64
            },
            current_request: self.current_request.clone(),
            last_error: self.last_error.clone(),
            model_loaded: self.model_loaded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> WhisperError {
        WhisperError::WhisperFailed {
            path: "a.wav".into(),
            detail: "x".into(),
        }
    }

    #[test]
    fn goes_idle_processing_completed_and_back() {
        let mut w = ProcessWorker::new("worker-1".into());
        assert!(w.is_available(3));
        w.begin("req-1");
        assert_eq!(w.state(), WorkerState::Processing);
        assert!(!w.is_available(3));
        assert_eq!(w.status().current_request.as_deref(), Some("req-1"));
        w.succeed(Duration::from_millis(200));
        assert_eq!(w.state(), WorkerState::Completed);
        assert!(w.is_available(3));
        w.begin("req-2");
        w.succeed(Duration::from_millis(400));
        let s = w.status();
        assert_eq!(
            (s.requests_processed, s.average_processing_time_ms),
            (2, 300.0)
        );
    }

    #[test]
    fn consecutive_failures_reach_the_threshold_then_it_retires() {
        let mut w = ProcessWorker::new("worker-1".into());
        for n in 1..=2 {
            w.begin("r");
            assert!(!w.fail(&failure(), 3));
            assert_eq!(w.status().consecutive_failures, n);
            assert!(
                w.is_available(3),
                "failed below the threshold stays available"
            );
        }
        w.begin("r");
        w.succeed(Duration::ZERO);
        assert_eq!(
            w.status().consecutive_failures,
            0,
            "a success resets the run"
        );
        for _ in 0..2 {
            w.begin("r");
            w.fail(&failure(), 3);
        }
        w.begin("r");
        assert!(w.fail(&failure(), 3));
        assert!(!w.is_available(3));
    }

    #[test]
    fn a_crash_or_timeout_retires_at_once_but_an_abort_does_not_count() {
        let mut w = ProcessWorker::new("worker-1".into());
        w.begin("r");
        assert!(!w.fail(&WhisperError::Aborted { path: "a".into() }, 3));
        assert_eq!(w.status().consecutive_failures, 0);
        w.begin("r");
        let crash = WhisperError::WorkerCrashed {
            path: "a".into(),
            detail: "killed by SIGSEGV".into(),
        };
        assert!(w.fail(&crash, 3));
        w.terminate();
        assert_eq!(w.state(), WorkerState::Terminated);
        assert!(!w.is_available(3));
    }
}
