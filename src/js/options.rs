//! The options JavaScript passes, each declared once (js_options!: the
//! TypeScript view in index.d.ts and the reader come from one struct), then
//! converted into the core's options in one place, where every value is
//! checked: a wrong type, a getter that throws or a bad value each become an
//! ERR_INVALID_OPTIONS naming the option, and never a synchronous throw from
//! transcribe().

use super::fields::{js_read, type_name, Fields, Handle, JsField, Result};
use crate::audio::Input;
use crate::error::WhisperError;
use crate::options::{
    check, BackendKind, BackendOptions, EngineOptions, Gpu, TranscribeOptions, MAX_GPU_INDEX,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::time::Duration;

/// The engine's options.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct PersistentWhisperOptions {
    /// Path of a ggml whisper model, e.g. `ggml-base.en.bin`, or the name of
    /// a catalogue model (`'base.en'`, see listModels()) stored in modelDir.
    pub model_path: String,
    /// Where catalogue models named by modelPath are stored. Default:
    /// defaultModelDir() (the platform's cache folder).
    pub model_dir: Option<String>,
    /// With modelPath a catalogue name whose file is missing, initialize()
    /// downloads it first (verified; 'downloadProgress' events). Default
    /// false: initialize() rejects with ERR_MODEL_LOAD naming the command.
    pub auto_download: Option<bool>,
    /// whisper-cli. Default: $WHISPER_CLI_PATH, then the installed platform
    /// package, then a checkout's `.whisper` build, then the PATH.
    pub whisper_path: Option<String>,
    /// whisper-server (backend 'server'). Default: $WHISPER_SERVER_PATH, then
    /// beside whisperPath or $WHISPER_CLI_PATH, then as for whisperPath.
    pub server_path: Option<String>,
    /// persistent-whisper-worker (backend 'worker'). Default:
    /// $PERSISTENT_WHISPER_WORKER_PATH, then beside whisperPath or
    /// $WHISPER_CLI_PATH, then as for whisperPath.
    pub worker_path: Option<String>,
    /// How a worker runs whisper. 'worker' (default): the workers are decode
    /// slots in persistent-whisper-worker processes that hold the model once
    /// each; if that program cannot start on this machine, the engine runs
    /// 'cli' instead (a 'backendFallback' event and a warning say so).
    /// 'cli': one whisper-cli process per request. 'server': one
    /// whisper-server per worker, model loaded once.
    #[napi(ts_type = "'cli' | 'server' | 'worker'")]
    pub backend: Option<String>,
    /// Backend 'worker': how many processes the slots are spread over (a
    /// crash fails only the requests in its process). Default 1.
    pub processes: Option<f64>,
    /// Backend 'server': first port to try for the workers' servers on
    /// 127.0.0.1 (ports in use are skipped). Default: ports the OS picks.
    pub base_port: Option<f64>,
    /// Backend 'server': milliseconds between health checks of an idle
    /// worker's server; three failures in a row replace it. Default 5000.
    pub health_check_interval: Option<f64>,
    /// A fixed pool: sets minWorkers and maxWorkers. Default 3.
    pub pool_size: Option<f64>,
    /// Workers the pool keeps (and starts at initialize()). Default: poolSize,
    /// or 1 when only maxWorkers is given.
    pub min_workers: Option<f64>,
    /// Workers the pool grows to while requests wait. Default: poolSize, or
    /// minWorkers when that is larger.
    pub max_workers: Option<f64>,
    /// Milliseconds a worker above minWorkers may stay idle before it leaves.
    /// Default 30000.
    pub idle_timeout: Option<f64>,
    /// Milliseconds one request may run before its process is killed.
    /// Default: 30 s plus the audio's duration times a factor that grows with
    /// the model's size (3x for tiny.en, 6x for base); see README.
    pub timeout: Option<f64>,
    /// whisper threads per request. Default: 'cli' and 'worker', the cores
    /// that running requests leave free (all of them for a lone request);
    /// 'server', every core for each server.
    pub threads: Option<f64>,
    /// Spoken language code, or 'auto' to detect it. Default 'en'.
    pub language: Option<String>,
    /// Requests that may wait for a worker; beyond it transcribe() rejects
    /// with ERR_QUEUE_FULL. Default 1000.
    pub max_queue_size: Option<f64>,
    /// Failed requests in a row after which a worker is replaced. Default 3.
    pub max_consecutive_failures: Option<f64>,
    /// Replace a worker (and its process) after it has served this many
    /// requests, for memory hygiene. Default: never.
    pub max_requests_per_worker: Option<f64>,
    /// A Silero VAD model in whisper.cpp's ggml format, for listen() and
    /// transcribe()'s `vad`. Default: ggml-silero-v6.2.0.bin (or v5.1.2)
    /// beside the whisper model, if there is one (`npx persistent-whisper
    /// models download silero-v6.2.0`).
    pub vad_model_path: Option<String>,
    /// The longest audio a request may hold, in ms: longer audio rejects
    /// with ERR_AUDIO_UNREADABLE naming this limit. Default 14400000 (4 h);
    /// at most 24 h.
    pub max_duration: Option<f64>,
    /// The largest file (or audio in memory) a request may hold, in bytes.
    /// Default 3221225472 (3 GiB).
    pub max_file_size: Option<f64>,
    /// Extra whisper flags from an allow-list (decoding flags such as -bs, -bo,
    /// -nf, --prompt; -ot, -d, -fa, -nfa, -ng, --vad, -vm ...); see README.
    pub extra_args: Option<Vec<String>>,
    /// The device whisper decodes on. 'auto' (default): the best GPU that
    /// works here (the platform package's Vulkan build on Linux and
    /// Windows, Metal on Apple silicon), else the CPU, with a warning and a
    /// 'deviceFallback' event, never an error. false: the CPU only; no GPU
    /// build is started and no GPU library loaded. A number: that GPU (0
    /// for the first), falling back as 'auto' does where it does not work.
    #[napi(ts_type = "'auto' | false | number")]
    pub gpu: Option<GpuValue>,
    /// Default 'warn': quiet while things work.
    #[napi(ts_type = "'silent' | 'error' | 'warn' | 'info' | 'debug'")]
    pub log_level: Option<String>,
}

