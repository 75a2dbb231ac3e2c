//! The engine's voice activity detector: one worker program in its VAD mode
//! (`--vad-model`), started when the first live session needs it and
//! shared by every session, each its own stream. A process that dies is
//! replaced at the next call; a stream then starts over (the detector's
//! state is a few hundred milliseconds of context, not the transcript).

use super::ProgramProcess;
use crate::cancel::{CancelReason, CancelToken};
use crate::error::{Result, WhisperError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How to find the worker program, off the runtime's threads.
pub type FindProgram = Box<dyn Fn() -> Result<PathBuf> + Send + Sync>;

pub struct VadService {
    find_program: FindProgram,
    model: PathBuf,
    process: tokio::sync::Mutex<Option<Arc<ProgramProcess>>>,
    stop: CancelToken,
    next_stream: AtomicU64,
}

impl VadService {
    pub fn new(find_program: FindProgram, model: PathBuf) -> Self {
        VadService {
            find_program,
            model,
            process: tokio::sync::Mutex::new(None),
            stop: CancelToken::default(),
            next_stream: AtomicU64::new(1),
        }
    }

    /// A new stream's id.
    pub fn open_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// The running process, started if there is none (or it died).
    pub async fn ready(self: &Arc<Self>) -> Result<Arc<ProgramProcess>> {
        let mut slot = self.process.lock().await;
        if let Some(p) = slot.as_ref().filter(|p| p.is_alive()) {
            return Ok(p.clone());
        }
        if self.stop.is_cancelled() {
            return Err(WhisperError::shutdown());
        }
        let me = self.clone();
        let program = tokio::task::spawn_blocking(move || (me.find_program)())
            .await
            .unwrap_or_else(|e| {
                Err(WhisperError::NoWorker {
                    detail: format!("looking for the worker program panicked: {e}"),
                })
            })?;
        let process = ProgramProcess::start_vad(&program, &self.model, &self.stop).await?;
        *slot = Some(process.clone());
        Ok(process)
    }

    /// The speech probability of each window of `samples` (whole windows)
    /// on stream `stream`. A process that dies under the call is replaced
    /// and the call made once more.
    pub async fn probs(self: &Arc<Self>, stream: u64, samples: &[f32]) -> Result<Vec<f32>> {
        let mut last = String::new();
        for _ in 0..2 {
            let process = self.ready().await?;
            match process.vad_probs(stream, samples).await {
                Ok(probs) => return Ok(probs),
                Err(reason) => {
                    if self.stop.is_cancelled() {
                        return Err(WhisperError::shutdown());
                    }
                    process.kill().await;
                    last = reason;
                }
            }
        }
        Err(WhisperError::WhisperFailed {
            path: crate::error::display_path(&self.model),
            detail: format!("the voice activity detector failed twice: {last}"),
        })
    }

    /// Lets stream `stream` go.
    pub async fn close_stream(&self, stream: u64) {
        let process = self.process.lock().await.clone();
        if let Some(p) = process.filter(|p| p.is_alive()) {
            p.vad_close(stream).await;
        }
    }

    /// Ends the process (the engine shuts down); later calls fail with ERR_SHUTDOWN.
    pub async fn shut_down(&self) {
        self.stop.cancel(CancelReason::Shutdown);
        let process = self.process.lock().await.take();
        if let Some(p) = process {
            p.shut_down().await;
        }
    }
}
