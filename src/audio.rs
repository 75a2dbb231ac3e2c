//! Checks an audio file before it takes a worker, again when a worker takes
//! it, and estimates its duration for the default timeout. All of it is file
//! I/O: the engine runs it on a blocking thread, never on the JS thread, and
//! every loop over the file is bounded, so a crafted file cannot stall it.

use crate::error::{display_path, Result, WhisperError};
use std::fs::{File, Metadata};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Compressed speech is rarely below 16 kbit/s, so size / 2000 bytes per second
/// overestimates the duration of mp3, ogg and flac files: a safe basis for a timeout.
const MIN_COMPRESSED_BYTES_PER_SEC: u64 = 2000;
/// The least data a second of PCM can take (8 kHz, 8-bit, mono): a header
/// that claims less cannot stretch the duration (and the timeout) further.
const MIN_PCM_BYTES_PER_SEC: u64 = 8000;
/// RIFF chunks read before `data` at most; real files have a handful.
const MAX_WAV_CHUNKS: usize = 64;

/// Where a request's audio is.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file. Absolute, so whisper never mistakes a name like `-x.wav` for a flag.
    File(PathBuf),
    /// An audio file's bytes (WAV, MP3, FLAC, OGG).
    Bytes(Arc<[u8]>),
    /// 16 kHz mono samples.
    Samples(Arc<[f32]>),
}

/// Audio as the caller gave it, not yet checked.
#[derive(Debug)]
pub enum Input {
    Path(String),
    Bytes(Vec<u8>),
    Samples(Vec<f32>),
}

impl From<String> for Input {
    fn from(path: String) -> Self {
        Input::Path(path)
    }
}

impl From<&str> for Input {
    fn from(path: &str) -> Self {
        Input::Path(path.to_owned())
    }
}

impl Input {
    /// How errors name it before it is checked.
    pub fn describe(&self) -> String {
        match self {
            Input::Path(p) => p.clone(),
            Input::Bytes(b) => format!("<audio in memory: {} bytes>", b.len()),
            Input::Samples(s) => format!("<audio in memory: {} samples>", s.len()),
        }
    }

    /// As it is, for a request that ends before its check (aborted while waiting).
    pub fn unchecked(self) -> Audio {
        let source = match self {
            Input::Path(p) => Source::File(PathBuf::from(p)),
            Input::Bytes(b) => Source::Bytes(b.into()),
            Input::Samples(s) => Source::Samples(s.into()),
        };
        Audio {
            source,
            duration: Duration::ZERO,
        }
    }

    /// The checks of its kind: bounded work, to be run off the JS thread.
    pub fn check(self) -> Result<Audio> {
        match self {
            Input::Path(p) => check(&p),
            Input::Bytes(b) => check_bytes(b),
            Input::Samples(s) => check_samples(s),
        }
    }
}

/// A request's audio, checked, with its (estimated) duration.
#[derive(Debug, Clone)]
pub struct Audio {
    pub source: Source,
    pub duration: Duration,
}

/// whisper's sample rate: what `Source::Samples` holds.
pub const SAMPLE_RATE: usize = 16_000;

impl Audio {
    /// How status and errors name it.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::File(path) => display_path(path),
            Source::Bytes(b) => format!("<audio in memory: {} bytes>", b.len()),
            Source::Samples(s) => format!("<audio in memory: {} samples>", s.len()),
        }
    }

    /// The file, if it is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::File(p) => Some(p),
            _ => None,
        }
    }

    /// The bytes of an audio file for programs that read one: a file's
    /// own bytes as they are, samples as a 32-bit float WAV. None for a file.
    pub fn file_bytes(&self) -> Option<Arc<[u8]>> {
        match &self.source {
            Source::File(_) => None,
            Source::Bytes(b) => Some(b.clone()),
            Source::Samples(s) => Some(float_wav(s).into()),
        }
    }
}

