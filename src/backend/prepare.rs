//! From the validated options to workers' backends, in one place: find the
//! backend's program and prove it starts on this machine (where the default
//! backend's program cannot, fall back to 'cli'), then make the factory that
//! gives each new pool worker its `Backend`.

use super::any::Backend;
use super::cli::CliBackend;
use super::device::{self, Choice};
use super::program::{FailOver, Processes, ProgramConfig, ProgramSlot};
use super::server::{Ports, ServerBackend, ServerConfig};
use super::threads::Threads;
use crate::error::Result;
use crate::events::{Event, EventSink};
use crate::locate::{self, Located, Places, Program};
use crate::log::Logger;
use crate::options::{available_cpus, BackendKind, BackendOptions, EngineOptions};
use persistent_whisper_protocol::device::Device;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Makes each new worker's backend.
#[derive(Clone)]
pub struct BackendFactory {
    make: Arc<dyn Fn() -> Backend + Send + Sync>,
    renew: Option<Arc<dyn Fn() + Send + Sync>>,
    threads: Threads,
    /// On a GPU that failed, the CPU build runs with these threads instead.
    fail_over: Option<(Arc<FailOver>, Threads)>,
    /// Its backends own a process that must start before they take work.
    pub persistent: bool,
    /// The device its backends decode on, as chosen (a worker process says
    /// for itself once it runs).
    pub device: Option<Device>,
}

impl BackendFactory {
    pub fn make(&self) -> Backend {
        (self.make)()
    }

    /// restart(): backends made from now on share nothing with earlier ones
    /// (the worker backend's slots get new processes, which load the model
    /// again).
    pub fn renew(&self) {
        if let Some(renew) = &self.renew {
            renew()
        }
    }

    fn new(
        threads: Threads,
        persistent: bool,
        make: impl Fn() -> Backend + Send + Sync + 'static,
    ) -> Self {
        BackendFactory {
            make: Arc::new(make),
            renew: None,
            threads,
            fail_over: None,
            persistent,
            device: None,
        }
    }

    /// Threads per request: on a GPU a fixed few (they only feed it), on
    /// the CPU a share of the cores, also after a GPU failed over to it.
    pub fn threads(&self) -> Threads {
        match &self.fail_over {
            Some((fail_over, cpu)) if fail_over.happened() => *cpu,
            _ => self.threads,
        }
    }

    /// The device chosen for its backends, until a GPU failed over to the
    /// CPU (then the worker processes say where they run).
    pub fn chosen_device(&self) -> Option<Device> {
        match &self.fail_over {
            Some((fail_over, _)) if fail_over.happened() => None,
            _ => self.device.clone(),
        }
    }
}

/// A backend ready to start workers.
pub struct Prepared {
    /// The options it runs with ('cli' after a fallback).
    pub options: Arc<EngineOptions>,
    pub program: Located,
    pub factory: BackendFactory,
}

/// Finds the backend's program and proves it starts here; makes the factory.
/// The default backend ('worker'), where its program is missing or does not
/// start here, gives way to 'cli' with a warning and an event; a backend
/// the caller chose fails instead.
pub async fn prepare(
    options: Arc<EngineOptions>,
    model_bytes: u64,
    log: &Logger,
    events: &EventSink,
) -> Result<Prepared> {
    let o = options.clone();
    let options = match off_thread(move || Ok(cli_named_without_worker(&o))).await? {
        Some(cli) => {
            log.info(format_args!(
                "whisperPath names a whisper-cli with no persistent-whisper-worker beside it: backend 'cli'"
            ));
            cli?
        }
        None => options,
    };
    let (options, program) = match ready_program(&options).await {
        Ok(program) => (options, program),
        Err(e)
            if !options.backend_chosen
                && options.backend.kind() == BackendKind::Worker
                && e.code() == "ERR_WHISPER_NOT_FOUND" =>
        {
            let cli = Arc::new(with_backend(&options, BackendKind::Cli)?);
            let reason = format!(
                "persistent-whisper-worker cannot run here, so the engine uses backend 'cli' (one whisper-cli per request): {e}"
            );
            log.warn(format_args!("{reason}"));
            events(Event::BackendFallback {
                from: BackendKind::Worker.as_str(),
                to: BackendKind::Cli.as_str(),
                reason,
            });
            let program = ready_program(&cli).await?;
            (cli, program)
        }
        Err(e) => return Err(e),
    };
    let kind = options.backend.kind();
    let choice = device::choose(&options, program, program_of(kind)).await;
    if let Some(reason) = &choice.fallback {
        log.warn(format_args!("{reason}"));
        events(Event::DeviceFallback {
            device: choice.device.clone(),
            reason: reason.clone(),
        });
    }
    let (fail_log, fail_events) = (log.clone(), events.clone());
    let announce = move |reason: String| {
        fail_log.warn(format_args!("{reason}"));
        fail_events(Event::DeviceFallback {
            device: None,
            reason,
        });
    };
    let factory = factory(&options, &choice, model_bytes, announce);
    Ok(Prepared {
        options,
        program: choice.program,
        factory,
    })
}

