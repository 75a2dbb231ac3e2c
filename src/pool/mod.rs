//! The pool: a queue in priority-then-FIFO order, workers that grow from
//! `minWorkers` to `maxWorkers` while requests wait and shrink back after
//! `idleTimeout`, dispatch to the least recently used ready worker,
//! replacement of failing workers, statistics and events.
//!
//! All bookkeeping happens under one short, synchronous lock (state.rs);
//! whisper runs in tokio tasks outside it. Every job's reply is sent exactly
//! once. The code, by what it does (each file an `impl Shared` of its own):
//!
//! - admission.rs: a job joins the queue, or is answered at once;
//! - dispatch.rs: queued jobs meet ready workers, threads are shared out,
//!   and a job runs;
//! - settle.rs: a job's reply, statistics and event, its worker's fate,
//!   and the poison rule for jobs whose process died under them;
//! - lifecycle.rs: workers start, are watched, leave and are replaced; the
//!   pool restarts and shuts down;
//! - record.rs: one pool worker's record, which owns its whole state;
//! - state.rs: the bookkeeping under the lock; status.rs: snapshots;
//!   latency.rs: percentiles; config.rs: the pool's settings and a job.

mod admission;
mod config;
mod dispatch;
mod latency;
mod lifecycle;
mod record;
mod settle;
mod state;
mod status;

pub use config::{Job, PoolConfig, Reply, TranscriptionResult};
pub use latency::{percentile, Percentiles, WINDOW as LATENCY_WINDOW};
pub use record::{Retirement, WorkerState, WorkerStatus};
pub use status::{PoolStats, ProcessingRequest, QueueStatus, QueuedRequest};

use crate::backend::BackendFactory;
use crate::cancel::{CancelReason, CancelToken};
use crate::error::WhisperError;
use crate::events::{Event, EventSink};
use crate::log::Logger;
use crate::notify::Changed;
use state::PoolState;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

pub(crate) struct Shared {
    state: Mutex<PoolState>,
    config: PoolConfig,
    factory: BackendFactory,
    runtime: tokio::runtime::Handle,
    log: Logger,
    base_log: Logger,
    events: EventSink,
    /// Running tasks (requests, worker starts and stops); shutdown waits for zero.
    tasks: AtomicUsize,
    /// Fires whenever a task ends or a worker changes phase.
    changed: Changed,
    /// Cancelled by shutdown(): ends worker starts at once.
    stopping: CancelToken,
    /// The starts of the first workers, for ready().
    first_starts: Mutex<Vec<watch::Receiver<record::Started>>>,
}

#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding the lock cannot leave the bookkeeping half
        // written in a way that matters more than serving on; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, event: Event) {
        (self.events)(event);
    }
}

impl Pool {
    /// Creates the pool with `min_workers` workers and starts their
    /// processes. Must be called inside a tokio runtime; `ready()` tells when
    /// the starts are done.
    pub fn new(
        config: PoolConfig,
        factory: BackendFactory,
        log: &Logger,
        events: EventSink,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(PoolState::default()),
            factory,
            runtime: tokio::runtime::Handle::current(),
            log: log.named("ProcessPool"),
            base_log: log.clone(),
            events,
            tasks: AtomicUsize::new(0),
            changed: Changed::default(),
            stopping: CancelToken::default(),
            first_starts: Mutex::default(),
            config,
        });
        {
            let mut state = shared.lock();
            let ids: Vec<String> = (0..shared.config.min_workers)
                .map(|_| shared.add_worker(&mut state, record::Attempts::Once))
                .collect();
            // Under the same lock: no start can end before it is awaited.
            *shared
                .first_starts
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = shared.starts(&state, &ids);
            shared
                .log
                .info(format_args!("starting {} workers", ids.len()));
        }
        Pool { shared }
    }

    /// Resolves when every worker that is starting now has started, or with
    /// the first start failure.
    pub async fn ready(&self) -> Result<(), WhisperError> {
        let starts = std::mem::take(
            &mut *self
                .shared
                .first_starts
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        Shared::wait_started(starts).await
    }

    /// Queues a request. Its reply comes through `job.reply`, exactly once,
    /// also when it is refused here.
    pub fn submit(&self, job: Job) {
        let assignments = {
            let mut state = self.shared.lock();
            self.shared.admit(&mut state, job);
            self.shared.dispatch(&mut state)
        };
        self.shared.spawn_all(assignments);
    }

    /// Aborts a request: a queued one leaves the queue (rejected with
    /// ERR_ABORTED), a running one has its work stopped.
    pub fn abort(&self, request_id: &str) {
        let removed = {
            let mut state = self.shared.lock();
            for w in &state.workers {
                if let Some(b) = w.busy().filter(|b| b.request == request_id) {
                    b.cancel.cancel(CancelReason::Aborted);
                }
            }
            state.take_queued(request_id)
        };
        if let Some(queued) = removed {
            let path = queued.job.request.audio.describe();
            self.shared
                .settle_unrun(queued, WhisperError::Aborted { path });
        }
    }

    /// Replaces every worker. Queued requests stay queued; running ones go
    /// back to the front of the queue and start over on a fresh worker.
    /// Resolves when the new workers are ready.
    pub async fn restart(&self) -> Result<(), WhisperError> {
        let (old, new) = self.shared.begin_restart();
        self.shared.log.info(format_args!("restarting workers"));
        let shared = &self.shared;
        shared
            .changed
            .wait_until(|| {
                let state = shared.lock();
                !state.workers.iter().any(|w| old.contains(&w.id))
            })
            .await;
        Shared::wait_started(new).await
    }

    /// shutdown() for a pool whose owner is gone: runs on the pool's runtime.
    pub fn shutdown_in_background(&self) {
        let pool = self.clone();
        self.shared
            .runtime
            .spawn(async move { pool.shutdown().await });
    }

    /// Stops accepting, rejects the queue with ERR_SHUTDOWN, ends every
    /// running request's process and every worker's, and returns when no
    /// task and no process is left.
    pub async fn shutdown(&self) {
        self.shared.shutdown().await;
    }

    pub fn worker_statuses(&self) -> Vec<WorkerStatus> {
        let state = self.shared.lock();
        let chosen = self.shared.factory.chosen_device().map(|d| (d, None));
        state
            .workers
            .iter()
            .map(|w| w.status())
            .map(|mut s| {
                if s.device.is_none() && s.state != WorkerState::Terminated {
                    s.device = chosen.clone();
                }
                s
            })
            .collect()
    }

    /// The device the workers decode on: a worker process's word, else the
    /// device chosen for the backend; and how many decodes run there at once.
    pub fn device(&self) -> Option<(persistent_whisper_protocol::device::Device, Option<u32>)> {
        let state = self.shared.lock();
        state
            .workers
            .iter()
            .find_map(|w| w.backend.placement())
            .map(|(d, n)| (d, Some(n)))
            .or_else(|| self.shared.factory.chosen_device().map(|d| (d, None)))
    }

    /// Threads per request now (a GPU that failed over changes them).
    pub fn threads(&self) -> crate::backend::Threads {
        self.shared.factory.threads()
    }

    pub fn queue_status(&self) -> QueueStatus {
        status::queue(&self.shared.config, &self.shared.lock())
    }

    /// The changes to whisper.cpp its workers' program was built with, where
    /// a running worker says.
    pub fn whisper_features(&self) -> Option<Vec<String>> {
        let state = self.shared.lock();
        state
            .workers
            .iter()
            .find_map(|w| w.backend.whisper_features())
    }

    pub fn stats(&self) -> PoolStats {
        status::stats(&self.shared.config, &self.shared.lock())
    }
}
