//! persistent-whisper: a pool of whisper.cpp worker processes for Node.js.
//!
//! This file is the napi glue only: it converts JS values to core types and
//! core errors to JS errors with a `code`. The engine lives in plain Rust.

pub mod audio;
pub mod backend;
pub mod cancel;
pub mod decoding;
pub mod engine;
pub mod error;
pub mod language;
pub mod locate;
pub mod log;
pub mod model;
pub mod options;
pub mod pool;
pub mod process;
pub mod signal;
pub mod transcript;
pub mod worker;

mod abort;
mod js;

use engine::Engine;
use error::WhisperError;
use js::{to_js_error, to_thrown};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use options::{EngineOptions, RawEngineOptions, RawTranscribeOptions, TranscribeOptions};
use std::future::Future;
use std::sync::Arc;

/// A Promise that settles with `convert(value)` or rejects with a coded Error.
fn promise<'env, T, V>(
    env: &'env Env,
    work: impl Future<Output = std::result::Result<T, WhisperError>> + Send + 'static,
    convert: impl FnOnce(T) -> V + 'static,
) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
{
    env.spawn_future_with_callback(async move { Ok(work.await) }, move |env, result| {
        result.map(convert).map_err(|e| to_js_error(env, &e))
    })
}

/// A pool of whisper.cpp worker processes. Every method returns a Promise;
/// every rejection is an Error with a stable `code`.
#[napi]
pub struct PersistentWhisperEngine {
    engine: Arc<Engine>,
}

#[napi]
impl PersistentWhisperEngine {
    /// Validates the options; throws ERR_INVALID_OPTIONS naming the bad one.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options: PersistentWhisperOptions"
    )]
    pub fn new(env: Env, options: Unknown) -> std::result::Result<Self, Error<&'static str>> {
        if !matches!(options.get_type(), Ok(ValueType::Object)) {
            return Err(to_thrown(WhisperError::invalid(
                "options",
                "must be an object, at least { modelPath: 'path/to/ggml-model.bin' }",
            )));
        }
        // SAFETY: `options` is a live object of this call's env.
        let js = unsafe { js::PersistentWhisperOptions::from_napi_value(env.raw(), options.raw()) }
            .map_err(|e| to_thrown(js::conversion_error(&e.reason)))?;
        let options = EngineOptions::from_raw(RawEngineOptions::from(js)).map_err(to_thrown)?;
        Ok(PersistentWhisperEngine {
            engine: Arc::new(Engine::new(options, None)),
        })
    }

    /// Finds whisper-cli, checks the model, and starts the workers.
    /// Calling it again while running is harmless.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn initialize<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let engine = self.engine.clone();
        promise(env, async move { engine.initialize().await }, |()| ())
    }

    #[napi(
        catch_unwind,
        ts_args_type = "audioFilePath: string, options?: TranscribeOptions",
        ts_return_type = "Promise<TranscriptionResult>"
    )]
    pub fn transcribe<'env>(
        &self,
        env: &'env Env,
        audio_file_path: Unknown,
        options: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, js::TranscriptionResult>> {
        let options = transcribe_options(env, options);
        let signal = options.as_ref().ok().and_then(|o| o.as_ref()?.signal);
        let submitted = options.and_then(|options| {
            let path = audio_path(audio_file_path)?;
            let raw = options
                .as_ref()
                .map_or_else(RawTranscribeOptions::default, |o| o.raw());
            let options = TranscribeOptions::from_raw(raw)?;
            if signal.as_ref().is_some_and(abort::is_aborted) {
                return Err(WhisperError::Aborted { path });
            }
            self.engine.transcribe(&path, options)
        });
        // Listen only to requests that were queued; unhook once they settle.
        let listener = match (&submitted, signal) {
            (Ok(s), Some(signal)) => {
                let handle = s.abort_handle();
                Some(abort::listen(env, &signal, move || {
                    handle.abort();
                })?)
            }
            _ => None,
        };
        // The engine lives while its requests do, even if JS lets go of it.
        let engine = self.engine.clone();
        env.spawn_future_with_callback(
            async move {
                let _engine = engine;
                Ok(match submitted {
                    Ok(s) => s
                        .reply
                        .await
                        .unwrap_or_else(|_| Err(WhisperError::shutdown())),
                    Err(e) => Err(e),
                })
            },
            move |env, result| {
                if let Some(listener) = listener {
                    listener.remove(env)?;
                }
                result
                    .map(js::TranscriptionResult::from)
                    .map_err(|e| to_js_error(env, &e))
            },
        )
    }

    #[napi(catch_unwind, ts_return_type = "Promise<EngineStatus>")]
    pub fn get_status<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, js::EngineStatus>> {
        let status = self.engine.status();
        promise(env, async move { Ok(status) }, js::EngineStatus::from)
    }

    #[napi(catch_unwind, ts_return_type = "Promise<WorkerStatus[]>")]
    pub fn get_worker_statuses<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Vec<js::WorkerStatus>>> {
        let statuses = self.engine.worker_statuses();
        promise(env, async move { Ok(statuses) }, |s| {
            s.into_iter().map(js::WorkerStatus::from).collect()
        })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<QueueStatus>")]
    pub fn get_queue_status<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, js::QueueStatus>> {
        let status = self.engine.queue_status();
        promise(env, async move { Ok(status) }, js::QueueStatus::from)
    }

    /// Rejects queued requests with ERR_SHUTDOWN, ends every worker process,
    /// and resolves when none is left. A second call rejects with ERR_SHUTDOWN.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn shutdown<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let engine = self.engine.clone();
        promise(env, async move { engine.shutdown().await }, |()| ())
    }

    /// Replaces every worker; queued requests wait, running ones start over.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn restart<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let engine = self.engine.clone();
        promise(env, async move { engine.restart().await }, |()| ())
    }
}

