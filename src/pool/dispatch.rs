//! Matching queued jobs with ready workers (sharing out the cores), and
//! running them; settle.rs takes it from there.

use super::record::{Attempts, Busy};
use super::state::{PoolState, Queued};
use super::{Reply, Shared};
use crate::backend::{Backend, Threads};
use crate::cancel::CancelReason;
use crate::log::Logger;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

pub(super) struct Assignment {
    backend: Arc<Backend>,
    worker_id: String,
    log: Logger,
    queued: Queued,
}

/// A job that ran on a worker: the reply sender is None once answered early.
pub(super) struct OnWorker {
    pub queued: Queued,
    pub reply: Option<oneshot::Sender<Reply>>,
    pub worker_id: String,
    pub log: Logger,
    pub queue_time: Duration,
    pub processing_time: Duration,
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
                .threads()
                .for_request(state.threads_in_use(), starting);
            queued.job.request.threads = threads;
            let worker = &mut state.workers[i];
            let live_threads = (self.factory.threads().is_budget()
                && worker.backend.adjusts_threads())
            .then(|| {
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
                pid: None,
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
        let Threads::Budget { cores } = self.factory.threads() else {
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
            if let Some(b) = self
                .lock()
                .worker_mut(&worker_id)
                .and_then(|w| w.busy_mut())
            {
                b.pid = pid;
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
}
