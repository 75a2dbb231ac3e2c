//! The pool's bookkeeping, kept under one lock: the workers, the queue, the
//! totals.

use super::config::Job;
use super::latency::LatencyWindow;
use super::record::WorkerRecord;
use crate::options::Priority;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A job in the queue.
pub(super) struct Queued {
    pub job: Job,
    /// Submission order, kept when a job goes back to the queue.
    pub seq: u64,
    pub enqueued_at: Instant,
    /// Times a worker could not take it (its process had died).
    pub not_started: u32,
    /// Times a process died with it in flight.
    pub losses: u32,
    /// It was in flight in a process that died with others in it: it runs
    /// alone in its process from now on, so that a death names the culprit.
    pub suspect: bool,
}

impl Queued {
    /// Queue order: high priority first, then first come, first served.
    fn order(&self) -> (Priority, u64) {
        (self.job.priority, self.seq)
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Totals {
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub aborted: u64,
    /// Runs again after a process died under them.
    pub retried: u64,
    pub replaced_workers: u64,
    pub recycled_workers: u64,
    pub processing_time: Duration,
    pub queue_time: Duration,
}

pub(super) struct PoolState {
    pub workers: Vec<WorkerRecord>,
    pub queue: VecDeque<Queued>,
    pub accepting: bool,
    pub next_worker: u64,
    pub next_seq: u64,
    pub totals: Totals,
    pub window: LatencyWindow,
    pub last_error: Option<String>,
    /// `drain` was announced and no work came since.
    pub drained: bool,
    /// Replacements that failed in a row: the pool tries again later, each
    /// time waiting longer, until it is back at `min_workers`.
    pub failed_restores: u32,
}

impl Default for PoolState {
    fn default() -> Self {
        PoolState {
            workers: Vec::new(),
            queue: VecDeque::new(),
            accepting: true,
            next_worker: 1,
            next_seq: 0,
            totals: Totals::default(),
            window: LatencyWindow::default(),
            last_error: None,
            drained: true,
            failed_restores: 0,
        }
    }
}

impl PoolState {
    /// In its place in line (a job that comes back keeps its place).
    pub fn enqueue(&mut self, queued: Queued) {
        let pos = self.queue.partition_point(|q| q.order() <= queued.order());
        self.queue.insert(pos, queued);
    }

    pub fn take_queued(&mut self, request_id: &str) -> Option<Queued> {
        let pos = self
            .queue
            .iter()
            .position(|q| q.job.request.id == request_id)?;
        self.queue.remove(pos)
    }

    pub fn worker_mut(&mut self, id: &str) -> Option<&mut WorkerRecord> {
        self.workers.iter_mut().find(|w| w.id == id)
    }

    pub fn starting(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| matches!(w.phase, super::record::Phase::Starting))
            .count()
    }

    pub fn busy(&self) -> usize {
        self.workers.iter().filter(|w| w.busy().is_some()).count()
    }

    /// Whether worker `i` may take a job now: a job that must run alone
    /// (`alone`) needs a process with nothing else in flight, and nothing
    /// joins a process where such a job runs.
    pub fn may_take(&self, i: usize, alone: bool) -> bool {
        let worker = &self.workers[i];
        let Some(key) = worker.backend.process_key() else {
            return true;
        };
        let mut others = self
            .workers
            .iter()
            .filter(|o| o.id != worker.id && o.backend.process_key() == Some(key));
        if alone {
            others.all(|o| o.busy().is_none())
        } else {
            others.all(|o| o.busy().is_none_or(|b| !b.alone))
        }
    }

    pub fn threads_in_use(&self) -> usize {
        self.workers
            .iter()
            .filter_map(|w| w.busy())
            .map(|b| b.threads)
            .sum()
    }
}
