//! The one table of whisper flags that `extraArgs` may hold, and the one
//! parse of them. A decoding setting's flag (`-bs`, `--prompt` ...) is
//! defined with its setting, once, in `persistent_whisper_protocol::Decoding`
//! (its default, range, whisper-server form field and C form come from the
//! same row); the other flags, which set up the process rather than decode,
//! are the rows below. Everything else is refused: it could undo what the
//! engine guarantees (a server on every interface with `--host 0.0.0.0`,
//! files served with `--public`, output where the engine does not read it).
//!
//! The parse gives each backend what it needs: whisper-cli an argv,
//! whisper-server its form fields (from the settings) and command line, the
//! worker program its parameters and command line.

use crate::error::{Result, WhisperError};
pub use persistent_whisper_protocol::{Decoding, ServerTakes, SettingFlag};

/// The backend that will take the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    WhisperCli,
    WhisperServer,
    Worker,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::WhisperCli => "whisper-cli",
            Program::WhisperServer => "whisper-server",
            Program::Worker => "backend 'worker'",
        }
    }
}

/// A flag that is not a decoding setting: how each program takes it.
struct ProcessFlag {
    short: &'static str,
    long: &'static str,
    takes_value: bool,
    /// whisper-server and whisper-cli take it on their command line as it is.
    whisper: bool,
    /// The worker program's own flag for it (None: it refuses it).
    worker: Option<WorkerTakes>,
}

#[derive(Clone, Copy)]
enum WorkerTakes {
    /// On its command line, as this flag.
    Flag(&'static str),
    /// Its default already.
    Default,
}

/// Flags that set up the process, not the decoding.
const PROCESS_FLAGS: &[ProcessFlag] = &[
    ProcessFlag {
        short: "-on",
        long: "--offset-n",
        takes_value: true,
        whisper: true,
        worker: None,
    },
    ProcessFlag {
        short: "-di",
        long: "--diarize",
        takes_value: false,
        whisper: true,
        worker: None,
    },
    ProcessFlag {
        short: "-dtw",
        long: "--dtw",
        takes_value: true,
        whisper: true,
        worker: None,
    },
    ProcessFlag {
        short: "-fa",
        long: "--flash-attn",
        takes_value: false,
        whisper: true,
        worker: Some(WorkerTakes::Default),
    },
    ProcessFlag {
        short: "-nfa",
        long: "--no-flash-attn",
        takes_value: false,
        whisper: true,
        worker: Some(WorkerTakes::Flag("--no-flash-attn")),
    },
    ProcessFlag {
        short: "-ng",
        long: "--no-gpu",
        takes_value: false,
        whisper: true,
        worker: Some(WorkerTakes::Flag("--no-gpu")),
    },
    ProcessFlag {
        short: "-dev",
        long: "--device",
        takes_value: true,
        whisper: true,
        worker: None,
    },
];

/// `-nf`: whisper-cli's switch for no temperature fallback, which is a
/// temperature increment of 0.
const NO_FALLBACK: (&str, &str) = ("-nf", "--no-fallback");

/// Flags the engine sets itself, and the option to use instead.
const SET_BY_ENGINE: &[(&str, &str)] = &[
    ("-m", "modelPath"),
    ("--model", "modelPath"),
    ("-f", "the audio given to transcribe()"),
    ("--file", "the audio given to transcribe()"),
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

/// `extraArgs`, parsed for one program.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtraArgs {
    /// The decoding settings: whisper-cli's defaults, changed by the flags.
    pub decoding: Decoding,
    /// The process flags, as given (whisper-cli, whisper-server)...
    pub process_args: Vec<String>,
    /// ...and as the worker program takes them.
    pub worker_flags: Vec<String>,
}

impl ExtraArgs {
    /// These flags with other decoding settings (a request's own).
    pub fn with_decoding(&self, decoding: Option<&Decoding>) -> std::borrow::Cow<'_, ExtraArgs> {
        match decoding {
            Some(d) => std::borrow::Cow::Owned(ExtraArgs {
                decoding: d.clone(),
                ..self.clone()
            }),
            None => std::borrow::Cow::Borrowed(self),
        }
    }

