//! Admission: a job joins the queue in its place, or is answered at once
//! (aborted already, shutting down, or the queue is full).

use super::state::{PoolState, Queued};
use super::{Job, Shared};
use crate::error::WhisperError;
use crate::events::Event;
use std::time::Instant;

impl Shared {
    /// Admits a job to the queue, or replies to it at once: aborted already,
    /// shutting down, or the queue is full.
    pub(super) fn admit(&self, state: &mut PoolState, job: Job) {
        state.totals.submitted += 1;
        let path = job.request.audio.describe();
        let refused = if job.cancel.is_cancelled() {
            state.totals.aborted += 1;
            Some(WhisperError::Aborted { path: path.clone() })
        } else if !state.accepting {
            state.totals.failed += 1;
            Some(WhisperError::shutdown())
        } else if state.queue.len() >= self.config.max_queue_size && !self.has_room(state) {
            state.totals.failed += 1;
            self.emit(Event::QueueFull {
                request_id: job.request.id.clone(),
                max_queue_size: self.config.max_queue_size,
            });
            Some(WhisperError::QueueFull {
                max: self.config.max_queue_size,
            })
        } else {
            None
        };
        if let Some(error) = refused {
            self.emit(Event::RequestFailed {
                request_id: job.request.id.clone(),
                worker_id: None,
                error: error.clone(),
            });
            let _ = job.reply.send(Err(error));
            return;
        }
        self.log
            .debug(format_args!("queued {} ({path})", job.request.id));
        let seq = state.next_seq;
        state.next_seq += 1;
        state.drained = false;
        state.enqueue(Queued {
            job,
            seq,
            enqueued_at: Instant::now(),
            not_started: 0,
            losses: 0,
            suspect: false,
        });
    }

    /// A worker can take a job now without waiting: one is ready, or the
    /// pool may add one that needs no process start.
    fn has_room(&self, state: &PoolState) -> bool {
        let ready = state.workers.iter().any(|w| w.is_ready());
        let can_grow = state.workers.len() < self.config.max_workers && !self.factory.persistent;
        ready || can_grow
    }
}
