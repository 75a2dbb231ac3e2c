//! One persistent-whisper-worker process: started with its model, spoken to
//! in frames over its stdin and stdout (persistent-whisper-protocol), its
//! replies routed to the requests they answer, its stderr's tail kept to
//! explain a failure, its exit watched. Closing its stdin is how it is asked
//! to exit; a process that does not is killed.

use super::super::request::LossCause;
use super::ProgramConfig;
use crate::cancel::{CancelReason, CancelToken};
use crate::error::{display_path, WhisperError};
use crate::locate;
use crate::observe::Observer;
use crate::process::{self, Kill, TERMINATE_GRACE};
use crate::transcript::{Segment, Transcript};
use persistent_whisper_protocol::{self as proto, Audio, Failure, Params, Reply, Request};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{oneshot, watch};

/// After a cancel, whisper's abort callback stops the decode within
/// milliseconds; a process that has not answered by then is hung.
const CANCEL_DEADLINE: Duration = Duration::from_secs(2);
/// stderr lines kept to explain a failure.
const STDERR_LINES: usize = 40;
/// Replies carry no payload; a frame that claims one is garbage.
const MAX_REPLY_PAYLOAD: usize = 0;

/// How a request ended, as the process said (or did not).
enum Answer {
    Done(Transcript),
    /// A VAD stream's probabilities.
    Probs(Vec<f32>),
    Failed(Failure, String),
    /// The process died, or spoke garbage, before it answered.
    Lost(String, LossCause),
}

struct Pending {
    answer: oneshot::Sender<Answer>,
    observer: Option<Arc<Observer>>,
    /// Its segments so far, as the process decoded them.
    segments: Vec<proto::Segment>,
}

type PendingMap = Arc<Mutex<HashMap<u64, Pending>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct ProgramProcess {
    pub pid: u32,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    pending: PendingMap,
    next_id: AtomicU64,
    /// Why it is gone, once it is: set when its exit is reaped or its
    /// output stops making sense.
    lost: watch::Receiver<Option<String>>,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The engine killed it for one request's sake (a cancel it did not
    /// answer): the others in it did nothing wrong.
    killed_by_engine: Arc<AtomicBool>,
    /// The changes to whisper.cpp its build has (patches/whisper.cpp).
    pub features: Vec<String>,
    /// Where it decodes, and how many decodes it runs there at once, as it
    /// said before it was ready (None: a build that does not say).
    pub placement: Option<(proto::device::Device, u32)>,
}

/// What a start may end in, besides a process.
fn start_failure(program: &Path, detail: String) -> WhisperError {
    WhisperError::WhisperFailed {
        path: display_path(program),
        detail,
    }
}

impl ProgramProcess {
    /// Starts the worker program and returns once it has loaded the model.
    /// `stop` ends a start under way, and its process, at once.
    pub async fn start(
        config: &ProgramConfig,
        stop: &CancelToken,
    ) -> Result<Arc<ProgramProcess>, WhisperError> {
        let mut cmd = process::command_ending_with_stdin(&config.program);
        cmd.arg("--model")
            .arg(&config.model)
            .args(["--slots", &config.slots_per_process.to_string()])
            .args(&config.extra.worker_flags);
        Self::launch(
            cmd,
            &config.program,
            &config.model,
            config.start_timeout(),
            stop,
        )
        .await
    }

    /// Starts the worker program in its voice-activity-detection mode, with
    /// the Silero model `model`.
    pub async fn start_vad(
        program: &Path,
        model: &Path,
        stop: &CancelToken,
    ) -> Result<Arc<ProgramProcess>, WhisperError> {
        let mut cmd = process::command_ending_with_stdin(program);
        cmd.arg("--vad-model").arg(model);
        Self::launch(cmd, program, model, Duration::from_secs(30), stop).await
    }