    /// whisper-cli's argv for them: each setting away from its default as
    /// its flag, then the process flags.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args: Vec<String> = Decoding::FLAGS
            .iter()
            .filter_map(|f| (f.args)(&self.decoding))
            .flatten()
            .collect();
        args.extend(self.process_args.iter().cloned());
        args
    }

    /// whisper-server's command line: the settings it takes only there,
    /// then the process flags.
    pub fn server_args(&self) -> Vec<String> {
        let mut args: Vec<String> = Decoding::FLAGS
            .iter()
            .filter(|f| f.server == ServerTakes::CommandLine)
            .filter_map(|f| (f.args)(&self.decoding))
            .flatten()
            .collect();
        args.extend(self.process_args.iter().cloned());
        args
    }

    /// One whisper-server /inference request's form fields: every setting
    /// it takes per request (its own defaults differ from whisper-cli's:
    /// greedy, best-of 2, token timestamps, 60-character segments), stated.
    pub fn server_form(&self, language: &str) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("language", language.to_owned()),
            ("response_format", "verbose_json".into()),
            // whisper-cli wraps segments only when asked (-ml); whisper-server
            // wraps at 60 characters whenever token timestamps are on.
            ("token_timestamps", (self.decoding.max_len > 0).to_string()),
        ];
        fields.extend(self.decoding.form_fields());
        fields
    }
}

fn refused(arg: &str, program: Program) -> WhisperError {
    let allowed = match program {
        Program::Worker => "decoding flags such as -bs, -bo, -nf, -ot, -d, --prompt, --vad, and -nfa, -ng",
        _ => "decoding flags such as -bs, -bo, -nf, -ot, -d, --prompt, --vad, -vm, and -on, -di, -dtw, -fa, -nfa, -ng, -dev",
    };
    WhisperError::invalid(
        "extraArgs",
        format!(
            "{arg:?} is not a flag {} takes through extraArgs; allowed are {allowed} (see README)",
            program.name()
        ),
    )
}

