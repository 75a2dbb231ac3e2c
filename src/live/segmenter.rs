//! Where utterances start and end, from the voice activity detector's
//! speech probability per window (32 ms): speech starts when a window is
//! above the threshold and lasts `min_speech`; it ends after `min_silence`
//! below the threshold less 0.15 (the hysteresis of Silero's own
//! VADIterator), or at `max_utterance`. Each cut is padded by `pad` on
//! either side. Positions are sample indexes from the stream's first sample.

use persistent_whisper_protocol::VAD_WINDOW;

const RATE: u64 = 16_000;

/// How the detector's probabilities become utterances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// A window is speech at or above this probability.
    pub threshold: f32,
    /// Silence this long (ms) ends an utterance.
    pub min_silence_ms: u32,
    /// Speech shorter than this (ms) is no utterance (a cough, a click).
    pub min_speech_ms: u32,
    /// Audio kept before and after the speech (ms), so no word is cut.
    pub pad_ms: u32,
    /// An utterance longer than this (ms) is cut there (whisper's window is 30 s).
    pub max_utterance_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            min_silence_ms: 500,
            min_speech_ms: 250,
            pad_ms: 200,
            max_utterance_ms: 28_000,
        }
    }
}

/// What a window did to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// An utterance began at this sample (its padding included).
    Start(u64),
    /// The utterance ended at this sample (its padding included).
    End(u64),
}

fn samples(ms: u32) -> u64 {
    ms as u64 * RATE / 1000
}

#[derive(Debug, Default)]
pub struct Segmenter {
    config: VadConfig,
    /// Windows seen so far.
    windows: u64,
    /// Where the speech being watched began (unpadded), once a window was speech.
    speech_from: Option<u64>,
    /// An utterance was announced (Start given).
    announced: bool,
    /// Where the silence that may end it began.
    silence_from: Option<u64>,
    /// Where the announced utterance began (padded).
    start: u64,
}

impl Segmenter {
    pub fn new(config: VadConfig) -> Self {
        Segmenter {
            config,
            ..Default::default()
        }
    }

    /// Whether an utterance is under way.
    #[cfg(test)]
    pub fn in_utterance(&self) -> bool {
        self.announced
    }

    /// The earliest sample a later cut can reach back to: what comes
    /// before it is no longer needed.
    pub fn keep_from(&self) -> u64 {
        if self.announced {
            return self.start;
        }
        let now = self.windows * VAD_WINDOW as u64;
        self.speech_from
            .unwrap_or(now)
            .saturating_sub(samples(self.config.pad_ms))
    }

    /// The next window's probability; the cut it makes, if any.
    pub fn push(&mut self, prob: f32) -> Option<Cut> {
        let at = self.windows * VAD_WINDOW as u64;
        self.windows += 1;
        let end_of_window = self.windows * VAD_WINDOW as u64;
        let c = self.config;
        let speech = prob >= c.threshold;
        let quiet = prob < (c.threshold - 0.15).max(0.01);
        if speech {
            self.silence_from = None;
            let from = *self.speech_from.get_or_insert(at);
            if !self.announced && end_of_window - from >= samples(c.min_speech_ms) {
                self.announced = true;
                self.start = from.saturating_sub(samples(c.pad_ms));
                return Some(Cut::Start(self.start));
            }
        } else if quiet && self.speech_from.is_some() {
            let silence = *self.silence_from.get_or_insert(at);
            if end_of_window - silence >= samples(c.min_silence_ms) {
                let announced = self.announced;
                self.speech_from = None;
                self.silence_from = None;
                self.announced = false;
                if announced {
                    return Some(Cut::End(silence + samples(c.pad_ms)));
                }
            }
        }
        if self.announced && end_of_window - self.start >= samples(c.max_utterance_ms) {
            // Cut here and go on: the speech continues as a new utterance.
            self.announced = false;
            self.speech_from = speech.then_some(end_of_window);
            self.silence_from = None;
            return Some(Cut::End(end_of_window));
        }
        None
    }

    /// The end of the stream: the utterance under way, if any, ends at `at`.
    pub fn finish(&mut self, at: u64) -> Option<Cut> {
        let announced = std::mem::take(&mut self.announced);
        self.speech_from = None;
        self.silence_from = None;
        announced.then_some(Cut::End(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = VAD_WINDOW as u64;

    fn run(probs: &[f32]) -> Vec<(usize, Cut)> {
        let mut s = Segmenter::new(VadConfig::default());
        probs
            .iter()
            .enumerate()
            .filter_map(|(i, &p)| s.push(p).map(|c| (i, c)))
            .collect()
    }

    /// `n` windows of probability `p`.
    fn windows(n: usize, p: f32) -> Vec<f32> {
        vec![p; n]
    }

    #[test]
    fn speech_between_silences_is_one_padded_utterance() {
        // 1 s silence, 2 s speech, 1 s silence (31 windows per second).
        let probs = [windows(31, 0.05), windows(62, 0.9), windows(31, 0.05)].concat();
        let cuts = run(&probs);
        let pad = 200 * 16;
        assert_eq!(cuts.len(), 2, "{cuts:?}");
        // Announced once 250 ms of speech are in (8 windows).
        assert_eq!(cuts[0], (31 + 7, Cut::Start(31 * W - pad)));
        // Ended after 500 ms of silence (16 windows), at its start plus the pad.
        assert_eq!(cuts[1], (93 + 15, Cut::End(93 * W + pad)));
    }

    #[test]
    fn short_gaps_between_words_do_not_end_an_utterance() {
        let probs = [
            windows(62, 0.9),
            windows(5, 0.1), // 160 ms: a pause between words
            windows(62, 0.9),
            windows(20, 0.05),
        ]
        .concat();
        let cuts = run(&probs);
        assert!(
            matches!(cuts[..], [(_, Cut::Start(0)), (_, Cut::End(_))]),
            "{cuts:?}"
        );
    }

    #[test]
    fn a_click_shorter_than_min_speech_is_no_utterance() {
        let probs = [windows(10, 0.05), windows(3, 0.95), windows(40, 0.05)].concat();
        assert_eq!(run(&probs), []);
    }

    #[test]
    fn probabilities_between_the_thresholds_neither_start_nor_end_speech() {
        let probs = [windows(20, 0.9), windows(100, 0.4), windows(20, 0.05)].concat();
        let cuts = run(&probs);
        assert_eq!(cuts.len(), 2, "{cuts:?}");
        // The 0.4 stretch is neither speech nor silence: the silence starts after it.
        assert_eq!(cuts[1].1, Cut::End(120 * W + 200 * 16));
    }

    #[test]
    fn a_long_utterance_is_cut_at_the_maximum_and_goes_on_as_a_new_one() {
        let probs = windows(31 * 40, 0.9); // 40 s of speech
        let cuts = run(&probs);
        let ends: Vec<_> = cuts
            .iter()
            .filter(|(_, c)| matches!(c, Cut::End(_)))
            .collect();
        assert_eq!(ends.len(), 1, "{cuts:?}");
        let starts = cuts
            .iter()
            .filter(|(_, c)| matches!(c, Cut::Start(_)))
            .count();
        assert_eq!(starts, 2, "{cuts:?}");
    }

    #[test]
    fn the_end_of_the_stream_ends_the_utterance_under_way() {
        let mut s = Segmenter::new(VadConfig::default());
        for _ in 0..20 {
            s.push(0.9);
        }
        assert!(s.in_utterance());
        assert_eq!(s.finish(20 * W), Some(Cut::End(20 * W)));
        assert_eq!(s.finish(20 * W), None);
    }
}
