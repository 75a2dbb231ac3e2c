//! The server backend: each worker owns one whisper-server process that keeps
//! the model loaded; requests go to it over HTTP on 127.0.0.1.
//!
//! whisper-server has no authentication and `POST /load` loads any model it is
//! sent, so every route lives under a random `--request-path` prefix that only
//! this process knows. The prefix never appears in status or logs.

use super::{Request, Stop};
use crate::cancel::CancelReason;
use crate::decoding::Decoding;
use crate::error::{display_path, WhisperError};
use crate::locate;
use crate::process::{self, TERMINATE_GRACE};
use crate::transcript::{self, Transcript};
use std::collections::VecDeque;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// Attempts at finding a port whisper-server can bind before giving up.
const PORT_ATTEMPTS: u32 = 8;
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// stderr lines kept to explain a failed start.
const STDERR_LINES: usize = 40;

#[derive(Debug)]
pub struct ServerConfig {
    pub program: PathBuf,
    pub model: PathBuf,
    pub model_bytes: u64,
    pub threads: usize,
    /// `extraArgs` that are not decoding settings: they go on the command line.
    pub server_args: Vec<String>,
    pub decoding: Decoding,
    /// First port to try; None lets the OS choose free ports.
    pub base_port: Option<u16>,
    /// Shared by the workers, so that each tries different ports.
    pub next_port_offset: AtomicU32,
}

impl ServerConfig {
    /// Loading takes longer for bigger models: 30 s plus 1 s per 50 MB.
    fn start_timeout(&self) -> Duration {
        Duration::from_secs(30 + self.model_bytes / 50_000_000)
    }

    fn candidate_port(&self) -> Option<u16> {
        match self.base_port {
            Some(base) => {
                let offset = self.next_port_offset.fetch_add(1, Ordering::Relaxed);
                u16::try_from(base as u32 + offset).ok()
            }
            None => Some(0),
        }
    }
}

/// A port that is free right now (whisper-server may still lose a race for it).
fn free_port(config: &ServerConfig) -> Option<u16> {
    for _ in 0..1000 {
        let candidate = config.candidate_port()?;
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, candidate)) {
            return listener.local_addr().ok().map(|a| a.port());
        }
    }
    None
}

/// A random hex string, from the OS-seeded keys of std's hasher.
fn random_hex() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    (0..2)
        .map(|i| {
            let mut h = RandomState::new().build_hasher();
            h.write_u32(i);
            h.write_u128(Instant::now().elapsed().as_nanos());
            format!("{:016x}", h.finish())
        })
        .collect()
}

