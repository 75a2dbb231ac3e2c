//! One live session's task: audio in, through the detector and the
//! segmenter, out as utterances transcribed by the engine's pool.

use super::pcm::{Chunk, Converter, RATE};
use super::segmenter::{Cut, Segmenter};
use super::{Emit, LiveEvent, LiveOptions, Summary};
use crate::audio::Input as Audio;
use crate::decoding::Decoding;
use crate::engine::{AbortHandle, Engine, LiveSetup};
use crate::error::{Result, WhisperError};
use crate::options::{Priority, TranscribeOptions};
use crate::pool::Reply;
use crate::transcript::Transcript;
use persistent_whisper_protocol::VAD_WINDOW;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const W: u64 = VAD_WINDOW as u64;
/// Windows per detector call at most (a second of audio): a session fed
/// faster than real time still shares the detector with the others.
const WINDOWS_PER_CALL: u64 = 32;
/// Whisper's encoder frames are 20 ms (320 samples); a partial encodes only
/// the frames its audio fills, plus this margin, instead of all 1500 (30 s),
/// but never fewer than PARTIAL_MIN_FRAMES: with a context of a few seconds
/// whisper's decoder can repeat itself until its token limit (measured with
/// tiny.en: 114 frames ran past 8 s on 1 s of speech, 512 took 1.4 s).
const FRAME: u64 = 320;
const PARTIAL_FRAME_MARGIN: u64 = 64;
const PARTIAL_MIN_FRAMES: u64 = 512;
/// A partial later than this is no longer news: it is stopped, and the next
/// one asked for.
const PARTIAL_TIMEOUT_MIN: Duration = Duration::from_secs(10);

enum Input {
    Audio(Chunk),
    End,
    Abort,
}

/// The caller's handle: audio in, end or abort. Dropping it aborts.
pub struct LiveSession {
    input: mpsc::UnboundedSender<Input>,
}

impl LiveSession {
    /// Queues audio; false once the session is over (ended, aborted, failed).
    pub fn write(&self, chunk: Chunk) -> bool {
        self.input.send(Input::Audio(chunk)).is_ok()
    }

    /// No more audio: the utterance under way is finished and transcribed;
    /// Closed follows the last final.
    pub fn end(&self) {
        let _ = self.input.send(Input::End);
    }

    /// Stops at once: what is in flight is aborted, nothing more is reported
    /// but Closed (ERR_ABORTED).
    pub fn abort(&self) {
        let _ = self.input.send(Input::Abort);
    }

    /// Something that can abort the session without keeping it alive
    /// (a caller's AbortSignal holds it).
    pub fn aborter(&self) -> Aborter {
        Aborter(self.input.downgrade())
    }
}

pub struct Aborter(mpsc::WeakUnboundedSender<Input>);

impl Aborter {
    pub fn abort(&self) {
        if let Some(input) = self.0.upgrade() {
            let _ = input.send(Input::Abort);
        }
    }
}

/// Starts a session on `runtime`; its events go to `emit`, Closed last.
pub fn start(
    engine: Engine,
    setup: LiveSetup,
    options: LiveOptions,
    emit: Emit,
    runtime: &tokio::runtime::Handle,
) -> LiveSession {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = Task::new(engine, setup, options, emit);
    runtime.spawn(task.run(rx));
    LiveSession { input: tx }
}

/// The utterance under way.
struct Current {
    id: u64,
    start: u64,
    /// What the detector had heard when the last partial was asked for.
    partial_at: u64,
}

/// A transcription in the pool, for one utterance.
struct InPool {
    utterance: u64,
    start: u64,
    end: u64,
    abort: AbortHandle,
    reply: JoinHandle<Reply>,
}

struct Task {
    engine: Engine,
    setup: LiveSetup,
    options: LiveOptions,
    partial_decoding: Decoding,
    emit: Emit,
    stream: u64,
    converter: Converter,
    segmenter: Segmenter,
    /// 16 kHz samples from `base` on (what a later cut may still need).
    audio: Vec<f32>,
    base: u64,
    /// Samples heard in all (the detector may round the end up to a window).
    heard: u64,
    /// Samples given to the detector.
    fed: u64,
    /// The most samples held at once.
    peak: u64,
    detecting: Option<JoinHandle<Result<Vec<f32>>>>,
    current: Option<Current>,
    utterances: u64,
    partial: Option<InPool>,
    finals: VecDeque<InPool>,
    ending: bool,
}

impl Task {
    fn new(engine: Engine, setup: LiveSetup, options: LiveOptions, emit: Emit) -> Self {
        let stream = setup.vad.open_stream();
        Task {
            partial_decoding: partial_decoding(&setup.decoding),
            converter: Converter::new(options.sample_rate),
            segmenter: Segmenter::new(options.vad),
            engine,
            setup,
            options,
            emit,
            stream,
            audio: Vec::new(),
            base: 0,
            heard: 0,
            fed: 0,
            peak: 0,
            detecting: None,
            current: None,
            utterances: 0,
            partial: None,
            finals: VecDeque::new(),
            ending: false,
        }
    }