    /// Spawns `cmd` and returns once the program says it is ready.
    async fn launch(
        mut cmd: tokio::process::Command,
        program: &Path,
        model: &Path,
        timeout: Duration,
        stop: &CancelToken,
    ) -> Result<Arc<ProgramProcess>, WhisperError> {
        let mut child = process::spawn(&mut cmd)
            .map_err(|e| locate::not_found(&locate::WHISPER_WORKER, program, e.to_string()))?;
        let pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stderr = keep_stderr(&mut child);
        let (exit_tx, exit) = watch::channel(None);
        let reaped = exit.clone();
        tokio::spawn(async move {
            let status = process::wait(&mut child).await.ok();
            let _ = exit_tx.send(Some(status.unwrap_or_default()));
        });
        let explain = |status: Option<ExitStatus>| describe(status, &stderr);
        let mut placement = None;
        let first = tokio::select! {
            first = read_ready(&mut stdout, &mut placement, timeout) => first,
            _ = stop.cancelled() => {
                kill_and_reap(pid, &reaped).await;
                return Err(WhisperError::shutdown());
            }
        };
        let features = match first {
            Ok(Ok(Some(Reply::Ready {
                protocol, features, ..
            }))) if protocol == proto::PROTOCOL => features,
            Ok(Ok(Some(Reply::Ready { protocol, .. }))) => {
                kill_and_reap(pid, &reaped).await;
                return Err(start_failure(
                    program,
                    format!(
                        "it speaks protocol version {protocol}, and this engine version {}: use the worker program shipped with this version of persistent-whisper",
                        proto::PROTOCOL
                    ),
                ));
            }
            Ok(Ok(Some(Reply::Fatal {
                failure: Failure::ModelLoad,
                message,
            }))) => {
                kill_and_reap(pid, &reaped).await;
                return Err(WhisperError::ModelLoad {
                    path: display_path(model),
                    reason: message,
                });
            }
            Ok(Ok(None)) => {
                let status = wait_reaped(&reaped).await;
                // Killed while loading: the model is what it was reading.
                if status.as_ref().and_then(process::killed_by).is_some() {
                    return Err(WhisperError::ModelLoad {
                        path: display_path(model),
                        reason: explain(status),
                    });
                }
                return Err(start_failure(program, explain(status)));
            }
            Ok(Ok(Some(other))) => {
                kill_and_reap(pid, &reaped).await;
                return Err(start_failure(
                    program,
                    format!("it answered {other:?} instead of saying it was ready"),
                ));
            }
            Ok(Err(e)) => {
                kill_and_reap(pid, &reaped).await;
                return Err(start_failure(
                    program,
                    format!("it printed something other than its protocol: {e}"),
                ));
            }
            Err(_) => {
                kill_and_reap(pid, &reaped).await;
                return Err(start_failure(
                    program,
                    match &placement {
                        Some((device, _)) if device.is_gpu() => format!(
                            "it did not warm up on {} within {} s",
                            device.name,
                            GPU_WARM_UP.as_secs()
                        ),
                        _ => format!("it did not load the model within {} s", timeout.as_secs()),
                    },
                ));
            }
        };
        let pending: PendingMap = Arc::default();
        let killed_by_engine = Arc::new(AtomicBool::new(false));
        let (lost_tx, lost) = watch::channel(None);
        let lost_tx = Arc::new(lost_tx);
        tokio::spawn(route_replies(
            stdout,
            pending.clone(),
            lost_tx.clone(),
            pid,
            reaped.clone(),
            stderr.clone(),
            killed_by_engine.clone(),
        ));
        Ok(Arc::new(ProgramProcess {
            pid,
            stdin: tokio::sync::Mutex::new(stdin),
            pending,
            next_id: AtomicU64::new(1),
            lost,
            exit,
            stderr,
            killed_by_engine,
            features,
            placement,
        }))
    }

    pub fn is_alive(&self) -> bool {
        self.lost.borrow().is_none() && self.exit.borrow().is_none()
    }

