//! Live dictation: audio written as it is recorded becomes partial text
//! while someone speaks and final text once they pause. The engine's voice
//! activity detector (a worker program with a Silero model) finds where
//! each utterance starts and ends (segmenter.rs); partials are quick greedy
//! decodes of the utterance so far, at most one in flight; each final is
//! the whole utterance with the engine's own settings, at high priority,
//! delivered in order. A session holds only the audio of the utterance
//! under way, however long it runs.

mod pcm;
mod segmenter;
mod session;

pub use pcm::{Chunk, RATE};
pub use segmenter::VadConfig;
pub use session::{start, Aborter, LiveSession};

use crate::error::WhisperError;
use crate::transcript::Transcript;
use std::sync::Arc;
use std::time::Duration;

/// How a session listens.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The rate of the samples written (resampled to 16 kHz).
    pub sample_rate: u32,
    /// The language of the speech (default: the engine's).
    pub language: Option<String>,
    /// How often a partial hypothesis may be made; None: no partials.
    pub partial_interval: Option<Duration>,
    pub vad: VadConfig,
}

pub const DEFAULT_PARTIAL_INTERVAL: Duration = Duration::from_millis(500);

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            sample_rate: RATE,
            language: None,
            partial_interval: Some(DEFAULT_PARTIAL_INTERVAL),
            vad: VadConfig::default(),
        }
    }
}

/// What a session reports, in this order for each utterance: SpeechStart,
/// any Partials, SpeechEnd, then Final (or Failed). Times are milliseconds
/// from the session's first sample.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    SpeechStart {
        utterance: u64,
        start_ms: u64,
    },
    Partial {
        utterance: u64,
        text: String,
        start_ms: u64,
        end_ms: u64,
    },
    SpeechEnd {
        utterance: u64,
        start_ms: u64,
        end_ms: u64,
    },
    /// The utterance's text; its segments' times are the session's.
    Final {
        utterance: u64,
        transcript: Transcript,
        start_ms: u64,
        end_ms: u64,
    },
    /// An utterance that could not be transcribed (the session goes on),
    /// or, without an utterance, the session itself failed (Closed follows).
    Failed {
        utterance: Option<u64>,
        error: WhisperError,
    },
    /// The session is over: ended (every final delivered), aborted, or failed.
    Closed(Result<Summary, WhisperError>),
}

/// How a session went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub utterances: u64,
    /// The audio heard, in milliseconds.
    pub duration_ms: u64,
    /// The most audio the session held at once (ms): the utterance under
    /// way, and what had come in but was not yet through the detector.
    pub peak_buffered_ms: u64,
}

/// Where a session's events go (called from the session's task, in order).
pub type Emit = Arc<dyn Fn(LiveEvent) + Send + Sync>;
