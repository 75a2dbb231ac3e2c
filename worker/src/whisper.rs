//! The shim's model and transcription in safe Rust.

use crate::ffi;
use persistent_whisper_protocol::{Decoding, Segment, MAX_SEGMENT_TEXT};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

pub fn log_to_stderr(on: bool) {
    // SAFETY: sets a process-wide log callback.
    unsafe { ffi::pw_log_to_stderr(on) }
}

/// The changes to whisper.cpp this build has (patches/whisper.cpp), by the
/// names the engine shows in its status.
pub fn features() -> Vec<String> {
    // SAFETY: a plain query.
    let f = unsafe { ffi::pw_features() };
    [
        (ffi::FEATURE_LIVE_THREADS, "liveThreads"),
        (ffi::FEATURE_ZEROED_KV_PAGES, "zeroedKvPages"),
        (ffi::FEATURE_SHARED_ENCODERS, "sharedEncoders"),
    ]
    .iter()
    .filter(|(bit, _)| f & bit != 0)
    .map(|(_, name)| (*name).to_owned())
    .collect()
}

/// A loaded model, shared by every transcription (each has its own state).
pub struct Model(*mut ffi::RawModel);

// SAFETY: whisper.cpp allows concurrent whisper_full_with_state calls on one
// context, each with its own state (whisper_full_parallel does this).
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the pointer came from pw_model_load and is freed once.
        unsafe { ffi::pw_model_free(self.0) }
    }
}

impl Model {
    /// The shim's model, for the device probe (device.rs).
    pub fn raw(&self) -> *mut ffi::RawModel {
        self.0
    }
}

fn text(p: *const c_char) -> String {
    // SAFETY: the shim passes NUL-terminated strings that live for the call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A segment's text, cut (at a character boundary) so that its message fits.
fn bounded(mut s: String) -> String {
    if s.len() > MAX_SEGMENT_TEXT {
        let mut at = MAX_SEGMENT_TEXT;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

pub enum Outcome {
    Done { language: String },
    Aborted,
    Failed(&'static str),
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
        text: bounded(text(t)),
    });
}

unsafe extern "C" fn on_abort<O: Observer>(user: *mut c_void) -> bool {
    // SAFETY: as above.
    let o = unsafe { &*(user as *const O) };
    o.stop().load(Ordering::SeqCst)
}

impl Model {
    /// Loads the model; at most `encoders` decodes run their encoder at once,
    /// on buffers they share. Err says why.
    pub fn load(
        path: &str,
        use_gpu: bool,
        flash_attn: bool,
        encoders: u32,
    ) -> Result<Model, String> {
        let path = CString::new(path).map_err(|_| "the model path holds a NUL character")?;
        let encoders = i32::try_from(encoders.max(1)).unwrap_or(i32::MAX);
        let mut raw = std::ptr::null_mut();
        // SAFETY: a valid C string and out-pointer.
        let rc =
            unsafe { ffi::pw_model_load(path.as_ptr(), use_gpu, flash_attn, encoders, &mut raw) };
        match rc {
            ffi::OK if !raw.is_null() => Ok(Model(raw)),
            ffi::NO_MEMORY => Err("there was not enough memory to load it".into()),
            _ => Err("failed to initialize whisper context".into()),
        }
    }

    /// Transcribes 16 kHz mono samples; every segment goes to the observer
    /// as whisper decodes it, and the outcome says how it ended.
    pub fn transcribe<O: Observer>(
        &self,
        samples: &[f32],
        language: &str,
        decoding: &Decoding,
        progress: bool,
        observer: &O,
    ) -> Outcome {
        // whisper takes the sample count as an int.
        let Ok(n) = i32::try_from(samples.len()) else {
            return Outcome::Failed("the audio is too long for whisper (over 2^31 samples)");
        };
        let Ok(language) = CString::new(language) else {
            return Outcome::Failed("the language holds a NUL character");
        };
        let mut keep = Vec::new();
        let Ok(raw) = decoding.raw(&mut keep) else {
            return Outcome::Failed("a decoding setting holds a NUL character");
        };
        let threads = observer.threads();
        let mut language_id = -1;
        let user = observer as *const O as *mut c_void;
        // SAFETY: every pointer is valid for the call (the strings in `raw`
        // live in `keep`); the callbacks cast `user` back to &O.
        let rc = unsafe {
            ffi::pw_transcribe(
                self.0,
                samples.as_ptr(),
                n,
                language.as_ptr(),
                threads.load(Ordering::Relaxed),
                threads.as_ptr(),
                &raw,
                user,
                progress.then_some(on_progress::<O> as ffi::ProgressFn),
                on_segment::<O>,
                on_abort::<O>,
                &mut language_id,
            )
        };
        match rc {
            ffi::OK => Outcome::Done {
                // SAFETY: a static string of whisper's language table.
                language: text(unsafe { ffi::pw_language_code(language_id) }),
            },
            ffi::ABORTED => Outcome::Aborted,
            ffi::NO_MEMORY => Outcome::Failed("there was not enough memory to transcribe it"),
            _ => Outcome::Failed("whisper failed to process the audio"),
        }
    }
}
