//! What a backend needs to run one request, and how a request can end
//! without a transcript: what every backend and the pool share.

use crate::audio::Audio;
use crate::cancel::CancelReason;
use crate::decoding::Decoding;
use crate::error::WhisperError;
use crate::observe::Observer;
use std::sync::Arc;

/// What a backend needs to run one request.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub audio: Audio,
    pub language: String,
    /// Threads for this request (the pool's thread budget); a backend whose
    /// threads are fixed at start ignores it.
    pub threads: usize,
    /// Later changes to `threads` while it runs, for a backend that can
    /// apply them (`Backend::adjusts_threads`).
    pub live_threads: Option<tokio::sync::watch::Receiver<usize>>,
    /// Where its progress and segments go, if the caller wants them.
    pub observer: Option<Arc<Observer>>,
    /// Its decoding settings, when not the engine's.
    pub decoding: Option<Arc<Decoding>>,
}

/// Why a request ended without a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfinished {
    Failed(WhisperError),
    Cancelled(CancelReason),
    /// The worker could not take the request (its process had died); no
    /// work was done, so the request can go to another worker.
    NotStarted(String),
    /// The process died (or had to be killed) with the request in flight.
    /// Whether the request is to blame is the pool's call (the poison rule).
    Lost(Loss),
}

/// A process that died under a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// How it ended, for the error and the logs.
    pub detail: String,
    pub cause: LossCause,
}

/// Who was in the process when it died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// This request alone: if it dies alone again, it is the cause.
    Alone,
    /// Others too: any of them may be the cause.
    Shared,
    /// The engine killed it for another request's sake (a cancel or a
    /// timeout it did not answer): this one did nothing.
    Engine,
    /// It ran on a GPU, which failed (the backend fails over to the CPU):
    /// not the requests' doing.
    Device,
}

impl From<WhisperError> for Unfinished {
    fn from(e: WhisperError) -> Self {
        Unfinished::Failed(e)
    }
}

/// Reports the pid of the process serving the current request (None when it ends).
pub type PidReporter<'a> = &'a (dyn Fn(Option<u32>) + Send + Sync);