js_read!(PersistentWhisperOptions {
    model_path,
    model_dir,
    auto_download,
    whisper_path,
    server_path,
    worker_path,
    backend,
    processes,
    base_port,
    health_check_interval,
    pool_size,
    min_workers,
    max_workers,
    idle_timeout,
    timeout,
    threads,
    language,
    max_queue_size,
    max_consecutive_failures,
    max_requests_per_worker,
    vad_model_path,
    max_duration,
    max_file_size,
    extra_args,
    log_level,
    gpu,
});

/// `gpu`'s value: 'auto', false, or a GPU's index.
pub struct GpuValue(Gpu);

impl JsField for Option<GpuValue> {
    fn read(f: &Fields, name: &str) -> Result<Self> {
        let Some(v) = f.get(name)? else {
            return Ok(None);
        };
        let wanted = "'auto', false or a GPU's index (0 for the first)";
        let gpu = match v.get_type() {
            // SAFETY (each cast): the value is of the type just checked.
            Ok(ValueType::Boolean) => match unsafe { v.cast::<bool>() } {
                Ok(false) => Gpu::Off,
                _ => {
                    return Err(WhisperError::invalid(
                        name,
                        format!("must be {wanted} (got true)"),
                    ))
                }
            },
            Ok(ValueType::String) => match unsafe { v.cast::<String>() } {
                Ok(s) if s == "auto" => Gpu::Auto,
                Ok(s) => {
                    return Err(WhisperError::invalid(
                        name,
                        format!("must be {wanted} (got {s:?})"),
                    ))
                }
                Err(e) => return Err(WhisperError::invalid(name, e.reason)),
            },
            Ok(ValueType::Number) => {
                let n = unsafe { v.cast::<f64>() }.unwrap_or(f64::NAN);
                Gpu::Index(check::integer(name, n, 0, MAX_GPU_INDEX)? as u32)
            }
            _ => return Err(Fields::wrong(name, wanted, &v)),
        };
        Ok(Some(GpuValue(gpu)))
    }
}

