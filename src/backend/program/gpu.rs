//! The worker backend on a GPU: where its processes decode, and a GPU that
//! fails mid-run. A driver reset, a lost device or video memory
//! running out ends ggml with an abort, so the worker process dies, or its
//! replacement cannot load the model on the GPU. Either way the worker
//! backend fails over to the CPU build, once: the requests that were in
//! flight run again there (no fault of theirs, so not alone, as after a
//! crash), and every process started from then on is a CPU one.

use super::process::ProgramProcess;
use super::{Processes, ProgramConfig, ProgramSlot};
use crate::backend::request::{Loss, LossCause};
use crate::cancel::CancelToken;
use crate::error::WhisperError;
use persistent_whisper_protocol::device::Device;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where a GPU worker backend goes when its GPU fails.
pub struct FailOver {
    /// How CPU processes start: the CPU build, told to leave GPUs alone.
    cpu: Arc<ProgramConfig>,
    happened: AtomicBool,
    /// Says so (a warning and a `deviceFallback` event), with the reason.
    announce: Box<dyn Fn(String) + Send + Sync>,
}

impl std::fmt::Debug for FailOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailOver")
            .field("cpu", &self.cpu.program)
            .field("happened", &self.happened())
            .finish()
    }
}

impl FailOver {
    pub fn new(cpu: ProgramConfig, announce: impl Fn(String) + Send + Sync + 'static) -> Self {
        FailOver {
            cpu: Arc::new(cpu),
            happened: AtomicBool::new(false),
            announce: Box::new(announce),
        }
    }

    pub fn happened(&self) -> bool {
        self.happened.load(Ordering::SeqCst)
    }

    /// From now on, CPU processes; announced the first time only.
    fn trigger(&self, why: String) {
        if !self.happened.swap(true, Ordering::SeqCst) {
            (self.announce)(why);
        }
    }
}

impl Processes {
    /// A new worker process: on the GPU until it has failed, then on the
    /// CPU. A GPU process that cannot start (the device is gone, its memory
    /// full) makes the fail-over happen, and a CPU one starts instead.
    pub(super) async fn start_process(
        &self,
        stop: &CancelToken,
    ) -> Result<Arc<ProgramProcess>, WhisperError> {
        let Some(fail_over) = &self.config.fail_over else {
            return ProgramProcess::start(&self.config, stop).await;
        };
        if fail_over.happened() {
            return ProgramProcess::start(&fail_over.cpu, stop).await;
        }
        match ProgramProcess::start(&self.config, stop).await {
            Ok(process) => Ok(process),
            Err(e) if stop.is_cancelled() || e.code() == "ERR_SHUTDOWN" => Err(e),
            Err(e) => {
                fail_over.trigger(format!("a GPU worker process did not start: {e}"));
                ProgramProcess::start(&fail_over.cpu, stop).await
            }
        }
    }
}

impl ProgramSlot {
    /// Where its process decodes, and how many decodes run there at once.
    pub fn placement(&self) -> Option<(Device, u32)> {
        self.process().and_then(|p| p.placement.clone())
    }

    /// A process that died under a request: on a GPU (and not killed by the
    /// engine), the device's failure, not the request's; the backend fails
    /// over to the CPU.
    pub(super) fn loss(&self, process: &ProgramProcess, detail: String, cause: LossCause) -> Loss {
        let on_gpu = process.placement.as_ref().is_some_and(|(d, _)| d.is_gpu());
        match &self.processes.config.fail_over {
            Some(fail_over) if on_gpu && cause != LossCause::Engine => {
                let detail = format!("the GPU failed ({detail})");
                fail_over.trigger(format!(
                    "{detail}: the requests in flight run again on the CPU"
                ));
                Loss {
                    detail,
                    cause: LossCause::Device,
                }
            }
            _ => Loss { detail, cause },
        }
    }
}
