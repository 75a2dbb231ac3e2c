//! What the engine and its worker program (persistent-whisper-worker) say to
//! each other over the worker's stdin and stdout. No port, no secret: a pipe
//! only the parent holds.
//!
//! A frame is a little-endian u32 length, that many bytes of JSON (one
//! message), a little-endian u64 length, and that many bytes of payload
//! (the audio of a request; empty otherwise).

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{self, Read, Write};

/// A message's JSON may not be larger than this.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Nor a payload larger than this (4 GiB).
pub const MAX_PAYLOAD: u64 = 1 << 32;

/// From the engine to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Request {
    /// Transcribe some audio on a fresh whisper state.
    Transcribe {
        id: u64,
        audio: Audio,
        params: Params,
    },
    /// Stop a transcription; its answer is `Failed` with `Aborted`.
    Cancel { id: u64 },
    /// Run a transcription on this many threads from its next step on (the
    /// engine re-splits the cores as requests start and end).
    Threads { id: u64, threads: u32 },
}

/// Where a request's audio is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Audio {
    /// A file the worker reads (WAV, MP3, FLAC, OGG).
    Path { path: String },
    /// The frame's payload holds a file's bytes.
    File,
    /// The frame's payload holds 16 kHz mono samples, f32 little-endian.
    Samples,
}

/// How to decode: whisper-cli's settings (its defaults unless said otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub language: String,
    pub threads: u32,
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
    pub suppress_nst: bool,
    pub prompt: String,
    pub carry_initial_prompt: bool,
    pub offset_ms: i32,
    pub duration_ms: i32,
    /// Send `Progress` messages.
    pub progress: bool,
    /// Send `Segment` messages as segments are decoded.
    pub segments: bool,
}

impl Default for Params {
    /// whisper-cli 1.9.1's defaults.
    fn default() -> Self {
        Params {
            language: "en".into(),
            threads: 1,
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
            suppress_nst: false,
            prompt: String::new(),
            carry_initial_prompt: false,
            offset_ms: 0,
            duration_ms: 0,
            progress: false,
            segments: false,
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
    AudioUnreadable,
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
    Ready {
        slots: u32,
    },
    Progress {
        id: u64,
        percent: u8,
    },
    Segment {
        id: u64,
        segment: Segment,
    },
    Done {
        id: u64,
        language: String,
        segments: Vec<Segment>,
    },
    Failed {
        id: u64,
        failure: Failure,
        message: String,
    },
    /// The worker cannot serve at all (its model did not load); it exits.
    Fatal {
        failure: Failure,
        message: String,
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
            params: Params::default(),
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
        let json =
            String::from_utf8(encode(&Reply::Ready { slots: 3 }, &[])[4..].to_vec()).unwrap();
        assert!(json.starts_with(r#"{"type":"ready","slots":3}"#), "{json}");
    }
}
