//! The engine's validated options, their defaults, and the checks that turn
//! a caller's values into them. The JavaScript glue (js/options.rs) reads a
//! JS object field by field and calls these checks, so every bad value gets
//! an ERR_INVALID_OPTIONS naming its option and the allowed range.

use crate::audio::Limits;
use crate::decoding::{self, ExtraArgs};
use crate::error::{Result, WhisperError};
use crate::log::LogLevel;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_POOL_SIZE: usize = 3;
pub const MAX_POOL_SIZE: u64 = 64;
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 1000;
pub const DEFAULT_MAX_CONSECUTIVE_FAILURES: u32 = 3;
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How long a worker above `min_workers` may stay idle.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A timeout longer than a day is a typo, not a wish.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Spawn whisper-cli once per request.
    Cli,
    /// One whisper-server per worker, model loaded once.
    Server,
    /// persistent-whisper-worker: the model loaded once per process, the
    /// workers decode slots in it.
    Worker,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cli => "cli",
            BackendKind::Server => "server",
            BackendKind::Worker => "worker",
        }
    }
}

/// The backend and the options only it takes.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendOptions {
    /// whisper-cli per request (the program is `whisper_path`).
    Cli,
    Server {
        /// whisper-server; None: looked for (locate/).
        path: Option<PathBuf>,
        /// The first port to try; None: ports the OS picks.
        base_port: Option<u16>,
        /// Between health checks of an idle server.
        health_check_interval: Duration,
    },
    Worker {
        /// persistent-whisper-worker; None: looked for (locate/).
        path: Option<PathBuf>,
        /// Processes the slots are spread over.
        processes: usize,
    },
}

impl BackendOptions {
    /// Each backend with its own options at their defaults.
    pub fn default_for(kind: BackendKind) -> Self {
        match kind {
            BackendKind::Cli => BackendOptions::Cli,
            BackendKind::Server => BackendOptions::Server {
                path: None,
                base_port: None,
                health_check_interval: DEFAULT_HEALTH_INTERVAL,
            },
            BackendKind::Worker => BackendOptions::Worker {
                path: None,
                processes: 1,
            },
        }
    }

    pub fn kind(&self) -> BackendKind {
        match self {
            BackendOptions::Cli => BackendKind::Cli,
            BackendOptions::Server { .. } => BackendKind::Server,
            BackendOptions::Worker { .. } => BackendKind::Worker,
        }
    }

    /// The program path the caller named for this backend, if any.
    pub fn program_path(&self) -> Option<&PathBuf> {
        match self {
            BackendOptions::Cli => None,
            BackendOptions::Server { path, .. } | BackendOptions::Worker { path, .. } => {
                path.as_ref()
            }
        }
    }

    /// How often the pool looks at an idle persistent worker's process.
    pub fn health_check_interval(&self) -> Duration {
        match self {
            BackendOptions::Server {
                health_check_interval,
                ..
            } => *health_check_interval,
            _ => DEFAULT_HEALTH_INTERVAL,
        }
    }
}

/// High-priority requests (dictation) are dispatched before queued normal ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    High,
    #[default]
    Normal,
}

/// `gpu`: the device whisper decodes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Gpu {
    /// The best GPU that works here, else the CPU (with a warning and a
    /// `deviceFallback` event, never an error).
    #[default]
    Auto,
    /// The CPU only: no GPU build is started, no GPU library loaded.
    Off,
    /// This GPU, counted as whisper counts them (0: the first); where it
    /// does not work, the CPU as for Auto.
    Index(u32),
}

/// The highest GPU index `gpu` takes.
pub const MAX_GPU_INDEX: u64 = 255;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub model_path: PathBuf,
    /// whisper-cli (backend 'cli'), and where whisper-server and the worker
    /// program are also looked for.
    pub whisper_path: Option<PathBuf>,
    pub backend: BackendOptions,
    /// The caller chose the backend. If not (the default, 'worker'), an
    /// engine whose worker program cannot start here runs 'cli' instead.
    pub backend_chosen: bool,
    /// The pool keeps at least this many workers...
    pub min_workers: usize,
    /// ...grows to this many while requests wait...
    pub max_workers: usize,
    /// ...and retires a worker above `min_workers` idle this long. None: never.
    pub idle_timeout: Option<Duration>,
    /// None: derived per request from the audio's duration and the model's size.
    pub timeout: Option<Duration>,
    /// None: a thread budget (see pool::threads).
    pub threads: Option<usize>,
    pub language: String,
    pub max_queue_size: usize,
    pub max_consecutive_failures: u32,
    /// Replace a worker after this many requests (memory hygiene); None: never.
    pub max_requests_per_worker: Option<u64>,
    /// What one request's audio may cost (`maxDuration`, `maxFileSize`).
    pub limits: Limits,
    /// The Silero VAD model (`vadModelPath`, or found beside the model).
    pub vad_model: Option<PathBuf>,
    /// Whisper flags, as the caller gave them...
    pub extra_args: Vec<String>,
    /// ...and parsed for the backend (decoding.rs).
    pub extra: ExtraArgs,
    pub log_level: LogLevel,
    pub gpu: Gpu,
}

