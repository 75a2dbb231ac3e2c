//! Checks an audio path before it takes a worker, and estimates the audio's
//! duration (exact for WAV, an upper bound for compressed formats) so the
//! default timeout can scale with it.

use crate::error::{display_path, Result, WhisperError};
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Compressed speech is rarely below 16 kbit/s, so size / 2000 bytes per second
/// overestimates the duration of mp3, ogg and flac files: a safe basis for a timeout.
const MIN_COMPRESSED_BYTES_PER_SEC: u64 = 2000;

#[derive(Debug, Clone)]
pub struct AudioFile {
    /// Absolute, so whisper never mistakes a name like `-x.wav` for a flag.
    pub path: PathBuf,
    pub duration: Duration,
}

fn unreadable(path: &Path, reason: impl Into<String>) -> WhisperError {
    WhisperError::AudioUnreadable {
        path: display_path(path),
        reason: reason.into(),
    }
}

/// Exists, is a regular non-empty file, and can be opened for reading.
pub fn check(path: &str) -> Result<AudioFile> {
    let not_found = || WhisperError::AudioNotFound {
        path: path.to_owned(),
    };
    if path.is_empty() {
        return Err(not_found());
    }
    let abs = std::path::absolute(path).map_err(|_| not_found())?;
    let meta = match std::fs::metadata(&abs) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(unreadable(&abs, format!("{e}"))),
    };
    if meta.is_dir() {
        return Err(unreadable(
            &abs,
            "it is a directory; pass the path of an audio file",
        ));
    }
    if !meta.is_file() {
        return Err(unreadable(
            &abs,
            "it is not a regular file (a device, socket or pipe?)",
        ));
    }
    if meta.len() == 0 {
        return Err(unreadable(&abs, "the file is empty"));
    }
    let mut file =
        File::open(&abs).map_err(|e| unreadable(&abs, format!("it cannot be opened: {e}")))?;
    let duration = wav_duration(&mut file, meta.len()).unwrap_or_else(|| {
        Duration::from_secs_f64(meta.len() as f64 / MIN_COMPRESSED_BYTES_PER_SEC as f64)
    });
    Ok(AudioFile {
        path: abs,
        duration,
    })
}

/// The duration a RIFF/WAVE header describes, counting only the bytes present.
fn wav_duration(file: &mut File, file_len: u64) -> Option<Duration> {
    let mut header = [0u8; 12];
    file.read_exact(&mut header).ok()?;
    if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" {
        return None;
    }
    let mut byte_rate = None;
    let mut pos = 12u64;
    loop {
        let mut chunk = [0u8; 8];
        file.read_exact(&mut chunk).ok()?;
        let size = u32::from_le_bytes(chunk[4..8].try_into().ok()?) as u64;
        pos += 8;
        match &chunk[0..4] {
            b"fmt " => {
                let mut fmt = [0u8; 12];
                file.read_exact(&mut fmt).ok()?;
                byte_rate = Some(u32::from_le_bytes(fmt[8..12].try_into().ok()?) as u64);
                file.seek(SeekFrom::Current(size as i64 - 12)).ok()?;
            }
            b"data" => {
                let rate = byte_rate.filter(|&r| r > 0)?;
                let present = size.min(file_len.saturating_sub(pos));
                return Some(Duration::from_secs_f64(present as f64 / rate as f64));
            }
            _ => {
                file.seek(SeekFrom::Current(size as i64 + (size & 1) as i64))
                    .ok()?;
            }
        }
        pos += size + (size & 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wav(seconds: f64, truncate_to: Option<usize>) -> Vec<u8> {
        let rate = 16000u32;
        let data_len = (seconds * rate as f64) as u32 * 2;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // PCM
        v.extend_from_slice(&1u16.to_le_bytes()); // mono
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * 2).to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(b"abc\0"); // odd chunk plus its pad byte
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        v.resize(v.len() + data_len as usize, 0);
        if let Some(n) = truncate_to {
            v.truncate(n);
        }
        v
    }

    fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pw-audio-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    #[test]
    fn reads_wav_duration_and_counts_only_bytes_present() {
        let p = write_temp("two.wav", &wav(2.0, None));
        let a = check(p.to_str().unwrap()).unwrap();
        assert!(
            (a.duration.as_secs_f64() - 2.0).abs() < 1e-6,
            "{:?}",
            a.duration
        );
        let p = write_temp("cut.wav", &wav(2.0, Some(56 + 16000)));
        let a = check(p.to_str().unwrap()).unwrap();
        assert!(
            (a.duration.as_secs_f64() - 0.5).abs() < 1e-3,
            "{:?}",
            a.duration
        );
    }

    #[test]
    fn estimates_compressed_audio_from_its_size() {
        let p = write_temp("x.mp3", &[7u8; 20000]);
        assert_eq!(
            check(p.to_str().unwrap()).unwrap().duration,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn rejects_missing_empty_and_directories_with_codes() {
        let missing = check("/definitely/not/here.wav").unwrap_err();
        assert_eq!(missing.code(), "ERR_AUDIO_NOT_FOUND");
        let empty = write_temp("empty.wav", b"");
        assert_eq!(
            check(empty.to_str().unwrap()).unwrap_err().code(),
            "ERR_AUDIO_UNREADABLE"
        );
        let dir = check(std::env::temp_dir().to_str().unwrap()).unwrap_err();
        assert!(dir.to_string().contains("directory"), "{dir}");
        assert_eq!(check("").unwrap_err().code(), "ERR_AUDIO_NOT_FOUND");
    }

    #[test]
    fn makes_relative_paths_absolute() {
        // cargo runs tests in the package root, where Cargo.toml lives.
        let a = check("Cargo.toml").unwrap();
        assert_eq!(a.path, std::env::current_dir().unwrap().join("Cargo.toml"));
    }
}
