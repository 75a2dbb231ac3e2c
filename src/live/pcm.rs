//! What a live session is given, made into what whisper hears: samples
//! as f32 (from Float32Array, Int16Array, or 16-bit little-endian bytes as
//! `arecord -f S16_LE` and `ffmpeg -f s16le` write them), finite and within
//! [-1, 1], at 16 kHz (a windowed-sinc resampler that filters out what
//! 16 kHz cannot hold instead of folding it back as noise).

use std::f64::consts::PI;

pub const RATE: u32 = 16_000;

/// One write()'s audio, as the caller gave it.
pub enum Chunk {
    F32(Vec<f32>),
    S16(Vec<i16>),
    /// 16-bit little-endian samples; a write may end mid-sample.
    S16Bytes(Vec<u8>),
}

/// Turns chunks into 16 kHz samples, carrying what spans two writes.
pub struct Converter {
    /// The odd byte of a 16-bit sample split between writes.
    carry: Option<u8>,
    resampler: Option<Resampler>,
}

impl Converter {
    pub fn new(input_rate: u32) -> Self {
        Converter {
            carry: None,
            resampler: (input_rate != RATE).then(|| Resampler::new(input_rate, RATE)),
        }
    }

    pub fn push(&mut self, chunk: Chunk) -> Vec<f32> {
        let samples: Vec<f32> = match chunk {
            Chunk::F32(v) => v.into_iter().map(clean).collect(),
            Chunk::S16(v) => v.into_iter().map(from_s16).collect(),
            Chunk::S16Bytes(bytes) => {
                let mut out = Vec::with_capacity(bytes.len() / 2 + 1);
                let mut rest = bytes.as_slice();
                if let (Some(low), Some((&high, tail))) = (self.carry, rest.split_first()) {
                    out.push(from_s16(i16::from_le_bytes([low, high])));
                    self.carry = None;
                    rest = tail;
                }
                let pairs = rest.chunks_exact(2);
                self.carry = self.carry.or(pairs.remainder().first().copied());
                out.extend(pairs.map(|p| from_s16(i16::from_le_bytes([p[0], p[1]]))));
                out
            }
        };
        match &mut self.resampler {
            Some(r) => r.push(&samples),
            None => samples,
        }
    }

    /// The end of the stream: what the resampler still holds.
    pub fn finish(&mut self) -> Vec<f32> {
        self.carry = None;
        self.resampler
            .as_mut()
            .map_or_else(Vec::new, Resampler::finish)
    }
}

