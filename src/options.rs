//! Engine and request options: what JavaScript may pass (`Raw*`, numbers as
//! f64 so that NaN and fractions can be named in errors), defaults, and
//! validation into the plain types the core uses.

use crate::backend::Priority;
use crate::decoding::Decoding;
use crate::error::{Result, WhisperError};
use crate::log::LogLevel;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_POOL_SIZE: usize = 3;
pub const MAX_POOL_SIZE: u64 = 64;
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 1000;
pub const DEFAULT_MAX_CONSECUTIVE_FAILURES: u32 = 3;
/// A timeout longer than a day is a typo, not a wish.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// whisper-cli flags the engine sets itself; passing them through `extraArgs`
/// would break the JSON-on-stdout contract or bypass an option.
const RESERVED_FLAGS: &[(&str, &str)] = &[
    ("-m", "modelPath"),
    ("--model", "modelPath"),
    ("-f", "the file given to transcribe()"),
    ("--file", "the file given to transcribe()"),
    ("-t", "threads"),
    ("--threads", "threads"),
    ("-l", "language"),
    ("--language", "language"),
    ("-of", "the engine's JSON output"),
    ("--output-file", "the engine's JSON output"),
    ("-oj", "the engine's JSON output"),
    ("--output-json", "the engine's JSON output"),
    ("-otxt", "the engine's JSON output"),
    ("--output-txt", "the engine's JSON output"),
    ("-ovtt", "the engine's JSON output"),
    ("--output-vtt", "the engine's JSON output"),
    ("-osrt", "the engine's JSON output"),
    ("--output-srt", "the engine's JSON output"),
    ("-olrc", "the engine's JSON output"),
    ("--output-lrc", "the engine's JSON output"),
    ("-ocsv", "the engine's JSON output"),
    ("--output-csv", "the engine's JSON output"),
    ("-owts", "the engine's JSON output"),
    ("--output-words", "the engine's JSON output"),
    ("-h", "nothing (it prints help instead of transcribing)"),
    ("--help", "nothing (it prints help instead of transcribing)"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Spawn whisper-cli once per request.
    Cli,
    /// One whisper-server per worker, model loaded once.
    Server,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cli => "cli",
            BackendKind::Server => "server",
        }
    }
}

pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Engine options as JavaScript passes them. Every field is optional here so
/// that a missing required field gets a coded error, not a conversion error.
#[derive(Debug, Clone, Default)]
pub struct RawEngineOptions {
    pub model_path: Option<String>,
    pub whisper_path: Option<String>,
    pub server_path: Option<String>,
    pub backend: Option<String>,
    pub base_port: Option<f64>,
    pub health_check_interval: Option<f64>,
    pub pool_size: Option<f64>,
    pub timeout: Option<f64>,
    pub threads: Option<f64>,
    pub language: Option<String>,
    pub max_queue_size: Option<f64>,
    pub max_consecutive_failures: Option<f64>,
    pub max_requests_per_worker: Option<f64>,
    pub extra_args: Option<Vec<String>>,
    pub log_level: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub model_path: PathBuf,
    pub whisper_path: Option<PathBuf>,
    pub server_path: Option<PathBuf>,
    pub backend: BackendKind,
    /// First port for worker servers; None: ports the OS picks.
    pub base_port: Option<u16>,
    pub health_check_interval: Duration,
    pub pool_size: usize,
    /// None: derived per request from the audio's duration and the model's size.
    pub timeout: Option<Duration>,
    pub threads: usize,
    /// The caller chose `threads` (and so any oversubscription).
    pub threads_explicit: bool,
    pub language: String,
    pub max_queue_size: usize,
    pub max_consecutive_failures: u32,
    /// Replace a worker after this many requests (memory hygiene); None: never.
    pub max_requests_per_worker: Option<u64>,
    pub extra_args: Vec<String>,
    /// The decoding settings within `extra_args`, sent per request to servers...
    pub decoding: Decoding,
    /// ...and the rest, which go on whisper-server's command line.
    pub server_args: Vec<String>,
    pub log_level: LogLevel,
}

#[derive(Debug, Clone, Default)]
pub struct RawTranscribeOptions {
    pub language: Option<String>,
    pub timeout: Option<f64>,
    pub priority: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    pub language: Option<String>,
    pub timeout: Option<Duration>,
    pub priority: Priority,
}

/// `threads` when the caller gives none: the cores shared out among the
/// workers, so that concurrent workers never fight over cores.
pub fn default_threads(cpus: usize, pool_size: usize) -> usize {
    (cpus / pool_size.max(1)).max(1)
}

pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn integer(option: &str, value: Option<f64>, min: u64, max: u64) -> Result<Option<u64>> {
    let Some(v) = value else { return Ok(None) };
    if v.is_finite() && v.fract() == 0.0 && v >= min as f64 && v <= max as f64 {
        Ok(Some(v as u64))
    } else {
        Err(WhisperError::invalid(
            option,
            format!("must be an integer from {min} to {max} (got {v})"),
        ))
    }
}

fn non_empty(option: &str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(s) if s.trim().is_empty() => Err(WhisperError::invalid(
            option,
            "must be a non-empty path when given",
        )),
        other => Ok(other),
    }
}

fn timeout(option: &str, value: Option<f64>) -> Result<Option<Duration>> {
    Ok(integer(option, value, 1, MAX_TIMEOUT_MS)?.map(Duration::from_millis))
}

pub fn language(option: &str, value: Option<String>) -> Result<Option<String>> {
    let Some(lang) = value else { return Ok(None) };
    match crate::language::code(&lang) {
        Some(code) => Ok(Some(code)),
        None => Err(WhisperError::invalid(
            option,
            format!("{lang:?} is not a language whisper knows: use a code such as \"en\", \"de\", \"ja\", or \"auto\" to detect it"),
        )),
    }
}

fn extra_args(value: Option<Vec<String>>) -> Result<Vec<String>> {
    let args = value.unwrap_or_default();
    for arg in &args {
        let flag = arg.split('=').next().unwrap_or(arg);
        if let Some((_, instead)) = RESERVED_FLAGS.iter().find(|(f, _)| *f == flag) {
            return Err(WhisperError::invalid(
                "extraArgs",
                format!("{arg:?} is set by the engine; use {instead} instead"),
            ));
        }
    }
    Ok(args)
}

impl EngineOptions {
    pub fn from_raw(raw: RawEngineOptions) -> Result<Self> {
        Self::from_raw_with_cpus(raw, available_cpus())
    }

    pub fn from_raw_with_cpus(raw: RawEngineOptions, cpus: usize) -> Result<Self> {
        let model_path = match non_empty("modelPath", raw.model_path)? {
            Some(p) => PathBuf::from(p),
            None => {
                return Err(WhisperError::invalid(
                    "modelPath",
                    "is required: the path of a ggml whisper model such as ggml-tiny.en.bin",
                ))
            }
        };
        let backend = match raw.backend.as_deref() {
            None | Some("cli") => BackendKind::Cli,
            Some("server") => BackendKind::Server,
            Some(other) => {
                return Err(WhisperError::invalid(
                    "backend",
                    format!("must be \"cli\" or \"server\" (got {other:?})"),
                ))
            }
        };
        let pool_size = integer("poolSize", raw.pool_size, 1, MAX_POOL_SIZE)?
            .map_or(DEFAULT_POOL_SIZE, |n| n as usize);
        let threads = integer("threads", raw.threads, 1, 1024)?
            .map_or_else(|| default_threads(cpus, pool_size), |n| n as usize);
        let log_level = match raw.log_level.as_deref() {
            None => LogLevel::default(),
            Some(s) => LogLevel::parse(s).ok_or_else(|| {
                WhisperError::invalid(
                    "logLevel",
                    format!("must be one of silent, error, warn, info, debug (got {s:?})"),
                )
            })?,
        };
        let extra_args = extra_args(raw.extra_args)?;
        let (decoding, server_args) = Decoding::from_args(&extra_args)?;
        Ok(EngineOptions {
            model_path,
            whisper_path: non_empty("whisperPath", raw.whisper_path)?.map(PathBuf::from),
            server_path: non_empty("serverPath", raw.server_path)?.map(PathBuf::from),
            backend,
            base_port: integer("basePort", raw.base_port, 1024, 65535)?.map(|p| p as u16),
            health_check_interval: integer(
                "healthCheckInterval",
                raw.health_check_interval,
                10,
                MAX_TIMEOUT_MS,
            )?
            .map_or(DEFAULT_HEALTH_INTERVAL, Duration::from_millis),
            pool_size,
            timeout: timeout("timeout", raw.timeout)?,
            threads,
            threads_explicit: raw.threads.is_some(),
            language: language("language", raw.language)?.unwrap_or_else(|| "en".into()),
            max_queue_size: integer("maxQueueSize", raw.max_queue_size, 0, 1_000_000)?
                .map_or(DEFAULT_MAX_QUEUE_SIZE, |n| n as usize),
            max_consecutive_failures: integer(
                "maxConsecutiveFailures",
                raw.max_consecutive_failures,
                1,
                1000,
            )?
            .map_or(DEFAULT_MAX_CONSECUTIVE_FAILURES, |n| n as u32),
            max_requests_per_worker: integer(
                "maxRequestsPerWorker",
                raw.max_requests_per_worker,
                1,
                u32::MAX as u64,
            )?,
            extra_args,
            decoding,
            server_args,
            log_level,
        })
    }
}