    async fn run(mut self, mut input: mpsc::UnboundedReceiver<Input>) {
        let every = self.options.partial_interval;
        let mut ticker = tokio::time::interval(every.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            self.detect();
            if self.ending && self.drained() {
                break Ok(Summary {
                    utterances: self.utterances,
                    duration_ms: ms(self.heard),
                    peak_buffered_ms: ms(self.peak),
                });
            }
            // A final in flight goes first: no partial competes with it for the cores.
            let partials = every.is_some()
                && self.current.is_some()
                && self.partial.is_none()
                && self.finals.is_empty();
            tokio::select! {
                got = input.recv(), if !self.ending => match got {
                    Some(Input::Audio(chunk)) => self.hear(chunk),
                    Some(Input::End) => {
                        self.ending = true;
                        let tail = self.converter.finish();
                        self.heard += tail.len() as u64;
                        self.audio.extend(tail);
                    }
                    Some(Input::Abort) | None => break Err(WhisperError::Aborted {
                        path: "the live session".into(),
                    }),
                },
                probs = join(&mut self.detecting) => match probs.and_then(|p| p) {
                    Ok(probs) => self.on_probs(probs),
                    Err(e) => break Err(e),
                },
                reply = join_pool(&mut self.partial) => self.on_partial(reply),
                reply = join_front(&mut self.finals) => {
                    if let Err(e) = self.on_final(reply) {
                        break Err(e);
                    }
                }
                _ = ticker.tick(), if partials => self.ask_partial(),
            }
        };
        self.close(result).await;
    }

    fn hear(&mut self, chunk: Chunk) {
        let samples = self.converter.push(chunk);
        self.heard += samples.len() as u64;
        self.audio.extend(samples);
        self.peak = self.peak.max(self.audio.len() as u64);
    }

    fn end_of_audio(&self) -> u64 {
        self.base + self.audio.len() as u64
    }

    /// Every sample heard was detected and every utterance delivered.
    fn drained(&self) -> bool {
        self.detecting.is_none()
            && self.fed >= self.end_of_audio()
            && self.current.is_none()
            && self.partial.is_none()
            && self.finals.is_empty()
    }

    /// Gives the detector the next whole windows, if it is idle; at the
    /// end, the last part window (with silence after it), then the end of
    /// the utterance under way.
    fn detect(&mut self) {
        if self.detecting.is_some() {
            return;
        }
        let mut waiting = self.end_of_audio() - self.fed;
        if self.ending && waiting > 0 && waiting < W {
            self.audio
                .resize(self.audio.len() + (W - waiting) as usize, 0.0);
            waiting = W;
        }
        if waiting < W {
            if self.ending && self.current.is_some() {
                if let Some(Cut::End(at)) = self.segmenter.finish(self.heard) {
                    self.end_utterance(at);
                }
            }
            return;
        }
        let n = (waiting / W).min(WINDOWS_PER_CALL) * W;
        let from = (self.fed - self.base) as usize;
        let samples = self.audio[from..from + n as usize].to_vec();
        let vad = self.setup.vad.clone();
        let stream = self.stream;
        self.detecting = Some(tokio::spawn(
            async move { vad.probs(stream, &samples).await },
        ));
    }

    fn on_probs(&mut self, probs: Vec<f32>) {
        for p in probs {
            self.fed += W;
            match self.segmenter.push(p) {
                Some(Cut::Start(at)) => {
                    // Utterances are numbered from 0, in the order spoken.
                    let id = self.utterances;
                    self.utterances += 1;
                    self.current = Some(Current {
                        id,
                        start: at.max(self.base),
                        partial_at: self.fed,
                    });
                    self.send(LiveEvent::SpeechStart {
                        utterance: id,
                        start_ms: ms(at),
                    });
                }
                Some(Cut::End(at)) => self.end_utterance(at),
                None => {}
            }
        }
        // Only what a later cut can reach is kept.
        let keep = self.segmenter.keep_from().min(self.fed);
        if keep > self.base {
            let drop = ((keep - self.base) as usize).min(self.audio.len());
            self.audio.drain(..drop);
            self.base += drop as u64;
        }
    }

    /// The utterance under way ended at sample `at`: its partial is
    /// dropped and its final asked for.
    fn end_utterance(&mut self, at: u64) {
        let Some(current) = self.current.take() else {
            return;
        };
        if let Some(p) = self.partial.take() {
            p.abort.abort();
        }
        let end = at.min(self.heard).max(current.start);
        self.send(LiveEvent::SpeechEnd {
            utterance: current.id,
            start_ms: ms(current.start),
            end_ms: ms(end),
        });
        let options = TranscribeOptions {
            language: self.options.language.clone(),
            priority: Priority::High,
            ..Default::default()
        };
        let final_ = self.submit(current.id, current.start, end, options);
        self.finals.push_back(final_);
    }

