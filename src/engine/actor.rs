//! The engine's one task. It takes commands in the order they were made and
//! runs them in that order, so that `initialize(); shutdown()` ends with
//! nothing running, and a status call sees every transcribe() before it.
//!
//! initialize() and restart() are long (servers load their models): while
//! one is under way, requests are admitted to the pool (they wait for its
//! workers), status is answered, a later initialize() joins it, a restart()
//! waits its turn, and a shutdown() overtakes it: it ends what was started,
//! and the overtaken calls resolve once nothing runs.

use super::status::EngineStatus;
use super::LiveSetup;
use super::Shared;
use crate::audio;
use crate::backend::program::{FindProgram, VadService};
use crate::backend::{self, Request, Threads};
use crate::cancel::CancelToken;
use crate::error::{display_path, Result, WhisperError};
use crate::events::{Event, EventSink};
use crate::locate::Located;
use crate::log::{LogLevel, Logger};
use crate::model;
use crate::observe::Observer;
use crate::options::{available_cpus, BackendKind, EngineOptions, TranscribeOptions};
use crate::pool::{Job, Pool, PoolConfig, QueueStatus, Reply, WorkerStatus};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A file check that takes longer than this (a hung network file system)
/// rejects its request instead of holding up the ones behind it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Admission {
    pub request_id: String,
    pub input: audio::Input,
    pub options: TranscribeOptions,
    pub observer: Option<Arc<Observer>>,
    pub cancel: CancelToken,
    pub reply: oneshot::Sender<Reply>,
}

pub(super) enum Command {
    Initialize(oneshot::Sender<Result<()>>),
    Restart(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<Result<()>>),
    Transcribe(Admission),
    Snapshot(oneshot::Sender<Snapshot>),
    Live(oneshot::Sender<Result<LiveSetup>>),
}

pub(super) struct Snapshot {
    pub status: EngineStatus,
    pub workers: Vec<WorkerStatus>,
    pub queue: QueueStatus,
}

enum Phase {
    Created,
    Running(Running),
    /// Keeps the last pool so that status still shows its terminated workers.
    ShutDown(Option<Pool>),
}

struct Running {
    pool: Pool,
    model_bytes: u64,
    program: Located,
    threads: Threads,
    /// The voice activity detector, when there is a VAD model.
    vad: Option<Arc<VadService>>,
}