impl TranscribeOptions {
    pub fn from_raw(raw: RawTranscribeOptions) -> Result<Self> {
        let priority = match raw.priority.as_deref() {
            None | Some("normal") => Priority::Normal,
            Some("high") => Priority::High,
            Some(other) => {
                return Err(WhisperError::invalid(
                    "priority",
                    format!("must be \"high\" or \"normal\" (got {other:?})"),
                ))
            }
        };
        Ok(TranscribeOptions {
            language: language("language", raw.language)?,
            timeout: timeout("timeout", raw.timeout)?,
            priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawEngineOptions {
        RawEngineOptions {
            model_path: Some("model.bin".into()),
            ..Default::default()
        }
    }

    fn err_of(r: RawEngineOptions) -> String {
        EngineOptions::from_raw_with_cpus(r, 2)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_share_the_cores_among_the_workers() {
        let o = EngineOptions::from_raw_with_cpus(raw(), 8).unwrap();
        assert_eq!((o.pool_size, o.threads), (3, 2));
        assert_eq!(o.language, "en");
        assert_eq!(o.timeout, None);
        assert_eq!(o.max_queue_size, DEFAULT_MAX_QUEUE_SIZE);
        let o = EngineOptions::from_raw_with_cpus(raw(), 2).unwrap();
        assert_eq!(o.threads, 1, "never fewer than one thread");
    }

    #[test]
    fn invalid_numbers_name_the_option_and_the_range() {
        for bad in [0.0, -1.0, f64::NAN, 1e9, 2.5] {
            let msg = err_of(RawEngineOptions {
                pool_size: Some(bad),
                ..raw()
            });
            assert!(
                msg.starts_with("invalid option `poolSize`: must be an integer from 1 to 64"),
                "{msg}"
            );
        }
        assert!(err_of(RawEngineOptions {
            timeout: Some(-5.0),
            ..raw()
        })
        .contains("`timeout`"));
        assert!(err_of(RawEngineOptions {
            threads: Some(0.0),
            ..raw()
        })
        .contains("`threads`"));
    }

    #[test]
    fn model_path_is_required_and_not_empty() {
        assert!(err_of(RawEngineOptions::default()).contains("`modelPath`: is required"));
        assert!(err_of(RawEngineOptions {
            model_path: Some("  ".into()),
            ..raw()
        })
        .contains("`modelPath`"));
    }

    #[test]
    fn rejects_unknown_backend_language_and_log_level() {
        assert!(err_of(RawEngineOptions {
            backend: Some("gpu".into()),
            ..raw()
        })
        .contains("`backend`"));
        assert!(err_of(RawEngineOptions {
            language: Some("english!".into()),
            ..raw()
        })
        .contains("`language`"));
        assert!(err_of(RawEngineOptions {
            log_level: Some("loud".into()),
            ..raw()
        })
        .contains("`logLevel`"));
        let ok = EngineOptions::from_raw_with_cpus(
            RawEngineOptions {
                language: Some("AUTO".into()),
                ..raw()
            },
            2,
        );
        assert_eq!(ok.unwrap().language, "auto");
    }

    #[test]
    fn extra_args_may_not_take_over_engine_flags() {
        let msg = err_of(RawEngineOptions {
            extra_args: Some(vec!["-bs".into(), "2".into(), "-t".into(), "4".into()]),
            ..raw()
        });
        assert!(msg.contains("use threads instead"), "{msg}");
        let msg = err_of(RawEngineOptions {
            extra_args: Some(vec!["--output-file=x".into()]),
            ..raw()
        });
        assert!(msg.contains("extraArgs"), "{msg}");
        let ok = EngineOptions::from_raw_with_cpus(
            RawEngineOptions {
                extra_args: Some(vec!["-bs".into(), "1".into()]),
                ..raw()
            },
            2,
        );
        assert_eq!(ok.unwrap().extra_args, ["-bs", "1"]);
    }
}