struct ServerProcess {
    pid: u32,
    port: u16,
    prefix: String,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    fn url(&self, route: &str) -> String {
        format!("http://127.0.0.1:{}{}{route}", self.port, self.prefix)
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    async fn exited(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        let status = rx.wait_for(Option::is_some).await;
        status
            .map(|s| s.expect("waited for Some"))
            .unwrap_or_default()
    }

    /// The line of stderr that explains a failure, if there is one.
    fn stderr_error(&self) -> Option<String> {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .find(|l| {
                ["error", "GGML_ASSERT", "couldn't bind"]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .map(|l| l.trim().to_owned())
    }

    fn describe_exit(&self, status: ExitStatus) -> String {
        match process::killed_by(&status) {
            Some(signal) => format!(
                "whisper-server was killed by {signal}{}",
                self.stderr_error()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ),
            None => format!(
                "whisper-server exited with code {}{}",
                status.code().unwrap_or(-1),
                self.stderr_error()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// SIGTERM to its group, SIGKILL after the grace period; returns once it is reaped.
    async fn stop(&self) {
        if self.exit_status().is_some() {
            return;
        }
        process::signal_group(self.pid, process::Signal::Term);
        if tokio::time::timeout(TERMINATE_GRACE, self.exited())
            .await
            .is_err()
        {
            process::signal_group(self.pid, process::Signal::Kill);
            self.exited().await;
        } else {
            process::signal_group(self.pid, process::Signal::Kill);
        }
    }
}

enum Launch {
    Ready(ServerProcess),
    PortTaken,
    Failed(WhisperError),
}

pub struct ServerBackend {
    config: Arc<ServerConfig>,
    process: Mutex<Option<Arc<ServerProcess>>>,
    client: reqwest::Client,
}

impl ServerBackend {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        ServerBackend {
            config,
            process: Mutex::new(None),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    fn current(&self) -> Option<Arc<ServerProcess>> {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.current()
            .filter(|p| p.exit_status().is_none())
            .map(|p| p.pid)
    }

    /// Starts whisper-server and returns when its model is loaded and it
    /// answers its health check. A port lost to another process is retried.
    pub async fn start(&self) -> Result<(), WhisperError> {
        for _ in 0..PORT_ATTEMPTS {
            let Some(port) = free_port(&self.config) else {
                break;
            };
            match self.launch(port).await {
                Launch::Ready(p) => {
                    *self.process.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(p));
                    return Ok(());
                }
                Launch::PortTaken => continue,
                Launch::Failed(e) => return Err(e),
            }
        }
        Err(WhisperError::WhisperFailed {
            path: display_path(&self.config.program),
            detail: "whisper-server found no free port to listen on (127.0.0.1)".into(),
        })
    }

    async fn launch(&self, port: u16) -> Launch {
        let c = &self.config;
        let prefix = format!("/{}", random_hex());
        let mut cmd = process::command(&c.program);
        cmd.arg("-m")
            .arg(&c.model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-t", &c.threads.to_string()])
            .args(["--request-path", &prefix])
            // verbose_json would otherwise run language detection (an extra
            // encoder pass) on every request just to report probabilities.
            .arg("-nlp")
            .args(&c.server_args)
            .stdout(Stdio::null());
        let mut child = match process::spawn(&mut cmd) {
            Ok(child) => child,
            Err(e) => {
                return Launch::Failed(locate::not_found(
                    &locate::WHISPER_SERVER,
                    &c.program,
                    e.to_string(),
                ))
            }
        };
        let pid = child.id().unwrap_or(0);
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(pipe) = child.stderr.take() {
            // Drain stderr so the server never blocks on a full pipe; keep the tail.
            let lines = stderr.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let mut kept = lines.lock().unwrap_or_else(|e| e.into_inner());
                    if kept.len() == STDERR_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            });
        }
        let (tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            // Owns the child: reaps it, and kills it if the runtime goes away.
            let status = process::wait(&mut child).await.ok();
            let _ = tx.send(Some(status.unwrap_or_default()));
        });
        let server = ServerProcess {
            pid,
            port,
            prefix,
            exit,
            stderr,
        };
        let deadline = Instant::now() + c.start_timeout();
        loop {
            if let Some(status) = server.exit_status() {
                return self.failed_start(&server, status);
            }
            if self.healthy(&server).await {
                return Launch::Ready(server);
            }
            if Instant::now() > deadline {
                server.stop().await;
                return Launch::Failed(WhisperError::WhisperFailed {
                    path: display_path(&c.program),
                    detail: format!(
                        "whisper-server did not become ready within {} s",
                        c.start_timeout().as_secs()
                    ),
                });
            }
            // Wait for the next probe, or for the process to exit.
            tokio::select! {
                _ = server.exited() => {}
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
            }
        }
    }

    fn failed_start(&self, server: &ServerProcess, status: ExitStatus) -> Launch {
        let stderr = server.stderr_error().unwrap_or_default();
        if stderr.contains("couldn't bind") {
            return Launch::PortTaken;
        }
        // Exit code 3 is whisper's "failed to initialize whisper context"; a
        // crash before the port opens happens while the model loads.
        let crashed = process::killed_by(&status).is_some();
        if status.code() == Some(3)
            || crashed
            || stderr.contains("failed to initialize whisper context")
        {
            return Launch::Failed(WhisperError::ModelLoad {
                path: display_path(&self.config.model),
                reason: server.describe_exit(status),
            });
        }
        Launch::Failed(WhisperError::WhisperFailed {
            path: display_path(&self.config.program),
            detail: server.describe_exit(status),
        })
    }

    async fn healthy(&self, server: &ServerProcess) -> bool {
        let response = self
            .client
            .get(server.url("/health"))
            .timeout(HEALTH_TIMEOUT)
            .send()
            .await;
        matches!(response, Ok(r) if r.status().is_success())
    }

    /// One health check of the running server (false when it is gone).
    pub async fn health_check(&self) -> bool {
        match self.current() {
            Some(server) if server.exit_status().is_none() => self.healthy(&server).await,
            _ => false,
        }
    }

    /// Resolves, with a description, when the server process exits.
    pub async fn exited(&self) -> String {
        match self.current() {
            Some(server) => {
                let status = server.exited().await;
                server.describe_exit(status)
            }
            None => std::future::pending().await,
        }
    }

    pub async fn stop(&self) {
        if let Some(server) = self.current() {
            server.stop().await;
        }
    }

    pub async fn transcribe(
        &self,
        request: &Request,
        cancel: impl Future<Output = CancelReason>,
    ) -> Result<Transcript, Stop> {
        let path = display_path(&request.audio.path);
        let Some(server) = self.current().filter(|s| s.exit_status().is_none()) else {
            return Err(WhisperError::WorkerCrashed {
                path,
                detail: "its whisper-server is not running".into(),
            }
            .into());
        };
        let exchange = async {
            let audio = tokio::fs::read(&request.audio.path).await.map_err(|e| {
                WhisperError::AudioUnreadable {
                    path: path.clone(),
                    reason: format!("it cannot be read: {e}"),
                }
            })?;
            let mut form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(audio).file_name("audio"),
            );
            for (name, value) in self.config.decoding.form_fields(&request.language) {
                form = form.text(name, value);
            }
            let response = self
                .client
                .post(server.url("/inference"))
                .multipart(form)
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                Err(e) => return Err(self.lost(&server, &path, e).await),
            };
            let status = response.status();
            match response.bytes().await {
                Ok(body) => Ok((status, body)),
                Err(e) => Err(self.lost(&server, &path, e).await),
            }
        };
        // Dropping the exchange closes the connection, which makes whisper-server
        // abort the inference; a timed-out worker's server is replaced anyway.
        let (status, body) = tokio::select! {
            result = exchange => result.map_err(Stop::Failed)?,
            reason = cancel => return Err(Stop::Cancelled(reason)),
        };
        let text = String::from_utf8_lossy(&body);
        match status.as_u16() {
            200 => transcript::from_server_json(&body, &request.language).ok_or_else(|| {
                WhisperError::WhisperFailed {
                    path,
                    detail: format!("whisper-server answered with something other than its JSON result: {:.120}", text),
                }
                .into()
            }),
            400 => Err(WhisperError::AudioUnreadable {
                path,
                reason: format!("whisper cannot decode it as audio ({}). Use WAV, MP3, FLAC or OGG; convert other formats (m4a, aac, video files) first, e.g. with ffmpeg", text.trim()),
            }
            .into()),
            code => Err(WhisperError::WhisperFailed {
                path,
                detail: format!("whisper-server answered HTTP {code}: {:.200}", text.trim()),
            }
            .into()),
        }
    }

    /// A failed exchange: a crash when the server died, else a plain failure.
    async fn lost(
        &self,
        server: &ServerProcess,
        path: &str,
        error: reqwest::Error,
    ) -> WhisperError {
        // The connection drops a moment before the exit is reaped.
        match tokio::time::timeout(Duration::from_millis(500), server.exited()).await {
            Ok(status) => WhisperError::WorkerCrashed {
                path: path.to_owned(),
                detail: server.describe_exit(status),
            },
            Err(_) => WhisperError::WhisperFailed {
                path: path.to_owned(),
                detail: format!("the request to whisper-server failed: {error}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_long_and_differ() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_base_port_hands_each_worker_its_own_candidates() {
        let config = ServerConfig {
            program: "whisper-server".into(),
            model: "m".into(),
            model_bytes: 0,
            threads: 1,
            server_args: vec![],
            decoding: Decoding::default(),
            base_port: Some(40100),
            next_port_offset: AtomicU32::new(0),
        };
        assert_eq!(config.candidate_port(), Some(40100));
        assert_eq!(config.candidate_port(), Some(40101));
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 40102));
        let port = free_port(&config).unwrap();
        if taken.is_ok() {
            assert_eq!(port, 40103, "a port in use is skipped");
        }
    }
}
