//! The engine: what JavaScript calls. Every call becomes a command, sent at
//! once (so calls take effect in the order they were made) to one task that
//! runs them in that order (actor.rs). File checks happen there, off the JS
//! thread; status reflects every call made before it.

mod actor;
mod status;

pub use status::EngineStatus;

use crate::audio::Input;
use crate::cancel::{CancelReason, CancelToken};
use crate::error::{Result, WhisperError};
use crate::events::EventSink;
use crate::log::{LogSink, Logger};
use crate::observe::Observer;
use crate::options::{EngineOptions, TranscribeOptions};
use crate::pool::{Pool, QueueStatus, Reply, WorkerStatus};
use actor::{Actor, Command, Snapshot};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Default timeout: this much for starting up (a large model loads from a cold
/// disk in seconds)...
const TIMEOUT_BASE: Duration = Duration::from_secs(30);
/// ...plus the audio's duration times (model size / this), at least twice. tiny.en
/// (78 MB) gets 3x, base 6x, small 19x, medium 61x, large 124x: about ten times
/// the slowest rate measured with one thread per worker, so a real transcription
/// is never killed while a hung worker is still caught.
const MODEL_BYTES_PER_REALTIME_FACTOR: f64 = 25_000_000.0;

/// The default timeout of a request with `audio` of it, on a model of
/// `model_bytes`, in a pool where up to `contention` times as many threads
/// as cores may run at once (every worker busy): a decode that shares its
/// cores is slower by that much, and must not be killed for it.
pub fn default_timeout(audio: Duration, model_bytes: u64, contention: f64) -> Duration {
    let factor = (model_bytes as f64 / MODEL_BYTES_PER_REALTIME_FACTOR).max(2.0);
    TIMEOUT_BASE + audio.mul_f64(factor * contention.max(1.0))
}

/// How far the pool may oversubscribe the cores when every worker is busy:
/// `maxWorkers` requests of at least one thread each (the budget's floor),
/// or of `threads` each when fixed; whisper-server's threads are fixed at
/// every core unless `threads` says otherwise.
pub fn contention(o: &EngineOptions, cores: usize) -> f64 {
    let per_request = match (o.threads, o.backend.kind()) {
        (Some(n), _) => n,
        (None, crate::options::BackendKind::Server) => cores,
        (None, _) => 1,
    };
    ((o.max_workers * per_request) as f64 / cores.max(1) as f64).max(1.0)
}

/// What the engine's handles share with its actor.
struct Shared {
    next_request: AtomicU64,
    /// The running pool, for aborts, which must not wait in line.
    pool: Mutex<Option<Pool>>,
}

impl Shared {
    fn pool(&self) -> Option<Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_pool(&self, pool: Option<Pool>) {
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = pool;
    }
}

/// What a live session needs from the running engine.
pub struct LiveSetup {
    pub vad: Arc<crate::backend::program::VadService>,
    pub language: String,
    /// The engine's decoding settings (finals use them; partials a quicker variant).
    pub decoding: crate::decoding::Decoding,
}

#[derive(Clone)]
pub struct Engine {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

/// A submitted request: await `reply`; `abort()` cancels it.
pub struct Submitted {
    pub request_id: String,
    pub reply: oneshot::Receiver<Reply>,
    abort: AbortHandle,
}

impl Submitted {
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    /// The reply; ERR_SHUTDOWN if the engine went away without one.
    pub async fn settle(self) -> Reply {
        self.reply
            .await
            .unwrap_or_else(|_| Err(WhisperError::shutdown()))
    }
}

/// Cancels one request wherever it is: waiting for its file check, queued,
/// or running.
#[derive(Clone)]
pub struct AbortHandle {
    request_id: String,
    cancel: CancelToken,
    shared: Arc<Shared>,
}

impl AbortHandle {
    pub fn abort(&self) {
        self.cancel.cancel(CancelReason::Aborted);
        if let Some(pool) = self.shared.pool() {
            pool.abort(&self.request_id);
        }
    }
}

impl Engine {
    /// Starts the engine's task on `runtime`. Nothing else starts until
    /// initialize().
    pub fn new(
        options: EngineOptions,
        runtime: &tokio::runtime::Handle,
        log_sink: Option<LogSink>,
        events: EventSink,
    ) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            next_request: AtomicU64::new(1),
            pool: Mutex::new(None),
        });
        let base_log = Logger::new(options.log_level, log_sink);
        let actor = Actor::new(rx, Arc::new(options), base_log, events, shared.clone());
        runtime.spawn(actor.run());
        Engine { commands, shared }
    }

    /// Sends a command whose answer comes back on a oneshot channel.
    fn ask<T: Send + 'static>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
        gone: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(command(tx));
        async move { rx.await.unwrap_or_else(|_| gone()) }
    }

    /// Checks the program and the model, then starts the workers. Harmless
    /// when already running.
    pub fn initialize(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.ask(Command::Initialize, || Err(WhisperError::shutdown()))
    }

    /// Replaces every worker, keeping queued requests; running ones start
    /// over. On an engine that is not running, this initializes it.
    pub fn restart(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.ask(Command::Restart, || Err(WhisperError::shutdown()))
    }

    /// Rejects queued requests, ends every worker process, and stops
    /// accepting. A second shutdown() rejects with ERR_SHUTDOWN.
    pub fn shutdown(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.ask(Command::Shutdown, || Ok(()))
    }

    /// Queues a request for `input`. Its checks and queueing happen in order
    /// with every other call; the reply says how it went.
    pub fn transcribe(&self, input: impl Into<Input>, options: TranscribeOptions) -> Submitted {
        self.transcribe_observed(input.into(), options, None)
    }

    /// As transcribe(); `observer` gets the request's progress and
    /// segments, all of them before the reply.
    pub fn transcribe_observed(
        &self,
        input: Input,
        options: TranscribeOptions,
        observer: Option<Arc<Observer>>,
    ) -> Submitted {
        let request_id = format!(
            "req-{}",
            self.shared.next_request.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, reply) = oneshot::channel();
        let cancel = CancelToken::default();
        let _ = self.commands.send(Command::Transcribe(actor::Admission {
            request_id: request_id.clone(),
            input,
            options,
            observer,
            cancel: cancel.clone(),
            reply: tx,
        }));
        Submitted {
            abort: AbortHandle {
                request_id: request_id.clone(),
                cancel,
                shared: self.shared.clone(),
            },
            request_id,
            reply,
        }
    }

    fn snapshot<T: Send + 'static>(
        &self,
        pick: impl FnOnce(Snapshot) -> T + Send + 'static,
        gone: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Snapshot(tx));
        async move { rx.await.map(pick).unwrap_or_else(|_| gone()) }
    }

    /// What a live session needs: the voice activity detector and the
    /// engine's settings; ERR_NOT_INITIALIZED before initialize(), and
    /// ERR_MODEL_LOAD without a VAD model.
    pub fn live_setup(&self) -> impl Future<Output = Result<LiveSetup>> + Send + 'static {
        self.ask(Command::Live, || Err(WhisperError::shutdown()))
    }

    pub fn status(&self) -> impl Future<Output = EngineStatus> + Send + 'static {
        self.snapshot(|s| s.status, EngineStatus::gone)
    }

    pub fn worker_statuses(&self) -> impl Future<Output = Vec<WorkerStatus>> + Send + 'static {
        self.snapshot(|s| s.workers, Vec::new)
    }

    pub fn queue_status(&self) -> impl Future<Output = QueueStatus> + Send + 'static {
        self.snapshot(
            |s| s.queue,
            || QueueStatus {
                queue_length: 0,
                max_queue_size: 0,
                queued_requests: Vec::new(),
                processing_requests: Vec::new(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timeout_grows_with_audio_and_model() {
        let tiny = 77_704_715;
        let t = default_timeout(Duration::from_secs(10), tiny, 1.0);
        assert!(
            t > Duration::from_secs(60) && t < Duration::from_secs(62),
            "{t:?}"
        );
        let large = 3_095_033_483;
        let hour = default_timeout(Duration::from_secs(3600), large, 1.0);
        assert!(hour > Duration::from_secs(3600 * 100), "{hour:?}");
        // Tiny files still get the start-up allowance.
        assert_eq!(default_timeout(Duration::ZERO, tiny, 1.0), TIMEOUT_BASE);
    }

    #[test]
    fn a_pool_that_can_oversubscribe_the_cores_gives_each_request_that_much_longer() {
        use crate::options::BackendKind;
        let o = |workers: usize, backend, threads| {
            let mut o = EngineOptions::new("m.bin").with_pool_size(workers);
            o.backend = crate::options::BackendOptions::default_for(backend);
            o.threads = threads;
            o
        };
        // The adversarial run: 64 workers on 2 cores, 64 requests at once.
        let big = o(64, BackendKind::Worker, None);
        assert_eq!(contention(&big, 2), 32.0);
        let clip = Duration::from_millis(3300);
        let tiny = 77_704_715;
        // Each decode gets 1/32 of a core: 3.3 s of audio may take ~32 x 1.25 s.
        assert!(default_timeout(clip, tiny, contention(&big, 2)) > Duration::from_secs(32 * 2));
        assert_eq!(
            contention(&o(3, BackendKind::Worker, None), 8),
            1.0,
            "no oversubscription"
        );
        assert_eq!(contention(&o(3, BackendKind::Cli, Some(2)), 2), 3.0);
        assert_eq!(
            contention(&o(3, BackendKind::Server, None), 2),
            3.0,
            "every core per server"
        );
    }
}
