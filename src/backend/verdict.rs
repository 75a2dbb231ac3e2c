//! How to read whisper's verdict on a request, shared by the backends:
//! whisper-cli's exit code is not one (it exits 0 on unreadable audio and
//! unknown flags), so the words it prints decide.

use crate::error::{display_path, WhisperError};
use std::path::Path;

/// What to tell a user whose file whisper cannot decode.
pub const AUDIO_ADVICE: &str = "Use WAV, MP3, FLAC or OGG; convert other formats (m4a, aac, video files) first, e.g. with ffmpeg";

/// whisper's words for a model it cannot load; exit code 3 says the same.
const MODEL_FAILURE: &str = "failed to initialize whisper context";

/// The model could not be loaded: exit code 3, or whisper's words for it.
pub fn model_failure(
    model: &Path,
    exit_code: Option<i32>,
    stderr: &str,
    detail: impl FnOnce() -> String,
) -> Option<WhisperError> {
    (exit_code == Some(3) || stderr.contains(MODEL_FAILURE)).then(|| WhisperError::ModelLoad {
        path: display_path(model),
        reason: detail(),
    })
}

/// whisper could not find or decode the audio (`audio` as errors name it).
pub fn audio_failure(audio: &str, stderr: &str) -> Option<WhisperError> {
    let path = audio.to_owned();
    if stderr.contains("input file not found") {
        return Some(WhisperError::AudioNotFound { path });
    }
    if stderr.contains("failed to read audio") {
        return Some(unreadable(audio, "whisper cannot decode it as audio"));
    }
    None
}

/// Audio whisper cannot decode, with the advice.
pub fn unreadable(audio: &str, what: &str) -> WhisperError {
    WhisperError::AudioUnreadable {
        path: audio.to_owned(),
        reason: format!("{what}. {AUDIO_ADVICE}"),
    }
}

/// The first `error:` line whisper printed, if any.
pub fn error_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find(|l| l.trim_start().starts_with("error:"))
        .map(|l| l.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whispers_words() {
        let m = Path::new("/m/ggml.bin");
        let e = model_failure(
            m,
            Some(0),
            "error: failed to initialize whisper context",
            || "x".into(),
        )
        .unwrap();
        assert_eq!(e.code(), "ERR_MODEL_LOAD");
        assert!(e.to_string().contains("/m/ggml.bin"));
        assert!(model_failure(m, Some(3), "", || "x".into()).is_some());
        assert!(model_failure(m, Some(0), "", || "x".into()).is_none());
        let a = "/a.m4a";
        assert_eq!(
            audio_failure(a, "error: input file not found")
                .unwrap()
                .code(),
            "ERR_AUDIO_NOT_FOUND"
        );
        let e = audio_failure(a, "error: failed to read audio file").unwrap();
        assert!(e.to_string().contains("ffmpeg"), "{e}");
        assert_eq!(
            error_line("a\n  error: boom \n"),
            Some("error: boom".into())
        );
    }
}