/// transcribe()'s options.
#[napi(
    object,
    js_name = "TranscribeOptions",
    object_from_js = false,
    object_to_js = false
)]
pub struct TranscribeRequestOptions {
    /// Overrides the engine's language for this request.
    pub language: Option<String>,
    /// Overrides the engine's timeout (ms) for this request.
    pub timeout: Option<f64>,
    /// Transcribe only the speech (whisper's voice activity detection with
    /// the engine's Silero VAD model, see vadModelPath): faster on sparse
    /// audio, and no text invented in silence. Segment times stay on the
    /// original timeline. Default false.
    pub vad: Option<bool>,
    /// 'high' requests (dictation) go before queued 'normal' ones; FIFO within
    /// a priority. Default 'normal'.
    #[napi(ts_type = "'high' | 'normal'")]
    pub priority: Option<String>,
    /// Aborting it rejects the request with ERR_ABORTED: a queued request
    /// leaves the queue, a running one has its whisper work stopped.
    /// `null` and `undefined` mean no signal.
    #[napi(ts_type = "AbortSignal | null")]
    pub signal: Option<Handle>,
    /// Called with the percent done (rising, ending at 100) before the
    /// Promise settles. Live with backend 'worker'; the others report 100
    /// when whisper is done.
    #[napi(ts_type = "(percent: number) => void")]
    pub on_progress: Option<Handle>,
    /// Called with each segment of the result, in order, before the Promise
    /// resolves. Live, as whisper decodes, with backend 'worker'; the others
    /// deliver them when whisper is done.
    #[napi(ts_type = "(segment: TranscriptionSegment) => void")]
    pub on_segment: Option<Handle>,
}

js_read!(TranscribeRequestOptions {
    language,
    timeout,
    vad,
    priority,
    signal,
    on_progress,
    on_segment,
});

/// The constructor's options, validated.
pub fn engine_options(env: &Env, value: Option<Unknown>) -> Result<EngineOptions> {
    let example = "{ modelPath: 'path/to/ggml-model.bin' }";
    let Some(value) = value else {
        return Err(WhisperError::invalid(
            "options",
            format!("must be an object, at least {example}"),
        ));
    };
    let f = Fields::of(env, value, "options", example)?;
    PersistentWhisperOptions::read(&f)?.try_into()
}

/// A number of milliseconds from `min` up to a day.
fn ms(option: &str, v: f64, min: u64) -> Result<Duration> {
    check::integer(option, v, min, crate::options::MAX_TIMEOUT_MS).map(Duration::from_millis)
}

/// The one conversion from what JavaScript gave to the core's options; the
/// defaults are EngineOptions::new()'s.
impl TryFrom<PersistentWhisperOptions> for EngineOptions {
    type Error = WhisperError;