    /// Resolves with the reason once the process is gone or useless.
    pub async fn gone(&self) -> String {
        let mut lost = self.lost.clone();
        let mut exit = self.exit.clone();
        tokio::select! {
            reason = lost.wait_for(Option::is_some) => {
                reason.map(|r| r.clone().unwrap_or_default()).unwrap_or_default()
            }
            status = exit.wait_for(Option::is_some) => {
                let status = status.map(|s| *s).unwrap_or_default();
                describe(status, &self.stderr)
            }
        }
    }

    /// Runs one request. A crash fails only the requests this process had
    /// started; a request that never reached it can go to another worker.
    pub async fn transcribe(
        &self,
        audio: Audio,
        payload: Arc<[u8]>,
        params: Params,
        observer: Option<Arc<Observer>>,
        mut live_threads: Option<watch::Receiver<usize>>,
        cancel: impl std::future::Future<Output = CancelReason>,
    ) -> Result<Result<Transcript, (Failure, String)>, Ended> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(
            id,
            Pending {
                answer: tx,
                observer,
                segments: Vec::new(),
            },
        );
        let language = params.language.clone();
        let frame = proto::encode(
            &Request::Transcribe {
                id,
                audio,
                params: Box::new(params),
            },
            &payload,
        );
        drop(payload);
        if let Err(e) = self.send(&frame).await {
            lock(&self.pending).remove(&id);
            return Err(Ended::NotStarted(e));
        }
        drop(frame);
        tokio::pin!(rx, cancel);
        let answer = loop {
            tokio::select! {
                answer = &mut rx => break answer,
                reason = &mut cancel => {
                    self.cancel(id).await;
                    return Err(Ended::Cancelled(reason));
                }
                threads = next_value(&mut live_threads) => {
                    let threads = u32::try_from(threads).unwrap_or(u32::MAX);
                    // A process that stopped reading fails the request anyway.
                    let _ = self.send(&proto::encode(&Request::Threads { id, threads }, &[])).await;
                }
            }
        };
        match answer {
            Ok(Answer::Done(mut t)) => {
                if t.language.is_empty() {
                    t.language = language;
                }
                Ok(Ok(t))
            }
            Ok(Answer::Failed(failure, message)) => Ok(Err((failure, message))),
            Ok(Answer::Lost(reason, cause)) => Err(Ended::Lost(reason, cause)),
            Ok(Answer::Probs(_)) => Ok(Err((
                Failure::Protocol,
                "the worker process answered a transcription with VAD probabilities".into(),
            ))),
            Err(_) => Err(Ended::Lost(self.gone().await, LossCause::Shared)),
        }
    }

    /// The speech probability of each window of `samples` (whole
    /// VAD_WINDOWs), continuing VAD stream `stream` (a process started with
    /// start_vad()). One request per stream at a time.
    pub async fn vad_probs(&self, stream: u64, samples: &[f32]) -> Result<Vec<f32>, String> {
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            answer: tx,
            observer: None,
            segments: Vec::new(),
        };
        if lock(&self.pending).insert(stream, pending).is_some() {
            return Err("a VAD stream has one request at a time".into());
        }
        let payload: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        if let Err(e) = self
            .send(&proto::encode(&Request::VadAudio { id: stream }, &payload))
            .await
        {
            lock(&self.pending).remove(&stream);
            return Err(e);
        }
        match rx.await {
            Ok(Answer::Probs(probs)) => Ok(probs),
            Ok(Answer::Failed(_, message)) => Err(message),
            Ok(Answer::Lost(reason, _)) => Err(reason),
            Ok(Answer::Done(_)) => Err("the VAD process answered a transcription".into()),
            Err(_) => Err(self.gone().await),
        }
    }

    /// Lets VAD stream `stream` go.
    pub async fn vad_close(&self, stream: u64) {
        let _ = self
            .send(&proto::encode(&Request::VadClose { id: stream }, &[]))
            .await;
    }

    /// Whole frames, one writer at a time.
    async fn send(&self, frame: &[u8]) -> Result<(), String> {
        if !self.is_alive() {
            return Err("its worker process is not running".into());
        }
        let mut stdin = self.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            return Err("its worker process is shutting down".into());
        };
        match pipe.write_all(frame).await {
            Ok(()) => pipe.flush().await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("its worker process stopped reading ({e})")),
        }
    }

    /// Asks the process to stop request `id` (whisper's abort callback);
    /// one that does not answer in time is hung, and killed.
    async fn cancel(&self, id: u64) {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            match pending.get_mut(&id) {
                // Answered while the cancel came in: nothing runs.
                None => return,
                Some(p) => {
                    p.answer = tx;
                    p.observer = None;
                }
            }
        }
        let frame = proto::encode(&Request::Cancel { id }, &[]);
        if self.send(&frame).await.is_ok()
            && tokio::time::timeout(CANCEL_DEADLINE, rx).await.is_ok()
        {
            return;
        }
        lock(&self.pending).remove(&id);
        self.killed_by_engine.store(true, Ordering::SeqCst);
        self.kill().await;
    }

    /// SIGKILL to its group; returns once it is reaped.
    pub async fn kill(&self) {
        kill_and_reap(self.pid, &self.exit).await;
    }

    /// Closes its stdin, which makes it stop and exit; kills it if it has
    /// not within the grace period. Returns once it is reaped.
    pub async fn shut_down(&self) {
        self.stdin.lock().await.take();
        let mut exit = self.exit.clone();
        if tokio::time::timeout(TERMINATE_GRACE, exit.wait_for(Option::is_some))
            .await
            .is_err()
        {
            self.kill().await;
        } else {
            // Anything it started goes with it.
            process::kill_group(self.pid, Kill::Now);
        }
    }
}

