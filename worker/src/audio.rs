//! A request's audio as 16 kHz mono samples, decoded as whisper-cli decodes
//! it (miniaudio, through the shim) but in chunks: every chunk checks the
//! request's stop flag and the limits, so a long file stops within
//! milliseconds of a cancel, and a header that claims more audio than its
//! bytes hold costs nothing (no buffer is ever sized by a claim).

use crate::ffi;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

/// whisper's sample rate.
pub const SAMPLE_RATE: u64 = 16_000;
/// Samples decoded per chunk: a quarter of a second's work at most.
const CHUNK: usize = 16_000 * 4;
/// Bytes read from a file per chunk.
const READ_CHUNK: usize = 1 << 20;
/// Source rates outside this range are no recording: at 1 Hz, 100 kB of a
/// WAV would resample to 6 GB.
pub const MIN_RATE: u32 = 1_000;
pub const MAX_RATE: u32 = 768_000;
const MAX_CHANNELS: u32 = 64;
/// whisper-cli zero-pads a file that decodes to fewer frames than its
/// header claims; up to this much is resampling's rounding (padded as it
/// does), beyond it the file is cut short (decoded as far as it goes).
const PAD_TOLERANCE: u64 = SAMPLE_RATE;

#[derive(Debug, PartialEq)]
pub enum AudioError {
    NotFound(String),
    Unreadable(String),
    /// Beyond a limit of the request (the message names it).
    Limit(String),
    Aborted,
}

/// What a request's audio may cost.
pub struct Limits<'a> {
    pub max_samples: u64,
    pub stop: &'a AtomicBool,
}

