//! The options JavaScript passes, read property by property: a wrong type,
//! a getter that throws or a bad value each become an ERR_INVALID_OPTIONS
//! naming the option, and never a synchronous throw from transcribe().
//! The `#[napi(object)]` structs below are the TypeScript view
//! (index.d.ts); the readers are the only way values come in.

use crate::audio::Input;
use crate::error::WhisperError;
use crate::js::error::take_exception;
use crate::options::{check, EngineOptions, TranscribeOptions};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::time::Duration;

type Result<T> = std::result::Result<T, WhisperError>;

/// The engine's options (TypeScript view).
#[allow(dead_code)] // declares index.d.ts's type; values are read by engine_options()
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
    /// Default 'warn': quiet while things work.
    #[napi(ts_type = "'silent' | 'error' | 'warn' | 'info' | 'debug'")]
    pub log_level: Option<String>,
}

/// transcribe()'s options (TypeScript view).
#[allow(dead_code)] // declares index.d.ts's type; values are read by transcription()
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
    /// 'high' requests (dictation) go before queued 'normal' ones; FIFO within
    /// a priority. Default 'normal'.
    #[napi(ts_type = "'high' | 'normal'")]
    pub priority: Option<String>,
    /// Aborting it rejects the request with ERR_ABORTED: a queued request
    /// leaves the queue, a running one has its whisper work stopped.
    /// `null` and `undefined` mean no signal.
    #[napi(ts_type = "AbortSignal | null")]
    pub signal: Option<String>,
    /// Called with the percent done (rising, ending at 100) before the
    /// Promise settles. Live with backend 'worker'; the others report 100
    /// when whisper is done.
    #[napi(ts_type = "(percent: number) => void")]
    pub on_progress: Option<String>,
    /// Called with each segment of the result, in order, before the Promise
    /// resolves. Live, as whisper decodes, with backend 'worker'; the others
    /// deliver them when whisper is done.
    #[napi(ts_type = "(segment: TranscriptionSegment) => void")]
    pub on_segment: Option<String>,
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Object => "an object",
        ValueType::Function => "a function",
        ValueType::External => "an external",
        ValueType::BigInt => "a bigint",
        _ => "something else",
    }
}

/// Reads the properties of one JS object, naming the option in each error.
struct Fields<'env> {
    env: &'env Env,
    object: Object<'env>,
}

impl<'env> Fields<'env> {
    /// `value` must be an object; `what` names it in the error.
    fn of(env: &'env Env, value: Unknown<'env>, what: &str, example: &str) -> Result<Self> {
        match value.get_type() {
            Ok(ValueType::Object) => Ok(Fields {
                env,
                object: Object::from_raw(env.raw(), value.raw()),
            }),
            Ok(t) => Err(WhisperError::invalid(
                what,
                format!("must be an object such as {example} (got {})", type_name(t)),
            )),
            Err(_) => Err(WhisperError::invalid(what, "must be an object")),
        }
    }

