//! The napi glue of live dictation: listen()'s options, the native session
//! (write, end, abort), and its events as plain objects for lib/live.js.

use super::abort::{self, AbortListener};
use super::fields::{js_read, Fields, Handle, Result};
use super::types::TranscriptionSegment;
use crate::error::WhisperError;
use crate::live::{Chunk, LiveEvent, LiveOptions, LiveSession, VadConfig};
use crate::options::check;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::time::Duration;

/// How a live session listens (engine.listen()).
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct ListenOptions {
    /// Samples per second of the audio you write (an AudioContext's
    /// sampleRate, often 48000); resampled to 16 kHz. Default 16000.
    pub sample_rate: Option<f64>,
    /// The language spoken. Default: the engine's.
    pub language: Option<String>,
    /// 'partial' events while someone speaks. Default true.
    pub partials: Option<bool>,
    /// How often a partial may be made, in ms (at most one is in flight).
    /// Default 500.
    pub partial_interval_ms: Option<f64>,
    /// The speech probability from which a 32 ms window counts as speech.
    /// Default 0.5.
    pub vad_threshold: Option<f64>,
    /// A pause this long (ms) ends an utterance. Default 500.
    pub min_silence_ms: Option<f64>,
    /// Speech shorter than this (ms) is ignored (a cough, a click). Default 250.
    pub min_speech_ms: Option<f64>,
    /// Audio kept before and after the speech (ms). Default 200.
    pub speech_pad_ms: Option<f64>,
    /// An utterance longer than this (ms) is cut and goes on as the next.
    /// Default 28000 (whisper hears 30 s at a time).
    pub max_utterance_ms: Option<f64>,
    /// Aborting it aborts the session, as abort() does.
    #[napi(ts_type = "AbortSignal | null")]
    pub signal: Option<Handle>,
}

js_read!(ListenOptions {
    sample_rate,
    language,
    partials,
    partial_interval_ms,
    vad_threshold,
    min_silence_ms,
    min_speech_ms,
    speech_pad_ms,
    max_utterance_ms,
    signal,
});

impl TryFrom<ListenOptions> for LiveOptions {
    type Error = WhisperError;

    fn try_from(js: ListenOptions) -> Result<Self> {
        let d = LiveOptions::default();
        let ms = |name: &str, v: Option<f64>, min: u64, max: u64, default: u32| {
            v.map_or(Ok(default), |v| {
                check::integer(name, v, min, max).map(|n| n as u32)
            })
        };
        let threshold = match js.vad_threshold {
            None => d.vad.threshold,
            Some(t) if (0.05..=0.95).contains(&t) => t as f32,
            Some(t) => {
                return Err(WhisperError::invalid(
                    "vadThreshold",
                    format!("must be a number from 0.05 to 0.95 (got {t})"),
                ))
            }
        };
        let interval = ms(
            "partialIntervalMs",
            js.partial_interval_ms,
            100,
            10_000,
            d.partial_interval.map_or(0, |i| i.as_millis() as u32),
        )?;
        Ok(LiveOptions {
            sample_rate: ms("sampleRate", js.sample_rate, 8_000, 192_000, d.sample_rate)?,
            language: js
                .language
                .map(|s| check::language("language", &s))
                .transpose()?,
            partial_interval: js
                .partials
                .unwrap_or(true)
                .then(|| Duration::from_millis(interval as u64)),
            vad: VadConfig {
                threshold,
                min_silence_ms: ms(
                    "minSilenceMs",
                    js.min_silence_ms,
                    100,
                    10_000,
                    d.vad.min_silence_ms,
                )?,
                min_speech_ms: ms(
                    "minSpeechMs",
                    js.min_speech_ms,
                    0,
                    10_000,
                    d.vad.min_speech_ms,
                )?,
                pad_ms: ms("speechPadMs", js.speech_pad_ms, 0, 2_000, d.vad.pad_ms)?,
                max_utterance_ms: ms(
                    "maxUtteranceMs",
                    js.max_utterance_ms,
                    1_000,
                    30_000,
                    d.vad.max_utterance_ms,
                )?,
            },
        })
    }
}

/// listen()'s options, validated, and its signal, if any.
pub fn listen_options<'env>(
    env: &'env Env,
    value: Option<Unknown<'env>>,
) -> Result<(LiveOptions, Option<Object<'env>>)> {
    let value = match value {
        Some(v) if !matches!(v.get_type(), Ok(ValueType::Undefined | ValueType::Null)) => v,
        _ => return Ok((LiveOptions::default(), None)),
    };
    let f = Fields::of(env, value, "options", "{ sampleRate: 48000 }")?;
    let options = ListenOptions::read(&f)?.try_into()?;
    let signal = match f.get("signal")? {
        None => None,
        Some(v) => Some(super::options::abort_signal(env, v)?),
    };
    Ok((options, signal))
}

/// One live session (lib/live.js wraps it as an EventEmitter).
#[napi(js_name = "NativeLiveSession")]
pub struct NativeLiveSession {
    session: LiveSession,
    listener: Option<AbortListener>,
}

impl NativeLiveSession {
    pub fn new(session: LiveSession) -> Self {
        NativeLiveSession {
            session,
            listener: None,
        }
    }

    /// Aborts the session when `signal` fires (until detach()).
    pub fn follow(&mut self, env: &Env, signal: &Object) -> std::result::Result<(), String> {
        let input = self.session.aborter();
        self.listener = Some(abort::listen(env, signal, move || input.abort())?);
        Ok(())
    }
}

