//! A caller's AbortSignal, listened to with addEventListener so that the
//! caller's own `onabort` and listeners keep working, and unhooked once the
//! request settles so that a long-lived signal does not collect listeners.
//! The request settles first; a failing unhook changes nothing about it.

use crate::js::error::take_exception;
use napi::bindgen_prelude::*;

pub struct AbortListener {
    signal: ObjectRef<false>,
    listener: ObjectRef<false>,
}

/// `signal.aborted`; a getter that throws counts as not aborted.
pub fn is_aborted(env: &Env, signal: &Object) -> bool {
    match signal.get_named_property::<bool>("aborted") {
        Ok(aborted) => aborted,
        Err(_) => {
            take_exception(env);
            false
        }
    }
}

/// `target[method]('abort', listener)`: addEventListener / removeEventListener.
fn call_method(target: &Object, method: &str, listener: &Object) -> Result<()> {
    let f: Function<FnArgs<(&str, Object)>, Unknown> = target.get_named_property(method)?;
    f.apply(target, ("abort", *listener).into())?;
    Ok(())
}

/// Calls `on_abort` (on the JS thread) when the signal fires. Err when the
/// signal's addEventListener throws (the exception is cleared).
pub fn listen(
    env: &Env,
    signal: &Object,
    on_abort: impl Fn() + 'static,
) -> std::result::Result<AbortListener, String> {
    let attach = || -> Result<AbortListener> {
        let function =
            env.create_function_from_closure::<Unknown, (), _>("onAbort", move |_| {
                on_abort();
                Ok(())
            })?;
        let listener = Object::from_raw(env.raw(), function.raw());
        call_method(signal, "addEventListener", &listener)?;
        Ok(AbortListener {
            signal: signal.create_ref()?,
            listener: listener.create_ref()?,
        })
    };
    attach().map_err(|e| take_exception(env).unwrap_or(e.reason))
}

impl AbortListener {
    /// Unhooks the listener; whatever goes wrong is swallowed.
    pub fn remove(self, env: &Env) {
        if let (Ok(signal), Ok(listener)) =
            (self.signal.get_value(env), self.listener.get_value(env))
        {
            if call_method(&signal, "removeEventListener", &listener).is_err() {
                take_exception(env);
            }
        }
        let _ = self.signal.unref(env);
        let _ = self.listener.unref(env);
    }
}
