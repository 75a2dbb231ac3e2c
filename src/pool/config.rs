//! The pool's settings, and a job: what the pool is given.

use crate::backend::Request;
use crate::cancel::CancelToken;
use crate::error::WhisperError;
use crate::options::Priority;
use crate::transcript::Transcript;
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub min_workers: usize,
    pub max_workers: usize,
    /// A worker above `min_workers` idle this long leaves. None: never.
    pub idle_timeout: Option<Duration>,
    pub max_queue_size: usize,
    pub max_consecutive_failures: u32,
    /// How often an idle persistent worker's health is checked.
    pub health_interval: Duration,
    /// Replace a worker after it has served this many requests.
    pub max_requests_per_worker: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct TranscriptionResult {
    pub transcript: Transcript,
    pub request_id: String,
    pub worker_id: String,
    pub queue_time: Duration,
    pub processing_time: Duration,
}

pub type Reply = Result<TranscriptionResult, WhisperError>;

/// A request for the pool: what to run, how urgently, for how long at most.
pub struct Job {
    pub request: Request,
    pub priority: Priority,
    pub timeout: Duration,
    /// Cancels the job: queued or running. Aborting fires it too.
    pub cancel: CancelToken,
    pub reply: oneshot::Sender<Reply>,
}