/// How a request ended without the process's verdict.
pub enum Ended {
    /// It never reached the process.
    NotStarted(String),
    /// The process died or spoke garbage with it in flight.
    Lost(String, LossCause),
    /// The caller's cancel (a process that did not stop in time was killed).
    Cancelled(CancelReason),
}

/// The next value a watch channel gets; never, without one or once its
/// sender is gone.
async fn next_value(rx: &mut Option<watch::Receiver<usize>>) -> usize {
    if let Some(r) = rx {
        if r.changed().await.is_ok() {
            return *r.borrow_and_update();
        }
    }
    std::future::pending().await
}

async fn wait_reaped(exit: &watch::Receiver<Option<ExitStatus>>) -> Option<ExitStatus> {
    let mut exit = exit.clone();
    let status = exit.wait_for(Option::is_some).await.ok()?;
    *status
}

async fn kill_and_reap(pid: u32, exit: &watch::Receiver<Option<ExitStatus>>) {
    if exit.borrow().is_none() {
        process::kill_group(pid, Kill::Now);
    }
    wait_reaped(exit).await;
}

/// Drains stderr (a full pipe would block the worker), keeping its tail.
fn keep_stderr(child: &mut Child) -> Arc<Mutex<VecDeque<String>>> {
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(pipe) = child.stderr.take() {
        let lines = kept.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut reader = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut kept = lock(&lines);
                if kept.len() == STDERR_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
    }
    kept
}

/// How a worker process ended, with the stderr line that explains it.
fn describe(status: Option<ExitStatus>, stderr: &Mutex<VecDeque<String>>) -> String {
    let line = lock(stderr)
        .iter()
        .rev()
        .find(|l| {
            ["error", "GGML_ASSERT", "persistent-whisper-worker:"]
                .iter()
                .any(|m| l.contains(m))
        })
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    match status {
        Some(s) => match process::killed_by(&s) {
            Some(signal) => format!("the worker process was killed by {signal}{line}"),
            None => format!(
                "the worker process exited with code {}{line}",
                s.code().unwrap_or(-1)
            ),
        },
        None => format!("the worker process ended{line}"),
    }
}

/// One frame from the worker; None at the end of its output.
async fn read_reply(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Reply>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut json = vec![0u8; proto::message_len(len)?];
    r.read_exact(&mut json).await?;
    let mut plen = [0u8; 8];
    r.read_exact(&mut plen).await?;
    if proto::payload_len(plen)? > MAX_REPLY_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a reply with a payload",
        ));
    }
    proto::parse(&json).map(Some)
}

