//! whisper's JSON output -> Transcript { text, segments, language }.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Trimmed.
    pub text: String,
    /// As whisper produced it (usually with a leading space): what
    /// whisper-cli writes into captions.
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    pub language: String,
}

#[derive(Deserialize)]
struct CliOutput {
    #[serde(default)]
    result: Option<CliResult>,
    transcription: Vec<CliSegment>,
}

#[derive(Deserialize)]
struct CliResult {
    language: Option<String>,
}

#[derive(Deserialize)]
struct CliSegment {
    offsets: CliOffsets,
    text: String,
}

#[derive(Deserialize)]
struct CliOffsets {
    from: u64,
    to: u64,
}

impl Transcript {
    /// From whisper's segments (start ms, end ms, text as whisper wrote it):
    /// the text is their concatenation, each segment's text trimmed.
    pub fn assemble(parts: impl Iterator<Item = (u64, u64, String)>, language: String) -> Self {
        let mut raw = String::new();
        let segments = parts
            .map(|(start_ms, end_ms, text)| {
                raw.push_str(&text);
                Segment {
                    start_ms,
                    end_ms,
                    text: text.trim().to_owned(),
                    raw: text,
                }
            })
            .collect();
        Transcript {
            text: raw.trim().to_owned(),
            segments,
            language,
        }
    }
}

/// Parses the JSON whisper-cli prints with `-oj -of -`. `None` when stdout holds
/// no such document (whisper failed, or something else wrote to stdout).
pub fn from_cli_json(stdout: &[u8], requested_language: &str) -> Option<Transcript> {
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let out: CliOutput = serde_json::from_str(text).ok()?;
    let language = out
        .result
        .and_then(|r| r.language)
        .unwrap_or_else(|| requested_language.to_owned());
    let parts = out
        .transcription
        .into_iter()
        .map(|s| (s.offsets.from, s.offsets.to, s.text));
    Some(Transcript::assemble(parts, language))
}

#[derive(Deserialize)]
struct ServerOutput {
    language: Option<String>,
    segments: Vec<ServerSegment>,
}

#[derive(Deserialize)]
struct ServerSegment {
    text: String,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    end: f64,
}

/// Parses whisper-server's `verbose_json` answer (times in seconds, the
/// language as a name such as "english").
pub fn from_server_json(body: &[u8], requested_language: &str) -> Option<Transcript> {
    let out: ServerOutput = serde_json::from_slice(body).ok()?;
    let language = out
        .language
        .and_then(|name| crate::language::code_of_name(&name))
        .map_or_else(|| requested_language.to_owned(), str::to_owned);
    let ms = |seconds: f64| (seconds * 1000.0).round() as u64;
    let parts = out
        .segments
        .into_iter()
        .map(|s| (ms(s.start), ms(s.end), s.text));
    Some(Transcript::assemble(parts, language))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JFK: &str = r#"{
        "systeminfo": "AVX = 1",
        "result": { "language": "en" },
        "transcription": [
            { "timestamps": { "from": "00:00:00,000", "to": "00:00:05,000" },
              "offsets": { "from": 0, "to": 5000 }, "text": " And so my fellow Americans," },
            { "timestamps": { "from": "00:00:05,000", "to": "00:00:10,360" },
              "offsets": { "from": 5000, "to": 10360 }, "text": " ask not what your country can do for you." }
        ]
    }"#;

    #[test]
    fn joins_segments_and_keeps_millisecond_offsets() {
        let t = from_cli_json(JFK.as_bytes(), "auto").unwrap();
        assert_eq!(
            t.text,
            "And so my fellow Americans, ask not what your country can do for you."
        );
        assert_eq!(t.segments.len(), 2);
        assert_eq!(
            (t.segments[1].start_ms, t.segments[1].end_ms),
            (5000, 10360)
        );
        assert_eq!(t.segments[0].text, "And so my fellow Americans,");
        assert_eq!(t.language, "en");
    }

    #[test]
    fn no_json_means_no_transcript() {
        assert_eq!(from_cli_json(b"", "en"), None);
        assert_eq!(from_cli_json(b"usage: whisper-cli [options]", "en"), None);
        assert_eq!(from_cli_json(b"{\"transcription\": [", "en"), None);
    }

    #[test]
    fn reads_whisper_servers_verbose_json() {
        let body = br#"{"task":"transcribe","language":"english","duration":11.0,"text":"x",
            "segments":[{"id":0,"text":" Ask not.","start":0.0,"end":5.12,"temperature":0.0}]}"#;
        let t = from_server_json(body, "auto").unwrap();
        assert_eq!((t.text.as_str(), t.language.as_str()), ("Ask not.", "en"));
        assert_eq!((t.segments[0].start_ms, t.segments[0].end_ms), (0, 5120));
        assert_eq!(from_server_json(b"{\"error\":\"x\"}", "en"), None);
    }

    #[test]
    fn an_empty_transcription_is_a_result() {
        let t = from_cli_json(br#"{"transcription": []}"#, "de").unwrap();
        assert_eq!(
            (t.text.as_str(), t.segments.len(), t.language.as_str()),
            ("", 0, "de")
        );
    }
}
