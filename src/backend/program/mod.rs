//! The worker backend: the project's own program, persistent-whisper-worker,
//! loads the model once and runs several decodes at once, each on a fresh
//! whisper state. The pool's workers are decode slots; `processes` spreads
//! the slots over that many worker processes (for isolation: a crash fails
//! only the requests in flight in its process). Requests go over the
//! process's stdin, so there is no port and no secret for another local
//! user to find, and the process exits when its stdin closes. The same
//! program, started with a Silero model, is the engine's voice activity
//! detector (vad.rs).

mod gpu;
mod process;

pub use gpu::FailOver;
mod vad;

pub use vad::{FindProgram, VadService};

use super::request::{Request, Unfinished};
use super::verdict;
use crate::audio::{Limits, Source};
use crate::cancel::{CancelReason, CancelToken};
use crate::decoding::ExtraArgs;
use crate::error::{display_path, WhisperError};
use persistent_whisper_protocol::{Audio, Failure, Params};
use process::{Ended, ProgramProcess};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug)]
pub struct ProgramConfig {
    pub program: PathBuf,
    pub model: PathBuf,
    pub model_bytes: u64,
    /// `extraArgs`: the decoding settings go with each request, the worker
    /// program's own flags (`--no-gpu` ...) on its command line.
    pub extra: ExtraArgs,
    /// What one request's audio may cost.
    pub limits: Limits,
    pub processes: usize,
    /// Decodes one process may run at once.
    pub slots_per_process: usize,
    /// On a GPU: where to go when it fails (gpu.rs).
    pub fail_over: Option<Arc<FailOver>>,
}

impl ProgramConfig {
    /// Loading takes longer for bigger models: 30 s plus 1 s per 50 MB.
    fn start_timeout(&self) -> Duration {
        Duration::from_secs(30 + self.model_bytes / 50_000_000)
    }

    fn params(&self, request: &Request) -> Params {
        Params {
            language: request.language.clone(),
            // The budget's latest word: it may have changed since dispatch.
            threads: request
                .live_threads
                .as_ref()
                .map_or(request.threads, |t| *t.borrow())
                .max(1) as u32,
            decoding: request
                .decoding
                .as_deref()
                .unwrap_or(&self.extra.decoding)
                .clone(),
            max_samples: self.limits.max_samples(),
            progress: request.observer.is_some(),
        }
    }
}

/// One worker process and the slots it serves.
#[derive(Default)]
struct Seat {
    slots: usize,
    process: Option<Arc<ProgramProcess>>,
}

/// The worker processes of one generation of the pool (restart() starts
/// a new one, so its slots load the model afresh).
pub struct Processes {
    /// Tells generations apart (a process's key is this and its index).
    id: u64,
    config: Arc<ProgramConfig>,
    seats: Vec<tokio::sync::Mutex<Seat>>,
    /// Slots per process, for choosing the least-loaded one without waiting
    /// for a start under way.
    load: Mutex<Vec<usize>>,
}

impl Processes {
    pub fn new(config: Arc<ProgramConfig>) -> Arc<Self> {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = config.processes.max(1);
        Arc::new(Processes {
            id: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            seats: (0..n).map(|_| Default::default()).collect(),
            load: Mutex::new(vec![0; n]),
            config,
        })
    }

    fn load(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.load.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot in the process that serves the fewest, started if it is not running.
    async fn take_slot(
        &self,
        stop: &CancelToken,
    ) -> Result<(usize, Arc<ProgramProcess>), WhisperError> {
        let index = {
            let mut load = self.load();
            let index = (0..load.len()).min_by_key(|&i| load[i]).unwrap_or(0);
            load[index] += 1;
            index
        };
        let mut seat = self.seats[index].lock().await;
        seat.slots += 1;
        if let Some(p) = seat.process.as_ref().filter(|p| p.is_alive()) {
            return Ok((index, p.clone()));
        }
        // Its process died: the slots that were on it are being replaced too.
        match self.start_process(stop).await {
            Ok(p) => {
                seat.process = Some(p.clone());
                Ok((index, p))
            }
            Err(e) => {
                seat.slots -= 1;
                self.load()[index] -= 1;
                Err(e)
            }
        }
    }

    /// A slot whose process died no longer weighs on its choice: its
    /// replacement must not join a living process while the process it
    /// replaces has none.
    fn unload(&self, index: usize) {
        let mut load = self.load();
        load[index] = load[index].saturating_sub(1);
    }

    /// Gives a slot back (`loaded`: not yet unloaded); the last slot of a
    /// process ends it.
    async fn release(&self, index: usize, loaded: bool) {
        let mut seat = self.seats[index].lock().await;
        seat.slots = seat.slots.saturating_sub(1);
        if loaded {
            self.unload(index);
        }
        if seat.slots == 0 {
            if let Some(p) = seat.process.take() {
                p.shut_down().await;
            }
        }
    }
}

/// Where a slot sits.
struct Place {
    index: usize,
    process: Arc<ProgramProcess>,
    /// Still counted in its process's load.
    loaded: bool,
}

/// One decode slot: a share of one worker process.
pub struct ProgramSlot {
    processes: Arc<Processes>,
    place: Mutex<Option<Place>>,
}

impl ProgramSlot {
    pub fn new(processes: Arc<Processes>) -> Self {
        ProgramSlot {
            processes,
            place: Mutex::new(None),
        }
    }