/// A 16 kHz mono WAV of 32-bit float samples.
pub fn float_wav(samples: &[f32]) -> Vec<u8> {
    let data = (samples.len() * 4) as u32;
    let mut v = Vec::with_capacity(44 + samples.len() * 4);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&(SAMPLE_RATE as u32).to_le_bytes());
    v.extend_from_slice(&(SAMPLE_RATE as u32 * 4).to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&32u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

/// Audio file bytes: not empty, and a WAV header (if it is one) that describes audio.
pub fn check_bytes(bytes: Vec<u8>) -> Result<Audio> {
    let what = format!("<audio in memory: {} bytes>", bytes.len());
    let fail = |reason: String| WhisperError::AudioUnreadable {
        path: what.clone(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("the buffer is empty".into()));
    }
    let len = bytes.len() as u64;
    let duration = match wav_header(&mut std::io::Cursor::new(&bytes), len) {
        Wav::Duration(d) => d,
        Wav::Invalid(reason) => return Err(fail(reason)),
        Wav::Absent | Wav::Unknown => {
            Duration::from_secs_f64(len as f64 / MIN_COMPRESSED_BYTES_PER_SEC as f64)
        }
    };
    Ok(Audio {
        source: Source::Bytes(bytes.into()),
        duration,
    })
}

/// 16 kHz mono samples: not empty, every one a finite number.
pub fn check_samples(samples: Vec<f32>) -> Result<Audio> {
    let what = format!("<audio in memory: {} samples>", samples.len());
    let fail = |reason: String| WhisperError::AudioUnreadable {
        path: what.clone(),
        reason,
    };
    if samples.is_empty() {
        return Err(fail("the Float32Array holds no samples".into()));
    }
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(fail(format!(
            "sample {i} is {}: samples must be finite numbers (16 kHz mono, about -1 to 1)",
            samples[i]
        )));
    }
    Ok(Audio {
        duration: Duration::from_secs_f64(samples.len() as f64 / SAMPLE_RATE as f64),
        source: Source::Samples(samples.into()),
    })
}

fn unreadable(path: &Path, reason: impl Into<String>) -> WhisperError {
    WhisperError::AudioUnreadable {
        path: display_path(path),
        reason: reason.into(),
    }
}

/// Opens a file for reading without ever blocking: a FIFO or device swapped
/// in for the file is refused, not waited on.
pub fn open(path: &Path) -> Result<(File, Metadata)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(WhisperError::AudioNotFound {
                path: display_path(path),
            })
        }
        Err(e) => return Err(unreadable(path, format!("it cannot be opened: {e}"))),
    };
    // The opened file, not the path: what is read is what was checked.
    let meta = file
        .metadata()
        .map_err(|e| unreadable(path, e.to_string()))?;
    if meta.is_dir() {
        return Err(unreadable(
            path,
            "it is a directory; pass the path of an audio file",
        ));
    }
    if !meta.is_file() {
        return Err(unreadable(
            path,
            "it is not a regular file (a device, socket or pipe?)",
        ));
    }
    if meta.len() == 0 {
        return Err(unreadable(path, "the file is empty"));
    }
    Ok((file, meta))
}

/// Exists, is a regular non-empty file, can be read; with its duration.
pub fn check(path: &str) -> Result<Audio> {
    let not_found = || WhisperError::AudioNotFound {
        path: path.to_owned(),
    };
    if path.is_empty() {
        return Err(not_found());
    }
    let abs = std::path::absolute(path).map_err(|_| not_found())?;
    let (mut file, meta) = open(&abs)?;
    let duration = match wav_header(&mut file, meta.len()) {
        Wav::Duration(d) => d,
        Wav::Invalid(reason) => return Err(unreadable(&abs, reason)),
        Wav::Absent | Wav::Unknown => {
            Duration::from_secs_f64(meta.len() as f64 / MIN_COMPRESSED_BYTES_PER_SEC as f64)
        }
    };
    Ok(Audio {
        source: Source::File(abs),
        duration,
    })
}

enum Wav {
    /// Not a WAV file.
    Absent,
    /// A WAV file whose header cannot describe audio.
    Invalid(String),
    Duration(Duration),
    /// A WAV file whose duration the bounded scan could not find.
    Unknown,
}

