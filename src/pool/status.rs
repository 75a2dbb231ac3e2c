//! Snapshots of the pool for getStatus(), getQueueStatus() and getWorkerStatuses().

use super::config::PoolConfig;
use super::latency::Percentiles;
use super::state::PoolState;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    /// The current size, between `min_workers` and `max_workers`.
    pub total_workers: usize,
    pub min_workers: usize,
    pub max_workers: usize,
    pub available_workers: usize,
    pub busy_workers: usize,
    /// Workers whose process keeps the model loaded (server backend).
    pub loaded_workers: usize,
    pub queue_length: usize,
    /// Busy workers as a percentage of all workers.
    pub pool_utilization: f64,
    pub total_requests_submitted: u64,
    pub total_requests_processed: u64,
    pub total_requests_failed: u64,
    pub total_requests_aborted: u64,
    /// Runs again after a process died under them (each run counts).
    pub total_requests_retried: u64,
    /// Replaced after a crash, timeout, hang or too many failures.
    pub workers_replaced: u64,
    /// Replaced after serving `maxRequestsPerWorker` requests.
    pub workers_recycled: u64,
    pub average_processing_time_ms: f64,
    pub average_queue_time_ms: f64,
    /// Queue time plus processing time, per completed request.
    pub average_latency_ms: f64,
    /// Over the last completed requests (up to `LATENCY_WINDOW`), in ms.
    pub queue_time: Percentiles,
    pub processing_time: Percentiles,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRequest {
    pub id: String,
    pub audio_file_path: String,
    pub waiting_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingRequest {
    pub id: String,
    pub audio_file_path: String,
    pub worker_id: String,
    pub running_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueStatus {
    pub queue_length: usize,
    pub max_queue_size: usize,
    pub queued_requests: Vec<QueuedRequest>,
    pub processing_requests: Vec<ProcessingRequest>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn average(total: Duration, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        ms(total) / count as f64
    }
}

pub(super) fn queue(config: &PoolConfig, state: &PoolState) -> QueueStatus {
    let now = Instant::now();
    QueueStatus {
        queue_length: state.queue.len(),
        max_queue_size: config.max_queue_size,
        queued_requests: state
            .queue
            .iter()
            .map(|q| QueuedRequest {
                id: q.job.request.id.clone(),
                audio_file_path: q.job.request.audio.describe(),
                waiting_ms: ms(now - q.enqueued_at),
            })
            .collect(),
        // In-flight requests are what busy workers hold.
        processing_requests: state
            .workers
            .iter()
            .filter_map(|w| w.busy().map(|b| (w, b)))
            .map(|(w, b)| ProcessingRequest {
                id: b.request.clone(),
                audio_file_path: b.path.clone(),
                worker_id: w.id.clone(),
                running_ms: ms(now - b.started),
            })
            .collect(),
    }
}

pub(super) fn stats(config: &PoolConfig, state: &PoolState) -> PoolStats {
    let total = state.workers.len();
    let busy = state.busy();
    let t = &state.totals;
    PoolStats {
        total_workers: total,
        min_workers: config.min_workers,
        max_workers: config.max_workers,
        available_workers: state.workers.iter().filter(|w| w.is_ready()).count(),
        busy_workers: busy,
        loaded_workers: state
            .workers
            .iter()
            .filter(|w| w.status().model_loaded)
            .count(),
        queue_length: state.queue.len(),
        pool_utilization: if total == 0 {
            0.0
        } else {
            busy as f64 * 100.0 / total as f64
        },
        total_requests_submitted: t.submitted,
        total_requests_processed: t.completed,
        total_requests_failed: t.failed,
        total_requests_aborted: t.aborted,
        total_requests_retried: t.retried,
        workers_replaced: t.replaced_workers,
        workers_recycled: t.recycled_workers,
        average_processing_time_ms: average(t.processing_time, t.completed),
        average_queue_time_ms: average(t.queue_time, t.completed),
        average_latency_ms: average(t.processing_time + t.queue_time, t.completed),
        queue_time: state.window.queue(),
        processing_time: state.window.processing(),
        last_error: state.last_error.clone(),
    }
}
