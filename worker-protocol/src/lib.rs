//! What the engine and its worker program (persistent-whisper-worker) say to
//! each other over the worker's stdin and stdout. No port, no secret: a pipe
//! only the parent holds.
//!
//! A frame is a little-endian u32 length, that many bytes of JSON (one
//! message), a little-endian u64 length, and that many bytes of payload
//! (the audio of a request; empty otherwise).

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{self, Read, Write};

pub mod device;
pub mod settings;

use settings::decoding_settings;
pub use settings::{ServerTakes, SettingFlag};

/// The protocol's version: the engine refuses a worker program that speaks another.
pub const PROTOCOL: u32 = 2;

/// A message's JSON may not be larger than this.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Nor a payload larger than this (4 GiB).
pub const MAX_PAYLOAD: u64 = 1 << 32;
/// A segment's text is cut to this many bytes, so that a reply always fits
/// in a message (whisper's segments are a few hundred bytes at most).
pub const MAX_SEGMENT_TEXT: usize = 64 * 1024;
/// The voice activity detector's window: 512 samples (32 ms at 16 kHz), one
/// speech probability each.
pub const VAD_WINDOW: usize = 512;

use ServerTakes::{CommandLine, Form};

decoding_settings! {
    /// Beam search with this many beams (1: greedy). whisper allows 8 decoders.
    beam_size: i32 = 5, flags("-bs", "--beam-size"), range(1, 8), server(Form("beam_size"));
    /// Candidates when sampling with temperature.
    best_of: i32 = 5, flags("-bo", "--best-of"), range(1, 8), server(Form("best_of"));
    temperature: f32 = 0.0, flags("-tp", "--temperature"), range(0.0, 1.0), server(Form("temperature"));
    /// The step of the temperature fallback (0: no fallback, as `-nf`).
    temperature_inc: f32 = 0.2, flags("-tpi", "--temperature-inc"), range(0.0, 1.0), server(Form("temperature_inc"));
    entropy_thold: f32 = 2.4, flags("-et", "--entropy-thold"), range(-1000.0, 1000.0), server(Form("entropy_thold"));
    logprob_thold: f32 = -1.0, flags("-lpt", "--logprob-thold"), range(-1000.0, 1000.0), server(Form("logprob_thold"));
    no_speech_thold: f32 = 0.6, flags("-nth", "--no-speech-thold"), range(0.0, 1.0), server(Form("no_speech_thold"));
    word_thold: f32 = 0.01, flags("-wt", "--word-thold"), range(0.0, 1.0), server(Form("word_thold"));
    /// Text tokens of context kept from earlier windows (-1: whisper's maximum).
    max_context: i32 = -1, flags("-mc", "--max-context"), range(-1, 100_000), server(Form("max_context"));
    /// Segment length in characters (0: no limit).
    max_len: i32 = 0, flags("-ml", "--max-len"), range(0, 100_000), server(Form("max_len"));
    /// Audio context size (0: the model's, 1500).
    audio_ctx: i32 = 0, flags("-ac", "--audio-ctx"), range(0, 1500), server(Form("audio_ctx"));
    split_on_word: bool = false, flags("-sow", "--split-on-word"), server(Form("split_on_word"));
    translate: bool = false, flags("-tr", "--translate"), server(Form("translate"));
    no_timestamps: bool = false, flags("-nt", "--no-timestamps"), server(Form("no_timestamps"));
    suppress_nst: bool = false, flags("-sns", "--suppress-nst"), server(Form("suppress_non_speech"));
    prompt: String = String::new(), flags("", "--prompt"), server(Form("prompt"));
    carry_initial_prompt: bool = false, flags("", "--carry-initial-prompt"), server(Form("carry_initial_prompt"));
    /// Start this far into the audio.
    offset_ms: i32 = 0, flags("-ot", "--offset-t"), range(0, i32::MAX), server(Form("offset_t"));
    /// Transcribe this much of it (0: to the end).
    duration_ms: i32 = 0, flags("-d", "--duration"), range(0, i32::MAX), server(Form("duration"));
    tinydiarize: bool = false, flags("-tdrz", "--tinydiarize"), server(Form("tinydiarize"));
    /// Tokens matching this regular expression are never produced.
    suppress_regex: String = String::new(), flags("", "--suppress-regex"), server(ServerTakes::No);
    /// Voice activity detection: transcribe only the speech.
    vad: bool = false, flags("", "--vad"), server(Form("vad"));
    /// The VAD model file.
    vad_model: String = String::new(), flags("-vm", "--vad-model"), server(CommandLine);
    vad_threshold: f32 = 0.5, flags("-vt", "--vad-threshold"), range(0.0, 1.0), server(Form("vad_threshold"));
    vad_min_speech_ms: i32 = 250, flags("-vspd", "--vad-min-speech-duration-ms"), range(0, i32::MAX), server(Form("vad_min_speech_duration_ms"));
    vad_min_silence_ms: i32 = 100, flags("-vsd", "--vad-min-silence-duration-ms"), range(0, i32::MAX), server(Form("vad_min_silence_duration_ms"));
    vad_max_speech_s: f32 = f32::MAX, flags("-vmsd", "--vad-max-speech-duration-s"), range(0.0, f32::MAX), server(Form("vad_max_speech_duration_s"));
    vad_speech_pad_ms: i32 = 30, flags("-vp", "--vad-speech-pad-ms"), range(0, i32::MAX), server(Form("vad_speech_pad_ms"));
    vad_samples_overlap: f32 = 0.1, flags("-vo", "--vad-samples-overlap"), range(0.0, 10.0), server(Form("vad_samples_overlap"));
}