impl EngineOptions {
    /// Every option at its default.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        EngineOptions {
            model_path: model_path.into(),
            whisper_path: None,
            backend: BackendOptions::default_for(BackendKind::Worker),
            backend_chosen: false,
            min_workers: DEFAULT_POOL_SIZE,
            max_workers: DEFAULT_POOL_SIZE,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            timeout: None,
            threads: None,
            language: "en".into(),
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            max_consecutive_failures: DEFAULT_MAX_CONSECUTIVE_FAILURES,
            max_requests_per_worker: None,
            limits: Limits::default(),
            vad_model: None,
            extra_args: Vec::new(),
            extra: ExtraArgs::default(),
            log_level: LogLevel::default(),
            gpu: Gpu::Auto,
        }
    }

    /// `poolSize`: a fixed pool, `min_workers` = `max_workers`.
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.min_workers = size;
        self.max_workers = size;
        self
    }

    /// Checks what involves several options, and splits `extra_args` for the
    /// backend. Every constructor of options ends here.
    pub fn finish(mut self) -> Result<Self> {
        if self.max_workers == 0 {
            return Err(WhisperError::invalid("maxWorkers", "must be at least 1"));
        }
        if self.min_workers > self.max_workers {
            return Err(WhisperError::invalid(
                "minWorkers",
                format!(
                    "must not exceed maxWorkers ({} > {})",
                    self.min_workers, self.max_workers
                ),
            ));
        }
        if let BackendOptions::Worker { processes, .. } = self.backend {
            if processes > self.max_workers {
                return Err(WhisperError::invalid(
                    "processes",
                    format!(
                        "must not exceed maxWorkers ({processes} > {}): each process serves at least one worker",
                        self.max_workers
                    ),
                ));
            }
        }
        let program = match self.backend.kind() {
            BackendKind::Cli => decoding::Program::WhisperCli,
            BackendKind::Server => decoding::Program::WhisperServer,
            BackendKind::Worker => decoding::Program::Worker,
        };
        self.extra = decoding::parse(&self.extra_args, program)?;
        // The engine's VAD model, unless extraArgs named one (-vm).
        if let Some(vad) = self
            .vad_model
            .as_ref()
            .filter(|_| self.extra.decoding.vad_model.is_empty())
        {
            self.extra.decoding.vad_model = vad.to_string_lossy().into_owned();
        }
        // whisper's own -ng says what `gpu: false` says; -dev what an index does.
        let flag = |f: &[&str]| self.extra_args.iter().any(|a| f.contains(&a.as_str()));
        if flag(&["-ng", "--no-gpu"]) {
            self.gpu = Gpu::Off;
        } else if flag(&["-dev", "--device"]) && self.gpu != Gpu::Auto {
            return Err(WhisperError::invalid(
                "extraArgs",
                "-dev (--device) and the `gpu` option both choose the GPU: keep `gpu` only",
            ));
        }
        Ok(self)
    }
}

#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    pub language: Option<String>,
    pub timeout: Option<Duration>,
    pub priority: Priority,
    /// Skip what is not speech (whisper's voice activity detection).
    pub vad: bool,
    /// Decoding settings for this request instead of the engine's (live
    /// dictation's quick partial hypotheses).
    pub decoding: Option<std::sync::Arc<crate::decoding::Decoding>>,
}

pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Checks of single values, each naming its option in the error.
pub mod check {
    use super::*;

    /// A whole number in `min..=max` (JavaScript gives every number as f64).
    pub fn integer(option: &str, v: f64, min: u64, max: u64) -> Result<u64> {
        if v.is_finite() && v.fract() == 0.0 && v >= min as f64 && v <= max as f64 {
            Ok(v as u64)
        } else {
            Err(WhisperError::invalid(
                option,
                format!("must be an integer from {min} to {max} (got {v})"),
            ))
        }
    }

    pub fn milliseconds(option: &str, v: f64) -> Result<Duration> {
        integer(option, v, 1, MAX_TIMEOUT_MS).map(Duration::from_millis)
    }