impl Running {
    /// Ends every process: the pool's and the detector's.
    async fn shut_down(&self) {
        self.pool.shutdown().await;
        if let Some(vad) = &self.vad {
            vad.shut_down().await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Initialize,
    Restart,
}

/// An initialize() or restart() under way: the pool's readiness, and the
/// callers waiting for it.
struct InFlight {
    kind: Lifecycle,
    done: Pin<Box<dyn Future<Output = Result<()>> + Send>>,
    waiters: Vec<oneshot::Sender<Result<()>>>,
}

pub(super) struct Actor {
    commands: mpsc::UnboundedReceiver<Command>,
    /// The options as the caller gave them...
    requested: Arc<EngineOptions>,
    /// ...and as the running engine uses them (the default backend may have
    /// fallen back to 'cli').
    options: Arc<EngineOptions>,
    log: Logger,
    base_log: Logger,
    events: EventSink,
    shared: Arc<Shared>,
    phase: Phase,
    in_flight: Option<InFlight>,
    /// Lifecycle calls waiting for the one under way, in order.
    deferred: VecDeque<(Lifecycle, oneshot::Sender<Result<()>>)>,
}

async fn poll_in_flight(in_flight: &mut Option<InFlight>) -> Result<()> {
    match in_flight {
        Some(f) => f.done.as_mut().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    pub fn new(
        commands: mpsc::UnboundedReceiver<Command>,
        options: Arc<EngineOptions>,
        base_log: Logger,
        events: EventSink,
        shared: Arc<Shared>,
    ) -> Self {
        Actor {
            commands,
            requested: options.clone(),
            options,
            log: base_log.named("PersistentWhisperEngine"),
            base_log,
            events,
            shared,
            phase: Phase::Created,
            in_flight: None,
            deferred: VecDeque::new(),
        }
    }

    pub async fn run(mut self) {
        loop {
            tokio::select! {
                result = poll_in_flight(&mut self.in_flight) => {
                    let done = self.in_flight.take().expect("polled one");
                    self.settle_lifecycle(done, result).await;
                    while self.in_flight.is_none() {
                        match self.deferred.pop_front() {
                            Some((Lifecycle::Initialize, reply)) => self.initialize(reply).await,
                            Some((Lifecycle::Restart, reply)) => self.restart(reply).await,
                            None => break,
                        }
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    // The engine is gone: so are its processes.
                    None => {
                        if let Phase::Running(r) = &self.phase {
                            r.shut_down().await;
                        }
                        return;
                    }
                },
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Transcribe(admission) => self.admit(admission).await,
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::Initialize(reply) => {
                let under_way = self.in_flight.as_ref().map(|f| f.kind);
                match under_way {
                    // Nothing waits in between: this one joins the one under way.
                    Some(Lifecycle::Initialize) if self.deferred.is_empty() => {
                        if let Some(f) = self.in_flight.as_mut() {
                            f.waiters.push(reply);
                        }
                    }
                    Some(_) => self.deferred.push_back((Lifecycle::Initialize, reply)),
                    None => self.initialize(reply).await,
                }
            }
            Command::Restart(reply) => {
                if self.in_flight.is_some() {
                    self.deferred.push_back((Lifecycle::Restart, reply));
                } else {
                    self.restart(reply).await;
                }
            }
            Command::Shutdown(reply) => self.shutdown(reply).await,
            Command::Live(reply) => {
                let _ = reply.send(self.live_setup());
            }
        }
    }

    /// Finds the program and checks the model (file work, off this thread),
    /// proves the program starts, and starts the pool.
    async fn initialize(&mut self, reply: oneshot::Sender<Result<()>>) {
        if matches!(self.phase, Phase::Running(_)) {
            let _ = reply.send(Ok(()));
            return;
        }
        let started = start_pool(
            self.requested.clone(),
            &self.log,
            self.base_log.clone(),
            self.events.clone(),
        )
        .await;
        match started {
            Ok((running, options)) => {
                self.options = options;
                let pool = running.pool.clone();
                self.shared.set_pool(Some(pool.clone()));
                self.phase = Phase::Running(running);
                self.in_flight = Some(InFlight {
                    kind: Lifecycle::Initialize,
                    done: Box::pin(async move { pool.ready().await }),
                    waiters: vec![reply],
                });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn restart(&mut self, reply: oneshot::Sender<Result<()>>) {
        let pool = match &self.phase {
            Phase::Running(r) => r.pool.clone(),
            _ => return self.initialize(reply).await,
        };
        // The model may be gone since the start: say so, naming it.
        let model_path = self.options.model_path.clone();
        if let Err(e) = off_thread(move || model::check_model(&model_path)).await {
            let _ = reply.send(Err(e));
            return;
        }
        self.log.info(format_args!("restarting"));
        self.in_flight = Some(InFlight {
            kind: Lifecycle::Restart,
            done: Box::pin(async move { pool.restart().await }),
            waiters: vec![reply],
        });
    }

    async fn settle_lifecycle(&mut self, done: InFlight, result: Result<()>) {
        match (&result, done.kind) {
            (Ok(()), Lifecycle::Initialize) => self.log_initialized(),
            (Err(e), Lifecycle::Initialize) => {
                self.log.error(format_args!("initialize() failed: {e}"));
                if let Phase::Running(r) = std::mem::replace(&mut self.phase, Phase::Created) {
                    r.shut_down().await;
                }
                self.shared.set_pool(None);
            }
            (Err(e), Lifecycle::Restart) => self.log.error(format_args!("restart() failed: {e}")),
            (Ok(()), Lifecycle::Restart) => self.log.info(format_args!("restarted")),
        }
        for waiter in done.waiters {
            let _ = waiter.send(result.clone());
        }
    }

    fn log_initialized(&self) {
        let o = &self.options;
        let Phase::Running(r) = &self.phase else {
            return;
        };
        let cpus = available_cpus();
        if let Threads::Fixed(threads) = r.threads {
            if o.threads.is_some() && o.max_workers * threads > cpus {
                self.log.log(
                    LogLevel::Warn,
                    format_args!(
                        "{} workers x {threads} threads = {} threads on {cpus} cores: concurrent requests share cores",
                        o.max_workers,
                        o.max_workers * threads
                    ),
                );
            }
        }
        self.log.info(format_args!(
            "initialized: {}..{} {} workers, {} with model {}",
            o.min_workers,
            o.max_workers,
            o.backend.kind().as_str(),
            display_path(&r.program.path),
            display_path(&o.model_path)
        ));
    }

    /// Overtakes any initialize() or restart() under way or waiting: they
    /// resolve once everything they started has ended.
    async fn shutdown(&mut self, reply: oneshot::Sender<Result<()>>) {
        let mut overtaken: Vec<_> = self.in_flight.take().map(|f| f.waiters).unwrap_or_default();
        overtaken.extend(self.deferred.drain(..).map(|(_, reply)| reply));
        let result = match std::mem::replace(&mut self.phase, Phase::ShutDown(None)) {
            Phase::Running(r) => {
                self.log.info(format_args!("shutting down"));
                self.phase = Phase::ShutDown(Some(r.pool.clone()));
                self.shared.set_pool(None);
                r.shut_down().await;
                self.log.info(format_args!("shut down"));
                Ok(())
            }
            Phase::Created => Ok(()),
            Phase::ShutDown(last) => {
                self.phase = Phase::ShutDown(last);
                Err(WhisperError::Shutdown {
                    reason: "the engine is already shut down",
                })
            }
        };
        for waiter in overtaken {
            let _ = waiter.send(Ok(()));
        }
        let _ = reply.send(result);
    }

    /// What a live session needs from the running engine.
    fn live_setup(&self) -> Result<LiveSetup> {
        let running = match &self.phase {
            Phase::Running(r) => r,
            Phase::Created => {
                return Err(WhisperError::NotInitialized { action: "listen()" });
            }
            Phase::ShutDown(_) => return Err(WhisperError::shutdown()),
        };
        let vad = running
            .vad
            .clone()
            .ok_or_else(|| model::no_vad_model(&self.options.model_path))?;
        Ok(LiveSetup {
            vad,
            language: self.options.language.clone(),
            decoding: self.options.extra.decoding.clone(),
        })
    }

    /// Checks the file (off this thread, bounded in time) and hands the
    /// request to the pool, or rejects it.
    async fn admit(&mut self, a: Admission) {
        let Admission {
            request_id,
            input,
            options,
            observer,
            cancel,
            reply,
        } = a;
        let refuse = |events: &EventSink, error: WhisperError, reply: oneshot::Sender<Reply>| {
            events(Event::RequestFailed {
                request_id: request_id.clone(),
                worker_id: None,
                error: error.clone(),
            });
            let _ = reply.send(Err(error));
        };
        let (pool, model_bytes) = match &self.phase {
            Phase::Running(r) => (r.pool.clone(), r.model_bytes),
            Phase::Created => {
                let error = WhisperError::NotInitialized {
                    action: "transcribe()",
                };
                return refuse(&self.events, error, reply);
            }
            Phase::ShutDown(_) => return refuse(&self.events, WhisperError::shutdown(), reply),
        };
        let audio = if cancel.is_cancelled() {
            // Aborted while it waited for its check: the pool counts it and says so.
            Ok(input.unchecked())
        } else {
            let what = input.describe();
            let limits = self.options.limits;
            // The worker program reads only what the bytes hold; whisper-cli
            // and whisper-server size their buffers by the header's claim.
            let claims = match self.options.backend.kind() {
                BackendKind::Worker => audio::Claims::Ignored,
                BackendKind::Cli | BackendKind::Server => audio::Claims::Trusted,
            };
            match tokio::time::timeout(
                CHECK_TIMEOUT,
                off_thread(move || input.check(&limits, claims)),
            )
            .await
            {
                Ok(checked) => checked,
                Err(_) => Err(WhisperError::AudioUnreadable {
                    path: what,
                    reason: format!(
                        "its file system did not answer within {} s",
                        CHECK_TIMEOUT.as_secs()
                    ),
                }),
            }
        };
        let audio = match audio {
            Ok(audio) => audio,
            Err(e) => return refuse(&self.events, e, reply),
        };
        let decoding = match request_decoding(&self.options, &options) {
            Ok(decoding) => decoding,
            Err(e) => return refuse(&self.events, e, reply),
        };
        let contention = super::contention(&self.options, available_cpus());
        // A software renderer (lavapipe, chosen only where
        // GGML_VK_VISIBLE_DEVICES names it) is many times slower than the CPU.
        let slowdown = match pool.device() {
            Some((device, _)) if device.is_software() => {
                persistent_whisper_protocol::device::SOFTWARE_RENDERER_SLOWDOWN
            }
            _ => 1,
        };
        let timeout = options.timeout.or(self.options.timeout).unwrap_or_else(|| {
            super::default_timeout(audio.duration, model_bytes, contention) * slowdown
        });
        pool.submit(Job {
            request: Request {
                id: request_id.clone(),
                audio,
                language: options
                    .language
                    .unwrap_or_else(|| self.options.language.clone()),
                threads: 0,
                live_threads: None,
                observer,
                decoding,
            },
            priority: options.priority,
            timeout,
            cancel,
            reply,
        });
    }

    fn snapshot(&self) -> Snapshot {
        let (pool, running) = match &self.phase {
            Phase::Running(r) => (Some(&r.pool), Some(r)),
            Phase::ShutDown(last) => (last.as_ref(), None),
            Phase::Created => (None, None),
        };
        let stats = pool.map(Pool::stats);
        let initializing = matches!(&self.in_flight, Some(f) if f.kind == Lifecycle::Initialize);
        let threads = running.map_or_else(
            || match self.options.threads {
                Some(n) => Threads::Fixed(n),
                None => Threads::Budget {
                    cores: available_cpus(),
                },
            },
            |r| r.pool.threads(),
        );
        Snapshot {
            status: EngineStatus::new(
                running.is_some(),
                running.is_some() && !initializing,
                stats,
                self.options.backend.kind().as_str(),
                threads,
                running.map(|r| r.program.clone()),
                pool.and_then(Pool::whisper_features),
            )
            .with_device(pool.and_then(Pool::device)),
            workers: pool.map(Pool::worker_statuses).unwrap_or_default(),
            queue: pool.map(Pool::queue_status).unwrap_or(QueueStatus {
                queue_length: 0,
                max_queue_size: self.options.max_queue_size,
                queued_requests: Vec::new(),
                processing_requests: Vec::new(),
            }),
        }
    }
}

/// Checks the model (file work, off the runtime's threads), prepares the
/// backend (its program found and proven to start; backend/), and starts the
/// pool. Returns the options it runs with: 'cli' after the default
/// backend's fallback.
async fn start_pool(
    options: Arc<EngineOptions>,
    log: &Logger,
    base_log: Logger,
    events: EventSink,
) -> Result<(Running, Arc<EngineOptions>)> {
    let path = options.model_path.clone();
    let model_bytes = off_thread(move || model::check_model(&path)).await?;
    let options = with_vad_model(options).await?;
    let backend::Prepared {
        options,
        program,
        factory,
    } = backend::prepare(options, model_bytes, log, &events).await?;
    let o = &options;
    let threads = factory.threads();
    let config = PoolConfig {
        min_workers: o.min_workers,
        max_workers: o.max_workers,
        idle_timeout: o.idle_timeout,
        max_queue_size: o.max_queue_size,
        max_consecutive_failures: o.max_consecutive_failures,
        health_interval: o.backend.health_check_interval(),
        max_requests_per_worker: o.max_requests_per_worker,
    };
    let pool = Pool::new(config, factory, &base_log, events);
    let vad = options.vad_model.clone().map(|model| {
        let find: FindProgram = match o.backend.kind() {
            BackendKind::Worker => {
                let path = program.path.clone();
                Box::new(move || Ok(path.clone()))
            }
            _ => {
                let o = options.clone();
                Box::new(move || backend::locate_worker(&o).map(|l| l.path))
            }
        };
        Arc::new(VadService::new(find, model))
    });
    let running = Running {
        pool,
        model_bytes,
        program,
        threads,
        vad,
    };
    Ok((running, options))
}

/// The options with the Silero VAD model found (named, or beside the
/// whisper model), so that every backend starts able to skip silence.
async fn with_vad_model(options: Arc<EngineOptions>) -> Result<Arc<EngineOptions>> {
    let named = options.vad_model.clone();
    let whisper_model = options.model_path.clone();
    let found = off_thread(move || model::find_vad_model(named.as_deref(), &whisper_model)).await?;
    if found == options.vad_model {
        return Ok(options);
    }
    let mut options = (*options).clone();
    options.vad_model = found;
    Ok(Arc::new(options.finish()?))
}

/// A request's decoding settings when they are not the engine's: its own
/// (live dictation's partials), or the engine's with voice activity
/// detection on (`vad: true`), which needs a VAD model.
fn request_decoding(
    engine: &EngineOptions,
    request: &TranscribeOptions,
) -> Result<Option<Arc<crate::decoding::Decoding>>> {
    if let Some(own) = &request.decoding {
        return Ok(Some(own.clone()));
    }
    if !request.vad || engine.extra.decoding.vad {
        return Ok(None);
    }
    if engine.extra.decoding.vad_model.is_empty() {
        return Err(model::no_vad_model(&engine.model_path));
    }
    let mut decoding = engine.extra.decoding.clone();
    decoding.vad = true;
    Ok(Some(Arc::new(decoding)))
}

/// Blocking file work on tokio's blocking threads.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(WhisperError::NoWorker {
            detail: format!("a file check panicked: {e}"),
        })
    })
}
