//! Core errors as JS Errors: `message` says what to do, `code` is stable.

use crate::error::WhisperError;
use napi::bindgen_prelude::*;

/// The JS Error for a core error, made on the JS thread.
pub fn to_js_error(env: &Env, error: &WhisperError) -> Error {
    let made = env
        .create_error(Error::new(Status::GenericFailure, error.to_string()))
        .and_then(|mut obj| {
            obj.set("code", error.code())?;
            Ok(Error::from(obj.to_unknown()))
        });
    made.unwrap_or_else(|e| e)
}

/// Thrown synchronously (the constructor): napi sets `code` from the status string.
pub fn to_thrown(error: WhisperError) -> Error<&'static str> {
    Error::new(error.code(), error.to_string())
}

/// Takes the exception a JS getter threw (napi leaves it pending, and a
/// pending exception would be thrown at the caller when this call returns)
/// and returns its message.
pub fn take_exception(env: &Env) -> Option<String> {
    let mut exception = std::ptr::null_mut();
    let mut pending = false;
    // SAFETY: plain N-API calls on the current env, on the JS thread.
    unsafe {
        napi::sys::napi_is_exception_pending(env.raw(), &mut pending);
        if !pending {
            return None;
        }
        napi::sys::napi_get_and_clear_last_exception(env.raw(), &mut exception);
        let value = Unknown::from_raw_unchecked(env.raw(), exception);
        let message = value
            .coerce_to_string()
            .and_then(|s| s.into_utf8())
            .and_then(|s| s.as_str().map(str::to_owned));
        Some(message.unwrap_or_else(|_| "an exception".into()))
    }
}
