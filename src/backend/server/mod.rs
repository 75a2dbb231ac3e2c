//! The server backend: each worker owns one whisper-server process that keeps
//! the model loaded; requests go to it over HTTP on 127.0.0.1.
//!
//! whisper-server has no authentication, and `POST /load` loads any model it
//! is sent, so every route lives under a random `--request-path` prefix.
//! That prefix is on the server's command line, where other local users can
//! read it: the engine therefore also checks that the port's listener is its
//! own child before it sends anything (owner.rs), and treats a model load it
//! did not ask for as an intrusion (the server is replaced, the request
//! retried). The prefix never appears in status, errors or logs.

mod owner;
mod ports;
mod process;

pub use ports::Ports;

use super::request::{Loss, LossCause, Request, Unfinished};
use super::verdict;
use crate::cancel::{CancelReason, CancelToken};
use crate::decoding::ExtraArgs;
use crate::error::{display_path, WhisperError};
use crate::locate;
use crate::transcript::{self, Transcript};
use owner::Listener;
use ports::Lease;
use process::ServerProcess;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ports tried before a start fails: each one another process took.
const PORT_ATTEMPTS: usize = 8;
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// After an abort, the server must be idle within this, or it is replaced.
const IDLE_AFTER_ABORT: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct ServerConfig {
    pub program: PathBuf,
    pub model: PathBuf,
    pub model_bytes: u64,
    pub threads: usize,
    /// `extraArgs`: per-request settings go in each request's form, the
    /// rest on the command line.
    pub extra: ExtraArgs,
    pub ports: Arc<Ports>,
}

impl ServerConfig {
    /// Loading takes longer for bigger models: 30 s plus 1 s per 50 MB.
    fn start_timeout(&self) -> Duration {
        Duration::from_secs(30 + self.model_bytes / 50_000_000)
    }
}

/// 128 random bits from the OS's secure source, as hex.
fn random_prefix() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

enum Launch {
    Ready(ServerProcess),
    /// The server could not bind its port: another process has it.
    PortTaken(u16),
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

    /// The running server, if its process lives and nobody replaced its model.
    fn serving(&self) -> Option<Arc<ServerProcess>> {
        self.current()
            .filter(|p| p.exit_status().is_none() && p.reloads() == 0)
    }

    pub fn pid(&self) -> Option<u32> {
        self.current()
            .filter(|p| p.exit_status().is_none())
            .map(|p| p.pid)
    }

