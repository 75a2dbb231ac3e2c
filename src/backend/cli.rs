//! The cli backend: one whisper-cli process per request, JSON on stdout.

use super::request::{Loss, LossCause, PidReporter, Request, Unfinished};
use super::verdict;
use crate::cancel::CancelReason;
use crate::decoding::ExtraArgs;
use crate::error::WhisperError;
use crate::locate;
use crate::process::{self, Output, TERMINATE_GRACE};
use crate::transcript::{self, Transcript};
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone)]
pub struct CliBackend {
    pub program: PathBuf,
    pub model: PathBuf,
    /// `extraArgs` (decoding.rs); a request may bring its own decoding.
    pub extra: std::sync::Arc<ExtraArgs>,
}

impl CliBackend {
    pub fn args(&self, request: &Request) -> Vec<OsString> {
        // Audio from memory goes to its stdin ("-f -").
        let input: OsString = match request.audio.path() {
            Some(path) => path.into(),
            None => "-".into(),
        };
        let mut args: Vec<OsString> = vec![
            "-m".into(),
            self.model.clone().into(),
            "-f".into(),
            input,
            "-t".into(),
            request.threads.to_string().into(),
            "-l".into(),
            request.language.clone().into(),
            // No progress chatter; the JSON document alone on stdout (a pipe).
            "-np".into(),
            "-oj".into(),
            "-of".into(),
            "-".into(),
        ];
        let extra = self.extra.with_decoding(request.decoding.as_deref());
        args.extend(extra.cli_args().into_iter().map(OsString::from));
        args
    }

    pub async fn transcribe(
        &self,
        request: &Request,
        cancel: impl Future<Output = CancelReason>,
        report_pid: PidReporter<'_>,
    ) -> Result<Transcript, Unfinished> {
        let what = request.audio.describe();
        // A file may have changed since it was queued: same checks, same
        // codes as at admission, and no whisper-cli left waiting on a FIFO.
        if let Some(path) = request.audio.path() {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || crate::audio::open(&path).map(drop))
                .await
                .map_err(|e| WhisperError::WhisperFailed {
                    path: what.clone(),
                    detail: format!("checking the file failed: {e}"),
                })??;
        }
        let memory = request.audio.file_bytes();
        let mut command = process::command(&self.program);
        #[allow(unused_mut)]
        let mut args = self.args(request);
        #[cfg(windows)]
        let (mut json_pipe, narrow_file) =
            windows::prepare(&mut args, request).map_err(|detail| WhisperError::WhisperFailed {
                path: what.clone(),
                detail,
            })?;
        #[cfg(not(windows))]
        let narrow_file: Option<PathBuf> = None;
        if memory.is_some() || narrow_file.is_some() {
            command.stdin(std::process::Stdio::piped());
        }
        #[cfg(windows)]
        let json = json_pipe.read();
        let mut child = process::spawn(command.args(args))
            .map_err(|e| locate::not_found(&locate::WHISPER_CLI, &self.program, e.to_string()))?;
        report_pid(child.id());
        let feed = feed_stdin(child.stdin.take(), memory, narrow_file);
        let finished = tokio::select! {
            (output, ()) = async { tokio::join!(process::collect(&mut child), feed) } => Ok(output),
            reason = cancel => Err(reason),
        };
        #[cfg(windows)]
        let finished = windows::json_as_stdout(finished, &json_pipe, json).await;
        let result = match finished {
            Ok(Ok(output)) => self.verdict(request, output),
            Ok(Err(io)) => {
                process::terminate(&mut child, TERMINATE_GRACE).await;
                Err(Unfinished::Failed(WhisperError::WhisperFailed {
                    path: what,
                    detail: format!("reading whisper-cli's output failed: {io}"),
                }))
            }
            Err(reason) => {
                process::terminate(&mut child, TERMINATE_GRACE).await;
                Err(Unfinished::Cancelled(reason))
            }
        };
        report_pid(None);
        result
    }

    /// The exit code is not a verdict: whisper-cli exits 0 on unreadable audio
    /// and unknown flags. Look at the signal, stderr's `error:` lines and stdout.
    fn verdict(&self, request: &Request, out: Output) -> Result<Transcript, Unfinished> {
        let path = request.audio.describe();
        let audio = path.as_str();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error_line = verdict::error_line(&stderr);
        if let Some(signal) = process::killed_by(&out.status) {
            // Its own process, alone: the pool decides whether to run it again.
            return Err(Unfinished::Lost(Loss {
                detail: format!("whisper-cli was killed by {signal}"),
                cause: LossCause::Alone,
            }));
        }
        let code = out.status.code();
        if let Some(e) = verdict::model_failure(&self.model, code, &stderr, || {
            error_line
                .clone()
                .unwrap_or_else(|| "whisper-cli exited with code 3".into())
        }) {
            return Err(e.into());
        }
        if let Some(e) = verdict::audio_failure(audio, &stderr) {
            return Err(e.into());
        }
        let transcript = transcript::from_cli_json(&out.stdout, &request.language);
        match (transcript, code, error_line) {
            (Some(t), Some(0), _) => Ok(t),
            (_, code, Some(line)) => Err(WhisperError::WhisperFailed {
                path,
                detail: format!("{line} (exit code {})", code.unwrap_or(-1)),
            }
            .into()),
            (_, Some(code), None) if code != 0 => Err(WhisperError::WhisperFailed {
                path,
                detail: format!("whisper-cli exited with code {code}: {}", last_line(&stderr)),
            }
            .into()),
            (None, _, None) if out.stdout.iter().all(u8::is_ascii_whitespace) => {
                Err(WhisperError::AudioUnreadable {
                    path,
                    reason: "whisper produced no transcript and no error; the audio may be truncated or corrupt".into(),
                }
                .into())
            }
            _ => Err(WhisperError::WhisperFailed {
                path,
                detail: format!(
                    "whisper-cli printed something other than its JSON result: {:?}",
                    String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(120)])
                ),
            }
            .into()),
        }
    }
}

