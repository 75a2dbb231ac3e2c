//! Snapshots of the pool for getStatus(), getQueueStatus() and getWorkerStatuses().

use super::{PoolState, Shared};
use crate::error::display_path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub(super) struct Totals {
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub aborted: u64,
    pub replaced_workers: u64,
    pub recycled_workers: u64,
    pub processing_time: Duration,
    pub queue_time: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    pub total_workers: usize,
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
    /// Replaced after a crash, timeout, hang or too many failures.
    pub workers_replaced: u64,
    /// Replaced after serving `maxRequestsPerWorker` requests.
    pub workers_recycled: u64,
    pub average_processing_time_ms: f64,
    pub average_queue_time_ms: f64,
    /// Queue time plus processing time, per completed request.
    pub average_latency_ms: f64,
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

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn average(total: Duration, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        ms(total) / count as f64
    }
}

pub(super) fn queue(shared: &Shared, state: &PoolState) -> QueueStatus {
    let now = Instant::now();
    QueueStatus {
        queue_length: state.queue.len(),
        max_queue_size: shared.config.max_queue_size,
        queued_requests: state
            .queue
            .iter()
            .map(|j| QueuedRequest {
                id: j.request.id.clone(),
                audio_file_path: display_path(&j.request.audio.path),
                waiting_ms: ms(now - j.enqueued_at),
            })
            .collect(),
        processing_requests: state
            .running
            .iter()
            .map(|r| ProcessingRequest {
                id: r.request_id.clone(),
                audio_file_path: r.path.clone(),
                worker_id: r.worker_id.clone(),
                running_ms: ms(now - r.started_at),
            })
            .collect(),
    }
}

pub(super) fn stats(shared: &Shared, state: &PoolState) -> PoolStats {
    let total = state.slots.len();
    let busy = state.running.len();
    let t = &state.totals;
    PoolStats {
        total_workers: total,
        available_workers: state.slots.iter().filter(|s| shared.available(s)).count(),
        busy_workers: busy,
        loaded_workers: state
            .slots
            .iter()
            .filter(|s| s.ready && s.backend.is_persistent())
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
        workers_replaced: t.replaced_workers,
        workers_recycled: t.recycled_workers,
        average_processing_time_ms: average(t.processing_time, t.completed),
        average_queue_time_ms: average(t.queue_time, t.completed),
        average_latency_ms: average(t.processing_time + t.queue_time, t.completed),
        last_error: state.last_error.clone(),
    }
}