    /// The property, None when undefined or null.
    fn get(&self, name: &str) -> Result<Option<Unknown<'env>>> {
        match self.object.get_named_property::<Unknown>(name) {
            Ok(v) => match v.get_type() {
                Ok(ValueType::Undefined | ValueType::Null) => Ok(None),
                _ => Ok(Some(v)),
            },
            Err(e) => {
                let thrown = take_exception(self.env).unwrap_or(e.reason);
                Err(WhisperError::invalid(
                    name,
                    format!("reading it threw: {thrown}"),
                ))
            }
        }
    }

    fn wrong(name: &str, wanted: &str, v: &Unknown) -> WhisperError {
        let got = v.get_type().map_or("something else", type_name);
        WhisperError::invalid(
            name,
            format!("has the wrong type: must be {wanted} (got {got})"),
        )
    }

    fn string(&self, name: &str) -> Result<Option<String>> {
        let Some(v) = self.get(name)? else {
            return Ok(None);
        };
        if !matches!(v.get_type(), Ok(ValueType::String)) {
            return Err(Self::wrong(name, "a string", &v));
        }
        // SAFETY: a string value of this env.
        unsafe { String::from_napi_value(self.env.raw(), v.raw()) }
            .map(Some)
            .map_err(|e| WhisperError::invalid(name, e.reason))
    }

    fn number(&self, name: &str) -> Result<Option<f64>> {
        let Some(v) = self.get(name)? else {
            return Ok(None);
        };
        if !matches!(v.get_type(), Ok(ValueType::Number)) {
            return Err(Self::wrong(name, "a number", &v));
        }
        // SAFETY: a number value of this env.
        unsafe { f64::from_napi_value(self.env.raw(), v.raw()) }
            .map(Some)
            .map_err(|e| WhisperError::invalid(name, e.reason))
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        let Some(v) = self.get(name)? else {
            return Ok(None);
        };
        // SAFETY: is_array only inspects the value.
        let is_array = unsafe { Array::validate(self.env.raw(), v.raw()) }.is_ok();
        if !is_array {
            return Err(Self::wrong(name, "an array of strings", &v));
        }
        let array = Object::from_raw(self.env.raw(), v.raw());
        let len: u32 = array
            .get_named_property("length")
            .map_err(|e| WhisperError::invalid(name, e.reason))?;
        (0..len)
            .map(|i| {
                let item: Unknown = array.get_element(i).map_err(|_| {
                    let thrown = take_exception(self.env).unwrap_or_default();
                    WhisperError::invalid(name, format!("reading item {i} threw: {thrown}"))
                })?;
                if !matches!(item.get_type(), Ok(ValueType::String)) {
                    return Err(Self::wrong(name, "an array of strings", &item));
                }
                // SAFETY: a string value of this env.
                unsafe { String::from_napi_value(self.env.raw(), item.raw()) }
                    .map_err(|e| WhisperError::invalid(name, e.reason))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

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
    let model_path = f.string("modelPath")?.ok_or_else(|| {
        WhisperError::invalid(
            "modelPath",
            "is required: the path of a ggml whisper model such as ggml-base.en.bin",
        )
    })?;
    let mut o = EngineOptions::new(check::path("modelPath", model_path)?);
    if let Some(s) = f.string("whisperPath")? {
        o.whisper_path = Some(check::path("whisperPath", s)?);
    }
    if let Some(s) = f.string("serverPath")? {
        o.server_path = Some(check::path("serverPath", s)?);
    }
    if let Some(s) = f.string("workerPath")? {
        o.worker_path = Some(check::path("workerPath", s)?);
    }
    if let Some(s) = f.string("backend")? {
        o.backend = check::backend(&s)?;
        o.backend_chosen = true;
    }
    if let Some(n) = f.number("processes")? {
        o.processes = check::integer("processes", n, 1, crate::options::MAX_POOL_SIZE)? as usize;
    }
    if let Some(n) = f.number("basePort")? {
        o.base_port = Some(check::integer("basePort", n, 1024, 65535)? as u16);
    }
    if let Some(n) = f.number("healthCheckInterval")? {
        o.health_check_interval = Duration::from_millis(check::integer(
            "healthCheckInterval",
            n,
            10,
            crate::options::MAX_TIMEOUT_MS,
        )?);
    }
    workers(&f, &mut o)?;
    if let Some(n) = f.number("timeout")? {
        o.timeout = Some(check::milliseconds("timeout", n)?);
    }
    if let Some(n) = f.number("threads")? {
        o.threads = Some(check::integer("threads", n, 1, 1024)? as usize);
    }
    if let Some(s) = f.string("language")? {
        o.language = check::language("language", &s)?;
    }
    if let Some(n) = f.number("maxQueueSize")? {
        o.max_queue_size = check::integer("maxQueueSize", n, 0, 1_000_000)? as usize;
    }
    if let Some(n) = f.number("maxConsecutiveFailures")? {
        o.max_consecutive_failures = check::integer("maxConsecutiveFailures", n, 1, 1000)? as u32;
    }
    if let Some(n) = f.number("maxRequestsPerWorker")? {
        o.max_requests_per_worker = Some(check::integer(
            "maxRequestsPerWorker",
            n,
            1,
            u32::MAX as u64,
        )?);
    }
    if let Some(n) = f.number("maxDuration")? {
        o.limits.max_duration = Duration::from_millis(check::integer(
            "maxDuration",
            n,
            1000,
            crate::audio::MAX_DURATION.as_millis() as u64,
        )?);
    }
    if let Some(n) = f.number("maxFileSize")? {
        o.limits.max_file_bytes = check::integer("maxFileSize", n, 1, u64::from(u32::MAX) * 4)?;
    }
    if let Some(args) = f.strings("extraArgs")? {
        o.extra_args = args;
    }
    if let Some(s) = f.string("logLevel")? {
        o.log_level = check::log_level(&s)?;
    }
    o.finish()
}

/// poolSize sets both bounds; minWorkers and maxWorkers set one each (the
/// other following it), and idleTimeout how soon the pool shrinks.
fn workers(f: &Fields, o: &mut EngineOptions) -> Result<()> {
    if let Some(n) = f.number("poolSize")? {
        let size = check::pool_size("poolSize", n)?;
        o.min_workers = size;
        o.max_workers = size;
    }
    let min = f.number("minWorkers")?;
    let max = f.number("maxWorkers")?;
    if let Some(n) = max {
        o.max_workers = check::pool_size("maxWorkers", n)?;
        if min.is_none() && f.get("poolSize")?.is_none() {
            o.min_workers = 1;
        }
    }
    if let Some(n) = min {
        o.min_workers = check::integer("minWorkers", n, 0, crate::options::MAX_POOL_SIZE)? as usize;
        if max.is_none() && f.get("poolSize")?.is_none() {
            o.max_workers = o.max_workers.max(o.min_workers);
        }
    }
    if let Some(n) = f.number("idleTimeout")? {
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
    let mut options = TranscribeOptions::default();
    if let Some(s) = f.string("language")? {
        options.language = Some(check::language("language", &s)?);
    }
    if let Some(n) = f.number("timeout")? {
        options.timeout = Some(check::milliseconds("timeout", n)?);
    }
    if let Some(s) = f.string("priority")? {
        options.priority = check::priority(&s)?;
    }
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

/// An AbortSignal: an object with `aborted` and the listener methods.
fn abort_signal<'env>(env: &'env Env, value: Unknown<'env>) -> Result<Object<'env>> {
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
