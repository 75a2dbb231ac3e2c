//! What an audio file's header says about it: its sample rate and channels,
//! the frames it claims, and (where the format tells) the frames its bytes
//! actually hold. Headers are claims: whisper-cli sizes its sample buffer by
//! the claimed frames, so a few crafted bytes can ask it for gigabytes. The
//! checks in mod.rs hold these against the request's limits before anything
//! is allocated. Every read here is bounded.

use std::io::{Read, Seek, SeekFrom};

/// RIFF or IFF chunks read before the audio at most; real files have a handful.
const MAX_CHUNKS: usize = 64;
/// Where an Ogg file's last page is looked for, from its end.
const OGG_TAIL: u64 = 64 * 1024;

/// The container a header belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Wav,
    Aiff,
    Flac,
    Ogg,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Wav => "WAV",
            Kind::Aiff => "AIFF",
            Kind::Flac => "FLAC",
            Kind::Ogg => "Ogg",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub kind: Kind,
    pub sample_rate: u32,
    pub channels: u32,
    /// Frames the header says the file holds (None: it does not say).
    pub claimed_frames: Option<u64>,
    /// Frames the file's bytes do hold (uncompressed formats).
    pub present_frames: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Not a format whose header this reads (MP3, or not audio).
    Absent,
    /// A header that cannot describe audio.
    Invalid(String),
    /// A header whose audio the bounded scan did not reach.
    Unknown(Kind),
    Header(Header),
}

fn u16_le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u16_be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_be(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads whatever header the file starts with. `len` is the file's size.
pub fn parse(file: &mut (impl Read + Seek), len: u64) -> Parsed {
    let mut magic = [0u8; 12];
    if file.seek(SeekFrom::Start(0)).is_err() || file.read_exact(&mut magic).is_err() {
        return Parsed::Absent;
    }
    match (&magic[0..4], &magic[8..12]) {
        (b"RIFF", b"WAVE") => wav(file, len),
        (b"FORM", b"AIFF") | (b"FORM", b"AIFC") => aiff(file, len, &magic[8..12] == b"AIFC"),
        (b"fLaC", _) => flac(file),
        (b"OggS", _) => ogg(file, len),
        _ => Parsed::Absent,
    }
}

fn no_audio(kind: Kind, channels: u32, rate: u32, bits: u32) -> Parsed {
    Parsed::Invalid(format!(
        "its {} header describes no audio ({channels} channels, {rate} Hz, {bits} bits per sample)",
        kind.name()
    ))
}

/// RIFF/WAVE: `fmt ` then `data`, counting only the data bytes present.
fn wav(file: &mut (impl Read + Seek), len: u64) -> Parsed {
    let mut format: Option<(u32, u32, u32)> = None; // channels, rate, block align
    let mut pos = 12u64;
    for _ in 0..MAX_CHUNKS {
        let mut chunk = [0u8; 8];
        if file.read_exact(&mut chunk).is_err() {
            return Parsed::Unknown(Kind::Wav);
        }
        let size = u32_le(&chunk, 4) as u64;
        pos += 8;
        match &chunk[0..4] {
            b"fmt " => {
                let mut fmt = [0u8; 16];
                if size < 16 || file.read_exact(&mut fmt).is_err() {
                    return Parsed::Invalid("its WAV format chunk is cut short".into());
                }
                let channels = u16_le(&fmt, 2) as u32;
                let rate = u32_le(&fmt, 4);
                let align = u16_le(&fmt, 12) as u32;
                let bits = u16_le(&fmt, 14) as u32;
                if channels == 0 || rate == 0 || bits == 0 {
                    return no_audio(Kind::Wav, channels, rate, bits);
                }
                // The block a frame takes, as the bits say if the header's is off.
                let block = align.max(channels * bits.div_ceil(8));
                format = Some((channels, rate, block));
                if file.seek(SeekFrom::Current(size as i64 - 16)).is_err() {
                    return Parsed::Unknown(Kind::Wav);
                }
            }
            b"data" => {
                let Some((channels, sample_rate, block)) = format else {
                    return Parsed::Invalid("its WAV data comes before its format".into());
                };
                let present = size.min(len.saturating_sub(pos));
                return Parsed::Header(Header {
                    kind: Kind::Wav,
                    sample_rate,
                    channels,
                    claimed_frames: Some(size / block as u64),
                    present_frames: Some(present / block as u64),
                });
            }
            _ => {
                if file
                    .seek(SeekFrom::Current(size as i64 + (size & 1) as i64))
                    .is_err()
                {
                    return Parsed::Unknown(Kind::Wav);
                }
            }
        }
        pos += size + (size & 1);
        if pos >= len {
            return Parsed::Unknown(Kind::Wav);
        }
    }
    Parsed::Unknown(Kind::Wav)
}

/// An 80-bit IEEE 754 extended float (AIFF's sample rate), as a whole number.
fn extended_to_u32(b: &[u8]) -> u32 {
    let exponent = (u16_be(b, 0) & 0x7fff) as i32 - 16383;
    let mantissa = u64::from_be_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]);
    if mantissa == 0 || !(0..=31).contains(&exponent) {
        return 0;
    }
    (mantissa >> (63 - exponent)) as u32
}