    /// Starts whisper-server and returns when its model is loaded, its
    /// listening socket is proven to be its own, and it answers its health
    /// check. A port another process took is given up for the next one, a
    /// bounded number of times.
    pub async fn start(&self, stop: &CancelToken) -> Result<(), WhisperError> {
        let mut taken = Vec::new();
        while taken.len() < PORT_ATTEMPTS {
            let Some(lease) = self.config.ports.lease(&taken) else {
                break;
            };
            match self.launch(lease, stop).await {
                Launch::Ready(p) => {
                    p.confirm();
                    *self.process.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(p));
                    return Ok(());
                }
                Launch::PortTaken(port) => taken.push(port),
                Launch::Failed(e) => return Err(e),
            }
        }
        Err(WhisperError::WhisperFailed {
            path: display_path(&self.config.program),
            detail: format!(
                "whisper-server found no port of its own on 127.0.0.1: other processes listened on {}",
                if taken.is_empty() {
                    "every free port".to_owned()
                } else {
                    taken.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
                }
            ),
        })
    }

    async fn launch(&self, lease: Lease, stop: &CancelToken) -> Launch {
        let c = &self.config;
        let prefix = format!("/{}", random_prefix());
        let port = lease.port;
        let mut cmd = crate::process::command(&c.program);
        cmd.arg("-m")
            .arg(&c.model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-t", &c.threads.to_string()])
            .args(["--request-path", &prefix])
            // verbose_json would otherwise run language detection (an extra
            // encoder pass) on every request just to report probabilities.
            .arg("-nlp")
            .args(c.extra.server_args())
            .stdout(Stdio::null());
        let child = match crate::process::spawn(&mut cmd) {
            Ok(child) => child,
            Err(e) => {
                return Launch::Failed(locate::not_found(
                    &locate::WHISPER_SERVER,
                    &c.program,
                    e.to_string(),
                ))
            }
        };
        let server = ServerProcess::adopt(child, lease, prefix);
        let deadline = Instant::now() + c.start_timeout();
        loop {
            if let Some(status) = server.exit_status() {
                return self.failed_start(&server, status);
            }
            match owner::listener(server.pid, port) {
                // Its own socket: only now does anything go to the port.
                Ok(Listener::Mine) => {
                    if self.healthy(&server).await {
                        return Launch::Ready(server);
                    }
                }
                // Still loading its model (Nobody), or another process took
                // the port (Other), in which case the server fails to bind
                // and exits. Nothing is sent to a port that is not its own.
                Ok(Listener::Nobody | Listener::Other) => {}
                // Its /proc entry went away: it is exiting; the next round sees it.
                Err(_) if server.exit_status().is_some() || !server.alive() => {}
                Err(e) => {
                    return Launch::Failed(WhisperError::WhisperFailed {
                        path: display_path(&c.program),
                        detail: format!("cannot tell which process listens on port {port}: {e}"),
                    })
                }
            }
            if Instant::now() > deadline {
                return Launch::Failed(WhisperError::WhisperFailed {
                    path: display_path(&c.program),
                    detail: format!(
                        "whisper-server did not become ready within {} s",
                        c.start_timeout().as_secs()
                    ),
                });
            }
            tokio::select! {
                _ = server.exited() => {}
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
                _ = stop.cancelled() => {
                    server.stop().await;
                    return Launch::Failed(WhisperError::shutdown());
                }
            }
        }
    }

    fn failed_start(&self, server: &ServerProcess, status: std::process::ExitStatus) -> Launch {
        let stderr = server.stderr_error().unwrap_or_default();
        if stderr.contains("couldn't bind") {
            return Launch::PortTaken(server.lease.port);
        }
        // A crash before the port opens happens while the model loads.
        let crashed = crate::process::killed_by(&status).is_some();
        let model = verdict::model_failure(&self.config.model, status.code(), &stderr, || {
            server.describe_exit(status)
        });
        match model {
            Some(e) => Launch::Failed(e),
            None if crashed => Launch::Failed(WhisperError::ModelLoad {
                path: display_path(&self.config.model),
                reason: server.describe_exit(status),
            }),
            None => Launch::Failed(WhisperError::WhisperFailed {
                path: display_path(&self.config.program),
                detail: server.describe_exit(status),
            }),
        }
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
        match self.serving() {
            Some(server) => self.healthy(&server).await,
            None => false,
        }
    }

    /// Resolves, with the reason, when the server process exits or another
    /// process makes it load a different model.
    pub async fn lost(&self) -> String {
        match self.current() {
            Some(server) => tokio::select! {
                status = server.exited() => server.describe_exit(status),
                _ = server.reloaded() => {
                    // Nothing it says can be trusted any more.
                    server.kill().await;
                    "another process made whisper-server load a different model (POST /load)".into()
                }
            },
            None => std::future::pending().await,
        }
    }

    pub async fn stop(&self) {
        if let Some(server) = self.current() {
            server.stop().await;
        }
    }

    /// After an abort, whisper-server may go on working (it notices a closed
    /// connection only once it decodes): a request that needs its lock
    /// answers at once only when it is idle. Otherwise it is stopped. (The
    /// form needs a field: an empty one is refused before the lock.)
    async fn settle_after_abort(&self, server: &ServerProcess) {
        let probe = self
            .client
            .post(server.url("/inference"))
            .multipart(reqwest::multipart::Form::new().text("response_format", "json"))
            .timeout(IDLE_AFTER_ABORT)
            .send()
            .await;
        if probe.is_err() {
            // SIGTERM would let it finish the work first.
            server.kill().await;
        }
    }

    pub async fn transcribe(
        &self,
        request: &Request,
        cancel: impl Future<Output = CancelReason>,
    ) -> Result<Transcript, Unfinished> {
        let path = request.audio.describe();
        let Some(server) = self.serving() else {
            return Err(Unfinished::NotStarted(
                "its whisper-server is not running".into(),
            ));
        };
        let started_before = server.requests_started();
        let exchange = async {
            let body = self.upload(request, &path).await?;
            let response = self
                .client
                .post(server.url("/inference"))
                .multipart(body)
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                // Nothing reached the server: another worker can take it.
                Err(e) if e.is_connect() => {
                    return Err(Unfinished::NotStarted(format!(
                        "its whisper-server refused the connection ({})",
                        e.without_url()
                    )))
                }
                Err(e) => return Err(self.broken(&server, &path, e, started_before).await),
            };
            let status = response.status();
            match response.bytes().await {
                Ok(body) => Ok((status, body)),
                Err(e) => Err(self.broken(&server, &path, e, started_before).await),
            }
        };
        // Dropping the exchange closes the connection, which makes whisper-server
        // abort the inference once it decodes.
        let (status, body) = tokio::select! {
            result = exchange => result?,
            reason = cancel => {
                if reason == CancelReason::Aborted {
                    self.settle_after_abort(&server).await;
                }
                return Err(Unfinished::Cancelled(reason));
            }
        };
        if server.reloads() > 0 {
            // The answer may come from another model: discard it, replace the server.
            server.kill().await;
            return Err(Unfinished::NotStarted(
                "another process made its whisper-server load a different model".into(),
            ));
        }
        let text = String::from_utf8_lossy(&body);
        match status.as_u16() {
            200 => transcript::from_server_json(&body, &request.language).ok_or_else(|| {
                WhisperError::WhisperFailed {
                    path,
                    detail: format!("whisper-server answered with something other than its JSON result: {:.120}", text),
                }
                .into()
            }),
            400 => Err(verdict::unreadable(
                &path,
                &format!("whisper cannot decode it as audio ({})", text.trim()),
            )
            .into()),
            code => Err(WhisperError::WhisperFailed {
                path,
                detail: format!("whisper-server answered HTTP {code}: {:.200}", text.trim()),
            }
            .into()),
        }
    }

    /// The request body: the file streamed from disk (opened without
    /// blocking, checked again) or the audio from memory, with the
    /// decoding settings.
    async fn upload(
        &self,
        request: &Request,
        path: &str,
    ) -> Result<reqwest::multipart::Form, Unfinished> {
        let part = match request.audio.path() {
            Some(file_path) => {
                let file_path = file_path.to_owned();
                let (file, meta) =
                    tokio::task::spawn_blocking(move || crate::audio::open(&file_path))
                        .await
                        .map_err(|e| WhisperError::WhisperFailed {
                            path: path.to_owned(),
                            detail: format!("opening the file failed: {e}"),
                        })??;
                let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
                reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::wrap_stream(stream),
                    meta.len(),
                )
            }
            None => {
                let bytes = request.audio.file_bytes().unwrap_or_default();
                reqwest::multipart::Part::bytes(bytes.to_vec())
            }
        }
        .file_name("audio");
        let mut form = reqwest::multipart::Form::new().part("file", part);
        let extra = self.config.extra.with_decoding(request.decoding.as_deref());
        for (name, value) in extra.server_form(&request.language) {
            form = form.text(name, value);
        }
        Ok(form)
    }

    /// A failed exchange: when the server died before it started on this
    /// request, nothing was done and another worker can take it; when it
    /// died working on it, a crash; else a plain failure. The error never
    /// holds the URL (it holds the secret prefix).
    async fn broken(
        &self,
        server: &ServerProcess,
        path: &str,
        error: reqwest::Error,
        started_before: u64,
    ) -> Unfinished {
        // The connection drops a moment before the exit is reaped.
        match tokio::time::timeout(Duration::from_millis(500), server.exited()).await {
            Ok(status) if server.requests_started() == started_before => {
                Unfinished::NotStarted(format!(
                    "its whisper-server died before it started on the request ({})",
                    server.describe_exit(status)
                ))
            }
            // One request at a time per server: this one was alone in it.
            Ok(status) => Unfinished::Lost(Loss {
                detail: server.describe_exit(status),
                cause: LossCause::Alone,
            }),
            Err(_) => WhisperError::WhisperFailed {
                path: path.to_owned(),
                detail: format!(
                    "the request to whisper-server failed: {}",
                    error.without_url()
                ),
            }
            .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_long_random_hex() {
        let (a, b) = (random_prefix(), random_prefix());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