/// Writes audio from memory (or, on Windows, a file whisper-cli cannot open
/// by name) to whisper-cli's stdin and closes it. A whisper-cli that stops
/// reading (it failed) makes the write fail: its verdict says why, so the
/// write error is not one.
async fn feed_stdin(
    stdin: Option<tokio::process::ChildStdin>,
    bytes: Option<Arc<[u8]>>,
    file: Option<PathBuf>,
) {
    #[cfg(windows)]
    if let Some(path) = file {
        return process::windows_cli::feed_file(stdin, &path).await;
    }
    #[cfg(not(windows))]
    let _ = file;
    if let (Some(mut stdin), Some(bytes)) = (stdin, bytes) {
        let _ = stdin.write_all(&bytes).await;
    }
}

/// whisper-cli on Windows (process/windows_cli.rs): its JSON through a named
/// pipe, files with names outside the ANSI code page through its stdin.
#[cfg(windows)]
mod windows {
    use super::Request;
    use crate::process::windows_cli::{fits_ansi_code_page, JsonPipe};
    use crate::process::Output;
    use std::ffi::OsString;
    use std::path::PathBuf;

    /// Rewrites `-of -` (and `-f <path>` where needed) in whisper-cli's args.
    pub fn prepare(
        args: &mut [OsString],
        request: &Request,
    ) -> Result<(JsonPipe, Option<PathBuf>), String> {
        let pipe = JsonPipe::create()
            .map_err(|e| format!("cannot create a pipe for whisper-cli's JSON: {e}"))?;
        set_after(args, "-of", pipe.of_arg().into());
        let narrow = request
            .audio
            .path()
            .filter(|p| !fits_ansi_code_page(p))
            .map(PathBuf::from);
        if narrow.is_some() {
            set_after(args, "-f", "-".into());
        }
        Ok((pipe, narrow))
    }

    fn set_after(args: &mut [OsString], flag: &str, value: OsString) {
        if let Some(i) = args.iter().position(|a| a == flag) {
            args[i + 1] = value;
        }
    }

    /// whisper-cli's output with the pipe's JSON as its stdout.
    pub async fn json_as_stdout<E>(
        finished: Result<std::io::Result<Output>, E>,
        pipe: &JsonPipe,
        json: tokio::task::JoinHandle<std::io::Result<Vec<u8>>>,
    ) -> Result<std::io::Result<Output>, E> {
        // A pipe it never opened must not keep the reader waiting.
        pipe.close_unused();
        match finished {
            // It exited: the pipe is closed, what it wrote is there.
            Ok(Ok(mut output)) => Ok(json
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
                .map(|json| {
                    output.stdout = json;
                    output
                })),
            // Still running and about to be killed, which closes the pipe
            // and ends the reader.
            other => other,
        }
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
}