/// IFF/AIFF(-C): `COMM` (channels, frames, bits, rate) and `SSND`.
fn aiff(file: &mut (impl Read + Seek), len: u64, compressed: bool) -> Parsed {
    let mut comm: Option<(u32, u64, u32, u32)> = None; // channels, frames, bits, rate
    let mut pos = 12u64;
    for _ in 0..MAX_CHUNKS {
        let mut chunk = [0u8; 8];
        if file.read_exact(&mut chunk).is_err() {
            break;
        }
        let size = u32_be(&chunk, 4) as u64;
        pos += 8;
        match &chunk[0..4] {
            b"COMM" => {
                let mut c = [0u8; 18];
                if size < 18 || file.read_exact(&mut c).is_err() {
                    return Parsed::Invalid("its AIFF COMM chunk is cut short".into());
                }
                let channels = u16_be(&c, 0) as u32;
                let frames = u32_be(&c, 2) as u64;
                let bits = u16_be(&c, 6) as u32;
                let rate = extended_to_u32(&c[8..18]);
                if channels == 0 || rate == 0 || bits == 0 {
                    return no_audio(Kind::Aiff, channels, rate, bits);
                }
                comm = Some((channels, frames, bits, rate));
                if file.seek(SeekFrom::Current(size as i64 - 18)).is_err() {
                    break;
                }
            }
            b"SSND" => {
                let Some((channels, claimed, bits, sample_rate)) = comm else {
                    return Parsed::Invalid(
                        "its AIFF sound data comes before its COMM chunk".into(),
                    );
                };
                // 8 bytes of offset and block size open the chunk.
                let present_bytes = size.saturating_sub(8).min(len.saturating_sub(pos + 8));
                let block = (channels * bits.div_ceil(8)) as u64;
                return Parsed::Header(Header {
                    kind: Kind::Aiff,
                    sample_rate,
                    channels,
                    claimed_frames: Some(claimed),
                    // AIFF-C may compress: its bytes bound nothing exactly.
                    present_frames: (!compressed).then_some(present_bytes / block),
                });
            }
            _ => {
                if file
                    .seek(SeekFrom::Current(size as i64 + (size & 1) as i64))
                    .is_err()
                {
                    break;
                }
            }
        }
        pos += size + (size & 1);
        if pos >= len {
            break;
        }
    }
    // No sound data reached: the claim alone is known.
    match comm {
        Some((channels, claimed, _, sample_rate)) => Parsed::Header(Header {
            kind: Kind::Aiff,
            sample_rate,
            channels,
            claimed_frames: Some(claimed),
            present_frames: Some(0),
        }),
        None => Parsed::Unknown(Kind::Aiff),
    }
}

