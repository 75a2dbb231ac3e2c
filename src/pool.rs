//! ProcessPool: a FIFO queue, dispatch to the least recently used available
//! worker, replacement of failing workers, and pool statistics.
//!
//! All bookkeeping happens under one short, synchronous lock; whisper runs in
//! tokio tasks outside it. Every job's reply is sent exactly once.

use crate::backend::{Backend, Request, Stop};
use crate::cancel::{CancelReason, CancelToken};
use crate::error::{display_path, WhisperError};
use crate::log::Logger;
use crate::signal::Signal;
use crate::transcript::Transcript;
use crate::worker::{ProcessWorker, WorkerStatus};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub pool_size: usize,
    pub max_queue_size: usize,
    pub max_consecutive_failures: u32,
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

struct Slot {
    worker: ProcessWorker,
    backend: Arc<Backend>,
    log: Logger,
}

#[derive(Debug, Clone, Default)]
struct Totals {
    submitted: u64,
    completed: u64,
    failed: u64,
    aborted: u64,
    replaced_workers: u64,
    processing_time: Duration,
    queue_time: Duration,
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

#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    pub total_workers: usize,
    pub available_workers: usize,
    pub busy_workers: usize,
    pub queue_length: usize,
    /// Busy workers as a percentage of all workers.
    pub pool_utilization: f64,
    pub total_requests_submitted: u64,
    pub total_requests_processed: u64,
    pub total_requests_failed: u64,
    pub total_requests_aborted: u64,
    pub workers_replaced: u64,
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

struct Shared {
    state: Mutex<PoolState>,
    config: PoolConfig,
    factory: BackendFactory,
    runtime: tokio::runtime::Handle,
    log: Logger,
    base_log: Logger,
    /// Running request tasks; shutdown waits for zero.
    tasks: AtomicUsize,
    /// Fires whenever a request task ends.
    changed: Signal,
}

#[derive(Clone)]
pub struct ProcessPool {
    shared: Arc<Shared>,
}

type Assignment = (Arc<Backend>, String, Logger, Job);

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

impl PoolState {
    fn slot_mut(&mut self, worker_id: &str) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.worker.id() == worker_id)
    }
}

impl ProcessPool {
    /// Creates the workers and starts serving. Must be called inside a tokio runtime.
    pub fn start(config: PoolConfig, factory: BackendFactory, log: &Logger) -> Self {
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
        {
            let mut state = shared.lock();
            for _ in 0..shared.config.pool_size {
                shared.add_worker(&mut state);
            }
        }
        shared
            .log
            .info(format_args!("started {} workers", shared.config.pool_size));
        ProcessPool { shared }
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
            let max = self.shared.config.max_queue_size;
            let worker_free = state.slots.iter().any(|s| {
                s.worker
                    .is_available(self.shared.config.max_consecutive_failures)
            });
            if !worker_free && state.queue.len() >= max {
                return Err(WhisperError::QueueFull { max });
            }
            self.shared.log.debug(format_args!(
                "queued {} ({})",
                request.id,
                display_path(&request.audio.path)
            ));
            state.totals.submitted += 1;
            state.queue.push_back(Job {
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
        let shared = &self.shared;
        shared
            .changed
            .wait_until(|| shared.tasks.load(Ordering::SeqCst) == 0)
            .await;
        let mut state = self.shared.lock();
        for slot in &mut state.slots {
            slot.worker.terminate();
        }
        self.shared.log.info(format_args!("shut down"));
    }

    /// Replaces every worker. Queued requests stay queued; running ones go back
    /// to the front of the queue and start over on a fresh worker.
    pub async fn restart(&self) {
        let old: Vec<String> = {
            let mut state = self.shared.lock();
            let old = state
                .slots
                .iter()
                .map(|s| s.worker.id().to_owned())
                .collect();
            for slot in &mut state.slots {
                slot.worker.retire();
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
                !state
                    .slots
                    .iter()
                    .any(|s| old.iter().any(|id| id == s.worker.id()))
            })
            .await;
    }

    pub fn worker_statuses(&self) -> Vec<WorkerStatus> {
        let state = self.shared.lock();
        state.slots.iter().map(|s| s.worker.status()).collect()
    }

    pub fn queue_status(&self) -> QueueStatus {
        let state = self.shared.lock();
        let now = Instant::now();
        QueueStatus {
            queue_length: state.queue.len(),
            max_queue_size: self.shared.config.max_queue_size,
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

    pub fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        let max_failures = self.shared.config.max_consecutive_failures;
        let total = state.slots.len();
        let busy = state.running.len();
        let t = &state.totals;
        PoolStats {
            total_workers: total,
            available_workers: state
                .slots
                .iter()
                .filter(|s| s.worker.is_available(max_failures))
                .count(),
            busy_workers: busy,
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
            average_processing_time_ms: average(t.processing_time, t.completed),
            average_queue_time_ms: average(t.queue_time, t.completed),
            average_latency_ms: average(t.processing_time + t.queue_time, t.completed),
            last_error: state.last_error.clone(),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding the lock cannot leave the bookkeeping half
        // written in a way that matters more than serving on; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_worker(&self, state: &mut PoolState) {
        let id = format!("worker-{}", state.next_worker);
        state.next_worker += 1;
        let backend = Arc::new((self.factory)(&id));
        let log = self.base_log.named(&format!("ProcessWorker:{id}"));
        log.debug(format_args!("created"));
        state.slots.push(Slot {
            worker: ProcessWorker::new(id),
            backend,
            log,
        });
    }

    /// Swaps every retiring worker that is not busy for a new one.
    fn replace_retired(&self, state: &mut PoolState) {
        let before = state.slots.len();
        let mut gone = Vec::new();
        state.slots.retain_mut(|s| {
            let idle_retiree = s.worker.is_retiring()
                && s.worker.state() != crate::worker::WorkerState::Processing;
            if idle_retiree {
                s.worker.terminate();
                gone.push(s.worker.id().to_owned());
            }
            !idle_retiree
        });
        if !state.accepting {
            return;
        }
        for id in &gone {
            state.totals.replaced_workers += 1;
            self.log.warn(format_args!("replacing {id}"));
        }
        for _ in state.slots.len()..before.max(self.config.pool_size) {
            self.add_worker(state);
        }
    }

    /// Hands queued jobs to available workers, least recently used first.
    fn dispatch(&self, state: &mut PoolState) -> Vec<Assignment> {
        let mut out = Vec::new();
        if !state.accepting {
            return out;
        }
        let max_failures = self.config.max_consecutive_failures;
        while !state.queue.is_empty() {
            let Some(slot) = state
                .slots
                .iter_mut()
                .filter(|s| s.worker.is_available(max_failures))
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
            self.tasks.fetch_add(1, Ordering::SeqCst);
            let shared = self.clone();
            self.runtime.spawn(async move {
                shared.run(backend, worker_id, log, job).await;
                shared.tasks.fetch_sub(1, Ordering::SeqCst);
                shared.changed.notify();
            });
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
                    // Back where it was in line: the queue stays FIFO.
                    let pos = state
                        .queue
                        .partition_point(|j| j.enqueued_at <= job.enqueued_at);
                    state.queue.insert(pos, job);
                    None
                }
            };
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
