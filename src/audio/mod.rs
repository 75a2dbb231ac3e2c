//! Checks a request's audio before it takes a worker (and a file again when
//! a worker takes it), against the request's limits, and estimates its
//! duration for the default timeout. All of it is file I/O: the engine runs
//! it on a blocking thread, never on the JS thread, and every loop over the
//! file is bounded, so a crafted file cannot stall it. What a header claims
//! is read in header.rs.

mod header;

use crate::error::{display_path, Result, WhisperError};
use header::{Header, Parsed};
use std::fs::{File, Metadata};
use std::io::{Cursor, ErrorKind, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Compressed speech is rarely below 16 kbit/s, so size / 2000 bytes per second
/// overestimates the duration of mp3, ogg and flac files: a safe basis for a timeout.
const MIN_COMPRESSED_BYTES_PER_SEC: u64 = 2000;
/// Sample rates outside this range are no recording (at 1 Hz, 100 kB of a
/// WAV resample to 6 GB of samples). The worker program checks the same.
pub const MIN_SAMPLE_RATE: u32 = 1_000;
pub const MAX_SAMPLE_RATE: u32 = 768_000;
pub const MAX_CHANNELS: u32 = 64;

/// Whether the program that decodes the audio sizes its buffer by what a
/// header claims (whisper-cli and whisper-server do; the worker program
/// reads only what the bytes hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claims {
    Trusted,
    Ignored,
}

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

    /// The checks of its kind against `limits`: bounded work, to be run
    /// off the JS thread.
    pub fn check(self, limits: &Limits, claims: Claims) -> Result<Audio> {
        match self {
            Input::Path(p) => check(&p, limits, claims),
            Input::Bytes(b) => check_bytes(b, limits, claims),
            Input::Samples(s) => check_samples(s, limits),
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

/// The longest audio a request may hold unless `maxDuration` says otherwise:
/// a long podcast. Its samples take 0.9 GB in memory, and whisper's
/// spectrogram about as much again.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(4 * 3600);
/// Above this, whisper's sample count (an int) would overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The largest file or buffer a request may hold unless `maxFileSize` says
/// otherwise: 4 hours of 48 kHz stereo 16-bit WAV fit.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 3 << 30;

/// What one request's audio may cost. Checked where a header tells before
/// anything is read, and by the worker program as it decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_duration: Duration,
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_duration: DEFAULT_MAX_DURATION,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

impl Limits {
    /// The most 16 kHz samples a request's audio may decode to.
    pub fn max_samples(&self) -> u64 {
        (self.max_duration.as_secs_f64() * SAMPLE_RATE as f64) as u64
    }
}

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

/// Audio file bytes: not empty, within the limits, and a header (if it has
/// one) that describes audio within them.
pub fn check_bytes(bytes: Vec<u8>, limits: &Limits, claims: Claims) -> Result<Audio> {
    let what = format!("<audio in memory: {} bytes>", bytes.len());
    let fail = |reason: String| WhisperError::AudioUnreadable {
        path: what.clone(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("the buffer is empty".into()));
    }
    let len = bytes.len() as u64;
    let duration = bounded_duration(&mut Cursor::new(&bytes), len, limits, claims).map_err(fail)?;
    Ok(Audio {
        source: Source::Bytes(bytes.into()),
        duration,
    })
}

/// 16 kHz mono samples: not empty, within the limits, every one a finite number.
pub fn check_samples(samples: Vec<f32>, limits: &Limits) -> Result<Audio> {
    let what = format!("<audio in memory: {} samples>", samples.len());
    let fail = |reason: String| WhisperError::AudioUnreadable {
        path: what.clone(),
        reason,
    };
    if samples.is_empty() {
        return Err(fail("the Float32Array holds no samples".into()));
    }
    if samples.len() as u64 > limits.max_samples() {
        return Err(fail(too_long(limits, None)));
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
        // Windows refuses to open a folder as a file ("access denied"): say what it is.
        #[cfg(windows)]
        Err(_) if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) => {
            return Err(unreadable(
                path,
                "it is a directory; pass the path of an audio file",
            ))
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

/// Exists, is a regular non-empty file within the limits, can be read, and
/// has a header (if it has one) that describes audio within them; with its
/// duration.
pub fn check(path: &str, limits: &Limits, claims: Claims) -> Result<Audio> {
    let not_found = || WhisperError::AudioNotFound {
        path: path.to_owned(),
    };
    if path.is_empty() {
        return Err(not_found());
    }
    let abs = std::path::absolute(path).map_err(|_| not_found())?;
    let (mut file, meta) = open(&abs)?;
    if meta.len() > limits.max_file_bytes {
        return Err(unreadable(
            &abs,
            format!(
                "it is {} bytes, more than the {}-byte limit (maxFileSize); raise the limit if this file is what you meant to send",
                meta.len(),
                limits.max_file_bytes
            ),
        ));
    }
    let duration = bounded_duration(&mut file, meta.len(), limits, claims)
        .map_err(|reason| unreadable(&abs, reason))?;
    Ok(Audio {
        source: Source::File(abs),
        duration,
    })
}

fn hours(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn too_long(limits: &Limits, claimed: Option<Duration>) -> String {
    let what = match claimed {
        Some(d) => format!("its header claims {} of audio", hours(d)),
        None => "it is".to_owned(),
    };
    format!(
        "{what}, longer than the {} limit (maxDuration); raise the limit if this audio is what you meant to send",
        hours(limits.max_duration)
    )
}

/// The audio's duration, from its header where it has one, after checking
/// what the header says against the limits; an estimate from its size
/// otherwise. Err holds the reason it is refused.
fn bounded_duration(
    file: &mut (impl Read + Seek),
    len: u64,
    limits: &Limits,
    claims: Claims,
) -> std::result::Result<Duration, String> {
    if len > limits.max_file_bytes {
        return Err(format!(
            "it is {len} bytes, more than the {}-byte limit (maxFileSize); raise the limit if this audio is what you meant to send",
            limits.max_file_bytes
        ));
    }
    let estimate = Duration::from_secs_f64(len as f64 / MIN_COMPRESSED_BYTES_PER_SEC as f64);
    let h = match header::parse(file, len) {
        Parsed::Header(h) => h,
        Parsed::Invalid(reason) => return Err(reason),
        Parsed::Absent | Parsed::Unknown(_) => return Ok(estimate),
    };
    let Header {
        kind,
        sample_rate: rate,
        channels,
        claimed_frames,
        present_frames,
    } = h;
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Err(format!(
            "its {} header states a sample rate of {rate} Hz, outside {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz",
            kind.name()
        ));
    }
    if channels > MAX_CHANNELS {
        return Err(format!(
            "its {} header states {channels} channels; 1 to {MAX_CHANNELS} can be decoded",
            kind.name()
        ));
    }
    let seconds = |frames: u64| Duration::from_secs_f64(frames as f64 / rate as f64);
    if let Some(present) = present_frames.map(seconds) {
        if present > limits.max_duration {
            return Err(too_long(limits, None));
        }
    }
    if let Some(claimed) = claimed_frames.map(seconds) {
        // A program that allocates by the claim must not be handed one
        // beyond the limit, whatever the bytes hold.
        if claims == Claims::Trusted && claimed > limits.max_duration {
            return Err(too_long(limits, Some(claimed)));
        }
    }
    Ok(present_frames
        .or(claimed_frames)
        .map(seconds)
        .map_or(estimate, |d| d.min(limits.max_duration)))
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
        let a = check(p.to_str().unwrap(), &Limits::default(), Claims::Trusted).unwrap();
        assert!(
            (a.duration.as_secs_f64() - 2.0).abs() < 1e-6,
            "{:?}",
            a.duration
        );
        let p = write_temp("cut.wav", &wav(2.0, Some(56 + 16000)));
        let a = check(p.to_str().unwrap(), &Limits::default(), Claims::Trusted).unwrap();
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
            check(p.to_str().unwrap(), &Limits::default(), Claims::Trusted)
                .unwrap()
                .duration,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn rejects_missing_empty_and_directories_with_codes() {
        let missing = check(
            "/definitely/not/here.wav",
            &Limits::default(),
            Claims::Trusted,
        )
        .unwrap_err();
        assert_eq!(missing.code(), "ERR_AUDIO_NOT_FOUND");
        let empty = write_temp("empty.wav", b"");
        assert_eq!(
            check(empty.to_str().unwrap(), &Limits::default(), Claims::Trusted)
                .unwrap_err()
                .code(),
            "ERR_AUDIO_UNREADABLE"
        );
        let dir = check(
            std::env::temp_dir().to_str().unwrap(),
            &Limits::default(),
            Claims::Trusted,
        )
        .unwrap_err();
        assert!(dir.to_string().contains("directory"), "{dir}");
        assert_eq!(
            check("", &Limits::default(), Claims::Trusted)
                .unwrap_err()
                .code(),
            "ERR_AUDIO_NOT_FOUND"
        );
    }

    #[test]
    fn makes_relative_paths_absolute() {
        // cargo runs tests in the package root, where Cargo.toml lives.
        let a = check("Cargo.toml", &Limits::default(), Claims::Trusted).unwrap();
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
            let e = check(p.to_str().unwrap(), &Limits::default(), Claims::Trusted).unwrap_err();
            assert_eq!(e.code(), "ERR_AUDIO_UNREADABLE", "field at {at}");
            assert!(e.to_string().contains("describes no audio"), "{e}");
        }
    }

    #[test]
    fn a_forged_byte_rate_cannot_stretch_the_duration() {
        let mut bytes = wav(2.0, None);
        bytes[28..32].copy_from_slice(&1u32.to_le_bytes());
        let p = write_temp("slow.wav", &bytes);
        let d = check(p.to_str().unwrap(), &Limits::default(), Claims::Trusted)
            .unwrap()
            .duration;
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
        fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
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
        assert!(matches!(header::parse(&mut file, len), Parsed::Unknown(_)));
        assert!(file.reads <= 64 + 2, "{} reads", file.reads);
    }

    #[test]
    fn memory_input_is_checked_like_a_file() {
        assert_eq!(
            check_samples(vec![], &Limits::default())
                .unwrap_err()
                .code(),
            "ERR_AUDIO_UNREADABLE"
        );
        let e = check_samples(vec![0.0, f32::NAN], &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("sample 1 is NaN"), "{e}");
        let a = check_samples(vec![0.0; 8000], &Limits::default()).unwrap();
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(
            check_bytes(vec![], &Limits::default(), Claims::Trusted)
                .unwrap_err()
                .code(),
            "ERR_AUDIO_UNREADABLE"
        );
        let a = check_bytes(wav(2.0, None), &Limits::default(), Claims::Trusted).unwrap();
        assert!((a.duration.as_secs_f64() - 2.0).abs() < 1e-6);
        let mut no_channels = wav(1.0, None);
        no_channels[22] = 0;
        assert!(check_bytes(no_channels, &Limits::default(), Claims::Trusted).is_err());
    }

    #[test]
    fn samples_become_a_float_wav_that_reads_back() {
        let bytes = float_wav(&[0.5, -0.25]);
        assert_eq!(bytes.len(), 44 + 8);
        let a = check_bytes(bytes.clone(), &Limits::default(), Claims::Trusted).unwrap();
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
        let e = check(p.to_str().unwrap(), &Limits::default(), Claims::Trusted).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}