/// From the engine to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Request {
    /// Transcribe some audio on a fresh whisper state.
    Transcribe {
        id: u64,
        audio: Audio,
        params: Box<Params>,
    },
    /// Stop a transcription; its answer is `Failed` with `Aborted`.
    Cancel { id: u64 },
    /// Run a transcription on this many threads from its next step on (the
    /// engine re-splits the cores as requests start and end).
    Threads { id: u64, threads: u32 },
    /// Voice activity detection (a worker started with `--vad-model`): the
    /// payload holds the next 16 kHz mono samples of stream `id`, f32
    /// little-endian, whole windows of VAD_WINDOW; the answer is `VadProbs`.
    /// A new id starts a stream.
    VadAudio { id: u64 },
    /// Stream `id` is over: its detector's state is let go.
    VadClose { id: u64 },
}

/// Where a request's audio is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Audio {
    /// A file the worker reads (WAV, MP3, FLAC, OGG), after checking that
    /// it is a regular file no larger than `max_bytes`.
    Path { path: String, max_bytes: u64 },
    /// The frame's payload holds a file's bytes.
    File,
    /// The frame's payload holds 16 kHz mono samples, f32 little-endian.
    Samples,
}

/// One transcription's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub language: String,
    pub threads: u32,
    pub decoding: Decoding,
    /// Audio that decodes to more 16 kHz samples than this is refused.
    pub max_samples: u64,
    /// Send `Progress` messages.
    pub progress: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            language: "en".into(),
            threads: 1,
            decoding: Decoding::default(),
            max_samples: 4 * 3600 * 16_000,
            progress: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// Why a request or the worker failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Failure {
    ModelLoad,
    /// Not audio whisper can decode.
    AudioUnreadable,
    /// Longer or larger than the request's limits (the message says which).
    AudioLimit,
    /// The path names no file.
    AudioNotFound,
    Aborted,
    Whisper,
    /// The engine sent something the worker does not understand.
    Protocol,
}

