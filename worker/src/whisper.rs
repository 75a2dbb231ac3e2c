//! The shim's C API (shim.cpp) in safe Rust: a loaded model, audio decoding
//! as whisper-cli does it, and one transcription with callbacks.

use persistent_whisper_protocol::{Params, Segment};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

#[repr(C)]
struct RawModel {
    _private: [u8; 0],
}

#[repr(C)]
struct RawResult {
    _private: [u8; 0],
}

#[repr(C)]
struct RawParams {
    language: *const c_char,
    threads: i32,
    beam_size: i32,
    best_of: i32,
    temperature: f32,
    temperature_inc: f32,
    entropy_thold: f32,
    logprob_thold: f32,
    no_speech_thold: f32,
    word_thold: f32,
    max_context: i32,
    max_len: i32,
    audio_ctx: i32,
    split_on_word: bool,
    translate: bool,
    no_timestamps: bool,
    suppress_nst: bool,
    prompt: *const c_char,
    carry_initial_prompt: bool,
    offset_ms: i32,
    duration_ms: i32,
    /// The decode's current thread count, which may change while it runs.
    threads_now: *const i32,
}

type ProgressFn = unsafe extern "C" fn(*mut c_void, i32);
type SegmentFn = unsafe extern "C" fn(*mut c_void, i64, i64, *const c_char);
type AbortFn = unsafe extern "C" fn(*mut c_void) -> bool;

extern "C" {
    fn pw_log_to_stderr(on: bool);
    fn pw_model_load(
        path: *const c_char,
        use_gpu: bool,
        flash_attn: bool,
        encoders: i32,
    ) -> *mut RawModel;
    fn pw_model_free(model: *mut RawModel);
    fn pw_audio_from_file(path: *const c_char, out: *mut *mut f32, n: *mut usize) -> i32;
    fn pw_audio_from_memory(
        bytes: *const c_char,
        len: usize,
        out: *mut *mut f32,
        n: *mut usize,
    ) -> i32;
    fn pw_free(p: *mut c_void);
    fn pw_transcribe(
        model: *mut RawModel,
        samples: *const f32,
        n: usize,
        params: *const RawParams,
        user: *mut c_void,
        progress: Option<ProgressFn>,
        segment: Option<SegmentFn>,
        abort: AbortFn,
        out: *mut *mut RawResult,
    ) -> i32;
    fn pw_result_count(r: *const RawResult) -> i32;
    fn pw_result_t0(r: *const RawResult, i: i32) -> i64;
    fn pw_result_t1(r: *const RawResult, i: i32) -> i64;
    fn pw_result_text(r: *const RawResult, i: i32) -> *const c_char;
    fn pw_result_language(r: *const RawResult) -> *const c_char;
    fn pw_result_free(r: *mut RawResult);
}

pub fn log_to_stderr(on: bool) {
    // SAFETY: sets a process-wide log callback.
    unsafe { pw_log_to_stderr(on) }
}

/// A loaded model, shared by every transcription (each has its own state).
pub struct Model(*mut RawModel);

// SAFETY: whisper.cpp allows concurrent whisper_full_with_state calls on one
// context, each with its own state (whisper_full_parallel does this).
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the pointer came from pw_model_load and is freed once.
        unsafe { pw_model_free(self.0) }
    }
}