/// Every `code` a rejection of this package can carry (lib/index.js
/// exports it as `ERROR_CODES`).
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    WhisperError::CODES.to_vec()
}

/// Which whisper program the engine would run on this machine when no path
/// is given, and where it was found: the environment variable, the installed
/// platform package (with the CPU variant chosen for this machine), a
/// development checkout's build, or the PATH.
#[napi(
    catch_unwind,
    ts_args_type = "program?: 'whisper-cli' | 'whisper-server'",
    ts_return_type = "Promise<ProgramStatus>"
)]
pub fn locate_whisper<'env>(
    env: &'env Env,
    program: Option<Unknown<'env>>,
) -> napi::Result<PromiseRaw<'env, js::ProgramStatus>> {
    let program = match program.map(|p| (p.get_type(), p)) {
        None | Some((Ok(ValueType::Undefined), _)) => Ok(&locate::WHISPER_CLI),
        Some((Ok(ValueType::String), value)) => {
            // SAFETY: a string value of the current call.
            match unsafe { String::from_napi_value(env.raw(), value.raw()) }?.as_str() {
                "whisper-cli" => Ok(&locate::WHISPER_CLI),
                "whisper-server" => Ok(&locate::WHISPER_SERVER),
                other => Err(WhisperError::invalid(
                    "program",
                    format!("must be \"whisper-cli\" or \"whisper-server\" (got {other:?})"),
                )),
            }
        }
        _ => Err(WhisperError::invalid(
            "program",
            "must be \"whisper-cli\" or \"whisper-server\"",
        )),
    };
    promise(
        env,
        async move { locate::find(program?, None, None, &locate::Places::of_this_process()) },
        js::ProgramStatus::from,
    )
}

/// transcribe()'s options, when given, must be an object of the right shape.
fn transcribe_options<'env>(
    env: &'env Env,
    options: Option<Unknown<'env>>,
) -> std::result::Result<Option<js::TranscribeOptions<'env>>, WhisperError> {
    let Some(value) = options else {
        return Ok(None);
    };
    match value.get_type() {
        Ok(ValueType::Undefined) | Ok(ValueType::Null) => Ok(None),
        Ok(ValueType::Object) => {
            // SAFETY: a live object of this call's env.
            unsafe { js::TranscribeOptions::from_napi_value(env.raw(), value.raw()) }
                .map(Some)
                .map_err(|e| js::conversion_error(&e.reason))
        }
        _ => Err(WhisperError::invalid(
            "options",
            "must be an object such as { language, timeout, priority, signal }",
        )),
    }
}

/// transcribe()'s path must be a string; anything else is a caller's mistake
/// reported like a missing file would be, with a code.
fn audio_path(value: Unknown) -> std::result::Result<String, WhisperError> {
    match value.get_type() {
        Ok(ValueType::String) => {
            // SAFETY: a string value of the current call.
            unsafe { String::from_napi_value(value.env(), value.raw()) }
                .map_err(|e| WhisperError::invalid("audioFilePath", e.reason.clone()))
        }
        _ => Err(WhisperError::invalid(
            "audioFilePath",
            "must be a string: the path of an audio file",
        )),
    }
}
