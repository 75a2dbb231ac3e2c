//! shim.cpp's C API, as declared there. The decoding settings' C struct
//! comes from one Rust definition (persistent_whisper_protocol::Decoding),
//! which build.rs also turns into the C declaration shim.cpp includes.

use persistent_whisper_protocol::RawDecoding;
use std::ffi::{c_char, c_void};

#[repr(C)]
pub struct RawModel {
    _private: [u8; 0],
}

#[repr(C)]
pub struct RawDecoder {
    _private: [u8; 0],
}

#[repr(C)]
pub struct RawVad {
    _private: [u8; 0],
}

/// What every shim function returns (pw_status).
pub const OK: i32 = 0;
pub const ABORTED: i32 = 1;
pub const NO_MEMORY: i32 = 3;
pub const NOT_AUDIO: i32 = 4;

/// Optional changes to whisper.cpp a build has (pw_feature).
pub const FEATURE_LIVE_THREADS: i32 = 1;
pub const FEATURE_ZEROED_KV_PAGES: i32 = 2;
pub const FEATURE_SHARED_ENCODERS: i32 = 4;

pub type ProgressFn = unsafe extern "C" fn(*mut c_void, i32);
pub type SegmentFn = unsafe extern "C" fn(*mut c_void, i64, i64, *const c_char);
pub type AbortFn = unsafe extern "C" fn(*mut c_void) -> bool;

extern "C" {
    pub fn pw_features() -> i32;
    pub fn pw_log_to_stderr(on: bool);
    pub fn pw_model_load(
        path: *const c_char,
        use_gpu: bool,
        flash_attn: bool,
        encoders: i32,
        out: *mut *mut RawModel,
    ) -> i32;
    pub fn pw_model_free(model: *mut RawModel);
    pub fn pw_decoder_open(bytes: *const c_void, len: usize, out: *mut *mut RawDecoder) -> i32;
    pub fn pw_decoder_source_format(d: *mut RawDecoder, rate: *mut u32, channels: *mut u32) -> i32;
    pub fn pw_decoder_claimed_frames(d: *mut RawDecoder) -> u64;
    pub fn pw_decoder_read(d: *mut RawDecoder, out: *mut f32, frames: u64, read: *mut u64) -> i32;
    pub fn pw_decoder_free(d: *mut RawDecoder);
    #[allow(clippy::too_many_arguments)]
    pub fn pw_transcribe(
        model: *mut RawModel,
        samples: *const f32,
        n: i32,
        language: *const c_char,
        threads: i32,
        live_threads: *const i32,
        decoding: *const RawDecoding,
        user: *mut c_void,
        progress: Option<ProgressFn>,
        segment: SegmentFn,
        abort: AbortFn,
        language_id: *mut i32,
    ) -> i32;
    pub fn pw_language_code(id: i32) -> *const c_char;
    pub fn pw_vad_open(path: *const c_char, threads: i32, out: *mut *mut RawVad) -> i32;
    pub fn pw_vad_probs(
        vad: *mut RawVad,
        samples: *const f32,
        n: i32,
        out: *mut f32,
        n_probs: *mut i32,
    ) -> i32;
    pub fn pw_vad_free(vad: *mut RawVad);
}