/// FLAC: STREAMINFO, the first metadata block (rate, channels, total samples).
fn flac(file: &mut (impl Read + Seek)) -> Parsed {
    let mut b = [0u8; 4 + 34];
    if file.seek(SeekFrom::Start(4)).is_err()
        || file.read_exact(&mut b).is_err()
        || b[0] & 0x7f != 0
    {
        return Parsed::Invalid("its FLAC header has no STREAMINFO block".into());
    }
    let info = &b[4..];
    let rate = (u32_be(info, 10) >> 12) & 0xfffff;
    let channels = ((info[12] >> 1) & 0x7) as u32 + 1;
    let bits = (((info[12] & 1) << 4) | (info[13] >> 4)) as u32 + 1;
    let total = (((info[13] & 0x0f) as u64) << 32) | u32_be(info, 14) as u64;
    if rate == 0 {
        return no_audio(Kind::Flac, channels, rate, bits);
    }
    Parsed::Header(Header {
        kind: Kind::Flac,
        sample_rate: rate,
        channels,
        // 0: the encoder did not know.
        claimed_frames: (total > 0).then_some(total),
        present_frames: None,
    })
}

/// Ogg Vorbis: the identification header in the first page (rate,
/// channels); the length a decoder computes is the last page's granule
/// position, a claim too.
fn ogg(file: &mut (impl Read + Seek), len: u64) -> Parsed {
    let mut page = [0u8; 27 + 255];
    if file.seek(SeekFrom::Start(0)).is_err() || file.read_exact(&mut page[..27]).is_err() {
        return Parsed::Unknown(Kind::Ogg);
    }
    let segments = page[26] as usize;
    if file.read_exact(&mut page[27..27 + segments]).is_err() {
        return Parsed::Unknown(Kind::Ogg);
    }
    let mut id = [0u8; 30];
    if file.read_exact(&mut id).is_err() || &id[0..7] != b"\x01vorbis" {
        // Opus and other codecs: whisper's decoders do not read them.
        return Parsed::Unknown(Kind::Ogg);
    }
    let channels = id[11] as u32;
    let rate = u32_le(&id, 12);
    if channels == 0 || rate == 0 {
        return no_audio(Kind::Ogg, channels, rate, 16);
    }
    Parsed::Header(Header {
        kind: Kind::Ogg,
        sample_rate: rate,
        channels,
        claimed_frames: last_granule(file, len),
        present_frames: None,
    })
}

