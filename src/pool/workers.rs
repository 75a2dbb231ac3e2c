//! The workers' processes: creating workers, starting a persistent worker's
//! server, watching it (exit, health checks), and replacing retired workers.

use super::{PoolState, Shared};
use crate::backend::Backend;
use crate::cancel::{CancelReason, CancelToken};
use crate::error::WhisperError;
use crate::log::Logger;
use crate::worker::{ProcessWorker, Retirement, WorkerState};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Health checks that fail in a row before an idle server counts as hung.
const UNHEALTHY_AFTER: u32 = 3;
/// Starts of a replacement worker before the pool gives up on it.
pub(super) const REPLACEMENT_START_ATTEMPTS: u32 = 3;

pub(super) enum AfterStart {
    Serve(Vec<super::Assignment>),
    Unneeded,
    Fail(Vec<super::Job>),
}

pub(super) struct Slot {
    pub worker: ProcessWorker,
    pub backend: Arc<Backend>,
    pub log: Logger,
    /// Its process is up: always for the cli backend; for a server, once its
    /// model is loaded and its health check answers.
    pub ready: bool,
    /// Cancelled when the slot goes away; ends its monitor.
    pub gone: CancelToken,
}

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

    /// Adds a worker. A persistent one is not ready until its process has
    /// started; with `attempts` > 0 that start runs in the background (the
    /// pool's first workers are started by `ProcessPool::start` instead).
    pub(super) fn add_worker(
        self: &Arc<Self>,
        state: &mut PoolState,
        attempts: u32,
    ) -> (String, Arc<Backend>) {
        let id = format!("worker-{}", state.next_worker);
        state.next_worker += 1;
        let backend = Arc::new((self.factory)(&id));
        let log = self.base_log.named(&format!("ProcessWorker:{id}"));
        let ready = !backend.is_persistent();
        log.debug(format_args!("created"));
        state.slots.push(Slot {
            worker: ProcessWorker::new(id.clone()),
            backend: backend.clone(),
            log,
            ready,
            gone: CancelToken::default(),
        });
        if !ready && attempts > 0 {
            let (shared, id, backend) = (self.clone(), id.clone(), backend.clone());
            self.track(async move {
                let _ = shared.start_worker(id, backend, attempts).await;
            });
        }
        (id, backend)
    }

    /// Starts a persistent worker's process, retrying with a growing pause.
    /// On success the worker becomes ready and takes work; on failure it is
    /// removed, and if no worker is left the queue fails with the error.
    pub(super) async fn start_worker(
        self: Arc<Self>,
        id: String,
        backend: Arc<Backend>,
        attempts: u32,
    ) -> Result<(), WhisperError> {
        let mut attempt = 1;
        let result = loop {
            match backend.start().await {
                Ok(()) => break Ok(()),
                Err(e) if attempt < attempts && self.lock().accepting => {
                    self.log
                        .warn(format_args!("{id} failed to start ({e}); retrying"));
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => break Err(e),
            }
        };
        match self.settle_start(&id, &backend, &result, attempts) {
            AfterStart::Serve(assignments) => self.spawn_all(assignments),
            AfterStart::Unneeded => backend.stop().await,
            AfterStart::Fail(jobs) => {
                let error = result.clone().expect_err("only failures fail jobs");
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
        result
    }

    /// Bookkeeping after a start attempt, under the lock.
    fn settle_start(
        self: &Arc<Self>,
        id: &str,
        backend: &Arc<Backend>,
        result: &Result<(), WhisperError>,
        attempts: u32,
    ) -> AfterStart {
        let mut state = self.lock();
        let accepting = state.accepting;
        match (result, state.slot_mut(id)) {
            (Ok(()), Some(slot)) if accepting => {
                slot.ready = true;
                slot.worker.set_pid(backend.pid());
                slot.worker.set_loaded(true);
                slot.log.info(format_args!(
                    "ready: whisper-server pid {} has the model loaded",
                    backend.pid().unwrap_or(0)
                ));
                let gone = slot.gone.clone();
                self.spawn_monitor(id.to_owned(), backend.clone(), gone);
                AfterStart::Serve(self.dispatch(&mut state))
            }
            // Removed or shutting down while it started: it is not needed.
            (Ok(()), _) => AfterStart::Unneeded,
            (Err(e), _) => {
                self.log.error(format_args!("{id} could not start: {e}"));
                state.slots.retain(|s| s.worker.id() != id);
                state.last_error = Some(e.to_string());
                if state.slots.is_empty() && attempts > 1 {
                    state.totals.failed += state.queue.len() as u64;
                    AfterStart::Fail(state.queue.drain(..).collect())
                } else {
                    AfterStart::Fail(Vec::new())
                }
            }
        }
    }

    /// Watches a ready persistent worker: its process exiting, or (while it
    /// is idle) failing health checks, retires it.
    fn spawn_monitor(self: &Arc<Self>, id: String, backend: Arc<Backend>, gone: CancelToken) {
        let shared = self.clone();
        let interval = self.config.health_interval;
        self.runtime.spawn(async move {
            let mut failures = 0;
            let reason = loop {
                tokio::select! {
                    _ = gone.cancelled() => return,
                    detail = backend.exited() => break detail,
                    _ = tokio::time::sleep(interval) => {}
                }
                // A busy server is watched by its request's timeout instead.
                if shared.is_processing(&id) || backend.health_check().await {
                    failures = 0;
                    continue;
                }
                failures += 1;
                if failures >= UNHEALTHY_AFTER {
                    break format!("whisper-server failed {failures} health checks in a row");
                }
            };
            shared.retire_idle(&id, &reason);
        });
    }

    fn is_processing(&self, id: &str) -> bool {
        let mut state = self.lock();
        state
            .slot_mut(id)
            .is_some_and(|s| s.worker.state() == WorkerState::Processing)
    }

    /// Replaces an idle worker whose process died or hung. A busy one is left
    /// to its request, which fails and retires it.
    fn retire_idle(self: &Arc<Self>, id: &str, reason: &str) {
        let mut state = self.lock();
        let Some(slot) = state.slot_mut(id) else {
            return;
        };
        if slot.worker.state() == WorkerState::Processing || slot.worker.is_retiring() {
            return;
        }
        slot.log.warn(format_args!("{reason}; replacing it"));
        slot.worker.retire(Retirement::Failure);
        state.last_error = Some(format!("{id}: {reason}"));
        self.replace_retired(&mut state);
        let assignments = self.dispatch(&mut state);
        drop(state);
        self.spawn_all(assignments);
    }

    /// Swaps every retired worker that is not busy for a new one, and ends the
    /// retired one's process.
    pub(super) fn replace_retired(self: &Arc<Self>, state: &mut PoolState) {
        let before = state.slots.len();
        let (retired, kept): (Vec<Slot>, Vec<Slot>) = std::mem::take(&mut state.slots)
            .into_iter()
            .partition(|s| s.worker.is_retiring() && s.worker.state() != WorkerState::Processing);
        state.slots = kept;
        for mut slot in retired {
            let why = slot.worker.retirement();
            slot.worker.terminate();
            slot.gone.cancel(CancelReason::Shutdown);
            let backend = slot.backend.clone();
            self.track(async move { backend.stop().await });
            let id = slot.worker.id();
            match why {
                _ if !state.accepting => {}
                Some(Retirement::Failure) => {
                    state.totals.replaced_workers += 1;
                    self.log.warn(format_args!("replacing {id}"));
                }
                Some(Retirement::Recycle) => {
                    state.totals.recycled_workers += 1;
                    self.log.info(format_args!("recycling {id}"));
                }
                _ => self.log.info(format_args!("replacing {id}")),
            }
        }
        if state.accepting {
            for _ in state.slots.len()..before.max(self.config.pool_size) {
                self.add_worker(state, REPLACEMENT_START_ATTEMPTS);
            }
        }
    }

    /// Retires a worker that has served `maxRequestsPerWorker` requests.
    pub(super) fn recycle_if_worn(&self, state: &mut PoolState, id: &str) {
        let Some(max) = self.config.max_requests_per_worker else {
            return;
        };
        if let Some(slot) = state.slot_mut(id) {
            if slot.worker.served() >= max {
                slot.worker.retire(Retirement::Recycle);
            }
        }
    }

    /// Ends every worker's process (shutdown). Returns when all are reaped.
    pub(super) async fn stop_all(self: &Arc<Self>) {
        let backends: Vec<Arc<Backend>> = {
            let mut state = self.lock();
            state
                .slots
                .iter_mut()
                .map(|s| {
                    s.worker.terminate();
                    s.gone.cancel(CancelReason::Shutdown);
                    s.backend.clone()
                })
                .collect()
        };
        for backend in backends {
            self.track(async move { backend.stop().await });
        }
        self.wait_for_tasks().await;
    }

    pub(super) async fn wait_for_tasks(&self) {
        self.changed
            .wait_until(|| self.tasks.load(Ordering::SeqCst) == 0)
            .await;
    }
}
