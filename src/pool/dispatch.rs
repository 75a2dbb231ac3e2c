//! Matching queued jobs with ready workers, running them, and settling them.

use super::state::{PoolState, Queued};
use super::worker::{Attempts, Busy, Retirement};
use super::{cancelled_error, Job, Reply, Shared, TranscriptionResult};
use crate::backend::{Backend, LossCause, Threads, Unfinished};
use crate::cancel::{CancelReason, CancelToken};
use crate::error::WhisperError;
use crate::events::Event;
use crate::log::Logger;
use crate::transcript::Transcript;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// A worker could not take a job this many times (its process had died):
/// then the job fails instead of going round again.
const NOT_STARTED_LIMIT: u32 = 3;
/// Processes that may die under one request, whatever the causes, before
/// it fails: a bound on re-runs even when no death can be pinned on it.
const LOSS_LIMIT: u32 = 3;

pub(super) struct Assignment {
    backend: Arc<Backend>,
    worker_id: String,
    log: Logger,
    queued: Queued,
}

/// A job on a worker: the reply sender is None once answered early.
struct OnWorker {
    queued: Queued,
    reply: Option<oneshot::Sender<Reply>>,
    worker_id: String,
    log: Logger,
    queue_time: Duration,
    processing_time: Duration,
}

/// `cores` split between `n` requests, the earliest first to get a spare
/// one; never fewer than one each.
fn split(cores: usize, n: usize) -> impl Iterator<Item = usize> {
    let (each, spare) = (cores / n.max(1), cores % n.max(1));
    (0..n).map(move |i| (each + usize::from(i < spare)).max(1))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Shared {
    /// Hands queued jobs to ready workers, least recently used first, and
    /// adds workers (up to `max_workers`) while jobs would otherwise wait.
    pub(super) fn dispatch(self: &Arc<Self>, state: &mut PoolState) -> Vec<Assignment> {
        let mut out = Vec::new();
        if !state.accepting {
            return out;
        }
        while let Some(alone) = state.queue.front().map(|q| q.suspect) {
            // Requests this round will start: they share the free cores.
            let starting = state
                .queue
                .len()
                .min(state.workers.iter().filter(|w| w.is_ready()).count());
            // A suspect waits for a process of its own; the jobs behind it
            // wait with it (first come, first served), and the process it
            // waits for empties.
            let ready = (0..state.workers.len())
                .filter(|&i| state.workers[i].is_ready() && state.may_take(i, alone))
                .min_by_key(|&i| state.workers[i].idle_since);
            let Some(i) = ready else {
                // Grow for the jobs that no starting worker will take.
                if state.workers.len() < self.config.max_workers
                    && state.queue.len() > state.starting()
                {
                    self.add_worker(state, Attempts::Retried);
                    continue;
                }
                break;
            };
            let mut queued = state.queue.pop_front().expect("queue is not empty");
            let threads = self
                .factory
                .threads
                .for_request(state.threads_in_use(), starting);
            queued.job.request.threads = threads;
            let worker = &mut state.workers[i];
            let live_threads =
                (self.factory.threads.is_budget() && worker.backend.adjusts_threads()).then(|| {
                    let (tx, rx) = watch::channel(threads);
                    queued.job.request.live_threads = Some(rx);
                    tx
                });
            worker.begin(Busy {
                request: queued.job.request.id.clone(),
                path: queued.job.request.audio.describe(),
                started: Instant::now(),
                cancel: queued.job.cancel.clone(),
                threads,
                live_threads,
                retire: None,
                alone,
            });
            out.push(Assignment {
                backend: worker.backend.clone(),
                worker_id: worker.id.clone(),
                log: worker.log.clone(),
                queued,
            });
        }
        self.rebalance_threads(state);
        out
    }

    /// With a thread budget, re-splits the cores between the running
    /// requests whose threads can change (the worker backend's) each time
    /// one starts or ends: a lone request runs on every core, and a burst
    /// does not leave the first request holding them all while the others
    /// crowd the same cores.
    fn rebalance_threads(&self, state: &mut PoolState) {
        let Threads::Budget { cores } = self.factory.threads else {
            return;
        };
        let fixed: usize = state
            .workers
            .iter()
            .filter_map(|w| w.busy())
            .filter(|b| b.live_threads.is_none())
            .map(|b| b.threads)
            .sum();
        let mut live: Vec<&mut Busy> = state
            .workers
            .iter_mut()
            .filter_map(|w| w.busy_mut())
            .filter(|b| b.live_threads.is_some())
            .collect();
        live.sort_by_key(|b| b.started);
        let shares = split(cores.saturating_sub(fixed), live.len());
        for (b, threads) in live.iter_mut().zip(shares) {
            if b.threads != threads {
                b.threads = threads;
                if let Some(tx) = &b.live_threads {
                    let _ = tx.send(threads);
                }
            }
        }
    }

    pub(super) fn spawn_all(self: &Arc<Self>, assignments: Vec<Assignment>) {
        for a in assignments {
            let shared = self.clone();
            self.track(async move { shared.run(a).await });
        }
    }

    async fn run(self: &Arc<Self>, a: Assignment) {
        let Assignment {
            backend,
            worker_id,
            log,
            mut queued,
        } = a;
        let started = Instant::now();
        let queue_time = started - queued.enqueued_at;
        log.debug(format_args!(
            "processing {} with {} threads after {:.0} ms in the queue",
            queued.job.request.id,
            queued.job.request.threads,
            ms(queue_time)
        ));
        let report_pid = |pid: Option<u32>| {
            if let Some(w) = self.lock().worker_mut(&worker_id) {
                w.pid = pid;
            }
            if let Some(pid) = pid {
                log.debug(format_args!("whisper pid {pid}"));
            }
        };
        let token = queued.job.cancel.clone();
        let timeout = queued.job.timeout;
        let cancel = async {
            tokio::select! {
                reason = token.cancelled() => reason,
                _ = tokio::time::sleep(timeout) => CancelReason::Timeout,
            }
        };
        let mut reply = Some(std::mem::replace(
            &mut queued.job.reply,
            oneshot::channel().0,
        ));
        let outcome = {
            let work = backend.transcribe(&queued.job.request, cancel, &report_pid);
            tokio::pin!(work);
            // An abort or a shutdown is answered at once; the worker stays
            // busy until its process has stopped.
            let mut heard = false;
            loop {
                tokio::select! {
                    outcome = &mut work => break outcome,
                    reason = queued.job.cancel.cancelled(), if !heard => {
                        heard = true;
                        if matches!(reason, CancelReason::Aborted | CancelReason::Shutdown) {
                            if let Some(tx) = reply.take() {
                                self.reply_early(&queued, &worker_id, reason, tx);
                            }
                        }
                    }
                }
            }
        };
        let on_worker = OnWorker {
            queued,
            reply,
            worker_id,
            log,
            queue_time,
            processing_time: started.elapsed(),
        };
        self.finish(on_worker, outcome);
    }

    /// The caller's answer to an abort or shutdown of a running request.
    fn reply_early(
        &self,
        queued: &Queued,
        worker_id: &str,
        reason: CancelReason,
        tx: oneshot::Sender<Reply>,
    ) {
        let path = queued.job.request.audio.describe();
        let Some(error) = cancelled_error(reason, path, queued.job.timeout) else {
            return;
        };
        {
            let mut state = self.lock();
            match reason {
                CancelReason::Aborted => state.totals.aborted += 1,
                _ => state.totals.failed += 1,
            }
            self.emit(Event::RequestFailed {
                request_id: queued.job.request.id.clone(),
                worker_id: Some(worker_id.to_owned()),
                error: error.clone(),
            });
        }
        let _ = tx.send(Err(error));
    }

    /// Settles a job that ran: statistics, the worker's fate, the reply, and
    /// the next jobs.
    fn finish(self: &Arc<Self>, job: OnWorker, outcome: Result<Transcript, Unfinished>) {
        let OnWorker {
            mut queued,
            reply,
            worker_id,
            log,
            queue_time,
            processing_time,
        } = job;
        let request_id = queued.job.request.id.clone();
        let path = queued.job.request.audio.describe();
        let observer = queued.job.request.observer.clone();
        let mut answer: Option<(oneshot::Sender<Reply>, Reply)> = None;
        let assignments = {
            let mut state = self.lock();
            let lost = backend_lost(&state, &worker_id);
            let retire = match outcome {
                Ok(transcript) => {
                    let retire = state
                        .worker_mut(&worker_id)
                        .and_then(|w| w.succeed(processing_time));
                    // No reply left: the caller aborted, the result goes nowhere.
                    if let Some(tx) = reply {
                        let t = &mut state.totals;
                        t.completed += 1;
                        t.processing_time += processing_time;
                        t.queue_time += queue_time;
                        state.window.record(queue_time, processing_time);
                        log.debug(format_args!(
                            "completed {request_id} in {:.0} ms",
                            ms(processing_time)
                        ));
                        self.emit(Event::RequestCompleted {
                            request_id: request_id.clone(),
                            worker_id: worker_id.clone(),
                            queue_time,
                            processing_time,
                        });
                        let result = TranscriptionResult {
                            transcript,
                            request_id: request_id.clone(),
                            worker_id: worker_id.clone(),
                            queue_time,
                            processing_time,
                        };
                        answer = Some((tx, Ok(result)));
                    }
                    retire
                }
                Err(Unfinished::Failed(error)) => self.failed(
                    &mut state,
                    &request_id,
                    &worker_id,
                    &log,
                    reply,
                    error,
                    &mut answer,
                ),
                Err(Unfinished::Cancelled(CancelReason::Timeout)) => {
                    let error = cancelled_error(CancelReason::Timeout, path, queued.job.timeout)
                        .expect("a timeout is an error");
                    self.failed(
                        &mut state,
                        &request_id,
                        &worker_id,
                        &log,
                        reply,
                        error,
                        &mut answer,
                    )
                }
                Err(Unfinished::Cancelled(CancelReason::Restart)) => {
                    let retire = state.worker_mut(&worker_id).and_then(|w| w.release());
                    if let Some(tx) = reply {
                        // Back where it was in line, for a fresh worker.
                        self.requeue(&mut state, queued, tx, &mut answer);
                    }
                    retire
                }
                Err(Unfinished::Cancelled(
                    reason @ (CancelReason::Aborted | CancelReason::Shutdown),
                )) => {
                    // Answered already, unless the backend stopped first. The
                    // worker did nothing wrong, but a persistent process that
                    // had to be stopped is replaced.
                    let retire = state.worker_mut(&worker_id).and_then(|w| w.release());
                    if let Some(tx) = reply {
                        let error = cancelled_error(reason, path, queued.job.timeout)
                            .expect("an abort or a shutdown is an error");
                        match reason {
                            CancelReason::Aborted => state.totals.aborted += 1,
                            _ => state.totals.failed += 1,
                        }
                        self.emit(Event::RequestFailed {
                            request_id: request_id.clone(),
                            worker_id: Some(worker_id.clone()),
                            error: error.clone(),
                        });
                        answer = Some((tx, Err(error)));
                    }
                    retire.or(lost.then_some(Retirement::Failure))
                }
                Err(Unfinished::Lost(loss)) => {
                    let retire = state
                        .worker_mut(&worker_id)
                        .and_then(|w| w.lose_process(&loss.detail));
                    queued.losses += 1;
                    // Dying alone after dying beside others names it the cause.
                    let poison = loss.cause == LossCause::Alone && queued.suspect;
                    match reply {
                        Some(tx) if poison || queued.losses >= LOSS_LIMIT => {
                            let why = if poison {
                                "it was the cause: the process died again running it alone"
                            } else {
                                "its processes kept dying"
                            };
                            let error = WhisperError::WorkerCrashed {
                                path,
                                detail: format!("{}; {why}", loss.detail),
                            };
                            self.record_failure(&mut state, &request_id, Some(&worker_id), &error);
                            answer = Some((tx, Err(error)));
                        }
                        Some(tx) => {
                            // Not proven guilty: run it again, alone unless
                            // the engine itself killed the process.
                            queued.suspect |= loss.cause != LossCause::Engine;
                            state.totals.retried += 1;
                            log.info(format_args!("{request_id} runs again: {}", loss.detail));
                            self.emit(Event::RequestRetried {
                                request_id: request_id.clone(),
                                worker_id: worker_id.clone(),
                                reason: loss.detail.clone(),
                            });
                            self.requeue(&mut state, queued, tx, &mut answer);
                        }
                        None => {}
                    }
                    retire
                }
                Err(Unfinished::NotStarted(reason)) => {
                    log.info(format_args!("could not take {request_id}: {reason}"));
                    let retire = state.worker_mut(&worker_id).and_then(|w| w.release());
                    queued.not_started += 1;
                    match reply {
                        Some(tx) if queued.not_started < NOT_STARTED_LIMIT => {
                            self.requeue(&mut state, queued, tx, &mut answer);
                        }
                        Some(tx) => {
                            let error = WhisperError::WorkerCrashed {
                                path,
                                detail: format!(
                                    "{NOT_STARTED_LIMIT} workers in a row could not take it: {reason}"
                                ),
                            };
                            self.record_failure(&mut state, &request_id, Some(&worker_id), &error);
                            answer = Some((tx, Err(error)));
                        }
                        None => {}
                    }
                    retire.or(Some(Retirement::Failure))
                }
            };
            match retire.or_else(|| self.worn_out(&mut state, &worker_id)) {
                Some(why) => self.remove(&mut state, &worker_id, why),
                None => self.schedule_idle_check(&state, &worker_id),
            }
            let assignments = self.dispatch(&mut state);
            self.announce_drain(&mut state, assignments.is_empty());
            assignments
        };
        self.spawn_all(assignments);
        if let Some((tx, reply)) = answer {
            if let (Ok(result), Some(observer)) = (&reply, &observer) {
                observer.finish(&result.transcript);
            }
            let _ = tx.send(reply);
        }
    }

    /// A failed request: the worker's record, the totals, the event, the reply.
    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        state: &mut PoolState,
        request_id: &str,
        worker_id: &str,
        log: &Logger,
        reply: Option<oneshot::Sender<Reply>>,
        error: WhisperError,
        answer: &mut Option<(oneshot::Sender<Reply>, Reply)>,
    ) -> Option<Retirement> {
        let max = self.config.max_consecutive_failures;
        let retire = state
            .worker_mut(worker_id)
            .and_then(|w| w.fail(&error, max));
        if retire.is_some() {
            log.warn(format_args!("retiring after: {error}"));
        }
        if let Some(tx) = reply {
            self.record_failure(state, request_id, Some(worker_id), &error);
            *answer = Some((tx, Err(error)));
        }
        retire
    }

    fn record_failure(
        &self,
        state: &mut PoolState,
        request_id: &str,
        worker_id: Option<&str>,
        error: &WhisperError,
    ) {
        state.totals.failed += 1;
        state.last_error = Some(error.to_string());
        self.log.info(format_args!(
            "{request_id} failed: {} {error}",
            error.code()
        ));
        self.emit(Event::RequestFailed {
            request_id: request_id.to_owned(),
            worker_id: worker_id.map(str::to_owned),
            error: error.clone(),
        });
    }

    /// Puts a job back in line, with a fresh cancel token (the old one
    /// fired); after shutdown, it is refused instead.
    fn requeue(
        &self,
        state: &mut PoolState,
        mut queued: Queued,
        reply: oneshot::Sender<Reply>,
        answer: &mut Option<(oneshot::Sender<Reply>, Reply)>,
    ) {
        if !state.accepting {
            let error = WhisperError::shutdown();
            self.record_failure(state, &queued.job.request.id, None, &error);
            *answer = Some((reply, Err(error)));
            return;
        }
        queued.job = Job {
            cancel: CancelToken::default(),
            reply,
            ..queued.job
        };
        state.enqueue(queued);
    }

    /// `maxRequestsPerWorker` reached: the worker is recycled.
    fn worn_out(&self, state: &mut PoolState, worker_id: &str) -> Option<Retirement> {
        let max = self.config.max_requests_per_worker?;
        let worker = state.worker_mut(worker_id)?;
        (worker.is_ready() && worker.stats.served >= max).then_some(Retirement::Recycle)
    }

    /// Once per quiet spell: the queue is empty and every worker idle.
    fn announce_drain(&self, state: &mut PoolState, nothing_dispatched: bool) {
        if !state.drained && nothing_dispatched && state.queue.is_empty() && state.busy() == 0 {
            state.drained = true;
            self.emit(Event::Drain);
        }
    }
}

fn backend_lost(state: &PoolState, worker_id: &str) -> bool {
    state
        .workers
        .iter()
        .find(|w| w.id == worker_id)
        .is_some_and(|w| w.backend.is_persistent() && w.backend.pid().is_none())
}