/// The granule position of the last Ogg page in the file's tail.
fn last_granule(file: &mut (impl Read + Seek), len: u64) -> Option<u64> {
    let start = len.saturating_sub(OGG_TAIL);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.take(OGG_TAIL).read_to_end(&mut tail).ok()?;
    let at = tail.windows(4).rposition(|w| w == b"OggS")?;
    let g = tail.get(at + 6..at + 14)?;
    let granule = u64::from_le_bytes(g.try_into().ok()?);
    // All ones: no packet ends on this page.
    (granule != u64::MAX).then_some(granule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    pub fn wav_bytes(rate: u32, channels: u16, bits: u16, data: u32, present: usize) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut v = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        v.extend(16u32.to_le_bytes());
        v.extend(1u16.to_le_bytes());
        v.extend(channels.to_le_bytes());
        v.extend(rate.to_le_bytes());
        v.extend((rate * block as u32).to_le_bytes());
        v.extend(block.to_le_bytes());
        v.extend(bits.to_le_bytes());
        v.extend(b"data");
        v.extend(data.to_le_bytes());
        v.resize(v.len() + present, 0);
        v
    }

    fn aiff_bytes(frames: u32, rate_exp: u16, present: usize) -> Vec<u8> {
        let mut v = b"FORM\0\0\0\0AIFFCOMM".to_vec();
        v.extend(18u32.to_be_bytes());
        v.extend(1u16.to_be_bytes());
        v.extend(frames.to_be_bytes());
        v.extend(16u16.to_be_bytes());
        // 2^(exp-16383) * 1.0: e.g. 16383 + 14 = 16384 Hz.
        v.extend(rate_exp.to_be_bytes());
        v.extend(0x8000_0000_0000_0000u64.to_be_bytes());
        v.extend(b"SSND");
        v.extend((8 + present as u32).to_be_bytes());
        v.extend([0u8; 8]);
        v.resize(v.len() + present, 0);
        v
    }

    fn parsed(bytes: &[u8]) -> Parsed {
        parse(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn a_wav_counts_the_frames_its_bytes_hold_beside_those_it_claims() {
        let Parsed::Header(h) = parsed(&wav_bytes(16000, 1, 16, u32::MAX, 3200)) else {
            panic!()
        };
        assert_eq!((h.sample_rate, h.channels), (16000, 1));
        assert_eq!(h.present_frames, Some(1600));
        assert_eq!(h.claimed_frames, Some(u32::MAX as u64 / 2));
    }

    #[test]
    fn the_62_byte_aiff_that_claims_four_billion_frames_shows_its_claim_and_its_bytes() {
        let bytes = aiff_bytes(u32::MAX, 16383 + 14, 0);
        assert!(bytes.len() <= 62, "{}", bytes.len());
        let Parsed::Header(h) = parsed(&bytes) else {
            panic!("{:?}", parsed(&bytes))
        };
        assert_eq!((h.kind, h.sample_rate), (Kind::Aiff, 16384));
        assert_eq!(
            (h.claimed_frames, h.present_frames),
            (Some(u32::MAX as u64), Some(0))
        );
    }

    #[test]
    fn flac_and_ogg_state_their_rate_and_claimed_length() {
        // STREAMINFO: 16 kHz, 1 channel, 16 bits, 2^35 samples.
        let mut f = b"fLaC\x00\x00\x00\x22".to_vec();
        let mut info = [0u8; 34];
        // rate 16000, channels - 1 = 0, bits - 1 = 15, total 2^35.
        let packed: u64 = (16000u64 << 44) | (15u64 << 36) | (1u64 << 35);
        info[10..18].copy_from_slice(&packed.to_be_bytes());
        f.extend(info);
        let Parsed::Header(h) = parsed(&f) else {
            panic!()
        };
        assert_eq!(
            (h.sample_rate, h.channels, h.claimed_frames),
            (16000, 1, Some(1 << 35))
        );

        let mut o = b"OggS\0\x02".to_vec();
        o.extend([0u8; 20]);
        o.push(1); // one segment
        o.push(30);
        o.extend(b"\x01vorbis");
        o.extend([0u8; 4]);
        o.push(2); // channels
        o.extend(44100u32.to_le_bytes());
        o.resize(27 + 1 + 30, 0);
        o.extend(b"OggS\0\x04");
        o.extend((44100u64 * 10).to_le_bytes());
        o.extend([0u8; 12]);
        let Parsed::Header(h) = parsed(&o) else {
            panic!()
        };
        assert_eq!(
            (h.sample_rate, h.channels, h.claimed_frames),
            (44100, 2, Some(441000))
        );
    }

    #[test]
    fn headers_without_audio_are_invalid_and_other_files_absent() {
        assert!(matches!(
            parsed(&wav_bytes(0, 1, 16, 10, 10)),
            Parsed::Invalid(_)
        ));
        assert!(matches!(parsed(&aiff_bytes(10, 0, 0)), Parsed::Invalid(_)));
        assert_eq!(parsed(b"ID3\x04 an mp3 file"), Parsed::Absent);
        assert_eq!(parsed(b"tiny"), Parsed::Absent);
    }
}