/// NaN and infinities become silence; the rest is clipped to [-1, 1].
fn clean(s: f32) -> f32 {
    if s.is_finite() {
        s.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

fn from_s16(s: i16) -> f32 {
    s as f32 / 32768.0
}

/// Zero crossings of the sinc on each side: the filter's sharpness.
const ZERO_CROSSINGS: f64 = 12.0;
/// The cutoff, as a share of the lower Nyquist frequency (a margin for the
/// window's transition band).
const CUTOFF: f64 = 0.92;

/// A streaming windowed-sinc (Blackman) resampler between two integer rates.
pub struct Resampler {
    from: u64,
    to: u64,
    /// Cutoff in cycles per input sample.
    cutoff: f64,
    /// The kernel's reach either side, in input samples.
    half: f64,
    /// Input samples kept, the first at absolute index `base`.
    input: Vec<f32>,
    base: u64,
    /// Input samples seen in all.
    seen: u64,
    /// The next output sample's index.
    next: u64,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Self {
        let cutoff = 0.5 * CUTOFF * (to as f64 / from as f64).min(1.0);
        Resampler {
            from: from as u64,
            to: to as u64,
            cutoff,
            half: ZERO_CROSSINGS / (2.0 * cutoff),
            input: Vec::new(),
            base: 0,
            seen: 0,
            next: 0,
        }
    }

    pub fn push(&mut self, samples: &[f32]) -> Vec<f32> {
        self.input.extend_from_slice(samples);
        self.seen += samples.len() as u64;
        self.drain(false)
    }

    /// The rest, as if silence followed.
    pub fn finish(&mut self) -> Vec<f32> {
        self.drain(true)
    }

    /// Every output sample whose kernel the input covers (at the end, every
    /// one up to the input's length, the missing input taken as silence).
    fn drain(&mut self, at_end: bool) -> Vec<f32> {
        let mut out = Vec::new();
        let reach = self.half.ceil() as u64;
        loop {
            // Exact: output sample k sits at input position k * from / to.
            let whole = self.next * self.from / self.to;
            let fraction = (self.next * self.from % self.to) as f64 / self.to as f64;
            if at_end {
                if whole >= self.seen {
                    break;
                }
            } else if whole + reach >= self.seen {
                break;
            }
            out.push(self.sample_at(whole, fraction, reach));
            self.next += 1;
        }
        // Keep only what the next output sample can reach.
        let keep_from = (self.next * self.from / self.to).saturating_sub(reach + 1);
        if keep_from > self.base {
            let drop = ((keep_from - self.base) as usize).min(self.input.len());
            self.input.drain(..drop);
            self.base += drop as u64;
        }
        out
    }

    fn sample_at(&self, whole: u64, fraction: f64, reach: u64) -> f32 {
        let first = whole.saturating_sub(reach);
        let last = whole + reach;
        let mut acc = 0.0f64;
        for i in first..=last {
            let Some(&x) = i
                .checked_sub(self.base)
                .and_then(|at| self.input.get(at as usize))
            else {
                continue;
            };
            let t = i as f64 - (whole as f64 + fraction);
            acc += x as f64 * self.kernel(t);
        }
        clean(acc as f32)
    }

    fn kernel(&self, t: f64) -> f64 {
        if t.abs() >= self.half {
            return 0.0;
        }
        let x = 2.0 * self.cutoff * t;
        let sinc = if x == 0.0 {
            1.0
        } else {
            (PI * x).sin() / (PI * x)
        };
        // Blackman window over [-half, half].
        let w = {
            let p = (t / self.half + 1.0) * 0.5;
            0.42 - 0.5 * (2.0 * PI * p).cos() + 0.08 * (4.0 * PI * p).cos()
        };
        2.0 * self.cutoff * sinc * w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f64, seconds: f64) -> Vec<f32> {
        let n = (rate as f64 * seconds) as usize;
        (0..n)
            .map(|i| (2.0 * PI * hz * i as f64 / rate as f64).sin() as f32 * 0.5)
            .collect()
    }

    fn rms(v: &[f32]) -> f64 {
        (v.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    /// Zero crossings per second, over the middle of the signal.
    fn frequency(v: &[f32], rate: u32) -> f64 {
        let mid = &v[v.len() / 4..v.len() * 3 / 4];
        let crossings = mid
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f64 / 2.0 / (mid.len() as f64 / rate as f64)
    }

    fn resample(from: u32, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut r = Resampler::new(from, RATE);
        let mut out: Vec<f32> = input.chunks(chunk).flat_map(|c| r.push(c)).collect();
        out.extend(r.finish());
        out
    }

    #[test]
    fn speech_band_tones_keep_their_pitch_and_loudness() {
        for from in [48_000, 44_100, 22_050, 8_000] {
            let out = resample(from, &sine(from, 440.0, 2.0), 4096);
            let expected = (2.0 * RATE as f64) as usize;
            assert!(
                out.len().abs_diff(expected) <= 1,
                "{from}: {} samples",
                out.len()
            );
            let body = &out[1000..out.len() - 1000];
            assert!(
                (rms(body) - 0.5 / 2f64.sqrt()).abs() < 0.01,
                "{from}: rms {}",
                rms(body)
            );
            assert!((frequency(&out, RATE) - 440.0).abs() < 2.0, "{from}");
        }
    }

    #[test]
    fn what_16_khz_cannot_hold_is_filtered_out_not_folded_back() {
        // 12 kHz at 48 kHz would alias to 4 kHz if merely decimated.
        let out = resample(48_000, &sine(48_000, 12_000.0, 1.0), 1000);
        assert!(rms(&out[500..out.len() - 500]) < 0.005, "{}", rms(&out));
    }

    #[test]
    fn the_chunking_of_writes_changes_nothing() {
        let input = sine(44_100, 1000.0, 0.5);
        let whole = resample(44_100, &input, input.len());
        for chunk in [1, 7, 128, 3000] {
            assert_eq!(resample(44_100, &input, chunk), whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn bytes_split_mid_sample_are_joined_and_odd_values_cleaned() {
        let mut c = Converter::new(RATE);
        let bytes: Vec<u8> = [1000i16, -32768, 32767]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut out = c.push(Chunk::S16Bytes(bytes[..3].to_vec()));
        out.extend(c.push(Chunk::S16Bytes(bytes[3..].to_vec())));
        assert_eq!(out, [1000.0 / 32768.0, -1.0, 32767.0 / 32768.0]);
        let odd = c.push(Chunk::F32(vec![f32::NAN, f32::INFINITY, 3.0, -0.25]));
        assert_eq!(odd, [0.0, 0.0, 1.0, -0.25]);
    }
}