fn text(p: *const c_char) -> String {
    // SAFETY: the shim returns NUL-terminated strings that live as long as the result.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Samples from the shim's malloc'd buffer.
fn take(rc: i32, ptr: *mut f32, n: usize) -> Option<Vec<f32>> {
    if rc != 0 || ptr.is_null() {
        return None;
    }
    // SAFETY: the shim allocated n floats at ptr; copied, then freed once.
    let samples = unsafe { std::slice::from_raw_parts(ptr, n) }.to_vec();
    unsafe { pw_free(ptr.cast()) };
    Some(samples)
}

/// A file's audio as 16 kHz mono samples, decoded as whisper-cli decodes it.
pub fn audio_from_file(path: &str) -> Option<Vec<f32>> {
    let path = CString::new(path).ok()?;
    let (mut ptr, mut n) = (std::ptr::null_mut(), 0usize);
    // SAFETY: valid C string and out-pointers.
    let rc = unsafe { pw_audio_from_file(path.as_ptr(), &mut ptr, &mut n) };
    take(rc, ptr, n)
}

/// Audio file bytes (WAV, MP3, FLAC, OGG) as 16 kHz mono samples.
pub fn audio_from_memory(bytes: &[u8]) -> Option<Vec<f32>> {
    let (mut ptr, mut n) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the buffer is valid for its length.
    let rc = unsafe { pw_audio_from_memory(bytes.as_ptr().cast(), bytes.len(), &mut ptr, &mut n) };
    take(rc, ptr, n)
}

pub enum Outcome {
    Done {
        language: String,
        segments: Vec<Segment>,
    },
    Aborted,
    Failed,
}

/// What a transcription reports as it goes, and whether it should stop.
pub trait Observer {
    fn progress(&self, percent: u8);
    fn segment(&self, segment: Segment);
    fn stop(&self) -> &AtomicBool;
    /// Its thread count, read before each of whisper's steps.
    fn threads(&self) -> &AtomicI32;
}

unsafe extern "C" fn on_progress<O: Observer>(user: *mut c_void, percent: i32) {
    // SAFETY: user is the &O passed to pw_transcribe, alive for the call.
    let o = unsafe { &*(user as *const O) };
    o.progress(percent.clamp(0, 100) as u8);
}

unsafe extern "C" fn on_segment<O: Observer>(
    user: *mut c_void,
    t0: i64,
    t1: i64,
    t: *const c_char,
) {
    // SAFETY: as above; the text lives for the callback.
    let o = unsafe { &*(user as *const O) };
    o.segment(Segment {
        start_ms: t0,
        end_ms: t1,
        text: text(t),
    });
}

unsafe extern "C" fn on_abort<O: Observer>(user: *mut c_void) -> bool {
    // SAFETY: as above.
    let o = unsafe { &*(user as *const O) };
    o.stop().load(Ordering::SeqCst)
}

impl Model {
    /// Loads the model; at most `encoders` decodes run their encoder at once,
    /// on buffers they share.
    pub fn load(path: &str, use_gpu: bool, flash_attn: bool, encoders: u32) -> Option<Model> {
        let path = CString::new(path).ok()?;
        let encoders = i32::try_from(encoders.max(1)).unwrap_or(i32::MAX);
        // SAFETY: a valid C string.
        let raw = unsafe { pw_model_load(path.as_ptr(), use_gpu, flash_attn, encoders) };
        (!raw.is_null()).then_some(Model(raw))
    }

    pub fn transcribe<O: Observer>(&self, samples: &[f32], p: &Params, observer: &O) -> Outcome {
        let (Ok(language), Ok(prompt)) = (
            CString::new(p.language.as_str()),
            CString::new(p.prompt.as_str()),
        ) else {
            return Outcome::Failed;
        };
        let raw = RawParams {
            language: language.as_ptr(),
            threads: observer.threads().load(Ordering::Relaxed),
            beam_size: p.beam_size,
            best_of: p.best_of,
            temperature: p.temperature,
            temperature_inc: p.temperature_inc,
            entropy_thold: p.entropy_thold,
            logprob_thold: p.logprob_thold,
            no_speech_thold: p.no_speech_thold,
            word_thold: p.word_thold,
            max_context: p.max_context,
            max_len: p.max_len,
            audio_ctx: p.audio_ctx,
            split_on_word: p.split_on_word,
            translate: p.translate,
            no_timestamps: p.no_timestamps,
            suppress_nst: p.suppress_nst,
            prompt: prompt.as_ptr(),
            carry_initial_prompt: p.carry_initial_prompt,
            offset_ms: p.offset_ms,
            duration_ms: p.duration_ms,
            threads_now: observer.threads().as_ptr(),
        };
        let mut out = std::ptr::null_mut();
        let user = observer as *const O as *mut c_void;
        // SAFETY: every pointer is valid for the duration of the call; the
        // callbacks cast `user` back to &O.
        let rc = unsafe {
            pw_transcribe(
                self.0,
                samples.as_ptr(),
                samples.len(),
                &raw,
                user,
                p.progress.then_some(on_progress::<O> as ProgressFn),
                p.segments.then_some(on_segment::<O> as SegmentFn),
                on_abort::<O>,
                &mut out,
            )
        };
        match rc {
            0 => {
                // SAFETY: rc 0 means `out` holds a result, freed once below.
                unsafe {
                    let segments = (0..pw_result_count(out))
                        .map(|i| Segment {
                            start_ms: pw_result_t0(out, i),
                            end_ms: pw_result_t1(out, i),
                            text: text(pw_result_text(out, i)),
                        })
                        .collect();
                    let language = text(pw_result_language(out));
                    pw_result_free(out);
                    Outcome::Done { language, segments }
                }
            }
            1 => Outcome::Aborted,
            _ => Outcome::Failed,
        }
    }
}
