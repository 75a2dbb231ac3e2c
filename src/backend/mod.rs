//! How a worker runs whisper. One backend value per worker.

pub mod cli;

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
}

impl Backend {
    pub async fn transcribe(
        &self,
        request: &Request,
        cancel: impl Future<Output = CancelReason> + Send,
        report_pid: PidReporter<'_>,
    ) -> Result<Transcript, Stop> {
        match self {
            Backend::Cli(cli) => cli.transcribe(request, cancel, report_pid).await,
        }
    }
}
