//! Which whisper flags a caller may add through `extraArgs`: an allow-list
//! per backend. Anything else could undo what the engine guarantees (a
//! server on every interface with `--host 0.0.0.0`, files served with
//! `--public`, output where the engine does not read it), so it is refused.

use crate::error::{Result, WhisperError};

/// Whether a flag takes a value after it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    Nothing,
    Value,
}

/// (short, long, takes a value): flags both whisper-cli and whisper-server accept.
const COMMON: &[(&str, &str, Takes)] = &[
    // Decoding (sent with each request to whisper-server; see decoding.rs).
    ("-bs", "--beam-size", Takes::Value),
    ("-bo", "--best-of", Takes::Value),
    ("-tp", "--temperature", Takes::Value),
    ("-tpi", "--temperature-inc", Takes::Value),
    ("-et", "--entropy-thold", Takes::Value),
    ("-lpt", "--logprob-thold", Takes::Value),
    ("-nth", "--no-speech-thold", Takes::Value),
    ("-wt", "--word-thold", Takes::Value),
    ("-mc", "--max-context", Takes::Value),
    ("-ml", "--max-len", Takes::Value),
    ("-ac", "--audio-ctx", Takes::Value),
    ("-sow", "--split-on-word", Takes::Nothing),
    ("-tr", "--translate", Takes::Nothing),
    ("-nt", "--no-timestamps", Takes::Nothing),
    ("-sns", "--suppress-nst", Takes::Nothing),
    ("-nf", "--no-fallback", Takes::Nothing),
    ("", "--prompt", Takes::Value),
    ("", "--carry-initial-prompt", Takes::Nothing),
    // What part of the audio, and how.
    ("-ot", "--offset-t", Takes::Value),
    ("-on", "--offset-n", Takes::Value),
    ("-d", "--duration", Takes::Value),
    ("-di", "--diarize", Takes::Nothing),
    ("-tdrz", "--tinydiarize", Takes::Nothing),
    ("-dtw", "--dtw", Takes::Value),
    // Hardware.
    ("-fa", "--flash-attn", Takes::Nothing),
    ("-nfa", "--no-flash-attn", Takes::Nothing),
    ("-ng", "--no-gpu", Takes::Nothing),
    ("-dev", "--device", Takes::Value),
    // Voice activity detection.
    ("", "--vad", Takes::Nothing),
    ("-vm", "--vad-model", Takes::Value),
    ("-vt", "--vad-threshold", Takes::Value),
    ("-vspd", "--vad-min-speech-duration-ms", Takes::Value),
    ("-vsd", "--vad-min-silence-duration-ms", Takes::Value),
    ("-vmsd", "--vad-max-speech-duration-s", Takes::Value),
    ("-vp", "--vad-speech-pad-ms", Takes::Value),
    ("-vo", "--vad-samples-overlap", Takes::Value),
];

/// Flags only whisper-cli has.
const CLI_ONLY: &[(&str, &str, Takes)] = &[("", "--suppress-regex", Takes::Value)];

/// Flags the engine sets itself, and the option to use instead.
const SET_BY_ENGINE: &[(&str, &str)] = &[
    ("-m", "modelPath"),
    ("--model", "modelPath"),
    ("-f", "the path given to transcribe()"),
    ("--file", "the path given to transcribe()"),
    ("-t", "threads"),
    ("--threads", "threads"),
    ("-l", "language"),
    ("--language", "language"),
    ("-p", "poolSize (workers run in parallel)"),
    ("--processors", "poolSize (workers run in parallel)"),
    ("--host", "nothing: servers listen on 127.0.0.1 only"),
    ("--port", "basePort"),
    (
        "--request-path",
        "nothing: the engine's secret route prefix",
    ),
];

/// Which program the flags are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    WhisperCli,
    WhisperServer,
    /// persistent-whisper-worker: decoding settings, -ot, -d,
    /// --carry-initial-prompt, -fa, -nfa, -ng.
    Worker,
}

/// Flags both whisper programs take that the worker program does not.
const NOT_FOR_WORKER: &[&str] = &[
    "-on", "-di", "-tdrz", "-dtw", "-dev", "--vad", "-vm", "-vt", "-vspd", "-vsd", "-vmsd", "-vp",
    "-vo",
];

