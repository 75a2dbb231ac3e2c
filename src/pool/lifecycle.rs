//! Workers come and go: added (at start, to grow, to replace), started
//! (persistent backends), watched (their process exiting, failing health
//! checks), retired (failure, recycling, idleness, restart), and stopped.

use super::record::{Attempts, Phase, Retirement, Started, WorkerRecord};
use super::state::PoolState;
use super::Shared;
use crate::backend::Backend;
use crate::cancel::CancelReason;
use crate::error::WhisperError;
use crate::events::Event;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Health checks that fail in a row before an idle server counts as hung.
const UNHEALTHY_AFTER: u32 = 3;
/// After failed replacements the pool tries again after this, doubling up
/// to the longest pause, until it is back at `min_workers` (the model may
/// come back, a full disk may clear).
const RESTORE_FIRST: Duration = Duration::from_secs(1);
const RESTORE_LONGEST: Duration = Duration::from_secs(30);

impl Shared {
    /// Runs `work` as a task that shutdown() waits for.
    pub(super) fn track(self: &Arc<Self>, work: impl Future<Output = ()> + Send + 'static) {
        /// Counts the task out even if it panics, so shutdown() never waits forever.
        struct Done(Arc<Shared>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.tasks.fetch_sub(1, Ordering::SeqCst);
                self.0.changed.notify();
            }
        }
        self.tasks.fetch_add(1, Ordering::SeqCst);
        let done = Done(self.clone());
        self.runtime.spawn(async move {
            let _done = done;
            work.await;
        });
    }

    pub(super) async fn wait_for_tasks(&self) {
        self.changed
            .wait_until(|| self.tasks.load(Ordering::SeqCst) == 0)
            .await;
    }

    /// Adds a worker and returns its id. A persistent one starts its process
    /// in the background and takes work once it is up.
    pub(super) fn add_worker(
        self: &Arc<Self>,
        state: &mut PoolState,
        attempts: Attempts,
    ) -> String {
        let id = format!("worker-{}", state.next_worker);
        state.next_worker += 1;
        let backend = Arc::new(self.factory.make());
        let log = self.base_log.named(&format!("ProcessWorker:{id}"));
        log.debug(format_args!("created"));
        let mut record = WorkerRecord::new(id.clone(), backend.clone(), log);
        let persistent = backend.is_persistent();
        if !persistent {
            record.start_ended(Ok(()));
        }
        state.workers.push(record);
        if persistent {
            let (shared, worker) = (self.clone(), id.clone());
            self.track(async move { shared.start_worker(worker, backend, attempts).await });
        } else {
            self.emit(Event::WorkerStarted {
                worker_id: id.clone(),
                pid: None,
            });
            self.schedule_idle_check(state, &id);
        }
        id
    }

    /// Starts a persistent worker's process. On success it takes work; on
    /// failure it leaves, and if no worker is left the queue fails with the
    /// error. shutdown() ends a start at once.
    async fn start_worker(self: Arc<Self>, id: String, backend: Arc<Backend>, attempts: Attempts) {
        let mut attempt = 1;
        let result = loop {
            match backend.start(&self.stopping).await {
                Ok(()) => break Ok(()),
                Err(e) if attempt < attempts.count() && !is_final(&e) && self.lock().accepting => {
                    self.log
                        .warn(format_args!("{id} failed to start ({e}); retrying"));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500 << attempt)) => {}
                        _ = self.stopping.cancelled() => break Err(WhisperError::shutdown()),
                    }
                    attempt += 1;
                }
                Err(e) => break Err(e),
            }
        };
        let (assignments, unneeded) = {
            let mut state = self.lock();
            self.settle_start(&mut state, &id, &backend, result, attempts)
        };
        if unneeded {
            backend.stop().await;
        }
        self.spawn_all(assignments);
        self.changed.notify();
    }

    /// Bookkeeping after a start attempt. Returns the work it can take, and
    /// whether the started process is not needed after all.
    fn settle_start(
        self: &Arc<Self>,
        state: &mut PoolState,
        id: &str,
        backend: &Arc<Backend>,
        result: Result<(), WhisperError>,
        attempts: Attempts,
    ) -> (Vec<super::dispatch::Assignment>, bool) {
        let accepting = state.accepting;
        let exists = state.worker_mut(id).is_some();
        match result {
            Ok(()) if accepting && exists => {
                state.failed_restores = 0;
                let worker = state.worker_mut(id).expect("checked");
                worker.phase = Phase::Ready;
                worker.start_ended(Ok(()));
                worker.log.info(format_args!(
                    "ready: {} pid {} has the model loaded",
                    backend.program(),
                    backend.pid().unwrap_or(0)
                ));
                let gone = worker.gone.clone();
                self.spawn_monitor(id.to_owned(), backend.clone(), gone);
                self.emit(Event::WorkerStarted {
                    worker_id: id.to_owned(),
                    pid: backend.pid(),
                });
                self.schedule_idle_check(state, id);
                (self.dispatch(state), false)
            }
            // Removed or shutting down while it started: it is not needed.
            Ok(()) => (Vec::new(), true),
            Err(e) => {
                if let Some(w) = state.worker_mut(id) {
                    w.start_ended(Err(e.clone()));
                }
                state.workers.retain(|w| w.id != id);
                if !accepting {
                    return (Vec::new(), false);
                }
                self.log.error(format_args!("{id} could not start: {e}"));
                state.last_error = Some(e.to_string());
                if attempts == Attempts::Retried {
                    // Nobody awaits this start: say so, once per streak.
                    if state.failed_restores == 0 {
                        self.emit(Event::Error { error: e.clone() });
                    }
                    state.failed_restores += 1;
                    self.schedule_restore(state);
                }
                if state.workers.is_empty() {
                    // No worker left to serve the queue: it fails with the cause.
                    for queued in std::mem::take(&mut state.queue) {
                        state.totals.failed += 1;
                        self.emit(Event::RequestFailed {
                            request_id: queued.job.request.id.clone(),
                            worker_id: None,
                            error: e.clone(),
                        });
                        let _ = queued.job.reply.send(Err(e.clone()));
                    }
                }
                (Vec::new(), false)
            }
        }
    }

    /// How the starts of the workers `ids` end: await them with wait_started().
    pub(super) fn starts(
        &self,
        state: &PoolState,
        ids: &[String],
    ) -> Vec<watch::Receiver<Started>> {
        state
            .workers
            .iter()
            .filter(|w| ids.contains(&w.id))
            .map(WorkerRecord::started)
            .collect()
    }

    /// Resolves when every one of these starts has ended; with the first
    /// failure, if any. A worker that left before its start ended is no failure.
    pub(super) async fn wait_started(
        starts: Vec<watch::Receiver<Started>>,
    ) -> Result<(), WhisperError> {
        let mut first = Ok(());
        for mut start in starts {
            if let Ok(ended) = start.wait_for(Option::is_some).await {
                if let (Ok(()), Some(Err(e))) = (&first, ended.clone()) {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Watches a ready persistent worker: its process exiting (or being
    /// tampered with), or (while it is idle) failing health checks, retires it.
    fn spawn_monitor(
        self: &Arc<Self>,
        id: String,
        backend: Arc<Backend>,
        gone: crate::cancel::CancelToken,
    ) {
        let shared = self.clone();
        let interval = self.config.health_interval;
        self.runtime.spawn(async move {
            let reason = loop {
                tokio::select! {
                    _ = gone.cancelled() => return,
                    detail = backend.lost() => break detail,
                    _ = tokio::time::sleep(interval) => {}
                }
                // A busy server is watched by its request's timeout instead.
                let healthy = shared.is_busy(&id) || backend.health_check().await;
                if let Some(failures) = shared.count_health(&id, healthy) {
                    if failures >= UNHEALTHY_AFTER {
                        break format!("whisper-server failed {failures} health checks in a row");
                    }
                }
            };
            shared.retire_idle(&id, &reason);
        });
    }

    fn is_busy(&self, id: &str) -> bool {
        self.lock()
            .worker_mut(id)
            .is_some_and(|w| w.busy().is_some())
    }

    /// Records a health check in the worker's record; its failures in a row.
    fn count_health(&self, id: &str, healthy: bool) -> Option<u32> {
        let mut state = self.lock();
        let worker = state.worker_mut(id)?;
        worker.health_failures = if healthy {
            0
        } else {
            worker.health_failures + 1
        };
        Some(worker.health_failures)
    }

    /// Replaces an idle worker whose process died or hung. A busy one is left
    /// to its request, which fails and retires it.
    fn retire_idle(self: &Arc<Self>, id: &str, reason: &str) {
        let assignments = {
            let mut state = self.lock();
            let Some(worker) = state.worker_mut(id) else {
                return;
            };
            if worker.busy().is_some() {
                return;
            }
            worker.log.warn(format_args!("{reason}; replacing it"));
            state.last_error = Some(format!("{id}: {reason}"));
            self.remove(&mut state, id, Retirement::Failure);
            self.dispatch(&mut state)
        };
        self.spawn_all(assignments);
    }

    /// Takes a worker out of the pool, ends its process, and keeps the pool
    /// at `min_workers`.
    pub(super) fn remove(self: &Arc<Self>, state: &mut PoolState, id: &str, why: Retirement) {
        let Some(pos) = state.workers.iter().position(|w| w.id == id) else {
            return;
        };
        let mut worker = state.workers.remove(pos);
        worker.terminate();
        let backend = worker.backend.clone();
        self.track(async move { backend.stop().await });
        match why {
            Retirement::Failure => {
                state.totals.replaced_workers += 1;
                self.log.warn(format_args!("replacing {id}"));
            }
            Retirement::Recycle => {
                state.totals.recycled_workers += 1;
                self.log.info(format_args!("recycling {id}"));
            }
            Retirement::Idle => self.log.info(format_args!("{id} was idle; retired")),
            Retirement::Restart | Retirement::Shutdown => {}
        }
        self.emit(Event::WorkerExited {
            worker_id: id.to_owned(),
            reason: why.exit_reason(),
        });
        if state.accepting && !matches!(why, Retirement::Restart | Retirement::Shutdown) {
            while state.workers.len() < self.config.min_workers {
                self.add_worker(state, Attempts::Retried);
            }
        }
        self.changed.notify();
    }

    /// Brings the pool back to `min_workers` after a pause that grows with
    /// the failed attempts in a row.
    fn schedule_restore(self: &Arc<Self>, state: &PoolState) {
        let shift = state.failed_restores.saturating_sub(1).min(5);
        let pause = (RESTORE_FIRST * (1 << shift)).min(RESTORE_LONGEST);
        let shared = self.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shared.stopping.cancelled() => return,
            }
            let assignments = {
                let mut state = shared.lock();
                if !state.accepting || state.workers.len() >= shared.config.min_workers {
                    return;
                }
                shared
                    .log
                    .info(format_args!("starting workers again, back to minWorkers"));
                while state.workers.len() < shared.config.min_workers {
                    shared.add_worker(&mut state, Attempts::Retried);
                }
                shared.dispatch(&mut state)
            };
            shared.spawn_all(assignments);
        });
    }

    /// Arms the worker's idle timer: after `idle_timeout` of idleness it
    /// leaves, if the pool is above `min_workers`. Taking work disarms it.
    pub(super) fn schedule_idle_check(self: &Arc<Self>, state: &mut PoolState, id: &str) {
        let Some(timeout) = self.config.idle_timeout else {
            return;
        };
        let Some(worker) = state.worker_mut(id) else {
            return;
        };
        let (shared, id) = (self.clone(), id.to_owned());
        let timer = self.runtime.spawn(async move {
            tokio::time::sleep(timeout).await;
            let mut state = shared.lock();
            let still_idle = state.workers.iter().any(|w| w.id == id && w.is_ready());
            if still_idle && state.accepting && state.workers.len() > shared.config.min_workers {
                shared.remove(&mut state, &id, Retirement::Idle);
            }
        });
        worker.arm_idle_timer(timer.abort_handle());
    }

    /// Retires every worker: idle ones now, busy ones once their request is
    /// sent back to the queue. Adds as many fresh ones. Returns the old
    /// workers' ids and the new ones' starts.
    pub(super) fn begin_restart(self: &Arc<Self>) -> (Vec<String>, Vec<watch::Receiver<Started>>) {
        let assignments;
        let ids = {
            let mut state = self.lock();
            self.factory.renew();
            let old: Vec<String> = state.workers.iter().map(|w| w.id.clone()).collect();
            let size = old
                .len()
                .clamp(self.config.min_workers.max(1), self.config.max_workers);
            for id in &old {
                let worker = state.worker_mut(id).expect("listed");
                match worker.busy() {
                    Some(b) => {
                        b.cancel.cancel(CancelReason::Restart);
                        worker.retire_after(Retirement::Restart);
                    }
                    None => self.remove(&mut state, id, Retirement::Restart),
                }
            }
            let new: Vec<String> = (0..size)
                .map(|_| self.add_worker(&mut state, Attempts::Once))
                .collect();
            // Under the same lock: no start can end before it is awaited.
            let starts = self.starts(&state, &new);
            assignments = self.dispatch(&mut state);
            (old, starts)
        };
        self.spawn_all(assignments);
        ids
    }

    /// Stops accepting, rejects the queue, ends running requests and every
    /// worker, and returns when no task and no process is left.
    pub(super) async fn shutdown(self: &Arc<Self>) {
        let rejected = {
            let mut state = self.lock();
            state.accepting = false;
            self.stopping.cancel(CancelReason::Shutdown);
            for w in &state.workers {
                if let Some(b) = w.busy() {
                    b.cancel.cancel(CancelReason::Shutdown);
                }
            }
            std::mem::take(&mut state.queue)
        };
        self.log.info(format_args!(
            "shutting down: {} queued requests rejected",
            rejected.len()
        ));
        for queued in rejected {
            self.settle_unrun(queued, WhisperError::shutdown());
        }
        self.wait_for_tasks().await;
        let backends: Vec<Arc<Backend>> = {
            let mut state = self.lock();
            state
                .workers
                .iter_mut()
                .filter(|w| !matches!(w.phase, Phase::Terminated))
                .map(|w| {
                    w.terminate();
                    self.emit(Event::WorkerExited {
                        worker_id: w.id.clone(),
                        reason: crate::events::ExitReason::Shutdown,
                    });
                    w.backend.clone()
                })
                .collect()
        };
        for backend in backends {
            self.track(async move { backend.stop().await });
        }
        self.wait_for_tasks().await;
        self.log.info(format_args!("shut down"));
    }
}

/// A start failure that trying again cannot fix.
fn is_final(e: &WhisperError) -> bool {
    matches!(
        e,
        WhisperError::ModelLoad { .. }
            | WhisperError::WhisperNotFound { .. }
            | WhisperError::Shutdown { .. }
    )
}