#[napi]
impl NativeLiveSession {
    /// Queues samples (copied); false once the session is over, or when
    /// `samples` is not a Float32Array, Int16Array or Uint8Array.
    #[napi(
        catch_unwind,
        ts_args_type = "samples: Float32Array | Int16Array | Uint8Array"
    )]
    pub fn write(&self, env: &Env, samples: Unknown) -> bool {
        chunk(env, samples).is_some_and(|chunk| self.session.write(chunk))
    }

    #[napi(catch_unwind)]
    pub fn end(&self) {
        self.session.end();
    }

    #[napi(catch_unwind)]
    pub fn abort(&self) {
        self.session.abort();
    }

    /// Unhooks the signal (the session is over).
    #[napi(catch_unwind)]
    pub fn detach(&mut self, env: &Env) {
        if let Some(listener) = self.listener.take() {
            listener.remove(env);
        }
    }
}

/// The samples of a Float32Array, Int16Array or Uint8Array, copied; None
/// for anything else (lib/live.js checks the kind first and says what it
/// takes).
fn chunk(env: &Env, value: Unknown) -> Option<Chunk> {
    if !matches!(value.get_type(), Ok(ValueType::Object)) {
        return None;
    }
    // SAFETY: plain N-API calls on a value of this env; the data pointer is
    // read for `length` elements of the array's own type before returning.
    unsafe {
        let mut is_typed = false;
        napi::sys::napi_is_typedarray(env.raw(), value.raw(), &mut is_typed);
        if !is_typed {
            return None;
        }
        let (mut kind, mut length, mut data) = (0, 0usize, std::ptr::null_mut());
        let status = napi::sys::napi_get_typedarray_info(
            env.raw(),
            value.raw(),
            &mut kind,
            &mut length,
            &mut data,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        if status != napi::sys::Status::napi_ok {
            return None;
        }
        if length == 0 || data.is_null() {
            return Some(Chunk::F32(Vec::new()));
        }
        match kind {
            napi::sys::TypedarrayType::float32_array => Some(Chunk::F32(
                std::slice::from_raw_parts(data as *const f32, length).to_vec(),
            )),
            napi::sys::TypedarrayType::int16_array => Some(Chunk::S16(
                std::slice::from_raw_parts(data as *const i16, length).to_vec(),
            )),
            napi::sys::TypedarrayType::uint8_array => Some(Chunk::S16Bytes(
                std::slice::from_raw_parts(data as *const u8, length).to_vec(),
            )),
            _ => None,
        }
    }
}

/// One event of a live session, for lib/live.js, which emits it under
/// `type` with the fields that are set.
#[napi(object)]
pub struct LiveSessionEvent {
    #[napi(ts_type = "'speechStart' | 'partial' | 'speechEnd' | 'final' | 'error' | 'close'")]
    pub r#type: String,
    pub utterance: Option<u32>,
    pub text: Option<String>,
    pub start_ms: Option<f64>,
    pub end_ms: Option<f64>,
    pub segments: Option<Vec<TranscriptionSegment>>,
    pub language: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub utterances: Option<u32>,
    pub duration_ms: Option<f64>,
    pub peak_buffered_ms: Option<f64>,
}

impl LiveSessionEvent {
    fn named(kind: &str) -> Self {
        LiveSessionEvent {
            r#type: kind.to_owned(),
            utterance: None,
            text: None,
            start_ms: None,
            end_ms: None,
            segments: None,
            language: None,
            code: None,
            message: None,
            utterances: None,
            duration_ms: None,
            peak_buffered_ms: None,
        }
    }

    fn span(kind: &str, utterance: u64, start_ms: u64, end_ms: Option<u64>) -> Self {
        LiveSessionEvent {
            utterance: Some(utterance as u32),
            start_ms: Some(start_ms as f64),
            end_ms: end_ms.map(|e| e as f64),
            ..Self::named(kind)
        }
    }

    fn error(kind: &str, error: &WhisperError) -> Self {
        LiveSessionEvent {
            code: Some(error.code().to_owned()),
            message: Some(error.to_string()),
            ..Self::named(kind)
        }
    }
}

impl From<LiveEvent> for LiveSessionEvent {
    fn from(event: LiveEvent) -> Self {
        match event {
            LiveEvent::SpeechStart {
                utterance,
                start_ms,
            } => Self::span("speechStart", utterance, start_ms, None),
            LiveEvent::Partial {
                utterance,
                text,
                start_ms,
                end_ms,
            } => LiveSessionEvent {
                text: Some(text),
                ..Self::span("partial", utterance, start_ms, Some(end_ms))
            },
            LiveEvent::SpeechEnd {
                utterance,
                start_ms,
                end_ms,
            } => Self::span("speechEnd", utterance, start_ms, Some(end_ms)),
            LiveEvent::Final {
                utterance,
                transcript,
                start_ms,
                end_ms,
            } => LiveSessionEvent {
                text: Some(transcript.text),
                segments: Some(transcript.segments.into_iter().map(Into::into).collect()),
                language: Some(transcript.language),
                ..Self::span("final", utterance, start_ms, Some(end_ms))
            },
            LiveEvent::Failed { utterance, error } => LiveSessionEvent {
                utterance: utterance.map(|u| u as u32),
                ..Self::error("error", &error)
            },
            LiveEvent::Closed(Ok(summary)) => LiveSessionEvent {
                utterances: Some(summary.utterances as u32),
                duration_ms: Some(summary.duration_ms as f64),
                peak_buffered_ms: Some(summary.peak_buffered_ms as f64),
                ..Self::named("close")
            },
            LiveEvent::Closed(Err(error)) => Self::error("close", &error),
        }
    }
}
