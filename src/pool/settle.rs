//! Settling a job: its reply (exactly once), the statistics, the event, and
//! the fate of the worker it ran on; the poison rule for jobs whose process
//! died under them.

use super::dispatch::OnWorker;
use super::record::Retirement;
use super::state::{PoolState, Queued};
use super::{Job, Reply, Shared, TranscriptionResult};
use crate::backend::{LossCause, Unfinished};
use crate::cancel::{CancelReason, CancelToken};
use crate::error::WhisperError;
use crate::events::Event;
use crate::log::Logger;
use crate::transcript::Transcript;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A worker could not take a job this many times (its process had died):
/// then the job fails instead of going round again.
const NOT_STARTED_LIMIT: u32 = 3;
/// Processes that may die under one request, whatever the causes, before
/// it fails: a bound on re-runs even when no death can be pinned on it.
const LOSS_LIMIT: u32 = 3;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Shared {
    /// A job that never ran: its reply, its count and its event.
    pub(super) fn settle_unrun(&self, queued: Queued, error: WhisperError) {
        {
            let mut state = self.lock();
            match error {
                WhisperError::Aborted { .. } => state.totals.aborted += 1,
                _ => state.totals.failed += 1,
            }
            self.emit(Event::RequestFailed {
                request_id: queued.job.request.id.clone(),
                worker_id: None,
                error: error.clone(),
            });
        }
        let _ = queued.job.reply.send(Err(error));
    }

    /// The caller's answer to an abort or shutdown of a running request.
    pub(super) fn reply_early(
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
    pub(super) fn finish(self: &Arc<Self>, job: OnWorker, outcome: Result<Transcript, Unfinished>) {
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
                            // the engine itself killed the process or its
                            // GPU failed.
                            queued.suspect |=
                                !matches!(loss.cause, LossCause::Engine | LossCause::Device);
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
                None => self.schedule_idle_check(&mut state, &worker_id),
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

    pub(super) fn record_failure(
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
    pub(super) fn requeue(
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
    pub(super) fn announce_drain(&self, state: &mut PoolState, nothing_dispatched: bool) {
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

/// Why a running request stopped early, as its error.
pub(super) fn cancelled_error(
    reason: CancelReason,
    path: String,
    timeout: Duration,
) -> Option<WhisperError> {
    match reason {
        CancelReason::Timeout => Some(WhisperError::Timeout {
            path,
            timeout_ms: timeout.as_millis() as u64,
        }),
        CancelReason::Aborted => Some(WhisperError::Aborted { path }),
        CancelReason::Shutdown => Some(WhisperError::shutdown()),
        CancelReason::Restart => None,
    }
}