/// Parses `extraArgs` for `program`: every flag must be in the table and
/// taken by that program, with a valid value where it needs one.
pub fn parse(args: &[String], program: Program) -> Result<ExtraArgs> {
    let invalid = |reason: String| WhisperError::invalid("extraArgs", reason);
    let mut out = ExtraArgs::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = arg.as_str();
        if let Some((_, instead)) = SET_BY_ENGINE.iter().find(|(f, _)| *f == arg) {
            return Err(invalid(format!(
                "{arg:?} is set by the engine; use {instead} instead"
            )));
        }
        if let Some(flag) = Decoding::FLAGS.iter().find(|f| f.is(arg)) {
            if program == Program::WhisperServer && flag.server == ServerTakes::No {
                return Err(refused(arg, program));
            }
            let value = if flag.takes_value {
                Some(
                    it.next()
                        .ok_or_else(|| invalid(format!("{arg} needs a value after it")))?,
                )
            } else {
                None
            };
            (flag.apply)(&mut out.decoding, arg, value.map(String::as_str)).map_err(invalid)?;
            continue;
        }
        if arg == NO_FALLBACK.0 || arg == NO_FALLBACK.1 {
            out.decoding.temperature_inc = 0.0;
            continue;
        }
        let Some(flag) = PROCESS_FLAGS
            .iter()
            .find(|f| arg == f.long || arg == f.short)
        else {
            return Err(refused(arg, program));
        };
        let value = if flag.takes_value {
            Some(
                it.next()
                    .ok_or_else(|| invalid(format!("{arg} needs a value after it")))?,
            )
        } else {
            None
        };
        match program {
            Program::WhisperCli | Program::WhisperServer if flag.whisper => {
                out.process_args.push(arg.to_owned());
                out.process_args.extend(value.cloned());
            }
            Program::Worker => match flag.worker {
                Some(WorkerTakes::Flag(f)) => out.worker_flags.push(f.to_owned()),
                Some(WorkerTakes::Default) => {}
                None => return Err(refused(arg, program)),
            },
            _ => return Err(refused(arg, program)),
        }
    }
    if out.decoding.vad && out.decoding.vad_model.is_empty() {
        return Err(invalid(
            "--vad needs a VAD model: add -vm <path of a ggml Silero VAD model>".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn decoding_flags_set_their_settings_and_the_rest_stay_process_flags() {
        let e = parse(
            &args(&["-bs", "1", "-fa", "-nf", "--prompt", "Hi", "-on", "2"]),
            Program::WhisperCli,
        )
        .unwrap();
        assert_eq!(
            (
                e.decoding.beam_size,
                e.decoding.temperature_inc,
                e.decoding.prompt.as_str()
            ),
            (1, 0.0, "Hi")
        );
        assert_eq!(
            e.decoding.best_of, 5,
            "untouched settings keep whisper-cli's defaults"
        );
        assert_eq!(e.process_args, ["-fa", "-on", "2"]);
        assert_eq!(
            e.cli_args(),
            ["-bs", "1", "-tpi", "0", "--prompt", "Hi", "-fa", "-on", "2"]
        );
    }

    #[test]
    fn the_worker_takes_decoding_flags_and_refuses_what_it_cannot_do() {
        let e = parse(
            &args(&[
                "-bs", "1", "-ot", "500", "-ng", "-nfa", "-fa", "--vad", "-vm", "v.bin",
            ]),
            Program::Worker,
        )
        .unwrap();
        assert_eq!((e.decoding.offset_ms, e.decoding.vad), (500, true));
        assert_eq!(e.worker_flags, ["--no-gpu", "--no-flash-attn"]);
        for bad in [&["-dtw", "tiny"][..], &["-di"], &["-on", "1"]] {
            let err = parse(&args(bad), Program::Worker).unwrap_err();
            assert!(err.to_string().contains("backend 'worker'"), "{err}");
        }
    }

    #[test]
    fn vad_without_its_model_is_refused() {
        let e = parse(&args(&["--vad"]), Program::WhisperCli).unwrap_err();
        assert!(e.to_string().contains("-vm"), "{e}");
    }

    #[test]
    fn values_out_of_range_are_refused_naming_the_flag() {
        for bad in [
            &["-ot", "-5"][..],
            &["-d", "-1"],
            &["-bs", "0"],
            &["-bs", "100"],
            &["-tp", "2"],
            &["-ml", "x"],
        ] {
            for program in [Program::WhisperCli, Program::WhisperServer, Program::Worker] {
                let e = parse(&args(bad), program).unwrap_err();
                assert_eq!(e.code(), "ERR_INVALID_OPTIONS", "{bad:?}");
                assert!(e.to_string().contains(bad[0]), "{e}");
            }
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
            let e = parse(&args(bad), Program::WhisperServer).unwrap_err();
            assert_eq!(e.code(), "ERR_INVALID_OPTIONS", "{bad:?}");
            assert!(e.to_string().contains("extraArgs"), "{e}");
        }
        let e = parse(&args(&["-t", "4"]), Program::WhisperCli).unwrap_err();
        assert!(e.to_string().contains("use threads instead"), "{e}");
    }

    #[test]
    fn a_value_flag_at_the_end_is_refused_and_cli_only_settings_stay_off_the_server() {
        for program in [Program::WhisperCli, Program::Worker] {
            assert!(parse(&args(&["-bs"]), program)
                .unwrap_err()
                .to_string()
                .contains("-bs needs a value"));
        }
        parse(&args(&["--suppress-regex", "x"]), Program::WhisperCli).unwrap();
        parse(&args(&["--suppress-regex", "x"]), Program::Worker).unwrap();
        assert!(parse(&args(&["--suppress-regex", "x"]), Program::WhisperServer).is_err());
    }

    #[test]
    fn whisper_server_gets_every_per_request_setting_and_the_rest_on_its_command_line() {
        let e = parse(
            &args(&["-vm", "vad.bin", "-ml", "5", "-fa"]),
            Program::WhisperServer,
        )
        .unwrap();
        let form = e.server_form("de");
        let get = |k: &str| form.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(
            (
                get("language").as_str(),
                get("max_len").as_str(),
                get("token_timestamps").as_str()
            ),
            ("de", "5", "true")
        );
        assert_eq!(get("beam_size"), "5");
        assert_eq!(e.server_args(), ["-vm", "vad.bin", "-fa"]);
    }
}