    pub fn pool_size(option: &str, v: f64) -> Result<usize> {
        integer(option, v, 1, MAX_POOL_SIZE).map(|n| n as usize)
    }

    pub fn path(option: &str, s: String) -> Result<PathBuf> {
        if s.trim().is_empty() {
            return Err(WhisperError::invalid(
                option,
                "must be a non-empty path when given",
            ));
        }
        Ok(PathBuf::from(s))
    }

    pub fn language(option: &str, lang: &str) -> Result<String> {
        crate::language::code(lang).ok_or_else(|| {
            WhisperError::invalid(
                option,
                format!("{lang:?} is not a language whisper knows: use a code such as \"en\", \"de\", \"ja\", or \"auto\" to detect it"),
            )
        })
    }

    pub fn backend(s: &str) -> Result<BackendKind> {
        match s {
            "cli" => Ok(BackendKind::Cli),
            "server" => Ok(BackendKind::Server),
            "worker" => Ok(BackendKind::Worker),
            other => Err(WhisperError::invalid(
                "backend",
                format!("must be \"cli\", \"server\" or \"worker\" (got {other:?})"),
            )),
        }
    }

    pub fn log_level(s: &str) -> Result<LogLevel> {
        LogLevel::parse(s).ok_or_else(|| {
            WhisperError::invalid(
                "logLevel",
                format!("must be one of silent, error, warn, info, debug (got {s:?})"),
            )
        })
    }

    pub fn priority(s: &str) -> Result<Priority> {
        match s {
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            other => Err(WhisperError::invalid(
                "priority",
                format!("must be \"high\" or \"normal\" (got {other:?})"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_fixed_pool_of_three_with_a_thread_budget() {
        let o = EngineOptions::new("model.bin").finish().unwrap();
        assert_eq!(
            (o.backend.kind(), o.backend_chosen),
            (BackendKind::Worker, false)
        );
        assert_eq!((o.min_workers, o.max_workers), (3, 3));
        assert_eq!(o.threads, None);
        assert_eq!(o.language, "en");
        assert_eq!(o.timeout, None);
        assert_eq!(o.max_queue_size, DEFAULT_MAX_QUEUE_SIZE);
    }

    #[test]
    fn invalid_numbers_name_the_option_and_the_range() {
        for bad in [0.0, -1.0, f64::NAN, 1e9, 2.5] {
            let msg = check::pool_size("poolSize", bad).unwrap_err().to_string();
            assert!(
                msg.starts_with("invalid option `poolSize`: must be an integer from 1 to 64"),
                "{msg}"
            );
        }
        assert!(check::milliseconds("timeout", -5.0)
            .unwrap_err()
            .to_string()
            .contains("`timeout`"));
    }

    #[test]
    fn the_gpu_is_auto_by_default_and_whispers_no_gpu_flag_turns_it_off() {
        assert_eq!(EngineOptions::new("m.bin").finish().unwrap().gpu, Gpu::Auto);
        let mut o = EngineOptions::new("m.bin");
        o.extra_args = vec!["-ng".into()];
        assert_eq!(o.finish().unwrap().gpu, Gpu::Off);
        let mut o = EngineOptions::new("m.bin");
        o.backend = BackendOptions::Cli;
        o.gpu = Gpu::Index(1);
        o.extra_args = vec!["-dev".into(), "0".into()];
        let msg = o.finish().unwrap_err().to_string();
        assert!(msg.contains("`extraArgs`") && msg.contains("gpu"), "{msg}");
    }

    #[test]
    fn min_workers_may_not_exceed_max_workers() {
        let mut o = EngineOptions::new("m.bin");
        o.min_workers = 4;
        o.max_workers = 2;
        let msg = o.finish().unwrap_err().to_string();
        assert!(
            msg.contains("`minWorkers`") && msg.contains("4 > 2"),
            "{msg}"
        );
    }

    #[test]
    fn paths_may_not_be_blank_and_names_are_checked() {
        assert!(check::path("modelPath", "  ".into())
            .unwrap_err()
            .to_string()
            .contains("`modelPath`"));
        assert!(check::backend("gpu")
            .unwrap_err()
            .to_string()
            .contains("`backend`"));
        assert!(check::language("language", "english!")
            .unwrap_err()
            .to_string()
            .contains("`language`"));
        assert!(check::log_level("loud")
            .unwrap_err()
            .to_string()
            .contains("`logLevel`"));
        assert_eq!(check::language("language", "AUTO").unwrap(), "auto");
    }
}