    fn try_from(js: PersistentWhisperOptions) -> Result<Self> {
        let mut o = EngineOptions::new(check::path("modelPath", js.model_path.clone())?);
        pool_size(&js, &mut o)?;
        if let Some(s) = js.whisper_path {
            o.whisper_path = Some(check::path("whisperPath", s)?);
        }
        let kind = match &js.backend {
            Some(s) => {
                o.backend_chosen = true;
                check::backend(s)?
            }
            None => o.backend.kind(),
        };
        // Every backend's own options are checked; the chosen one's are kept.
        let server_path = js
            .server_path
            .map(|s| check::path("serverPath", s))
            .transpose()?;
        let worker_path = js
            .worker_path
            .map(|s| check::path("workerPath", s))
            .transpose()?;
        let processes = js
            .processes
            .map(|n| check::integer("processes", n, 1, crate::options::MAX_POOL_SIZE))
            .transpose()?;
        let base_port = js
            .base_port
            .map(|n| check::integer("basePort", n, 1024, 65535))
            .transpose()?;
        let health = js
            .health_check_interval
            .map(|n| ms("healthCheckInterval", n, 10))
            .transpose()?;
        o.backend = match (kind, BackendOptions::default_for(kind)) {
            (
                BackendKind::Server,
                BackendOptions::Server {
                    health_check_interval,
                    ..
                },
            ) => BackendOptions::Server {
                path: server_path,
                base_port: base_port.map(|p| p as u16),
                health_check_interval: health.unwrap_or(health_check_interval),
            },
            (BackendKind::Worker, BackendOptions::Worker { processes: one, .. }) => {
                BackendOptions::Worker {
                    path: worker_path,
                    processes: processes.map_or(one, |n| n as usize),
                }
            }
            (_, default) => default,
        };
        if let Some(n) = js.timeout {
            o.timeout = Some(check::milliseconds("timeout", n)?);
        }
        if let Some(n) = js.threads {
            o.threads = Some(check::integer("threads", n, 1, 1024)? as usize);
        }
        if let Some(s) = js.language {
            o.language = check::language("language", &s)?;
        }
        if let Some(n) = js.max_queue_size {
            o.max_queue_size = check::integer("maxQueueSize", n, 0, 1_000_000)? as usize;
        }
        if let Some(n) = js.max_consecutive_failures {
            o.max_consecutive_failures =
                check::integer("maxConsecutiveFailures", n, 1, 1000)? as u32;
        }
        if let Some(n) = js.max_requests_per_worker {
            o.max_requests_per_worker = Some(check::integer(
                "maxRequestsPerWorker",
                n,
                1,
                u32::MAX as u64,
            )?);
        }
        if let Some(n) = js.max_duration {
            let most = crate::audio::MAX_DURATION.as_millis() as u64;
            o.limits.max_duration =
                Duration::from_millis(check::integer("maxDuration", n, 1000, most)?);
        }
        if let Some(n) = js.max_file_size {
            o.limits.max_file_bytes = check::integer("maxFileSize", n, 1, u64::from(u32::MAX) * 4)?;
        }
        if let Some(s) = js.vad_model_path {
            o.vad_model = Some(check::path("vadModelPath", s)?);
        }
        if let Some(args) = js.extra_args {
            o.extra_args = args;
        }
        if let Some(s) = js.log_level {
            o.log_level = check::log_level(&s)?;
        }
        if let Some(GpuValue(gpu)) = js.gpu {
            o.gpu = gpu;
        }
        o.finish()
    }
}

/// poolSize sets both bounds; minWorkers and maxWorkers set one each (the
/// other following it), and idleTimeout how soon the pool shrinks.
fn pool_size(js: &PersistentWhisperOptions, o: &mut EngineOptions) -> Result<()> {
    if let Some(n) = js.pool_size {
        let size = check::pool_size("poolSize", n)?;
        o.min_workers = size;
        o.max_workers = size;
    }
    if let Some(n) = js.max_workers {
        o.max_workers = check::pool_size("maxWorkers", n)?;
        if js.min_workers.is_none() && js.pool_size.is_none() {
            o.min_workers = 1;
        }
    }
    if let Some(n) = js.min_workers {
        o.min_workers = check::integer("minWorkers", n, 0, crate::options::MAX_POOL_SIZE)? as usize;
        if js.max_workers.is_none() && js.pool_size.is_none() {
            o.max_workers = o.max_workers.max(o.min_workers);
        }
    }
    if let Some(n) = js.idle_timeout {
        o.idle_timeout = Some(check::milliseconds("idleTimeout", n)?);
    }
    Ok(())
}

/// One transcribe() call's arguments, read and checked before anything is queued.
pub struct Transcription<'env> {
    pub input: Input,
    pub options: TranscribeOptions,
    pub signal: Option<Object<'env>>,
    /// onProgress or onSegment was given: the caller wants reports.
    pub observed: bool,
}

const INPUT: &str = "audio";
const INPUT_KINDS: &str = "a file path (string), a Float32Array of 16 kHz mono samples, or a Buffer/Uint8Array holding a WAV, MP3, FLAC or OGG file";

