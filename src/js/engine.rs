//! The native engine class and functions. Each method reads its arguments,
//! hands them to the core, and returns a Promise that settles on the JS
//! thread with a result or a coded Error. No method throws.

use crate::engine::{Engine, Submitted};
use crate::error::WhisperError;
use crate::events::{Event, EventSink};
use crate::js::abort;
use crate::js::error::{to_js_error, to_thrown};
use crate::js::options::{engine_options, transcription};
use crate::js::types;
use crate::locate;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
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

/// A Promise that is rejected already (the request never got anywhere).
fn rejected<'env, V: ToNapiValue + Send + 'static>(
    env: &'env Env,
    error: WhisperError,
) -> napi::Result<PromiseRaw<'env, V>> {
    promise(env, async move { Err::<V, _>(error) }, |v| v)
}

/// Events go to a JS function through a weak threadsafe function: it keeps
/// no Node process alive, and the JS layer emits them.
type EventCallback =
    ThreadsafeFunction<types::EngineEvent, (), types::EngineEvent, Status, false, true>;

/// A pool of whisper.cpp worker processes (the JS layer, lib/index.js,
/// wraps it as an EventEmitter).
#[napi(js_name = "NativeEngine")]
pub struct NativeEngine {
    engine: Arc<Engine>,
}

#[napi]
impl NativeEngine {
    /// Validates the options; throws ERR_INVALID_OPTIONS naming the bad one.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options: PersistentWhisperOptions, onEvent?: (event: EngineEvent) => void"
    )]
    pub fn new(
        env: Env,
        options: Option<Unknown>,
        on_event: Option<EventCallback>,
    ) -> std::result::Result<Self, Error<&'static str>> {
        let options = engine_options(&env, options).map_err(to_thrown)?;
        let events: EventSink = match on_event {
            Some(callback) => Arc::new(move |event: Event| {
                callback.call(event.into(), ThreadsafeFunctionCallMode::NonBlocking);
            }),
            None => crate::events::ignore(),
        };
        let runtime =
            napi::bindgen_prelude::within_runtime_if_available(tokio::runtime::Handle::current);
        Ok(NativeEngine {
            engine: Arc::new(Engine::new(options, &runtime, None, events)),
        })
    }

    /// Finds the whisper program, checks the model, and starts the workers.
    /// Calling it again while running is harmless.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn initialize<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        promise(env, self.engine.initialize(), |()| ())
    }

    #[napi(
        catch_unwind,
        ts_args_type = "audioFilePath: string, options?: TranscribeOptions",
        ts_return_type = "Promise<TranscriptionResult>"
    )]
    pub fn transcribe<'env>(
        &self,
        env: &'env Env,
        audio_file_path: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, types::TranscriptionResult>> {
        let request = match transcription(env, audio_file_path, options) {
            Ok(r) => r,
            Err(e) => return rejected(env, e),
        };
        if request
            .signal
            .as_ref()
            .is_some_and(|s| abort::is_aborted(env, s))
        {
            return rejected(env, WhisperError::Aborted { path: request.path });
        }
        let submitted = self.engine.transcribe(request.path, request.options);
        // Listen only to requests that were queued; unhook once they settle.
        let listener = match request.signal {
            Some(signal) => {
                let handle = submitted.abort_handle();
                match abort::listen(env, &signal, move || handle.abort()) {
                    Ok(listener) => Some(listener),
                    Err(thrown) => {
                        submitted.abort_handle().abort();
                        return rejected(
                            env,
                            WhisperError::invalid(
                                "signal",
                                format!("its addEventListener threw: {thrown}"),
                            ),
                        );
                    }
                }
            }
            None => None,
        };
        // The engine lives while its requests do, even if JS lets go of it.
        let engine = self.engine.clone();
        env.spawn_future_with_callback(
            async move {
                let _engine = engine;
                Ok(Submitted::settle(submitted).await)
            },
            move |env, result| {
                // Settle first; a failing unhook changes nothing.
                let settled = result
                    .map(types::TranscriptionResult::from)
                    .map_err(|e| to_js_error(env, &e));
                if let Some(listener) = listener {
                    listener.remove(env);
                }
                settled
            },
        )
    }

    #[napi(catch_unwind, ts_return_type = "Promise<EngineStatus>")]
    pub fn get_status<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, types::EngineStatus>> {
        let status = self.engine.status();
        promise(
            env,
            async move { Ok(status.await) },
            types::EngineStatus::from,
        )
    }

    #[napi(catch_unwind, ts_return_type = "Promise<WorkerStatus[]>")]
    pub fn get_worker_statuses<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Vec<types::WorkerStatus>>> {
        let statuses = self.engine.worker_statuses();
        promise(env, async move { Ok(statuses.await) }, |s| {
            s.into_iter().map(types::WorkerStatus::from).collect()
        })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<QueueStatus>")]
    pub fn get_queue_status<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, types::QueueStatus>> {
        let status = self.engine.queue_status();
        promise(
            env,
            async move { Ok(status.await) },
            types::QueueStatus::from,
        )
    }

    /// Rejects queued requests with ERR_SHUTDOWN, ends every worker process,
    /// and resolves when none is left. A second call rejects with ERR_SHUTDOWN.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn shutdown<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        promise(env, self.engine.shutdown(), |()| ())
    }

    /// Replaces every worker; queued requests wait, running ones start over.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn restart<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        promise(env, self.engine.restart(), |()| ())
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
) -> napi::Result<PromiseRaw<'env, types::ProgramStatus>> {
    let wanted = |name: &str| match name {
        "whisper-cli" => Ok(&locate::WHISPER_CLI),
        "whisper-server" => Ok(&locate::WHISPER_SERVER),
        other => Err(WhisperError::invalid(
            "program",
            format!("must be \"whisper-cli\" or \"whisper-server\" (got {other:?})"),
        )),
    };
    let program = match program.map(|p| (p.get_type(), p)) {
        None | Some((Ok(ValueType::Undefined), _)) => Ok(&locate::WHISPER_CLI),
        // SAFETY: a string value of the current call.
        Some((Ok(ValueType::String), value)) => {
            match unsafe { String::from_napi_value(env.raw(), value.raw()) } {
                Ok(name) => wanted(&name),
                Err(e) => Err(WhisperError::invalid("program", e.reason)),
            }
        }
        _ => Err(WhisperError::invalid(
            "program",
            "must be \"whisper-cli\" or \"whisper-server\"",
        )),
    };
    promise(
        env,
        async move {
            let program = program?;
            tokio::task::spawn_blocking(move || {
                locate::find(program, None, None, &locate::Places::of_this_process())
            })
            .await
            .unwrap_or_else(|e| {
                Err(WhisperError::NoWorker {
                    detail: e.to_string(),
                })
            })
        },
        types::ProgramStatus::from,
    )
}
