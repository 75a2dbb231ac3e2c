//! The native engine class and functions. Each method reads its arguments,
//! hands them to the core, and returns a Promise that settles on the JS
//! thread with a result or a coded Error. No method throws.

use crate::engine::{Engine, Submitted};
use crate::error::WhisperError;
use crate::events::{Event, EventSink};
use crate::js::abort;
use crate::js::error::{to_js_error, to_thrown};
use crate::js::live;
use crate::js::options::{engine_options, transcription};
use crate::js::types;
use crate::locate;
use crate::observe::{Observer, Report};
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

/// A request's reports go to a JS function (lib/index.js calls onProgress
/// and onSegment); held strongly, only while the request runs.
type ReportCallback =
    ThreadsafeFunction<types::RequestReport, (), types::RequestReport, Status, false>;

/// A live session's events go to a JS function (lib/live.js emits them),
/// held strongly until the session closes: an open session keeps Node
/// running, as an open socket does, so that `await session.end()` gets its
/// answer.
type LiveCallback =
    ThreadsafeFunction<live::LiveSessionEvent, (), live::LiveSessionEvent, Status, false>;

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

    /// `report` gets the request's progress and segments when its options
    /// ask for them, then an 'end' report, all before the Promise settles.
    #[napi(
        catch_unwind,
        ts_args_type = "audio: string | Float32Array | Uint8Array, options?: TranscribeOptions, report?: (report: RequestReport) => void",
        ts_return_type = "Promise<TranscriptionResult>"
    )]
    pub fn transcribe<'env>(
        &self,
        env: &'env Env,
        audio: Unknown<'env>,
        options: Option<Unknown<'env>>,
        report: Option<ReportCallback>,
    ) -> napi::Result<PromiseRaw<'env, types::TranscriptionResult>> {
        let request = match transcription(env, audio, options) {
            Ok(r) => r,
            Err(e) => return rejected(env, e),
        };
        if request
            .signal
            .as_ref()
            .is_some_and(|s| abort::is_aborted(env, s))
        {
            return rejected(
                env,
                WhisperError::Aborted {
                    path: request.input.describe(),
                },
            );
        }
        let report = report.filter(|_| request.observed).map(Arc::new);
        let observer = report.clone().map(|callback| {
            Arc::new(Observer::new(Arc::new(move |r: Report| {
                callback.call(r.into(), ThreadsafeFunctionCallMode::NonBlocking);
            })))
        });
        let submitted = self
            .engine
            .transcribe_observed(request.input, request.options, observer);
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
                let reply = Submitted::settle(submitted).await;
                // Calls run in the order they were queued: once 'end' has
                // run, every report has reached the caller.
                if let Some(report) = report {
                    let _ = report.call_async(types::RequestReport::end()).await;
                }
                Ok(reply)
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

    /// Starts a live session once the voice activity detector is up;
    /// `onEvent` gets its events, 'close' last.
    #[napi(
        catch_unwind,
        ts_args_type = "options: ListenOptions | undefined, onEvent: (event: LiveSessionEvent) => void",
        ts_return_type = "Promise<NativeLiveSession>"
    )]
    pub fn listen<'env>(
        &self,
        env: &'env Env,
        options: Option<Unknown<'env>>,
        on_event: LiveCallback,
    ) -> napi::Result<PromiseRaw<'env, live::NativeLiveSession>> {
        let (options, signal) = match live::listen_options(env, options) {
            Ok(r) => r,
            Err(e) => return rejected(env, e),
        };
        if signal.as_ref().is_some_and(|s| abort::is_aborted(env, s)) {
            return rejected(
                env,
                WhisperError::Aborted {
                    path: "the live session".into(),
                },
            );
        }
        let signal = match signal.map(|s| s.create_ref::<false>()).transpose() {
            Ok(signal) => signal,
            Err(e) => return rejected(env, WhisperError::invalid("signal", e.reason)),
        };
        let engine = self.engine.clone();
        let setup = engine.live_setup();
        env.spawn_future_with_callback(
            async move {
                let started = async {
                    let setup = setup.await?;
                    setup.vad.ready().await?;
                    Ok(setup)
                };
                Ok((started.await, tokio::runtime::Handle::current()))
            },
            move |env, (setup, runtime)| {
                let signal = signal.map(|s| {
                    let value = s.get_value(env);
                    let _ = s.unref(env);
                    value
                });
                let setup = setup.map_err(|e| to_js_error(env, &e))?;
                let emit: crate::live::Emit = Arc::new(move |event| {
                    on_event.call(event.into(), ThreadsafeFunctionCallMode::NonBlocking);
                });
                let session = crate::live::start((*engine).clone(), setup, options, emit, &runtime);
                let mut native = live::NativeLiveSession::new(session);
                if let Some(Ok(signal)) = signal {
                    // Aborted while the detector started: the session ends at once.
                    if abort::is_aborted(env, &signal) {
                        native.abort();
                    } else if let Err(thrown) = native.follow(env, &signal) {
                        native.abort();
                        let error = WhisperError::invalid(
                            "signal",
                            format!("its addEventListener threw: {thrown}"),
                        );
                        return Err(to_js_error(env, &error));
                    }
                }
                Ok(native)
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

const PROGRAMS: &str = "\"whisper-cli\", \"whisper-server\" or \"persistent-whisper-worker\"";

/// Which whisper program the engine would run on this machine when no path
/// is given, and where it was found: the environment variable, the installed
/// platform package (with the CPU variant chosen for this machine), a
/// development checkout's build, or the PATH.
#[napi(
    catch_unwind,
    ts_args_type = "program?: 'whisper-cli' | 'whisper-server' | 'persistent-whisper-worker'",
    ts_return_type = "Promise<ProgramStatus>"
)]
pub fn locate_whisper<'env>(
    env: &'env Env,
    program: Option<Unknown<'env>>,
) -> napi::Result<PromiseRaw<'env, types::ProgramStatus>> {
    let wanted = |name: &str| match name {
        "whisper-cli" => Ok(&locate::WHISPER_CLI),
        "whisper-server" => Ok(&locate::WHISPER_SERVER),
        "persistent-whisper-worker" => Ok(&locate::WHISPER_WORKER),
        other => Err(WhisperError::invalid(
            "program",
            format!("must be {PROGRAMS} (got {other:?})"),
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
            format!("must be {PROGRAMS}"),
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
        |l| types::ProgramStatus::of(l, None),
    )
}