struct Format {
    channels: u16,
    sample_rate: u32,
    byte_rate: u32,
    bits: u16,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The duration a RIFF/WAVE header describes, counting only the bytes present.
fn wav_header(file: &mut (impl Read + Seek), file_len: u64) -> Wav {
    let mut header = [0u8; 12];
    if file.read_exact(&mut header).is_err()
        || &header[0..4] != b"RIFF"
        || &header[8..12] != b"WAVE"
    {
        return Wav::Absent;
    }
    let mut format = None;
    let mut pos = 12u64;
    for _ in 0..MAX_WAV_CHUNKS {
        let mut chunk = [0u8; 8];
        if file.read_exact(&mut chunk).is_err() {
            return Wav::Unknown;
        }
        let size = u32_at(&chunk, 4) as u64;
        pos += 8;
        match &chunk[0..4] {
            b"fmt " => {
                let mut fmt = [0u8; 16];
                if size < 16 || file.read_exact(&mut fmt).is_err() {
                    return Wav::Invalid("its WAV format chunk is cut short".into());
                }
                let f = Format {
                    channels: u16_at(&fmt, 2),
                    sample_rate: u32_at(&fmt, 4),
                    byte_rate: u32_at(&fmt, 8),
                    bits: u16_at(&fmt, 14),
                };
                if f.channels == 0 || f.sample_rate == 0 || f.bits == 0 {
                    return Wav::Invalid(format!(
                        "its WAV header describes no audio ({} channels, {} Hz, {} bits per sample)",
                        f.channels, f.sample_rate, f.bits
                    ));
                }
                format = Some(f);
                if file.seek(SeekFrom::Current(size as i64 - 16)).is_err() {
                    return Wav::Unknown;
                }
            }
            b"data" => {
                let Some(f) = format else {
                    return Wav::Invalid("its WAV data comes before its format".into());
                };
                let present = size.min(file_len.saturating_sub(pos));
                let rate = (f.byte_rate as u64).max(MIN_PCM_BYTES_PER_SEC);
                return Wav::Duration(Duration::from_secs_f64(present as f64 / rate as f64));
            }
            _ => {
                if file
                    .seek(SeekFrom::Current(size as i64 + (size & 1) as i64))
                    .is_err()
                {
                    return Wav::Unknown;
                }
            }
        }
        pos += size + (size & 1);
        if pos >= file_len {
            return Wav::Unknown;
        }
    }
    Wav::Unknown
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
        assert_eq!(
            a.path().unwrap(),
            std::env::current_dir().unwrap().join("Cargo.toml")
        );
    }

    #[test]
    fn a_header_with_no_channels_rate_or_bits_is_unreadable() {
        for at in [22, 24, 34] {
            let mut bytes = wav(1.0, None);
            bytes[at] = 0;
            bytes[at + 1] = 0;
            if at == 24 {
                bytes[26] = 0;
                bytes[27] = 0;
            }
            let p = write_temp(&format!("zero-{at}.wav"), &bytes);
            let e = check(p.to_str().unwrap()).unwrap_err();
            assert_eq!(e.code(), "ERR_AUDIO_UNREADABLE", "field at {at}");
            assert!(e.to_string().contains("describes no audio"), "{e}");
        }
    }

    #[test]
    fn a_forged_byte_rate_cannot_stretch_the_duration() {
        let mut bytes = wav(2.0, None);
        bytes[28..32].copy_from_slice(&1u32.to_le_bytes());
        let p = write_temp("slow.wav", &bytes);
        let d = check(p.to_str().unwrap()).unwrap().duration;
        // 64000 data bytes at no less than 8000 bytes per second: 8 s, not 17 hours.
        assert!(d <= Duration::from_secs(8), "{d:?}");
    }

    /// Counts the reads a header scan makes.
    struct Counting<R> {
        inner: R,
        reads: usize,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            self.inner.read(buf)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn a_file_of_empty_junk_chunks_is_scanned_a_bounded_number_of_chunks() {
        let mut bytes = b"RIFF\0\0\0\0WAVE".to_vec();
        for _ in 0..500_000 {
            bytes.extend_from_slice(b"JUNK\0\0\0\0");
        }
        let len = bytes.len() as u64;
        let mut file = Counting {
            inner: std::io::Cursor::new(bytes),
            reads: 0,
        };
        assert!(matches!(wav_header(&mut file, len), Wav::Unknown));
        assert!(file.reads <= MAX_WAV_CHUNKS + 1, "{} reads", file.reads);
    }

    #[test]
    fn memory_input_is_checked_like_a_file() {
        assert_eq!(
            check_samples(vec![]).unwrap_err().code(),
            "ERR_AUDIO_UNREADABLE"
        );
        let e = check_samples(vec![0.0, f32::NAN]).unwrap_err();
        assert!(e.to_string().contains("sample 1 is NaN"), "{e}");
        let a = check_samples(vec![0.0; 8000]).unwrap();
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(
            check_bytes(vec![]).unwrap_err().code(),
            "ERR_AUDIO_UNREADABLE"
        );
        let a = check_bytes(wav(2.0, None)).unwrap();
        assert!((a.duration.as_secs_f64() - 2.0).abs() < 1e-6);
        let mut no_channels = wav(1.0, None);
        no_channels[22] = 0;
        assert!(check_bytes(no_channels).is_err());
    }

    #[test]
    fn samples_become_a_float_wav_that_reads_back() {
        let bytes = float_wav(&[0.5, -0.25]);
        assert_eq!(bytes.len(), 44 + 8);
        let a = check_bytes(bytes.clone()).unwrap();
        assert!((a.duration.as_secs_f64() - 2.0 / 16000.0).abs() < 1e-9);
        assert_eq!(&bytes[44..48], &0.5f32.to_le_bytes());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let p = std::env::temp_dir().join(format!("pw-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = check(p.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}