/// A path, or audio in memory (copied: the caller may reuse its array).
pub fn audio_input(env: &Env, value: Unknown) -> Result<Input> {
    let wrong =
        |got: &str| WhisperError::invalid(INPUT, format!("must be {INPUT_KINDS} (got {got})"));
    match value.get_type() {
        // SAFETY: a string value of this env.
        Ok(ValueType::String) => {
            return unsafe { String::from_napi_value(env.raw(), value.raw()) }
                .map(Input::Path)
                .map_err(|e| WhisperError::invalid(INPUT, e.reason))
        }
        Ok(ValueType::Object) => {}
        Ok(t) => return Err(wrong(type_name(t))),
        Err(e) => return Err(WhisperError::invalid(INPUT, e.reason)),
    }
    let mut is_typed = false;
    // SAFETY: plain N-API calls on a value of this env; the data pointer is
    // read for `length` elements of the array's own type before returning.
    unsafe {
        napi::sys::napi_is_typedarray(env.raw(), value.raw(), &mut is_typed);
        if !is_typed {
            return Err(wrong("an object that is not a typed array"));
        }
        let mut kind = 0;
        let mut length = 0usize;
        let mut data = std::ptr::null_mut();
        let status = napi::sys::napi_get_typedarray_info(
            env.raw(),
            value.raw(),
            &mut kind,
            &mut length,
            &mut data,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        if status != napi::sys::Status::napi_ok {
            return Err(wrong("a typed array that cannot be read"));
        }
        let empty = length == 0 || data.is_null();
        match kind {
            napi::sys::TypedarrayType::float32_array => Ok(Input::Samples(if empty {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data as *const f32, length).to_vec()
            })),
            napi::sys::TypedarrayType::uint8_array => Ok(Input::Bytes(if empty {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data as *const u8, length).to_vec()
            })),
            _ => Err(wrong("another kind of typed array")),
        }
    }
}

pub fn transcription<'env>(
    env: &'env Env,
    input: Unknown<'env>,
    options: Option<Unknown<'env>>,
) -> Result<Transcription<'env>> {
    let input = audio_input(env, input)?;
    let options_value = match options {
        Some(v) if !matches!(v.get_type(), Ok(ValueType::Undefined | ValueType::Null)) => v,
        _ => {
            return Ok(Transcription {
                input,
                options: TranscribeOptions::default(),
                signal: None,
                observed: false,
            })
        }
    };
    let f = Fields::of(
        env,
        options_value,
        "options",
        "{ language, timeout, priority, signal, onProgress, onSegment }",
    )?;
    let options = TranscribeRequestOptions::read(&f)?.try_into()?;
    let signal = match f.get("signal")? {
        None => None,
        Some(v) => Some(abort_signal(env, v)?),
    };
    let mut observed = false;
    for name in ["onProgress", "onSegment"] {
        if let Some(v) = f.get(name)? {
            if !matches!(v.get_type(), Ok(ValueType::Function)) {
                return Err(Fields::wrong(name, "a function", &v));
            }
            observed = true;
        }
    }
    Ok(Transcription {
        input,
        options,
        signal,
        observed,
    })
}

/// One request's values (its handles, the signal and the callbacks, are
/// taken by transcription()).
impl TryFrom<TranscribeRequestOptions> for TranscribeOptions {
    type Error = WhisperError;

    fn try_from(js: TranscribeRequestOptions) -> Result<Self> {
        Ok(TranscribeOptions {
            language: js
                .language
                .map(|s| check::language("language", &s))
                .transpose()?,
            timeout: js
                .timeout
                .map(|n| check::milliseconds("timeout", n))
                .transpose()?,
            priority: js
                .priority
                .map(|s| check::priority(&s))
                .transpose()?
                .unwrap_or_default(),
            vad: js.vad.unwrap_or(false),
            decoding: None,
        })
    }
}

/// An AbortSignal: an object with `aborted` and the listener methods.
pub(super) fn abort_signal<'env>(env: &'env Env, value: Unknown<'env>) -> Result<Object<'env>> {
    let wrong = |got: &str| {
        WhisperError::invalid(
            "signal",
            format!("must be an AbortSignal, such as new AbortController().signal (got {got})"),
        )
    };
    if !matches!(value.get_type(), Ok(ValueType::Object)) {
        return Err(wrong(value.get_type().map_or("something else", type_name)));
    }
    let f = Fields::of(env, value, "signal", "an AbortSignal")?;
    let is_fn = |name: &str| -> Result<bool> {
        Ok(f.get(name)?
            .is_some_and(|v| matches!(v.get_type(), Ok(ValueType::Function))))
    };
    let has_aborted = f
        .get("aborted")?
        .is_some_and(|v| matches!(v.get_type(), Ok(ValueType::Boolean)));
    if !(has_aborted && is_fn("addEventListener")? && is_fn("removeEventListener")?) {
        return Err(wrong("an object that is not an AbortSignal"));
    }
    Ok(f.object)
}