fn lookup(flag: &str, program: For) -> Option<Takes> {
    let cli_only: &[_] = match program {
        For::WhisperCli => CLI_ONLY,
        For::WhisperServer | For::Worker => &[],
    };
    COMMON
        .iter()
        .chain(cli_only)
        .find(|(short, long, _)| flag == *long || (!short.is_empty() && flag == *short))
        .filter(|(short, long, _)| {
            program != For::Worker
                || !(NOT_FOR_WORKER.contains(short) || NOT_FOR_WORKER.contains(long))
        })
        .map(|(_, _, takes)| *takes)
}

fn not_allowed(arg: &str, program: &str) -> String {
    format!("{arg:?} is not a flag the engine passes to {program}; allowed are decoding flags such as -bs, -bo, -nf, --prompt, and -ot, -d, -fa, -nfa, -ng, --vad, -vm (see README)")
}

/// Refuses any flag not on the backend's allow-list, and a flag missing its value.
pub fn check(args: &[String], program: For) -> Result<()> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some((_, instead)) = SET_BY_ENGINE.iter().find(|(f, _)| *f == arg) {
            return Err(WhisperError::invalid(
                "extraArgs",
                format!("{arg:?} is set by the engine; use {instead} instead"),
            ));
        }
        match lookup(arg, program) {
            Some(Takes::Nothing) => {}
            Some(Takes::Value) => {
                if it.next().is_none() {
                    return Err(WhisperError::invalid(
                        "extraArgs",
                        format!("{arg} needs a value after it"),
                    ));
                }
            }
            None => {
                return Err(WhisperError::invalid(
                    "extraArgs",
                    match program {
                        For::WhisperCli => not_allowed(arg, "whisper-cli"),
                        For::WhisperServer => not_allowed(arg, "whisper-server"),
                        For::Worker => format!(
                            "{arg:?} is not a flag backend 'worker' supports; allowed are decoding flags such as -bs, -bo, -nf, --prompt, and -ot, -d, --carry-initial-prompt, -fa, -nfa, -ng (see README; backend 'cli' takes more)"
                        ),
                    },
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_worker_takes_decoding_flags_and_refuses_the_rest() {
        check(
            &args(&["-bs", "1", "-ot", "500", "-ng", "-nfa"]),
            For::Worker,
        )
        .unwrap();
        for bad in [
            &["--vad"][..],
            &["-dtw", "tiny"],
            &["--suppress-regex", "x"],
        ] {
            let e = check(&args(bad), For::Worker).unwrap_err();
            assert!(e.to_string().contains("backend 'worker'"), "{e}");
        }
    }

    #[test]
    fn decoding_and_hardware_flags_pass() {
        for backend in [For::WhisperCli, For::WhisperServer] {
            check(
                &args(&["-bs", "1", "-nf", "--prompt", "Hi there", "-fa"]),
                backend,
            )
            .unwrap();
        }
    }

    #[test]
    fn flags_that_change_what_the_engine_guarantees_are_refused() {
        for bad in [
            &["--host", "0.0.0.0"][..],
            &["--public", "/etc"],
            &["--port", "80"],
            &["--request-path", "/x"],
            &["-of", "out"],
            &["--convert"],
            &["-m", "other.bin"],
        ] {
            let e = check(&args(bad), For::WhisperServer).unwrap_err();
            assert_eq!(e.code(), "ERR_INVALID_OPTIONS", "{bad:?}");
            assert!(e.to_string().contains("extraArgs"), "{e}");
        }
        let e = check(&args(&["-t", "4"]), For::WhisperCli).unwrap_err();
        assert!(e.to_string().contains("use threads instead"), "{e}");
    }

    #[test]
    fn a_value_flag_at_the_end_is_refused_and_cli_only_flags_stay_cli_only() {
        assert!(check(&args(&["-bs"]), For::WhisperCli)
            .unwrap_err()
            .to_string()
            .contains("-bs needs a value"));
        check(&args(&["--suppress-regex", "x"]), For::WhisperCli).unwrap();
        assert!(check(&args(&["--suppress-regex", "x"]), For::WhisperServer).is_err());
    }
}
