//! ProcessPool: a FIFO queue, dispatch to the least recently used available
//! worker, replacement of failing workers, and pool statistics.
//!
//! All bookkeeping happens under one short, synchronous lock; whisper runs in
//! tokio tasks outside it. Every job's reply is sent exactly once.

mod status;
mod workers;

pub use status::{PoolStats, ProcessingRequest, QueueStatus, QueuedRequest};

use crate::backend::{Backend, Priority, Request, Stop};
use crate::cancel::{CancelReason, CancelToken};
use crate::error::{display_path, WhisperError};
use crate::log::Logger;
use crate::signal::Signal;
use crate::transcript::Transcript;
use crate::worker::{Retirement, WorkerStatus};
use status::{ms, Totals};
use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use workers::Slot;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub pool_size: usize,
    pub max_queue_size: usize,
    pub max_consecutive_failures: u32,
    /// How often an idle persistent worker's health is checked.
    pub health_interval: Duration,
    /// Replace a worker after it has served this many requests.
    pub max_requests_per_worker: Option<u64>,
}

/// Makes the backend for a new worker, given its id.
pub type BackendFactory = Arc<dyn Fn(&str) -> Backend + Send + Sync>;

#[derive(Debug, Clone)]
pub struct TranscriptionResult {
    pub transcript: Transcript,
    pub request_id: String,
    pub worker_id: String,
    pub queue_time: Duration,
    pub processing_time: Duration,
}

pub type Reply = Result<TranscriptionResult, WhisperError>;

struct Job {
    request: Request,
    enqueued_at: Instant,
    cancel: CancelToken,
    reply: oneshot::Sender<Reply>,
}

struct Running {
    request_id: String,
    path: String,
    worker_id: String,
    started_at: Instant,
    cancel: CancelToken,
}

struct PoolState {
    slots: Vec<Slot>,
    queue: VecDeque<Job>,
    running: Vec<Running>,
    accepting: bool,
    next_worker: u64,
    totals: Totals,
    last_error: Option<String>,
}

struct Shared {
    state: Mutex<PoolState>,
    config: PoolConfig,
    factory: BackendFactory,
    runtime: tokio::runtime::Handle,
    log: Logger,
    base_log: Logger,
    /// Running tasks (requests, worker starts and stops); shutdown waits for zero.
    tasks: AtomicUsize,
    /// Fires whenever such a task ends.
    changed: Signal,
}

#[derive(Clone)]
pub struct ProcessPool {
    shared: Arc<Shared>,
}

type Assignment = (Arc<Backend>, String, Logger, Job);

impl Job {
    /// Queue order: high priority first, then first come, first served.
    fn order(&self) -> (Priority, Instant) {
        (self.request.priority, self.enqueued_at)
    }
}

impl PoolState {
    fn enqueue(&mut self, job: Job) {
        let pos = self.queue.partition_point(|j| j.order() <= job.order());
        self.queue.insert(pos, job);
    }

    fn slot_mut(&mut self, worker_id: &str) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.worker.id() == worker_id)
    }
}