impl Limits<'_> {
    fn stopped(&self) -> Result<(), AudioError> {
        match self.stop.load(Ordering::SeqCst) {
            true => Err(AudioError::Aborted),
            false => Ok(()),
        }
    }

    fn too_long(&self) -> AudioError {
        let secs = self.max_samples / SAMPLE_RATE;
        AudioError::Limit(format!(
            "it is longer than the {} limit (maxDuration)",
            duration(secs)
        ))
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn no_memory() -> AudioError {
    AudioError::Unreadable("there is not enough memory to decode it".into())
}

/// A file's bytes: a regular file (a FIFO or device swapped in is refused,
/// never waited on), no larger than `max_bytes`, read in chunks.
pub fn read_file(path: &str, max_bytes: u64, limits: &Limits) -> Result<Vec<u8>, AudioError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AudioError::NotFound(path.to_owned()),
        _ => AudioError::Unreadable(format!("it cannot be opened: {e}")),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| AudioError::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(AudioError::Unreadable(
            "it is not a regular file (a directory, device, socket or pipe?)".into(),
        ));
    }
    if meta.len() > max_bytes {
        return Err(AudioError::Limit(format!(
            "it is {} bytes, more than the {max_bytes}-byte limit (maxFileSize)",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(meta.len() as usize)
        .map_err(|_| no_memory())?;
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        limits.stopped()?;
        let n = file
            .read(&mut chunk)
            .map_err(|e| AudioError::Unreadable(format!("reading it failed: {e}")))?;
        if n == 0 {
            return Ok(bytes);
        }
        // It may have grown since it was measured.
        if bytes.len() as u64 + n as u64 > max_bytes {
            return Err(AudioError::Limit(format!(
                "it is more than the {max_bytes}-byte limit (maxFileSize)"
            )));
        }
        bytes.try_reserve(n).map_err(|_| no_memory())?;
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// An audio file's bytes (WAV, AIFF, MP3, FLAC, OGG) as 16 kHz mono samples.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Vec<f32>, AudioError> {
    let decoder = Decoder::open(bytes)?;
    let (rate, channels) = decoder.source_format()?;
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(AudioError::Unreadable(format!(
            "its sample rate, {rate} Hz, is outside {MIN_RATE} to {MAX_RATE} Hz"
        )));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(AudioError::Unreadable(format!(
            "it has {channels} channels; 1 to {MAX_CHANNELS} can be decoded"
        )));
    }
    // whisper-cli reads as many frames as the header claims: no more, and
    // zeros for what is missing. A claim only bounds the reading here.
    let claimed = decoder.claimed_frames();
    let mut samples: Vec<f32> = Vec::new();
    loop {
        limits.stopped()?;
        let want = match claimed {
            Some(c) => (c.saturating_sub(samples.len() as u64)).min(CHUNK as u64) as usize,
            None => CHUNK,
        };
        if want == 0 {
            break;
        }
        let at = samples.len();
        samples.try_reserve(want).map_err(|_| no_memory())?;
        samples.resize(at + want, 0.0);
        let read = decoder.read(&mut samples[at..])?;
        samples.truncate(at + read);
        if read == 0 {
            break;
        }
        // Memory stays within the limit and one chunk.
        if samples.len() as u64 > limits.max_samples {
            return Err(limits.too_long());
        }
    }
    if let Some(c) = claimed {
        let missing = c.saturating_sub(samples.len() as u64);
        if missing > 0 && missing <= PAD_TOLERANCE {
            samples.resize(c as usize, 0.0);
        }
    }
    Ok(samples)
}

/// f32 little-endian samples from a payload, whatever their number.
pub fn samples_of_unbounded(payload: &[u8]) -> Result<Vec<f32>, String> {
    if !payload.len().is_multiple_of(4) {
        return Err("the samples are not whole 32-bit floats".into());
    }
    Ok(payload
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// 16 kHz mono f32 little-endian samples from a payload.
pub fn samples_of(payload: &[u8], limits: &Limits) -> Result<Vec<f32>, AudioError> {
    if !payload.len().is_multiple_of(4) {
        return Err(AudioError::Unreadable(
            "its samples are not whole 32-bit floats".into(),
        ));
    }
    if (payload.len() / 4) as u64 > limits.max_samples {
        return Err(limits.too_long());
    }
    samples_of_unbounded(payload).map_err(AudioError::Unreadable)
}

/// The shim's decoder, freed once.
struct Decoder(*mut ffi::RawDecoder);

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: from pw_decoder_open, freed once.
        unsafe { ffi::pw_decoder_free(self.0) }
    }
}

fn status(rc: i32) -> Result<(), AudioError> {
    match rc {
        ffi::OK => Ok(()),
        ffi::NO_MEMORY => Err(no_memory()),
        ffi::NOT_AUDIO => Err(AudioError::Unreadable(
            "whisper cannot decode it as audio".into(),
        )),
        _ => Err(AudioError::Unreadable("decoding it failed".into())),
    }
}

impl Decoder {
    fn open(bytes: &[u8]) -> Result<Decoder, AudioError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: the bytes outlive the decoder (both live in decode()).
        status(unsafe { ffi::pw_decoder_open(bytes.as_ptr().cast(), bytes.len(), &mut raw) })?;
        Ok(Decoder(raw))
    }

    fn source_format(&self) -> Result<(u32, u32), AudioError> {
        let (mut rate, mut channels) = (0, 0);
        // SAFETY: a live decoder and valid out-pointers.
        status(unsafe { ffi::pw_decoder_source_format(self.0, &mut rate, &mut channels) })?;
        Ok((rate, channels))
    }

    fn claimed_frames(&self) -> Option<u64> {
        // SAFETY: a live decoder.
        let n = unsafe { ffi::pw_decoder_claimed_frames(self.0) };
        (n > 0).then_some(n)
    }

    fn read(&self, out: &mut [f32]) -> Result<usize, AudioError> {
        let mut read = 0u64;
        // SAFETY: `out` holds out.len() floats.
        status(unsafe {
            ffi::pw_decoder_read(self.0, out.as_mut_ptr(), out.len() as u64, &mut read)
        })?;
        Ok(read as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(stop: &AtomicBool) -> Limits<'_> {
        Limits {
            max_samples: 60 * SAMPLE_RATE,
            stop,
        }
    }

    /// A PCM WAV header claiming `data` bytes, followed by `present` bytes of silence.
    fn wav(rate: u32, bits: u16, data: u32, present: usize) -> Vec<u8> {
        let block = bits / 8;
        let mut v = b"RIFF\xff\xff\xff\xffWAVEfmt ".to_vec();
        v.extend(16u32.to_le_bytes());
        v.extend(1u16.to_le_bytes());
        v.extend(1u16.to_le_bytes());
        v.extend(rate.to_le_bytes());
        v.extend((rate * block as u32).to_le_bytes());
        v.extend(block.to_le_bytes());
        v.extend(bits.to_le_bytes());
        v.extend(b"data");
        v.extend(data.to_le_bytes());
        v.resize(v.len() + present, 0);
        v
    }

    #[test]
    fn the_62_byte_aiff_that_claims_34_gb_decodes_to_what_it_holds() {
        let mut aiff = b"FORM\0\0\0\x2eAIFFCOMM".to_vec();
        aiff.extend(18u32.to_be_bytes());
        aiff.extend(1u16.to_be_bytes());
        aiff.extend(u32::MAX.to_be_bytes());
        aiff.extend(16u16.to_be_bytes());
        aiff.extend([0x40, 0x0c, 0xfa, 0, 0, 0, 0, 0, 0, 0]); // 16000 Hz
        aiff.extend(b"SSND");
        aiff.extend(8u32.to_be_bytes());
        aiff.extend([0u8; 8]);
        assert!(aiff.len() <= 62);
        let stop = AtomicBool::new(false);
        match decode(&aiff, &limits(&stop)) {
            Ok(samples) => assert!(samples.len() < 16_000, "{}", samples.len()),
            Err(e) => assert!(matches!(e, AudioError::Unreadable(_)), "{e:?}"),
        }
    }

    #[test]
    fn a_wav_whose_header_claims_gigabytes_decodes_only_its_bytes() {
        let stop = AtomicBool::new(false);
        let samples = decode(&wav(16_000, 16, u32::MAX - 64, 32_000), &limits(&stop)).unwrap();
        assert_eq!(samples.len(), 16_000, "one second, as the bytes hold");
    }

    #[test]
    fn sample_rates_no_recording_has_are_refused_before_decoding() {
        let stop = AtomicBool::new(false);
        // 100 kB at 1 Hz would resample to 6.4 GB.
        let e = decode(&wav(1, 8, 100_000, 100_000), &limits(&stop)).unwrap_err();
        assert!(
            matches!(&e, AudioError::Unreadable(m) if m.contains("1 Hz")),
            "{e:?}"
        );
    }

    #[test]
    fn audio_longer_than_the_limit_stops_within_a_chunk_of_it() {
        let stop = AtomicBool::new(false);
        let bytes = wav(16_000, 16, 2 * 16_000 * 120, 2 * 16_000 * 120);
        let short = Limits {
            max_samples: 10 * SAMPLE_RATE,
            stop: &stop,
        };
        let e = decode(&bytes, &short).unwrap_err();
        assert!(
            matches!(&e, AudioError::Limit(m) if m.contains("10 s")),
            "{e:?}"
        );
    }

    #[test]
    fn a_stop_ends_decoding_and_reading() {
        let stop = AtomicBool::new(true);
        let bytes = wav(16_000, 16, 64_000, 64_000);
        assert_eq!(decode(&bytes, &limits(&stop)), Err(AudioError::Aborted));
        let file = std::env::temp_dir().join(format!("pw-worker-audio-{}.wav", std::process::id()));
        std::fs::write(&file, &bytes).unwrap();
        let read = read_file(file.to_str().unwrap(), 1 << 30, &limits(&stop));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(read, Err(AudioError::Aborted));
    }

    #[test]
    fn files_beyond_the_size_limit_and_non_files_are_refused_unread() {
        let stop = AtomicBool::new(false);
        let file = std::env::temp_dir().join(format!("pw-worker-big-{}.wav", std::process::id()));
        std::fs::write(&file, vec![0u8; 4096]).unwrap();
        let e = read_file(file.to_str().unwrap(), 1000, &limits(&stop)).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(
            matches!(&e, AudioError::Limit(m) if m.contains("maxFileSize")),
            "{e:?}"
        );
        let dir = std::env::temp_dir();
        let e = read_file(dir.to_str().unwrap(), 1 << 30, &limits(&stop)).unwrap_err();
        assert!(matches!(e, AudioError::Unreadable(_)), "{e:?}");
        let e = read_file("/no/such/file.wav", 1 << 30, &limits(&stop)).unwrap_err();
        assert!(matches!(e, AudioError::NotFound(_)), "{e:?}");
    }

    #[test]
    fn sample_payloads_are_checked_against_the_limit() {
        let stop = AtomicBool::new(false);
        assert!(samples_of(&[0u8; 7], &limits(&stop)).is_err());
        let short = Limits {
            max_samples: 1,
            stop: &stop,
        };
        assert!(matches!(
            samples_of(&[0u8; 8], &short),
            Err(AudioError::Limit(_))
        ));
        assert_eq!(
            samples_of(&1.0f32.to_le_bytes(), &limits(&stop)).unwrap(),
            vec![1.0]
        );
    }
}