/// From the worker to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Reply {
    /// The model is loaded; up to `slots` transcriptions may run at once.
    /// `features` names the changes to whisper.cpp it was built with.
    Ready {
        slots: u32,
        protocol: u32,
        features: Vec<String>,
    },
    Progress {
        id: u64,
        percent: u8,
    },
    /// Every segment of a transcription, in order, as whisper decodes it.
    Segment {
        id: u64,
        segment: Segment,
    },
    /// The transcription is done: its segments were the `Segment` messages.
    Done {
        id: u64,
        language: String,
    },
    Failed {
        id: u64,
        failure: Failure,
        message: String,
    },
    /// The speech probability of each window of a `VadAudio`, in order.
    VadProbs {
        id: u64,
        probs: Vec<f32>,
    },
    /// The worker cannot serve at all (its model did not load); it exits.
    Fatal {
        failure: Failure,
        message: String,
    },
    /// Sent before `Ready` by a worker that knows its device: where it
    /// decodes, and how many decodes it runs at once there (on a GPU, what
    /// its free memory fits: device::decodes_that_fit; more wait their turn).
    /// On a GPU, one warm-up decode (compiling the driver's shaders) comes
    /// between the two.
    Device {
        device: device::Device,
        decodes: u32,
    },
}

/// A whole frame's bytes.
pub fn encode<T: Serialize>(message: &T, payload: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(message).expect("messages serialize");
    let mut out = Vec::with_capacity(12 + json.len() + payload.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn write_frame<T: Serialize>(
    w: &mut impl Write,
    message: &T,
    payload: &[u8],
) -> io::Result<()> {
    w.write_all(&encode(message, payload))?;
    w.flush()
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Checks a frame's declared message length.
pub fn message_len(bytes: [u8; 4]) -> io::Result<usize> {
    let len = u32::from_le_bytes(bytes) as usize;
    if len > MAX_MESSAGE {
        return Err(invalid(format!(
            "a message of {len} bytes is larger than {MAX_MESSAGE}"
        )));
    }
    Ok(len)
}

/// Checks a frame's declared payload length.
pub fn payload_len(bytes: [u8; 8]) -> io::Result<usize> {
    let len = u64::from_le_bytes(bytes);
    if len > MAX_PAYLOAD {
        return Err(invalid(format!(
            "a payload of {len} bytes is larger than {MAX_PAYLOAD}"
        )));
    }
    Ok(len as usize)
}

pub fn parse<T: DeserializeOwned>(json: &[u8]) -> io::Result<T> {
    serde_json::from_slice(json).map_err(|e| invalid(format!("not a message: {e}")))
}

/// Reads one frame; None at the end of the stream (between frames).
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<Option<(T, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut json = vec![0u8; message_len(len)?];
    r.read_exact(&mut json)?;
    let mut plen = [0u8; 8];
    r.read_exact(&mut plen)?;
    let mut payload = vec![0u8; payload_len(plen)?];
    r.read_exact(&mut payload)?;
    Ok(Some((parse(&json)?, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_and_without_payload() {
        let req = Request::Transcribe {
            id: 7,
            audio: Audio::Samples,
            params: Box::default(),
        };
        let mut bytes = encode(&req, &[1, 2, 3, 4]);
        bytes.extend(encode(&Request::Cancel { id: 7 }, &[]));
        let mut r = bytes.as_slice();
        let (first, payload): (Request, _) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((first, payload), (req, vec![1, 2, 3, 4]));
        let (second, payload): (Request, _) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((second, payload.len()), (Request::Cancel { id: 7 }, 0));
        assert!(
            read_frame::<Request>(&mut r).unwrap().is_none(),
            "end of stream"
        );
    }

    #[test]
    fn oversized_and_garbled_frames_are_errors() {
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend([0; 16]);
        assert!(read_frame::<Request>(&mut huge.as_slice()).is_err());
        let garbage = encode(&serde_json::json!({"type": "launchMissiles"}), &[]);
        assert!(read_frame::<Request>(&mut garbage.as_slice()).is_err());
        // Cut short inside a frame.
        let cut = &encode(&Request::Cancel { id: 1 }, &[])[..6];
        assert!(read_frame::<Request>(&mut &cut[..]).is_err());
    }

    #[test]
    fn messages_read_as_json_names_them() {
        let ready = Reply::Ready {
            slots: 3,
            protocol: PROTOCOL,
            features: vec![],
        };
        let json = String::from_utf8(encode(&ready, &[])[4..].to_vec()).unwrap();
        assert!(
            json.starts_with(r#"{"type":"ready","slots":3,"protocol":"#),
            "{json}"
        );
    }

    fn flag(name: &str) -> &'static SettingFlag {
        Decoding::FLAGS.iter().find(|f| f.is(name)).unwrap()
    }

    #[test]
    fn a_flag_reads_its_value_into_its_setting_and_checks_its_range() {
        let mut d = Decoding::default();
        (flag("-bs").apply)(&mut d, "-bs", Some("2")).unwrap();
        (flag("--prompt").apply)(&mut d, "--prompt", Some("Hi there")).unwrap();
        (flag("-tr").apply)(&mut d, "-tr", None).unwrap();
        assert_eq!(
            (d.beam_size, d.prompt.as_str(), d.translate),
            (2, "Hi there", true)
        );
        for (name, bad) in [
            ("-bs", "0"),
            ("-bs", "9"),
            ("-ot", "-5"),
            ("-d", "-1"),
            ("-tp", "1.5"),
        ] {
            let e = (flag(name).apply)(&mut d, name, Some(bad)).unwrap_err();
            assert!(e.contains("must be from"), "{name} {bad}: {e}");
        }
        for (name, bad) in [
            ("-bs", None),
            ("-bs", Some("two")),
            ("-tp", Some("NaN")),
            ("-tp", Some("inf")),
        ] {
            assert!(
                (flag(name).apply)(&mut d, name, bad).is_err(),
                "{name} {bad:?}"
            );
        }
        assert_eq!(d.beam_size, 2, "a refused value changes nothing");
    }

    #[test]
    fn settings_away_from_their_defaults_come_back_as_whisper_cli_arguments() {
        let mut d = Decoding::default();
        let args = |d: &Decoding| -> Vec<String> {
            Decoding::FLAGS
                .iter()
                .filter_map(|f| (f.args)(d))
                .flatten()
                .collect()
        };
        assert!(args(&d).is_empty(), "defaults need no flags");
        d.beam_size = 1;
        d.no_timestamps = true;
        d.prompt = "a b".into();
        assert_eq!(args(&d), ["-bs", "1", "-nt", "--prompt", "a b"]);
    }

    #[test]
    fn every_flag_name_is_unique() {
        let mut names: Vec<&str> = Decoding::FLAGS
            .iter()
            .flat_map(|f| [f.short, f.long])
            .filter(|n| !n.is_empty())
            .collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all);
    }

    #[test]
    fn the_c_declaration_lists_every_field_with_its_c_type() {
        let c = Decoding::c_declaration();
        assert!(
            c.starts_with("struct pw_decoding {\n    int32_t beam_size;\n"),
            "{c}"
        );
        assert!(c.contains("    const char * prompt;\n"), "{c}");
        assert!(c.contains("    bool vad;\n"), "{c}");
        assert_eq!(c.matches(';').count(), Decoding::FLAGS.len() + 1);
        let mut keep = Vec::new();
        let raw = Decoding::default().raw(&mut keep).unwrap();
        assert_eq!(raw.beam_size, 5);
        let bad = Decoding {
            prompt: "a\0b".into(),
            ..Decoding::default()
        };
        assert!(bad.raw(&mut keep).is_err(), "a NUL cannot cross into C");
    }

    #[test]
    fn whisper_server_gets_the_form_fields_it_reads_per_request() {
        let fields = Decoding::default().form_fields();
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("beam_size").as_deref(), Some("5"));
        assert_eq!(get("suppress_non_speech").as_deref(), Some("false"));
        assert_eq!(
            get("vad_model"),
            None,
            "the VAD model goes on its command line"
        );
        assert_eq!(get("suppress_regex"), None);
    }

    #[test]
    fn missing_settings_on_the_wire_take_their_defaults() {
        let d: Decoding = serde_json::from_str(r#"{"beamSize":1}"#).unwrap();
        assert_eq!((d.beam_size, d.best_of), (1, 5));
    }
}