    /// A partial of the utterance so far, when there is new audio since the last.
    fn ask_partial(&mut self) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let every = self.options.partial_interval.unwrap_or_default();
        let fresh = self.fed.saturating_sub(current.partial_at);
        if fresh == 0 || fresh < every.as_millis() as u64 * RATE as u64 / 1000 / 2 {
            return;
        }
        current.partial_at = self.fed;
        let (id, start, end) = (current.id, current.start, self.fed.min(self.heard));
        let mut decoding = self.partial_decoding.clone();
        let frames = (end - start).div_ceil(FRAME) + PARTIAL_FRAME_MARGIN;
        decoding.audio_ctx = frames.clamp(PARTIAL_MIN_FRAMES, 1500) as i32;
        let options = TranscribeOptions {
            language: self.options.language.clone(),
            priority: Priority::High,
            timeout: Some(PARTIAL_TIMEOUT_MIN.max(every * 4)),
            decoding: Some(Arc::new(decoding)),
            ..Default::default()
        };
        self.partial = Some(self.submit(id, start, end, options));
    }

    fn submit(&self, utterance: u64, start: u64, end: u64, options: TranscribeOptions) -> InPool {
        let from = (start - self.base) as usize;
        let to = ((end - self.base) as usize).min(self.audio.len());
        let samples = self.audio[from.min(to)..to].to_vec();
        let submitted = self.engine.transcribe(Audio::Samples(samples), options);
        InPool {
            utterance,
            start,
            end,
            abort: submitted.abort_handle(),
            reply: tokio::spawn(submitted.settle()),
        }
    }

    fn on_partial(&mut self, (p, reply): (InPool, Reply)) {
        let current = self.current.as_ref().map(|c| c.id);
        // A partial that failed is no news: the final will say.
        if let (Ok(result), Some(id)) = (reply, current) {
            if id == p.utterance {
                self.send(LiveEvent::Partial {
                    utterance: p.utterance,
                    text: result.transcript.text,
                    start_ms: ms(p.start),
                    end_ms: ms(p.end),
                });
            }
        }
    }

    /// Delivers a final; Err ends the session (the engine is gone).
    fn on_final(&mut self, (f, reply): (InPool, Reply)) -> Result<()> {
        match reply {
            Ok(result) => {
                let transcript = shifted(result.transcript, ms(f.start));
                self.send(LiveEvent::Final {
                    utterance: f.utterance,
                    transcript,
                    start_ms: ms(f.start),
                    end_ms: ms(f.end),
                });
                Ok(())
            }
            Err(e @ WhisperError::Shutdown { .. }) => Err(e),
            Err(error) => {
                self.send(LiveEvent::Failed {
                    utterance: Some(f.utterance),
                    error,
                });
                Ok(())
            }
        }
    }

    fn send(&self, event: LiveEvent) {
        (self.emit)(event);
    }

    async fn close(mut self, result: Result<Summary>) {
        if let Some(d) = self.detecting.take() {
            d.abort();
        }
        for p in self.partial.take().into_iter().chain(self.finals.drain(..)) {
            p.abort.abort();
            p.reply.abort();
        }
        self.setup.vad.close_stream(self.stream).await;
        if let Err(error) = &result {
            if !matches!(error, WhisperError::Aborted { .. }) {
                self.send(LiveEvent::Failed {
                    utterance: None,
                    error: error.clone(),
                });
            }
        }
        self.send(LiveEvent::Closed(result));
    }
}

/// A quick hypothesis: greedy, no fallback, no timestamps.
fn partial_decoding(engine: &Decoding) -> Decoding {
    let mut d = engine.clone();
    d.beam_size = 1;
    d.best_of = 1;
    d.temperature_inc = 0.0;
    d.no_timestamps = true;
    d.max_len = 0;
    d.vad = false;
    d
}

/// The transcript of an utterance, its times made the session's.
fn shifted(mut t: Transcript, offset_ms: u64) -> Transcript {
    for s in &mut t.segments {
        s.start_ms += offset_ms;
        s.end_ms += offset_ms;
    }
    t
}

fn ms(samples: u64) -> u64 {
    samples * 1000 / RATE as u64
}

fn lost(e: tokio::task::JoinError) -> WhisperError {
    WhisperError::NoWorker {
        detail: format!("a live session's task failed: {e}"),
    }
}

/// The task's outcome once it ends; never, while there is none.
async fn join<T>(slot: &mut Option<JoinHandle<Result<T>>>) -> Result<Result<T>> {
    let Some(handle) = slot.as_mut() else {
        return std::future::pending().await;
    };
    let out = handle.await.map_err(lost);
    *slot = None;
    out
}

async fn join_pool(slot: &mut Option<InPool>) -> (InPool, Reply) {
    let Some(p) = slot.as_mut() else {
        return std::future::pending().await;
    };
    let reply = (&mut p.reply).await.unwrap_or_else(|e| Err(lost(e)));
    (slot.take().expect("awaited it"), reply)
}

/// The oldest final's reply: finals are delivered in the order spoken.
async fn join_front(finals: &mut VecDeque<InPool>) -> (InPool, Reply) {
    let Some(f) = finals.front_mut() else {
        return std::future::pending().await;
    };
    let reply = (&mut f.reply).await.unwrap_or_else(|e| Err(lost(e)));
    (finals.pop_front().expect("awaited it"), reply)
}