    fn place(&self) -> std::sync::MutexGuard<'_, Option<Place>> {
        self.place.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn process(&self) -> Option<Arc<ProgramProcess>> {
        self.place().as_ref().map(|p| p.process.clone())
    }

    /// Once its process is gone, the slot stops counting in its load.
    fn unload_if_gone(&self) {
        let mut place = self.place();
        if let Some(p) = place.as_mut().filter(|p| p.loaded && !p.process.is_alive()) {
            p.loaded = false;
            self.processes.unload(p.index);
        }
    }

    pub async fn start(&self, stop: &CancelToken) -> Result<(), WhisperError> {
        let (index, process) = self.processes.take_slot(stop).await?;
        *self.place() = Some(Place {
            index,
            process,
            loaded: true,
        });
        Ok(())
    }

    pub async fn stop(&self) {
        let place = self.place().take();
        if let Some(p) = place {
            self.processes.release(p.index, p.loaded).await;
        }
    }

    /// The process it shares with the other slots of its seat.
    pub fn process_key(&self) -> Option<u64> {
        let index = self.place().as_ref()?.index as u64;
        Some(self.processes.id << 16 | index)
    }

    /// What its process's build of whisper.cpp has (patches/whisper.cpp).
    pub fn whisper_features(&self) -> Option<Vec<String>> {
        self.process().map(|p| p.features.clone())
    }

    /// The slot's process (status shows it as the worker's pid).
    pub fn pid(&self) -> Option<u32> {
        self.process().filter(|p| p.is_alive()).map(|p| p.pid)
    }

    pub async fn lost(&self) -> String {
        let reason = match self.process() {
            Some(p) => p.gone().await,
            None => std::future::pending().await,
        };
        self.unload_if_gone();
        reason
    }

    pub fn is_healthy(&self) -> bool {
        self.process().is_some_and(|p| p.is_alive())
    }

    pub async fn transcribe(
        &self,
        request: &Request,
        cancel: impl Future<Output = CancelReason>,
    ) -> Result<crate::transcript::Transcript, Unfinished> {
        let path = request.audio.describe();
        let Some(process) = self.process().filter(|p| p.is_alive()) else {
            return Err(Unfinished::NotStarted(
                "its worker process is not running".into(),
            ));
        };
        // A file is read by the worker program (bounded, abortable), never
        // by this process: no copy of it here, nothing sent through the pipe.
        let (audio, payload): (Audio, Arc<[u8]>) = match &request.audio.source {
            Source::File(p) => (
                Audio::Path {
                    path: p.to_string_lossy().into_owned(),
                    max_bytes: self.processes.config.limits.max_file_bytes,
                },
                Arc::from(&[][..]),
            ),
            Source::Bytes(b) => (Audio::File, b.clone()),
            Source::Samples(s) => (
                Audio::Samples,
                s.iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>()
                    .into(),
            ),
        };
        let params = self.processes.config.params(request);
        let outcome = process
            .transcribe(
                audio,
                payload,
                params,
                request.observer.clone(),
                request.live_threads.clone(),
                cancel,
            )
            .await;
        self.unload_if_gone();
        match outcome {
            Ok(Ok(transcript)) => Ok(transcript),
            Ok(Err((failure, message))) => Err(self.failure(&path, failure, message).into()),
            Err(Ended::NotStarted(why)) => Err(Unfinished::NotStarted(why)),
            Err(Ended::Lost(detail, cause)) => {
                Err(Unfinished::Lost(self.loss(&process, detail, cause)))
            }
            Err(Ended::Cancelled(reason)) => Err(Unfinished::Cancelled(reason)),
        }
    }

    fn failure(&self, path: &str, failure: Failure, message: String) -> WhisperError {
        match failure {
            Failure::AudioUnreadable => verdict::unreadable(path, &message),
            Failure::AudioLimit => WhisperError::AudioUnreadable {
                path: path.to_owned(),
                reason: format!(
                    "{message}; raise the limit if this audio is what you meant to send"
                ),
            },
            Failure::AudioNotFound => WhisperError::AudioNotFound {
                path: path.to_owned(),
            },
            Failure::ModelLoad => WhisperError::ModelLoad {
                path: display_path(&self.processes.config.model),
                reason: message,
            },
            Failure::Aborted | Failure::Whisper | Failure::Protocol => {
                WhisperError::WhisperFailed {
                    path: path.to_owned(),
                    detail: message,
                }
            }
        }
    }
}
