//! Decoding settings, stated explicitly for whisper-server. Its defaults differ
//! from whisper-cli's (greedy with best-of 2, token timestamps, 60-character
//! segments); sending whisper-cli's defaults, adjusted by the decoding flags in
//! `extraArgs`, makes both backends give the same transcript.

use crate::error::{Result, WhisperError};

#[derive(Debug, Clone, PartialEq)]
pub struct Decoding {
    pub beam_size: i32,
    pub best_of: i32,
    pub temperature: f32,
    pub temperature_inc: f32,
    pub entropy_thold: f32,
    pub logprob_thold: f32,
    pub no_speech_thold: f32,
    pub word_thold: f32,
    pub max_context: i32,
    pub max_len: i32,
    pub audio_ctx: i32,
    pub split_on_word: bool,
    pub translate: bool,
    pub no_timestamps: bool,
    pub suppress_non_speech: bool,
    pub prompt: String,
}

impl Default for Decoding {
    /// whisper-cli 1.9.1's defaults.
    fn default() -> Self {
        Decoding {
            beam_size: 5,
            best_of: 5,
            temperature: 0.0,
            temperature_inc: 0.2,
            entropy_thold: 2.4,
            logprob_thold: -1.0,
            no_speech_thold: 0.6,
            word_thold: 0.01,
            max_context: -1,
            max_len: 0,
            audio_ctx: 0,
            split_on_word: false,
            translate: false,
            no_timestamps: false,
            suppress_non_speech: false,
            prompt: String::new(),
        }
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T> {
    value.and_then(|v| v.parse().ok()).ok_or_else(|| {
        WhisperError::invalid("extraArgs", format!("{flag} needs a number after it"))
    })
}

impl Decoding {
    /// Splits `extraArgs` into decoding settings and the remaining flags
    /// (which go on whisper-server's command line).
    pub fn from_args(args: &[String]) -> Result<(Decoding, Vec<String>)> {
        let mut d = Decoding::default();
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let f = flag.as_str();
            match f {
                "-bs" | "--beam-size" => d.beam_size = number(f, it.next())?,
                "-bo" | "--best-of" => d.best_of = number(f, it.next())?,
                "-tp" | "--temperature" => d.temperature = number(f, it.next())?,
                "-tpi" | "--temperature-inc" => d.temperature_inc = number(f, it.next())?,
                "-et" | "--entropy-thold" => d.entropy_thold = number(f, it.next())?,
                "-lpt" | "--logprob-thold" => d.logprob_thold = number(f, it.next())?,
                "-nth" | "--no-speech-thold" => d.no_speech_thold = number(f, it.next())?,
                "-wt" | "--word-thold" => d.word_thold = number(f, it.next())?,
                "-mc" | "--max-context" => d.max_context = number(f, it.next())?,
                "-ml" | "--max-len" => d.max_len = number(f, it.next())?,
                "-ac" | "--audio-ctx" => d.audio_ctx = number(f, it.next())?,
                "-sow" | "--split-on-word" => d.split_on_word = true,
                "-tr" | "--translate" => d.translate = true,
                "-nt" | "--no-timestamps" => d.no_timestamps = true,
                "-sns" | "--suppress-nst" => d.suppress_non_speech = true,
                "-nf" | "--no-fallback" => d.temperature_inc = 0.0,
                "--prompt" => {
                    d.prompt = it.next().cloned().ok_or_else(|| {
                        WhisperError::invalid("extraArgs", "--prompt needs a text after it")
                    })?
                }
                _ => rest.push(flag.clone()),
            }
        }
        Ok((d, rest))
    }

    /// The multipart fields of one whisper-server /inference request.
    pub fn form_fields(&self, language: &str) -> Vec<(&'static str, String)> {
        vec![
            ("language", language.to_owned()),
            ("response_format", "verbose_json".into()),
            ("beam_size", self.beam_size.to_string()),
            ("best_of", self.best_of.to_string()),
            ("temperature", self.temperature.to_string()),
            ("temperature_inc", self.temperature_inc.to_string()),
            ("entropy_thold", self.entropy_thold.to_string()),
            ("logprob_thold", self.logprob_thold.to_string()),
            ("no_speech_thold", self.no_speech_thold.to_string()),
            ("word_thold", self.word_thold.to_string()),
            ("max_context", self.max_context.to_string()),
            // whisper-cli wraps segments only when asked (-ml); whisper-server
            // wraps at 60 characters whenever token timestamps are on.
            ("max_len", self.max_len.to_string()),
            ("token_timestamps", (self.max_len > 0).to_string()),
            ("audio_ctx", self.audio_ctx.to_string()),
            ("split_on_word", self.split_on_word.to_string()),
            ("translate", self.translate.to_string()),
            ("no_timestamps", self.no_timestamps.to_string()),
            ("suppress_non_speech", self.suppress_non_speech.to_string()),
            ("prompt", self.prompt.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_decoding_flags_and_leaves_the_rest() {
        let (d, rest) = Decoding::from_args(&args(&[
            "-bs", "1", "-fa", "-nf", "--prompt", "Hi", "-p", "2",
        ]))
        .unwrap();
        assert_eq!(
            (d.beam_size, d.temperature_inc, d.prompt.as_str()),
            (1, 0.0, "Hi")
        );
        assert_eq!(rest, ["-fa", "-p", "2"]);
        assert_eq!(
            d.best_of, 5,
            "untouched settings keep whisper-cli's defaults"
        );
    }

    #[test]
    fn a_flag_without_its_value_is_an_options_error() {
        let e = Decoding::from_args(&args(&["-bs"])).unwrap_err();
        assert_eq!(e.code(), "ERR_INVALID_OPTIONS");
        assert!(e.to_string().contains("-bs needs a number"));
    }

    #[test]
    fn token_timestamps_only_with_max_len() {
        let fields = Decoding::default().form_fields("en");
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(
            (get("token_timestamps").as_str(), get("beam_size").as_str()),
            ("false", "5")
        );
        assert_eq!(get("response_format"), "verbose_json");
    }
}
