//! Engine: lifecycle (initialize / shutdown / restart), request admission and status.

use crate::audio;
use crate::backend::server::{ServerBackend, ServerConfig};
use crate::backend::{cli::CliBackend, Backend, Request};
use crate::cancel::CancelToken;
use crate::error::{display_path, Result, WhisperError};
use crate::locate::{self, Located};
use crate::log::{LogLevel, LogSink, Logger};
use crate::model;
use crate::options::{available_cpus, BackendKind, EngineOptions, TranscribeOptions};
use crate::pool::{BackendFactory, PoolConfig, PoolStats, ProcessPool, QueueStatus, Reply};
use crate::worker::WorkerStatus;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Default timeout: this much for starting up (a large model loads from a cold
/// disk in seconds)...
const TIMEOUT_BASE: Duration = Duration::from_secs(30);
/// ...plus the audio's duration times (model size / this), at least twice. tiny.en
/// (78 MB) gets 3x, base 6x, small 19x, medium 61x, large 124x: about ten times
/// the slowest rate measured with one thread per worker, so a real transcription
/// is never killed while a hung worker is still caught.
const MODEL_BYTES_PER_REALTIME_FACTOR: f64 = 25_000_000.0;

fn program_kind(backend: BackendKind) -> &'static locate::Program {
    match backend {
        BackendKind::Cli => &locate::WHISPER_CLI,
        BackendKind::Server => &locate::WHISPER_SERVER,
    }
}

pub fn default_timeout(audio: Duration, model_bytes: u64) -> Duration {
    let factor = (model_bytes as f64 / MODEL_BYTES_PER_REALTIME_FACTOR).max(2.0);
    TIMEOUT_BASE + audio.mul_f64(factor)
}

enum Phase {
    Created,
    Running(Running),
    /// Keeps the last pool so that status still shows its terminated workers.
    ShutDown(Option<ProcessPool>),
}

struct Running {
    pool: ProcessPool,
    model_bytes: u64,
    /// The whisper program the workers run, and where it was found.
    program: Located,
}

pub struct EngineStatus {
    pub is_running: bool,
    pub is_ready: bool,
    pub model_loaded: bool,
    pub requests_processed: u64,
    pub average_latency_ms: f64,
    pub last_error: Option<String>,
    pub pool_stats: Option<PoolStats>,
    pub worker_count: usize,
    pub available_workers: usize,
    pub pool_utilization: f64,
    pub backend: &'static str,
    pub threads_per_worker: usize,
    /// The whisper program the workers run, once initialized.
    pub program: Option<Located>,
}

/// A submitted request: await `reply`; `abort()` cancels it.
pub struct Submitted {
    pub request_id: String,
    pub reply: oneshot::Receiver<Reply>,
    abort: AbortHandle,
}

