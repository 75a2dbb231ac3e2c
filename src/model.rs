//! Checks a model file before any worker loads it: a ggml whisper model
//! with a plausible header.

use crate::error::{display_path, Result, WhisperError};
use std::path::Path;

/// ggml's magic number, as the bytes of a little-endian i32.
const GGML_MAGIC: [u8; 4] = 0x6767_6d6cu32.to_le_bytes();

/// The model exists, is a file, and starts with a plausible ggml whisper
/// header. Returns its size. (A model truncated after its header still gets
/// past this; whisper reports it when it loads the file.)
pub fn check_model(path: &Path) -> Result<u64> {
    let fail = |reason: &str| WhisperError::ModelLoad {
        path: display_path(path),
        reason: reason.to_owned(),
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(&e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("it is not a file"));
    }
    let mut header = [0u8; 48];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .map_err(|_| fail("the file is too short to be a model"))?;
    if header[..4] != GGML_MAGIC {
        return Err(fail("it is not a ggml whisper model (wrong magic number); convert other formats with the project's ct2-to-ggml or whisper.cpp's converters"));
    }
    if !plausible_hparams(&header[4..]) {
        return Err(fail(
            "its header is corrupt (implausible model dimensions); download or convert it again",
        ));
    }
    Ok(meta.len())
}

/// The Silero VAD model's file names, the preferred first (whisper.cpp's default).
pub const VAD_MODEL_NAMES: &[&str] = &["ggml-silero-v6.2.0.bin", "ggml-silero-v5.1.2.bin"];

/// The Silero VAD model to use: the one named (it must be a file), else
/// one of VAD_MODEL_NAMES beside the whisper model. None: there is none.
pub fn find_vad_model(
    named: Option<&Path>,
    whisper_model: &Path,
) -> Result<Option<std::path::PathBuf>> {
    if let Some(path) = named {
        return match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Some(path.to_path_buf())),
            _ => Err(WhisperError::ModelLoad {
                path: display_path(path),
                reason: "the VAD model (vadModelPath) is not a file".into(),
            }),
        };
    }
    let dir = whisper_model.parent().unwrap_or(Path::new("."));
    Ok(VAD_MODEL_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file()))
}

/// What to do without a VAD model, for the error that says so.
pub fn no_vad_model(whisper_model: &Path) -> WhisperError {
    let dir = whisper_model.parent().unwrap_or(Path::new("."));
    WhisperError::ModelLoad {
        path: display_path(&dir.join(VAD_MODEL_NAMES[0])),
        reason: format!(
            "voice activity detection needs a Silero VAD model beside the whisper model or named by vadModelPath: download it with `npx persistent-whisper models download silero-v6.2.0 --dir {}`",
            display_path(dir)
        ),
    }
}

/// n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
/// n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype.
fn plausible_hparams(bytes: &[u8]) -> bool {
    let v: Vec<i32> = bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let dims_ok = v[..9].iter().all(|&d| (1..=1 << 20).contains(&d));
    let mels_ok = matches!(v[9], 80 | 128);
    // ftype carries the quantization version in its thousands.
    let ftype_ok = v[10] >= 0 && v[10] % 1000 < 64;
    dims_ok && mels_ok && ftype_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_check_reads_the_header() {
        let dir = std::env::temp_dir().join(format!("pw-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut header: Vec<u8> = GGML_MAGIC.to_vec();
        for v in [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1] {
            header.extend_from_slice(&i32::to_le_bytes(v));
        }
        let good = dir.join("good.bin");
        std::fs::write(&good, &header).unwrap();
        assert_eq!(check_model(&good).unwrap(), 48);
        header[4 + 9 * 4] = 7; // n_mels 7
        let bad = dir.join("bad.bin");
        std::fs::write(&bad, &header).unwrap();
        assert!(check_model(&bad)
            .unwrap_err()
            .to_string()
            .contains("corrupt"));
    }

    #[test]
    fn model_check_reads_the_magic_number() {
        let e = check_model(Path::new("Cargo.toml")).unwrap_err();
        assert_eq!(e.code(), "ERR_MODEL_LOAD");
        assert!(e.to_string().contains("magic"), "{e}");
        assert_eq!(
            check_model(Path::new("/no/model.bin")).unwrap_err().code(),
            "ERR_MODEL_LOAD"
        );
    }
}
