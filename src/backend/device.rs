//! Which device whisper decodes on, from the `gpu` option and the program
//! the backend found: a GPU build of the same package when one works here
//! (its worker program lists the GPUs it can use), else the CPU build, with a
//! warning and a `deviceFallback` event, never an error. With `gpu: false`
//! no GPU build is started at all.

use crate::locate::{self, device as gpus, FoundBy, Located, Program};
use crate::options::{EngineOptions, Gpu};
use persistent_whisper_protocol::device::Device;
use std::path::{Path, PathBuf};

const WORKER_FILE: &str = if cfg!(windows) {
    "persistent-whisper-worker.exe"
} else {
    "persistent-whisper-worker"
};

/// How the programs are told which device to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuFlag {
    /// The program's own default.
    Default,
    /// The CPU (whisper's -ng, the worker's --no-gpu).
    Off,
    /// This GPU, counted as whisper counts them (-dev, --gpu-device).
    Index(u32),
}

/// The device chosen for a backend.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The program to run: the GPU build's where one was chosen.
    pub program: Located,
    pub flag: GpuFlag,
    /// The device, as far as the engine can tell before a process runs
    /// (None: a program you named, on its own default device).
    pub device: Option<Device>,
    /// On a GPU: the CPU build's program (the same one, for a build whose
    /// CPU variant drives the GPU), for the worker backend to fail over to.
    pub cpu_program: Option<PathBuf>,
    /// Why no GPU is used although the `gpu` option allowed one and a GPU
    /// build exists: the `deviceFallback` event's message.
    pub fallback: Option<String>,
}

impl Choice {
    pub fn on_gpu(&self) -> bool {
        self.device.as_ref().is_some_and(Device::is_gpu)
    }

    /// whisper-cli's and whisper-server's flags for it.
    pub fn whisper_flags(&self) -> Vec<String> {
        match self.flag {
            GpuFlag::Default => vec![],
            GpuFlag::Off => vec!["-ng".into()],
            GpuFlag::Index(i) => vec!["-dev".into(), i.to_string()],
        }
    }

    /// The worker program's flags for it.
    pub fn worker_flags(&self) -> Vec<String> {
        match self.flag {
            GpuFlag::Default => vec![],
            GpuFlag::Off => vec!["--no-gpu".into()],
            GpuFlag::Index(i) => vec!["--gpu-device".into(), i.to_string()],
        }
    }
}

fn cpu_named(name: Option<String>) -> Device {
    Device {
        kind: "cpu".into(),
        name: name.unwrap_or_else(|| "CPU".into()),
        memory_bytes: None,
        free_bytes: None,
    }
}

/// The CPU's name, as a CPU-only build's worker program reports it; None
/// where there is none beside the program.
async fn cpu_name(program: &Path, variant: Option<&str>) -> Option<String> {
    if variant.is_none_or(gpus::has_gpu) {
        return None;
    }
    let worker = program.with_file_name(WORKER_FILE);
    if !worker.is_file() {
        return None;
    }
    gpus::list_devices(&worker).await.ok().map(|l| l.cpu.name)
}

/// Chooses the device for `located` (the CPU build the backend found for
/// `program`). Only a package's or a checkout's build has GPU variants to
/// choose from; a program you named runs as it is, told `gpu`'s wish.
pub async fn choose(o: &EngineOptions, located: Located, program: &Program) -> Choice {
    let variant = located.variant.clone();
    let in_variants = matches!(located.found_by, FoundBy::Package | FoundBy::Checkout);
    let index = match o.gpu {
        Gpu::Off => {
            let name = cpu_name(&located.path, variant.as_deref()).await;
            return Choice {
                program: located,
                flag: GpuFlag::Off,
                device: Some(cpu_named(name)),
                cpu_program: None,
                fallback: None,
            };
        }
        Gpu::Auto => 0,
        Gpu::Index(i) => i,
    };
    if !in_variants {
        return Choice {
            program: located,
            flag: match o.gpu {
                Gpu::Index(i) => GpuFlag::Index(i),
                _ => GpuFlag::Default,
            },
            device: None,
            cpu_program: None,
            fallback: None,
        };
    }
    let file = located
        .path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(program.name));
    let cpu_dir = located
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = cpu_dir.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut candidates: Vec<(String, PathBuf)> = gpus::gpu_builds(&bin, &file.to_string_lossy())
        .into_iter()
        .map(|(v, dir)| (v.to_owned(), dir))
        .collect();
    if variant.as_deref().is_some_and(gpus::has_gpu) {
        candidates.push((variant.clone().unwrap_or_default(), cpu_dir.clone()));
    }
    let mut why_not = Vec::new();
    for (build, dir) in &candidates {
        match usable_gpu(dir, &file, program, index).await {
            Ok(device) => {
                let chosen = Located {
                    path: dir.join(&file),
                    found_by: located.found_by,
                    variant: Some(build.clone()),
                };
                return Choice {
                    cpu_program: Some(located.path.with_file_name(WORKER_FILE)),
                    program: chosen,
                    flag: GpuFlag::Index(index),
                    device: Some(device),
                    fallback: None,
                };
            }
            Err(e) => why_not.push(format!("the {build} build: {e}")),
        }
    }
    let name = cpu_name(&located.path, variant.as_deref()).await;
    let fallback = if !why_not.is_empty() {
        Some(format!(
            "no GPU works here ({}), so whisper runs on the CPU",
            why_not.join("; ")
        ))
    } else if matches!(o.gpu, Gpu::Index(_)) {
        Some(format!(
            "this build of persistent-whisper-{} has no GPU build, so whisper runs on the CPU",
            locate::addon::PLATFORM
        ))
    } else {
        None
    };
    Choice {
        program: located,
        flag: GpuFlag::Off,
        device: Some(cpu_named(name)),
        cpu_program: None,
        fallback,
    }
}

/// The `index`th GPU the build in `dir` can use, proven: its worker program
/// lists it, and the backend's program there starts.
async fn usable_gpu(
    dir: &Path,
    file: &Path,
    program: &Program,
    index: u32,
) -> Result<Device, String> {
    let worker = dir.join(WORKER_FILE);
    if !worker.is_file() {
        return Err("it has no worker program to ask which GPUs it sees".into());
    }
    let list = gpus::list_devices(&worker)
        .await
        .map_err(|e| format!("it does not start here: {e}"))?;
    let Some(device) = list.gpus.get(index as usize).cloned() else {
        return Err(match list.gpus.len() {
            0 => "it sees no GPU (ggml skips software renderers such as llvmpipe unless GGML_VK_VISIBLE_DEVICES names them)".into(),
            n => format!("it sees {n} GPU{}, none with index {index}", if n == 1 { "" } else { "s" }),
        });
    };
    if file != Path::new(WORKER_FILE) {
        locate::probe(program, &dir.join(file))
            .await
            .map_err(|e| format!("its {} does not start: {e}", program.name))?;
    }
    Ok(device)
}
