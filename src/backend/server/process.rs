//! One whisper-server process: spawning it, watching its stderr and its
//! exit, and ending it. Until its start is confirmed, dropping it kills it,
//! so a start that is given up (shutdown, timeout) leaves nothing behind.

use super::ports::Lease;
use crate::process::{self, Kill, TERMINATE_GRACE};
use std::collections::VecDeque;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::watch;

/// stderr lines kept to explain a failed start.
const STDERR_LINES: usize = 40;
/// How long an exited server's stderr may take to reach its end.
const STDERR_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);
/// What whisper prints when it starts loading a model.
const LOADING_MODEL: &str = "loading model from";
/// What whisper-server prints (unbuffered, on stderr) once it has read a
/// request's audio and starts on it.
const REQUEST_STARTED: &str = "system_info:";

pub struct ServerProcess {
    pub pid: u32,
    pub lease: Lease,
    /// The secret route prefix; never logged, never in an error.
    pub prefix: String,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Set once the server is confirmed ready: from then on a model load is
    /// someone else's `POST /load`.
    serving: Arc<AtomicBool>,
    /// Counts model loads after `serving` was set.
    reloads: watch::Receiver<u64>,
    /// Counts the requests it started on.
    started: watch::Receiver<u64>,
    /// Kills the process group on drop until the start is confirmed.
    armed: AtomicBool,
}

impl ServerProcess {
    /// Takes over a spawned child: reaps it in the background, drains and
    /// keeps the tail of its stderr, and counts model loads after start.
    pub fn adopt(mut child: Child, lease: Lease, prefix: String) -> Self {
        let pid = child.id().unwrap_or(0);
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let serving = Arc::new(AtomicBool::new(false));
        let (reload_tx, reloads) = watch::channel(0u64);
        let (started_tx, started) = watch::channel(0u64);
        let drained = child.stderr.take().map(|pipe| {
            let (lines, serving) = (stderr.clone(), serving.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if serving.load(Ordering::SeqCst) && line.contains(LOADING_MODEL) {
                        reload_tx.send_modify(|n| *n += 1);
                    }
                    if line.contains(REQUEST_STARTED) {
                        started_tx.send_modify(|n| *n += 1);
                    }
                    let mut kept = lines.lock().unwrap_or_else(|e| e.into_inner());
                    if kept.len() == STDERR_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            })
        });
        let (tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = process::wait(&mut child).await.ok();
            // Its last words (say, "couldn't bind") explain the exit: read
            // them before anyone sees it. Bounded, in case something it
            // started still holds the pipe.
            if let Some(drained) = drained {
                let _ = tokio::time::timeout(STDERR_DRAIN, drained).await;
            }
            let _ = tx.send(Some(status.unwrap_or_default()));
        });
        ServerProcess {
            pid,
            lease,
            prefix,
            exit,
            stderr,
            serving,
            reloads,
            started,
            armed: AtomicBool::new(true),
        }
    }

    /// The start is confirmed: keep the process when this value is dropped
    /// (stop() ends it), and treat any later model load as an intrusion.
    pub fn confirm(&self) {
        self.armed.store(false, Ordering::SeqCst);
        self.serving.store(true, Ordering::SeqCst);
    }

    pub fn url(&self, route: &str) -> String {
        format!("http://127.0.0.1:{}{}{route}", self.lease.port, self.prefix)
    }

    /// Whether the process still exists (it may have exited and not yet been reaped).
    pub fn alive(&self) -> bool {
        #[cfg(unix)]
        {
            // SAFETY: signal 0 only checks that the process exists.
            let exists = unsafe { libc::kill(self.pid as i32, 0) } == 0;
            let zombie = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
                .unwrap_or(false);
            exists && !zombie
        }
        #[cfg(not(unix))]
        {
            self.exit_status().is_none()
        }
    }

    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    pub async fn exited(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        let status = rx.wait_for(Option::is_some).await;
        status
            .map(|s| s.expect("waited for Some"))
            .unwrap_or_default()
    }

    /// Requests it has started on. Complete once its stderr is drained,
    /// which happens before its exit is seen.
    pub fn requests_started(&self) -> u64 {
        *self.started.borrow()
    }

    /// Model loads since start (another process's `POST /load`).
    pub fn reloads(&self) -> u64 {
        *self.reloads.borrow()
    }

    pub async fn reloaded(&self) {
        let mut rx = self.reloads.clone();
        let _ = rx.wait_for(|n| *n > 0).await;
    }

    /// The line of stderr that explains a failure, if there is one.
    pub fn stderr_error(&self) -> Option<String> {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            // Not the engine's own idle probe after an abort (no file sent).
            .filter(|l| !l.contains("no 'file' field"))
            .find(|l| {
                ["error", "GGML_ASSERT", "couldn't bind"]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .map(|l| l.trim().to_owned())
    }

    pub fn describe_exit(&self, status: ExitStatus) -> String {
        let explained = |sep: &str| {
            self.stderr_error()
                .map(|l| format!("{sep}{l}"))
                .unwrap_or_default()
        };
        match process::killed_by(&status) {
            Some(signal) => format!("whisper-server was killed by {signal}{}", explained(": ")),
            None => format!(
                "whisper-server exited with code {}{}",
                status.code().unwrap_or(-1),
                explained(": ")
            ),
        }
    }

    /// SIGKILL to its group at once (its work is unwanted); returns once it is reaped.
    pub async fn kill(&self) {
        if self.exit_status().is_none() {
            process::kill_group(self.pid, Kill::Now);
            self.exited().await;
        }
    }

    /// SIGTERM to its group, SIGKILL after the grace period; returns once it is reaped.
    pub async fn stop(&self) {
        if self.exit_status().is_some() {
            return;
        }
        process::kill_group(self.pid, Kill::Gracefully);
        if tokio::time::timeout(TERMINATE_GRACE, self.exited())
            .await
            .is_err()
        {
            process::kill_group(self.pid, Kill::Now);
            self.exited().await;
        } else {
            process::kill_group(self.pid, Kill::Now);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.armed.load(Ordering::SeqCst) && self.exit_status().is_none() {
            process::kill_group(self.pid, Kill::Now);
        }
    }
}