/// The options as they are, with another backend at its defaults.
fn with_backend(o: &EngineOptions, kind: BackendKind) -> Result<EngineOptions> {
    let mut options = o.clone();
    options.backend = BackendOptions::default_for(kind);
    options.finish()
}

/// The original engine's `whisperPath` (or WHISPER_CLI_PATH) names the
/// whisper-cli to run: with the default backend, the worker program beside
/// it runs, and where there is none, that whisper-cli ('cli' options).
fn cli_named_without_worker(o: &EngineOptions) -> Option<Result<Arc<EngineOptions>>> {
    if o.backend_chosen
        || o.backend.kind() != BackendKind::Worker
        || o.backend.program_path().is_some()
    {
        return None;
    }
    let places = Places::of_this_process();
    if (places.env)(locate::WHISPER_WORKER.env_var).is_some() {
        return None;
    }
    let cli = o
        .whisper_path
        .clone()
        .or_else(|| (places.env)(locate::WHISPER_CLI.env_var).map(PathBuf::from))?;
    let worker_beside = locate::find(&locate::WHISPER_WORKER, None, Some(&cli), &places)
        .is_ok_and(|l| l.found_by == locate::FoundBy::Beside);
    (!worker_beside).then(|| with_backend(o, BackendKind::Cli).map(Arc::new))
}

/// Which program a backend runs.
fn program_of(kind: BackendKind) -> &'static Program {
    match kind {
        BackendKind::Cli => &locate::WHISPER_CLI,
        BackendKind::Server => &locate::WHISPER_SERVER,
        BackendKind::Worker => &locate::WHISPER_WORKER,
    }
}

/// The backend's program, found (file work, off the runtime's threads) and
/// proven to start on this machine.
async fn ready_program(options: &Arc<EngineOptions>) -> Result<Located> {
    let o = options.clone();
    let program = off_thread(move || locate_program(&o)).await?;
    locate::probe(program_of(options.backend.kind()), &program.path).await?;
    Ok(program)
}

/// The program the backend runs: whisper-server and the worker program are
/// also looked for beside a whisper-cli the caller named (option or
/// environment).
fn locate_program(o: &EngineOptions) -> Result<Located> {
    let places = Places::of_this_process();
    let kind = o.backend.kind();
    if kind == BackendKind::Cli {
        return locate::find(
            &locate::WHISPER_CLI,
            o.whisper_path.as_deref(),
            None,
            &places,
        );
    }
    let named_cli = o
        .whisper_path
        .clone()
        .or_else(|| (places.env)(locate::WHISPER_CLI.env_var).map(PathBuf::from));
    locate::find(
        program_of(kind),
        o.backend.program_path().map(PathBuf::as_path),
        named_cli.as_deref(),
        &places,
    )
}

/// The worker program, for what only it does (voice activity detection)
/// whatever the backend: found as the 'worker' backend would find it.
pub fn locate_worker(o: &EngineOptions) -> Result<Located> {
    let mut worker = o.clone();
    if o.backend.kind() != BackendKind::Worker {
        worker.backend = BackendOptions::default_for(BackendKind::Worker);
    }
    locate_program(&worker)
}

/// Blocking file work on tokio's blocking threads.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(crate::error::WhisperError::NoWorker {
            detail: format!("looking for the program panicked: {e}"),
        })
    })
}

/// The backend the options ask for, running the chosen device's program with
/// a model of `model_bytes`; `announce` says when a GPU fails over to the CPU.
pub fn factory(
    options: &EngineOptions,
    choice: &Choice,
    model_bytes: u64,
    announce: impl Fn(String) + Send + Sync + 'static,
) -> BackendFactory {
    let mut factory = backend_factory(options, choice, model_bytes, announce);
    factory.device = choice.device.clone();
    factory
}

