//! One error type for the whole engine. Every variant has a stable string code
//! (the JS `err.code`) and a message that says what to do.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhisperError {
    #[error("the engine is not initialized: await engine.initialize() before calling {action}")]
    NotInitialized { action: &'static str },

    #[error("invalid option `{option}`: {reason}")]
    InvalidOptions { option: String, reason: String },

    #[error("{program} not found or not runnable at {path}: {reason}. Install persistent-whisper with its optional dependencies (npm installs the platform package persistent-whisper-{platform} with it; do not pass --omit=optional), or set the `{option}` option (or {env_var}) to a whisper.cpp {program}; in a checkout of persistent-whisper, run `npm run setup`")]
    WhisperNotFound {
        program: &'static str,
        option: &'static str,
        env_var: &'static str,
        platform: &'static str,
        path: String,
        reason: String,
    },

    #[error("the model {path} could not be loaded: {reason}. Point `modelPath` at a ggml whisper model (`npm run setup` provisions ggml-tiny.en.bin)")]
    ModelLoad { path: String, reason: String },

    #[error("audio file not found: {path}. Check the path; relative paths resolve against the working directory of the Node process")]
    AudioNotFound { path: String },

    #[error("cannot transcribe {path}: {reason}")]
    AudioUnreadable { path: String, reason: String },

    #[error("transcribing {path} took longer than the {timeout_ms} ms timeout, so whisper's work on it was stopped. Pass a larger `timeout` (engine option or per request) for long files or slow models")]
    Timeout { path: String, timeout_ms: u64 },

    #[error("the queue is full ({max} requests already waiting): wait for some to settle, or raise `maxQueueSize`")]
    QueueFull { max: usize },

    #[error(
        "the transcription of {path} was aborted (its AbortSignal fired, or abort() was called)"
    )]
    Aborted { path: String },

    #[error("{reason}")]
    Shutdown { reason: &'static str },

    #[error("the whisper process crashed ({detail}) while transcribing {path}; its worker is being replaced. Retrying is safe; if the same file crashes it again, report it with the file")]
    WorkerCrashed { path: String, detail: String },

    #[error("whisper failed on {path}: {detail}")]
    WhisperFailed { path: String, detail: String },

    /// The pool has no worker that runs, for a reason that belongs to no request.
    #[error("no whisper worker could be started: {detail}. Fix the cause and call restart()")]
    NoWorker { detail: String },
}

impl WhisperError {
    /// Every code `code()` returns, for JavaScript's `ERROR_CODES`.
    pub const CODES: &'static [&'static str] = &[
        "ERR_NOT_INITIALIZED",
        "ERR_INVALID_OPTIONS",
        "ERR_WHISPER_NOT_FOUND",
        "ERR_MODEL_LOAD",
        "ERR_AUDIO_NOT_FOUND",
        "ERR_AUDIO_UNREADABLE",
        "ERR_TIMEOUT",
        "ERR_QUEUE_FULL",
        "ERR_ABORTED",
        "ERR_SHUTDOWN",
        "ERR_WORKER_CRASHED",
        "ERR_WHISPER_FAILED",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            WhisperError::NotInitialized { .. } => "ERR_NOT_INITIALIZED",
            WhisperError::InvalidOptions { .. } => "ERR_INVALID_OPTIONS",
            WhisperError::WhisperNotFound { .. } => "ERR_WHISPER_NOT_FOUND",
            WhisperError::ModelLoad { .. } => "ERR_MODEL_LOAD",
            WhisperError::AudioNotFound { .. } => "ERR_AUDIO_NOT_FOUND",
            WhisperError::AudioUnreadable { .. } => "ERR_AUDIO_UNREADABLE",
            WhisperError::Timeout { .. } => "ERR_TIMEOUT",
            WhisperError::QueueFull { .. } => "ERR_QUEUE_FULL",
            WhisperError::Aborted { .. } => "ERR_ABORTED",
            WhisperError::Shutdown { .. } => "ERR_SHUTDOWN",
            WhisperError::WorkerCrashed { .. } => "ERR_WORKER_CRASHED",
            WhisperError::WhisperFailed { .. } | WhisperError::NoWorker { .. } => {
                "ERR_WHISPER_FAILED"
            }
        }
    }

    pub fn invalid(option: &str, reason: impl Into<String>) -> Self {
        WhisperError::InvalidOptions {
            option: option.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn shutdown() -> Self {
        WhisperError::Shutdown {
            reason: "the engine is shut down: call initialize() (or restart()) to use it again",
        }
    }

    /// Whether the failure says something about the worker rather than about
    /// the request's input (which is what counts towards replacing a worker).
    pub fn counts_against_worker(&self) -> bool {
        !matches!(
            self,
            WhisperError::Aborted { .. }
                | WhisperError::Shutdown { .. }
                | WhisperError::AudioNotFound { .. }
                | WhisperError::AudioUnreadable { .. }
        )
    }

    /// Whether the worker's process is gone or untrustworthy after this error.
    pub fn needs_new_worker(&self) -> bool {
        matches!(
            self,
            WhisperError::WorkerCrashed { .. } | WhisperError::Timeout { .. }
        )
    }
}

pub type Result<T, E = WhisperError> = std::result::Result<T, E>;

pub fn display_path(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_distinct_code_listed_in_codes() {
        let path = || "a.wav".to_owned();
        let errors = [
            WhisperError::NotInitialized { action: "x" },
            WhisperError::invalid("poolSize", "y"),
            WhisperError::WhisperNotFound {
                program: "whisper-cli",
                option: "whisperPath",
                env_var: "WHISPER_CLI_PATH",
                platform: "linux-x64-gnu",
                path: path(),
                reason: "r".into(),
            },
            WhisperError::ModelLoad {
                path: path(),
                reason: "r".into(),
            },
            WhisperError::AudioNotFound { path: path() },
            WhisperError::AudioUnreadable {
                path: path(),
                reason: "r".into(),
            },
            WhisperError::Timeout {
                path: path(),
                timeout_ms: 1,
            },
            WhisperError::QueueFull { max: 1 },
            WhisperError::Aborted { path: path() },
            WhisperError::shutdown(),
            WhisperError::WorkerCrashed {
                path: path(),
                detail: "d".into(),
            },
            WhisperError::WhisperFailed {
                path: path(),
                detail: "d".into(),
            },
        ];
        let codes: Vec<_> = errors.iter().map(WhisperError::code).collect();
        assert_eq!(codes, WhisperError::CODES);
        let pool = WhisperError::NoWorker { detail: "d".into() };
        assert_eq!(pool.code(), "ERR_WHISPER_FAILED");
        assert!(!pool.to_string().contains(" on :"), "{pool}");
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = WhisperError::invalid("poolSize", "must be an integer from 1 to 64 (got 0)");
        assert_eq!(
            e.to_string(),
            "invalid option `poolSize`: must be an integer from 1 to 64 (got 0)"
        );
        assert!(WhisperError::QueueFull { max: 5 }
            .to_string()
            .contains("maxQueueSize"));
    }
}