/// How long a worker on a GPU may warm up once its model is loaded: its
/// first decode compiles the shaders the driver has not cached yet (seconds
/// on a GPU's driver; about 15 minutes with Mesa's software renderer on 2
/// busy cores, the first time).
const GPU_WARM_UP: Duration = Duration::from_secs(30 * 60);

/// The first reply other than `Device`, which a worker sends before
/// `Ready` to say where it decodes: kept in `placement`. The model must load
/// within `timeout`; a worker on a GPU then warms up, within GPU_WARM_UP.
async fn read_ready(
    r: &mut (impl AsyncRead + Unpin),
    placement: &mut Option<(proto::device::Device, u32)>,
    timeout: Duration,
) -> Result<std::io::Result<Option<Reply>>, tokio::time::error::Elapsed> {
    let mut deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, read_reply(r)).await? {
            Ok(Some(Reply::Device { device, decodes })) => {
                if device.is_gpu() {
                    deadline = tokio::time::Instant::now() + GPU_WARM_UP;
                }
                *placement = Some((device, decodes));
            }
            other => return Ok(other),
        }
    }
}

fn segment_of(s: proto::Segment) -> Segment {
    Segment {
        start_ms: s.start_ms.max(0) as u64,
        end_ms: s.end_ms.max(0) as u64,
        text: s.text.trim().to_owned(),
        raw: s.text,
    }
}

/// Hands each reply to the request it answers, until the output ends. Then,
/// or on garbage (the process is killed: nothing it says can be trusted),
/// every request still in flight is answered `Lost`.
async fn route_replies(
    mut stdout: BufReader<tokio::process::ChildStdout>,
    pending: PendingMap,
    lost: Arc<watch::Sender<Option<String>>>,
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    killed_by_engine: Arc<AtomicBool>,
) {
    let reason = loop {
        let reply = match read_reply(&mut stdout).await {
            Ok(Some(reply)) => reply,
            Ok(None) => break describe(wait_reaped(&exit).await, &stderr),
            Err(e) => {
                kill_and_reap(pid, &exit).await;
                break format!("the worker process printed something other than its protocol ({e}), so it was killed");
            }
        };
        let mut map = lock(&pending);
        match reply {
            Reply::Progress { id, percent } => {
                if let Some(o) = map.get(&id).and_then(|p| p.observer.clone()) {
                    o.progress(percent);
                }
            }
            Reply::Segment { id, segment } => {
                if let Some(p) = map.get_mut(&id) {
                    if let Some(o) = &p.observer {
                        o.segment(p.segments.len(), segment_of(segment.clone()));
                    }
                    p.segments.push(segment);
                }
            }
            Reply::Done { id, language } => {
                if let Some(p) = map.remove(&id) {
                    let parts = p
                        .segments
                        .into_iter()
                        .map(|s| (s.start_ms.max(0) as u64, s.end_ms.max(0) as u64, s.text));
                    let _ = p
                        .answer
                        .send(Answer::Done(Transcript::assemble(parts, language)));
                }
            }
            Reply::Failed {
                id,
                failure,
                message,
            } => {
                if let Some(p) = map.remove(&id) {
                    let _ = p.answer.send(Answer::Failed(failure, message));
                }
            }
            Reply::VadProbs { id, probs } => {
                if let Some(p) = map.remove(&id) {
                    let _ = p.answer.send(Answer::Probs(probs));
                }
            }
            Reply::Ready { .. } | Reply::Fatal { .. } | Reply::Device { .. } => {}
        }
    };
    let _ = lost.send(Some(reason.clone()));
    let mut pending = lock(&pending);
    let cause = if killed_by_engine.load(Ordering::SeqCst) {
        LossCause::Engine
    } else if pending.len() == 1 {
        LossCause::Alone
    } else {
        LossCause::Shared
    };
    for (_, p) in pending.drain() {
        let _ = p.answer.send(Answer::Lost(reason.clone(), cause));
    }
}