impl Submitted {
    pub fn abort(&self) -> bool {
        self.abort.abort()
    }

    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

/// Cancels one request: it leaves the queue, or its process is ended.
#[derive(Clone)]
pub struct AbortHandle {
    pool: ProcessPool,
    request_id: String,
}

impl AbortHandle {
    /// False when the request has already settled.
    pub fn abort(&self) -> bool {
        self.pool.abort(&self.request_id)
    }
}

pub struct Engine {
    options: EngineOptions,
    log: Logger,
    base_log: Logger,
    phase: Mutex<Phase>,
    /// Serialises initialize / shutdown / restart.
    lifecycle: tokio::sync::Mutex<()>,
    next_request: AtomicU64,
}

impl Engine {
    pub fn new(options: EngineOptions, sink: Option<LogSink>) -> Self {
        let base_log = Logger::new(options.log_level, sink);
        Engine {
            log: base_log.named("PersistentWhisperEngine"),
            base_log,
            options,
            phase: Mutex::new(Phase::Created),
            lifecycle: tokio::sync::Mutex::new(()),
            next_request: AtomicU64::new(1),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the binary and the model, then starts the pool. Harmless when
    /// already running.
    pub async fn initialize(&self) -> Result<()> {
        let _serial = self.lifecycle.lock().await;
        self.initialize_locked().await
    }

    async fn initialize_locked(&self) -> Result<()> {
        if matches!(*self.phase(), Phase::Running(_)) {
            return Ok(());
        }
        let o = &self.options;
        let model_bytes = model::check_model(&o.model_path)?;
        let (program, factory) = self.backend_factory(model_bytes)?;
        locate::probe(program_kind(o.backend), &program.path).await?;
        let config = PoolConfig {
            pool_size: o.pool_size,
            max_queue_size: o.max_queue_size,
            max_consecutive_failures: o.max_consecutive_failures,
            health_interval: o.health_check_interval,
            max_requests_per_worker: o.max_requests_per_worker,
        };
        let pool = ProcessPool::start(config, factory, &self.base_log).await?;
        let cpus = available_cpus();
        if o.pool_size * o.threads > cpus {
            let level = if o.threads_explicit {
                LogLevel::Warn
            } else {
                LogLevel::Info
            };
            self.log.log(
                level,
                format_args!(
                    "{} workers x {} threads = {} threads on {cpus} cores: concurrent requests share cores",
                    o.pool_size,
                    o.threads,
                    o.pool_size * o.threads
                ),
            );
        }
        self.log.info(format_args!(
            "initialized: {} {} workers x {} threads, {} with model {}",
            o.pool_size,
            o.backend.as_str(),
            o.threads,
            display_path(&program.path),
            display_path(&o.model_path)
        ));
        *self.phase() = Phase::Running(Running {
            pool,
            model_bytes,
            program,
        });
        Ok(())
    }

    /// The binary the workers run, and how to make each worker's backend.
    fn backend_factory(&self, model_bytes: u64) -> Result<(Located, BackendFactory)> {
        let o = &self.options;
        let places = locate::Places::of_this_process();
        match o.backend {
            BackendKind::Cli => {
                let program = locate::find(
                    &locate::WHISPER_CLI,
                    o.whisper_path.as_deref(),
                    None,
                    &places,
                )?;
                let cli = CliBackend {
                    program: program.path.clone(),
                    model: o.model_path.clone(),
                    threads: o.threads,
                    extra_args: o.extra_args.clone(),
                };
                Ok((program, Arc::new(move |_: &str| Backend::Cli(cli.clone()))))
            }
            BackendKind::Server => {
                // whisper-server beside the whisper-cli the caller named, if any.
                let cli = o
                    .whisper_path
                    .clone()
                    .or_else(|| (places.env)(locate::WHISPER_CLI.env_var).map(PathBuf::from));
                let program = locate::find(
                    &locate::WHISPER_SERVER,
                    o.server_path.as_deref(),
                    cli.as_deref(),
                    &places,
                )?;
                let config = Arc::new(ServerConfig {
                    program: program.path.clone(),
                    model: o.model_path.clone(),
                    model_bytes,
                    threads: o.threads,
                    server_args: o.server_args.clone(),
                    decoding: o.decoding.clone(),
                    base_port: o.base_port,
                    next_port_offset: AtomicU32::new(0),
                });
                Ok((
                    program,
                    Arc::new(move |_: &str| Backend::Server(ServerBackend::new(config.clone()))),
                ))
            }
        }
    }

    /// Validates and queues a request. Synchronous, so that status read right
    /// after it already shows the request.
    pub fn transcribe(&self, path: &str, options: TranscribeOptions) -> Result<Submitted> {
        let (pool, model_bytes) = match &*self.phase() {
            Phase::Running(r) => (r.pool.clone(), r.model_bytes),
            Phase::Created => {
                return Err(WhisperError::NotInitialized {
                    action: "transcribe()",
                })
            }
            Phase::ShutDown(_) => return Err(WhisperError::shutdown()),
        };
        let audio = audio::check(path)?;
        let timeout = options
            .timeout
            .or(self.options.timeout)
            .unwrap_or_else(|| default_timeout(audio.duration, model_bytes));
        let request_id = format!("req-{}", self.next_request.fetch_add(1, Ordering::Relaxed));
        let request = Request {
            id: request_id.clone(),
            audio,
            language: options
                .language
                .unwrap_or_else(|| self.options.language.clone()),
            timeout,
            priority: options.priority,
        };
        let reply = pool.submit(request, CancelToken::default())?;
        Ok(Submitted {
            abort: AbortHandle {
                pool,
                request_id: request_id.clone(),
            },
            request_id,
            reply,
        })
    }

    /// Rejects queued requests, ends every worker process, and stops accepting.
    /// A second shutdown() rejects with ERR_SHUTDOWN.
    pub async fn shutdown(&self) -> Result<()> {
        let _serial = self.lifecycle.lock().await;
        let pool = {
            let mut phase = self.phase();
            match &*phase {
                Phase::Running(r) => {
                    let pool = r.pool.clone();
                    *phase = Phase::ShutDown(Some(pool.clone()));
                    pool
                }
                Phase::Created => {
                    *phase = Phase::ShutDown(None);
                    return Ok(());
                }
                Phase::ShutDown(_) => {
                    return Err(WhisperError::Shutdown {
                        reason: "the engine is already shut down",
                    })
                }
            }
        };
        // transcribe() now sees ShutDown; the pool also refuses new work.
        self.log.info(format_args!("shutting down"));
        pool.shutdown().await;
        self.log.info(format_args!("shut down"));
        Ok(())
    }

    /// Replaces every worker, keeping queued requests; running ones start over.
    /// On an engine that is not running, this initializes it.
    pub async fn restart(&self) -> Result<()> {
        let _serial = self.lifecycle.lock().await;
        let pool = match &*self.phase() {
            Phase::Running(r) => Some(r.pool.clone()),
            _ => None,
        };
        match pool {
            Some(pool) => {
                self.log.info(format_args!("restarting"));
                pool.restart().await
            }
            None => self.initialize_locked().await,
        }
    }

    /// The running pool, or the last one after shutdown (for status).
    fn pool(&self) -> Option<ProcessPool> {
        match &*self.phase() {
            Phase::Running(r) => Some(r.pool.clone()),
            Phase::ShutDown(last) => last.clone(),
            Phase::Created => None,
        }
    }

    fn program(&self) -> Option<Located> {
        match &*self.phase() {
            Phase::Running(r) => Some(r.program.clone()),
            _ => None,
        }
    }

    fn is_running(&self) -> bool {
        matches!(*self.phase(), Phase::Running(_))
    }

    pub fn worker_statuses(&self) -> Vec<WorkerStatus> {
        self.pool().map(|p| p.worker_statuses()).unwrap_or_default()
    }

    pub fn queue_status(&self) -> QueueStatus {
        self.pool()
            .map(|p| p.queue_status())
            .unwrap_or(QueueStatus {
                queue_length: 0,
                max_queue_size: self.options.max_queue_size,
                queued_requests: Vec::new(),
                processing_requests: Vec::new(),
            })
    }

    pub fn status(&self) -> EngineStatus {
        let stats = self.pool().map(|p| p.stats());
        let running = self.is_running();
        EngineStatus {
            is_running: running,
            is_ready: running && stats.as_ref().is_some_and(|s| s.total_workers > 0),
            model_loaded: stats.as_ref().is_some_and(|s| s.loaded_workers > 0),
            requests_processed: stats.as_ref().map_or(0, |s| s.total_requests_processed),
            average_latency_ms: stats.as_ref().map_or(0.0, |s| s.average_latency_ms),
            last_error: stats.as_ref().and_then(|s| s.last_error.clone()),
            worker_count: stats.as_ref().map_or(0, |s| s.total_workers),
            available_workers: stats.as_ref().map_or(0, |s| s.available_workers),
            pool_utilization: stats.as_ref().map_or(0.0, |s| s.pool_utilization),
            pool_stats: stats,
            backend: self.options.backend.as_str(),
            threads_per_worker: self.options.threads,
            program: self.program(),
        }
    }
}

/// An engine dropped while running (its JS object collected without
/// shutdown()) still ends its workers' processes.
impl Drop for Engine {
    fn drop(&mut self) {
        if let Phase::Running(r) = &*self.phase() {
            r.pool.shutdown_in_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timeout_grows_with_audio_and_model() {
        let tiny = 77_704_715;
        let t = default_timeout(Duration::from_secs(10), tiny);
        assert!(
            t > Duration::from_secs(60) && t < Duration::from_secs(62),
            "{t:?}"
        );
        let large = 3_095_033_483;
        let hour = default_timeout(Duration::from_secs(3600), large);
        assert!(hour > Duration::from_secs(3600 * 100), "{hour:?}");
        // Tiny files still get the start-up allowance.
        assert_eq!(default_timeout(Duration::ZERO, tiny), TIMEOUT_BASE);
    }
}