impl ProcessPool {
    /// Creates the workers, starts their processes in parallel, and returns
    /// when all are ready. Must be called inside a tokio runtime.
    pub async fn start(
        config: PoolConfig,
        factory: BackendFactory,
        log: &Logger,
    ) -> Result<Self, WhisperError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(PoolState {
                slots: Vec::with_capacity(config.pool_size),
                queue: VecDeque::new(),
                running: Vec::new(),
                accepting: true,
                next_worker: 1,
                totals: Totals::default(),
                last_error: None,
            }),
            factory,
            runtime: tokio::runtime::Handle::current(),
            log: log.named("ProcessPool"),
            base_log: log.clone(),
            tasks: AtomicUsize::new(0),
            changed: Signal::default(),
            config,
        });
        let pool = ProcessPool { shared };
        let starts: Vec<_> = {
            let mut state = pool.shared.lock();
            (0..pool.shared.config.pool_size)
                .map(|_| pool.shared.add_worker(&mut state, 0))
                .filter(|(_, backend)| backend.is_persistent())
                .map(|(id, backend)| tokio::spawn(pool.shared.clone().start_worker(id, backend, 1)))
                .collect()
        };
        let mut first_error = None;
        for start in starts {
            let result = start.await.unwrap_or_else(|e| {
                Err(WhisperError::WhisperFailed {
                    path: String::new(),
                    detail: format!("starting a worker panicked: {e}"),
                })
            });
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            pool.shutdown().await;
            return Err(e);
        }
        pool.shared.log.info(format_args!(
            "started {} workers",
            pool.shared.config.pool_size
        ));
        Ok(pool)
    }

    /// Queues a request. The receiver gets exactly one reply.
    pub fn submit(
        &self,
        request: Request,
        cancel: CancelToken,
    ) -> Result<oneshot::Receiver<Reply>, WhisperError> {
        let (tx, rx) = oneshot::channel();
        let assignments = {
            let mut state = self.shared.lock();
            if !state.accepting {
                return Err(WhisperError::shutdown());
            }
            if state.slots.is_empty() {
                let reason = state.last_error.clone().unwrap_or_default();
                return Err(WhisperError::WhisperFailed {
                    path: display_path(&request.audio.path),
                    detail: format!(
                        "no worker could be started ({reason}); fix the cause and call restart()"
                    ),
                });
            }
            let max = self.shared.config.max_queue_size;
            let worker_free = state.slots.iter().any(|s| self.shared.available(s));
            if !worker_free && state.queue.len() >= max {
                return Err(WhisperError::QueueFull { max });
            }
            self.shared.log.debug(format_args!(
                "queued {} ({})",
                request.id,
                display_path(&request.audio.path)
            ));
            state.totals.submitted += 1;
            state.enqueue(Job {
                request,
                enqueued_at: Instant::now(),
                cancel,
                reply: tx,
            });
            self.shared.dispatch(&mut state)
        };
        self.shared.spawn_all(assignments);
        Ok(rx)
    }

    /// Aborts a request: a queued one leaves the queue at once, a running one
    /// has its process ended. Returns false when the request is unknown (settled).
    pub fn abort(&self, request_id: &str) -> bool {
        let removed = {
            let mut state = self.shared.lock();
            if let Some(pos) = state.queue.iter().position(|j| j.request.id == request_id) {
                state.totals.aborted += 1;
                state.queue.remove(pos)
            } else {
                return match state.running.iter().find(|r| r.request_id == request_id) {
                    Some(r) => r.cancel.cancel(CancelReason::Aborted),
                    None => false,
                };
            }
        };
        if let Some(job) = removed {
            let path = display_path(&job.request.audio.path);
            let _ = job.reply.send(Err(WhisperError::Aborted { path }));
        }
        true
    }

    /// shutdown() for a pool whose owner is gone: runs on the pool's runtime.
    pub fn shutdown_in_background(&self) {
        let pool = self.clone();
        self.shared
            .runtime
            .spawn(async move { pool.shutdown().await });
    }

    /// Stops accepting, rejects the queue with ERR_SHUTDOWN, ends every running
    /// request's process, and returns when no request task is left.
    pub async fn shutdown(&self) {
        let rejected: Vec<Job> = {
            let mut state = self.shared.lock();
            state.accepting = false;
            for r in &state.running {
                r.cancel.cancel(CancelReason::Shutdown);
            }
            let queued: Vec<Job> = state.queue.drain(..).collect();
            state.totals.failed += queued.len() as u64;
            queued
        };
        self.shared.log.info(format_args!(
            "shutting down: {} queued requests rejected",
            rejected.len()
        ));
        for job in rejected {
            let _ = job.reply.send(Err(WhisperError::shutdown()));
        }
        self.shared.wait_for_tasks().await;
        self.shared.stop_all().await;
        self.shared.log.info(format_args!("shut down"));
    }

    /// Replaces every worker. Queued requests stay queued; running ones go back
    /// to the front of the queue and start over on a fresh worker. Returns
    /// when the new workers are ready.
    pub async fn restart(&self) -> Result<(), WhisperError> {
        let old: Vec<String> = {
            let mut state = self.shared.lock();
            let old = state
                .slots
                .iter()
                .map(|s| s.worker.id().to_owned())
                .collect();
            for slot in &mut state.slots {
                slot.worker.retire(Retirement::Replaced);
            }
            for r in &state.running {
                r.cancel.cancel(CancelReason::Restart);
            }
            old
        };
        self.shared.log.info(format_args!("restarting workers"));
        let assignments = {
            let mut state = self.shared.lock();
            self.shared.replace_retired(&mut state);
            self.shared.dispatch(&mut state)
        };
        self.shared.spawn_all(assignments);
        let shared = &self.shared;
        shared
            .changed
            .wait_until(|| {
                let state = shared.lock();
                let old_gone = !state
                    .slots
                    .iter()
                    .any(|s| old.iter().any(|id| id == s.worker.id()));
                old_gone && state.slots.iter().all(|s| s.ready)
            })
            .await;
        let state = shared.lock();
        match state.slots.is_empty() {
            false => Ok(()),
            true => Err(WhisperError::WhisperFailed {
                path: String::new(),
                detail: format!(
                    "no worker could be started: {}",
                    state.last_error.clone().unwrap_or_default()
                ),
            }),
        }
    }

    pub fn worker_statuses(&self) -> Vec<WorkerStatus> {
        let state = self.shared.lock();
        state.slots.iter().map(|s| s.worker.status()).collect()
    }

    pub fn queue_status(&self) -> QueueStatus {
        status::queue(&self.shared, &self.shared.lock())
    }

    pub fn stats(&self) -> PoolStats {
        status::stats(&self.shared, &self.shared.lock())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding the lock cannot leave the bookkeeping half
        // written in a way that matters more than serving on; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready, and in a state that takes work.
    fn available(&self, slot: &Slot) -> bool {
        slot.ready
            && slot
                .worker
                .is_available(self.config.max_consecutive_failures)
    }

    /// Hands queued jobs to available workers, least recently used first.
    fn dispatch(&self, state: &mut PoolState) -> Vec<Assignment> {
        let mut out = Vec::new();
        if !state.accepting {
            return out;
        }
        while !state.queue.is_empty() {
            let Some(slot) = state
                .slots
                .iter_mut()
                .filter(|s| s.ready && s.worker.is_available(self.config.max_consecutive_failures))
                .min_by_key(|s| s.worker.last_used())
            else {
                break;
            };
            let job = state.queue.pop_front().expect("queue is not empty");
            slot.worker.begin(&job.request.id);
            let worker_id = slot.worker.id().to_owned();
            out.push((
                slot.backend.clone(),
                worker_id.clone(),
                slot.log.clone(),
                job,
            ));
            let job = &out.last().expect("just pushed").3;
            state.running.push(Running {
                request_id: job.request.id.clone(),
                path: display_path(&job.request.audio.path),
                worker_id,
                started_at: Instant::now(),
                cancel: job.cancel.clone(),
            });
        }
        out
    }

    fn spawn_all(self: &Arc<Self>, assignments: Vec<Assignment>) {
        for (backend, worker_id, log, job) in assignments {
            let shared = self.clone();
            self.track(async move { shared.run(backend, worker_id, log, job).await });
        }
    }

    async fn run(
        self: &Arc<Self>,
        backend: Arc<Backend>,
        worker_id: String,
        log: Logger,
        job: Job,
    ) {
        let started = Instant::now();
        let queue_time = started - job.enqueued_at;
        log.debug(format_args!(
            "processing {} after {:.0} ms in the queue",
            job.request.id,
            ms(queue_time)
        ));
        let report_pid = |pid: Option<u32>| {
            if let Some(slot) = self.lock().slot_mut(&worker_id) {
                slot.worker.set_pid(pid);
            }
            if let Some(pid) = pid {
                log.debug(format_args!("whisper pid {pid}"));
            }
        };
        let timeout = job.request.timeout;
        let token = job.cancel.clone();
        let cancel = async move {
            tokio::select! {
                reason = token.cancelled() => reason,
                _ = tokio::time::sleep(timeout) => CancelReason::Timeout,
            }
        };
        let outcome = backend.transcribe(&job.request, cancel, &report_pid).await;
        self.finish(worker_id, log, job, outcome, queue_time, started.elapsed());
    }

    fn finish(
        self: &Arc<Self>,
        worker_id: String,
        log: Logger,
        job: Job,
        outcome: Result<Transcript, Stop>,
        queue_time: Duration,
        processing_time: Duration,
    ) {
        let path = || display_path(&job.request.audio.path);
        if let Err(Stop::Cancelled(reason)) = &outcome {
            log.debug(format_args!("{} stopped: {reason:?}", job.request.id));
        }
        let settled = match outcome {
            Err(Stop::Cancelled(CancelReason::Restart)) => None,
            Ok(transcript) => Some(Ok(transcript)),
            Err(Stop::Cancelled(CancelReason::Timeout)) => Some(Err(WhisperError::Timeout {
                path: path(),
                timeout_ms: job.request.timeout.as_millis() as u64,
            })),
            Err(Stop::Cancelled(CancelReason::Aborted)) => {
                Some(Err(WhisperError::Aborted { path: path() }))
            }
            Err(Stop::Cancelled(CancelReason::Shutdown)) => Some(Err(WhisperError::shutdown())),
            Err(Stop::Failed(e)) => Some(Err(e)),
        };
        let (reply, assignments) = {
            let mut state = self.lock();
            state.running.retain(|r| r.request_id != job.request.id);
            let reply = match settled {
                Some(outcome) => {
                    let timing = (queue_time, processing_time);
                    let reply = self.record(
                        &mut state,
                        &worker_id,
                        &log,
                        &job.request.id,
                        outcome,
                        timing,
                    );
                    Some((job.reply, reply))
                }
                None => {
                    if let Some(slot) = state.slot_mut(&worker_id) {
                        slot.worker.release();
                    }
                    let mut job = job;
                    job.cancel = CancelToken::default();
                    // Back where it was in line.
                    state.enqueue(job);
                    None
                }
            };
            self.recycle_if_worn(&mut state, &worker_id);
            self.replace_retired(&mut state);
            (reply, self.dispatch(&mut state))
        };
        if let Some((tx, reply)) = reply {
            let _ = tx.send(reply);
        }
        self.spawn_all(assignments);
    }

    /// Updates worker and pool statistics for a settled request.
    fn record(
        &self,
        state: &mut PoolState,
        worker_id: &str,
        log: &Logger,
        request_id: &str,
        outcome: Result<Transcript, WhisperError>,
        (queue_time, processing_time): (Duration, Duration),
    ) -> Reply {
        let max_failures = self.config.max_consecutive_failures;
        match outcome {
            Ok(transcript) => {
                if let Some(slot) = state.slot_mut(worker_id) {
                    slot.worker.succeed(processing_time);
                }
                let t = &mut state.totals;
                t.completed += 1;
                t.processing_time += processing_time;
                t.queue_time += queue_time;
                log.debug(format_args!(
                    "completed {request_id} in {:.0} ms",
                    ms(processing_time)
                ));
                Ok(TranscriptionResult {
                    transcript,
                    request_id: request_id.to_owned(),
                    worker_id: worker_id.to_owned(),
                    queue_time,
                    processing_time,
                })
            }
            Err(error) => {
                let aborted = matches!(error, WhisperError::Aborted { .. });
                if let Some(slot) = state.slot_mut(worker_id) {
                    if aborted {
                        slot.worker.release();
                    } else if slot.worker.fail(&error, max_failures) {
                        log.warn(format_args!("retiring after: {error}"));
                    }
                }
                if aborted {
                    state.totals.aborted += 1;
                } else {
                    state.totals.failed += 1;
                    state.last_error = Some(error.to_string());
                }
                log.info(format_args!(
                    "{request_id} failed: {} {error}",
                    error.code()
                ));
                Err(error)
            }
        }
    }
}