/// The options with the flags that tell the programs the chosen device
/// (and, for the worker program's rule for decodes on a GPU, how many
/// decoders a decode runs).
fn with_device(options: &EngineOptions, choice: &Choice) -> EngineOptions {
    let mut o = options.clone();
    o.extra.process_args.extend(choice.whisper_flags());
    o.extra.worker_flags.extend(choice.worker_flags());
    o.extra.worker_flags.extend(decoders(options));
    o
}

/// `--decoders`: beam search and best-of keep a KV cache per decoder.
fn decoders(options: &EngineOptions) -> [String; 2] {
    let d = &options.extra.decoding;
    let n = d.beam_size.max(d.best_of).clamp(1, 8);
    ["--decoders".into(), n.to_string()]
}

/// The worker processes' way back to the CPU build from a GPU (the same
/// program with `--no-gpu` where the CPU build drives the GPU itself).
fn fail_over(
    options: &EngineOptions,
    choice: &Choice,
    config: &ProgramConfig,
    announce: impl Fn(String) + Send + Sync + 'static,
) -> Option<Arc<FailOver>> {
    let program = choice.cpu_program.clone().filter(|_| choice.on_gpu())?;
    let mut extra = options.extra.clone();
    extra.worker_flags.push("--no-gpu".into());
    extra.worker_flags.extend(decoders(options));
    let cpu = ProgramConfig {
        program,
        model: config.model.clone(),
        model_bytes: config.model_bytes,
        extra,
        limits: config.limits,
        processes: config.processes,
        slots_per_process: config.slots_per_process,
        fail_over: None,
    };
    Some(Arc::new(FailOver::new(cpu, announce)))
}

fn backend_factory(
    options: &EngineOptions,
    choice: &Choice,
    model_bytes: u64,
    announce: impl Fn(String) + Send + Sync + 'static,
) -> BackendFactory {
    let original = options;
    let options = &with_device(original, choice);
    let program = choice.program.path.clone();
    let cores = available_cpus();
    let budget = options
        .threads
        .map_or(Threads::Budget { cores }, Threads::Fixed);
    // On a GPU whisper's CPU threads only prepare its work (the spectrogram,
    // the few operations a GPU leaves to the CPU): whisper-cli's default of
    // up to 4, not a share of the cores; how many decodes run at once is
    // the worker program's rule, by the GPU's free memory.
    let on_device = if choice.on_gpu() {
        options
            .threads
            .map_or(Threads::Fixed(cores.min(4)), Threads::Fixed)
    } else {
        budget
    };
    match &options.backend {
        BackendOptions::Cli => {
            let cli = CliBackend {
                program,
                model: options.model_path.clone(),
                extra: Arc::new(options.extra.clone()),
            };
            BackendFactory::new(on_device, false, move || Backend::Cli(cli.clone()))
        }
        BackendOptions::Server { base_port, .. } => {
            // A server's threads are fixed when it starts; each gets every
            // core (OpenMP's idle threads sleep, so concurrent servers share
            // them), and a lone request is not held to a share.
            let threads = options.threads.unwrap_or(cores);
            let config = Arc::new(ServerConfig {
                program,
                model: options.model_path.clone(),
                model_bytes,
                threads,
                extra: options.extra.clone(),
                ports: Ports::new(*base_port),
            });
            BackendFactory::new(Threads::Fixed(threads), true, move || {
                Backend::Server(ServerBackend::new(config.clone()))
            })
        }
        BackendOptions::Worker { processes, .. } => {
            let processes = (*processes).max(1);
            let config = ProgramConfig {
                program,
                model: options.model_path.clone(),
                model_bytes,
                extra: options.extra.clone(),
                limits: options.limits,
                processes,
                slots_per_process: options.max_workers.div_ceil(processes),
                fail_over: None,
            };
            let fail_over = fail_over(original, choice, &config, announce);
            let config = Arc::new(ProgramConfig {
                fail_over: fail_over.clone(),
                ..config
            });
            let current = Arc::new(Mutex::new(Processes::new(config.clone())));
            let (make_from, renew) = (current.clone(), current);
            let mut factory = BackendFactory::new(on_device, true, move || {
                let processes = make_from.lock().unwrap_or_else(|e| e.into_inner()).clone();
                Backend::Worker(ProgramSlot::new(processes))
            });
            factory.renew = Some(Arc::new(move || {
                *renew.lock().unwrap_or_else(|e| e.into_inner()) = Processes::new(config.clone());
            }));
            factory.fail_over = fail_over.map(|f| (f, budget));
            factory
        }
    }
}
