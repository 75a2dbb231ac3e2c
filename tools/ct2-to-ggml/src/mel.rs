//! The 80-band mel filterbank whisper uses: librosa.filters.mel(sr=16000,
//! n_fft=400, n_mels=80) with Slaney's mel scale and normalisation.

pub const N_MELS: usize = 80;
pub const N_FFT_BINS: usize = 201;
const SAMPLE_RATE: f64 = 16000.0;
const N_FFT: f64 = 400.0;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// Row-major [N_MELS][N_FFT_BINS].
pub fn filters() -> Vec<f32> {
    let fft_freqs: Vec<f64> = (0..N_FFT_BINS)
        .map(|k| k as f64 * SAMPLE_RATE / N_FFT)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let mel_f: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let mut out = Vec::with_capacity(N_MELS * N_FFT_BINS);
    for i in 0..N_MELS {
        let norm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for &f in &fft_freqs {
            let lower = (f - mel_f[i]) / (mel_f[i + 1] - mel_f[i]);
            let upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1]);
            out.push((lower.min(upper).max(0.0) * norm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_triangles_that_tile_the_spectrum() {
        let f = filters();
        assert_eq!(f.len(), N_MELS * N_FFT_BINS);
        assert!(f.iter().all(|&v| v >= 0.0));
        // Every band has some weight, and the top bin (8 kHz) is the edge of the last band.
        for band in f.chunks(N_FFT_BINS) {
            assert!(band.iter().any(|&v| v > 0.0));
        }
        // librosa's first band peaks at bin 1 with 0.024862 (Slaney normalised).
        assert!((f[1] - 0.024862).abs() < 1e-5, "got {}", f[1]);
    }
}
