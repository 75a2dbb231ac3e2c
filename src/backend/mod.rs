//! How a worker runs whisper. One backend value per worker.

pub mod cli;
pub mod server;

use crate::audio::AudioFile;
use crate::cancel::CancelReason;
use crate::error::WhisperError;
use crate::transcript::Transcript;
use std::future::Future;
use std::time::Duration;

/// What a backend needs to run one request.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub audio: AudioFile,
    pub language: String,
    pub timeout: Duration,
    pub priority: Priority,
}

/// High-priority requests (dictation) are dispatched before queued normal ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    High,
    #[default]
    Normal,
}

/// Why a request ended without a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Failed(WhisperError),
    Cancelled(CancelReason),
}

impl From<WhisperError> for Stop {
    fn from(e: WhisperError) -> Self {
        Stop::Failed(e)
    }
}

/// Reports the pid of the process serving the current request (None when it ends).
pub type PidReporter<'a> = &'a (dyn Fn(Option<u32>) + Send + Sync);

pub enum Backend {
    Cli(cli::CliBackend),
    Server(server::ServerBackend),
}

impl Backend {
    /// Whether the worker owns a long-lived process that must start first.
    pub fn is_persistent(&self) -> bool {
        matches!(self, Backend::Server(_))
    }

    /// Starts the worker's process (server: model loaded, health check answered).
    pub async fn start(&self) -> Result<(), WhisperError> {
        match self {
            Backend::Cli(_) => Ok(()),
            Backend::Server(s) => s.start().await,
        }
    }

    /// Ends the worker's process, if it has one, and reaps it.
    pub async fn stop(&self) {
        if let Backend::Server(s) = self {
            s.stop().await
        }
    }

    /// The long-lived process's pid (server backend).
    pub fn pid(&self) -> Option<u32> {
        match self {
            Backend::Cli(_) => None,
            Backend::Server(s) => s.pid(),
        }
    }

    /// Resolves when the long-lived process exits; never for the cli backend.
    pub async fn exited(&self) -> String {
        match self {
            Backend::Cli(_) => std::future::pending().await,
            Backend::Server(s) => s.exited().await,
        }
    }

    pub async fn health_check(&self) -> bool {
        match self {
            Backend::Cli(_) => true,
            Backend::Server(s) => s.health_check().await,
        }
    }

    pub async fn transcribe(
        &self,
        request: &Request,
        cancel: impl Future<Output = CancelReason> + Send,
        report_pid: PidReporter<'_>,
    ) -> Result<Transcript, Stop> {
        match self {
            Backend::Cli(cli) => cli.transcribe(request, cancel, report_pid).await,
            Backend::Server(server) => server.transcribe(request, cancel).await,
        }
    }
}
