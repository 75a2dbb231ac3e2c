//! Voice activity detection streams (a worker started with `--vad-model`):
//! each stream keeps its own Silero detector, whose state carries on from
//! one batch of samples to the next, and answers each batch with the speech
//! probability of every window.

use crate::ffi;
use persistent_whisper_protocol::VAD_WINDOW;
use std::collections::HashMap;
use std::ffi::CString;

/// One stream's detector, freed once.
struct Detector(*mut ffi::RawVad);

impl Drop for Detector {
    fn drop(&mut self) {
        // SAFETY: from pw_vad_open, freed once.
        unsafe { ffi::pw_vad_free(self.0) }
    }
}

// SAFETY: a detector is used by one thread at a time (the VAD thread).
unsafe impl Send for Detector {}

pub struct Streams {
    model: CString,
    detectors: HashMap<u64, Detector>,
}

impl Streams {
    pub fn new(model: &str) -> Result<Streams, String> {
        let model = CString::new(model).map_err(|_| "the VAD model path holds a NUL character")?;
        let streams = Streams {
            model,
            detectors: HashMap::new(),
        };
        // Prove the model loads before saying ready.
        streams.open()?;
        Ok(streams)
    }

    fn open(&self) -> Result<Detector, String> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: a valid C string and out-pointer. One thread: the VAD is
        // a few thousand operations per window.
        match unsafe { ffi::pw_vad_open(self.model.as_ptr(), 1, &mut raw) } {
            ffi::OK if !raw.is_null() => Ok(Detector(raw)),
            _ => Err("failed to load the VAD model".into()),
        }
    }

    /// The speech probability of each window of `samples` (whole windows),
    /// continuing stream `id` (a new id starts a stream).
    pub fn probs(&mut self, id: u64, samples: &[f32]) -> Result<Vec<f32>, String> {
        if !samples.len().is_multiple_of(VAD_WINDOW) {
            return Err(format!(
                "VAD audio must be whole windows of {VAD_WINDOW} samples"
            ));
        }
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let n = i32::try_from(samples.len()).map_err(|_| "too many samples at once")?;
        if !self.detectors.contains_key(&id) {
            let detector = self.open()?;
            self.detectors.insert(id, detector);
        }
        let detector = &self.detectors[&id];
        let mut probs = vec![0f32; samples.len() / VAD_WINDOW];
        let mut count = 0;
        // SAFETY: `probs` has room for one value per window.
        let rc = unsafe {
            ffi::pw_vad_probs(
                detector.0,
                samples.as_ptr(),
                n,
                probs.as_mut_ptr(),
                &mut count,
            )
        };
        if rc != ffi::OK {
            return Err("the voice activity detector failed".into());
        }
        probs.truncate(count.max(0) as usize);
        Ok(probs)
    }

    pub fn close(&mut self, id: u64) {
        self.detectors.remove(&id);
    }
}
