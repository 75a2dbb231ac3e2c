//! napi glue: a caller's AbortSignal, listened to with addEventListener so that
//! the caller's own `onabort` and listeners keep working, and unhooked once
//! the request settles so that a long-lived signal does not collect listeners.

use napi::bindgen_prelude::*;

pub struct AbortListener {
    signal: ObjectRef<false>,
    listener: ObjectRef<false>,
}

pub fn is_aborted(signal: &Object) -> bool {
    signal
        .get_named_property::<bool>("aborted")
        .unwrap_or(false)
}

/// `target[method]('abort', listener)`: addEventListener / removeEventListener.
fn call_method(target: &Object, method: &str, listener: &Object) -> Result<()> {
    let f: Function<FnArgs<(&str, Object)>, Unknown> = target.get_named_property(method)?;
    f.apply(target, ("abort", *listener).into())?;
    Ok(())
}

/// Calls `on_abort` (on the JS thread) when the signal fires.
pub fn listen(env: &Env, signal: &Object, on_abort: impl Fn() + 'static) -> Result<AbortListener> {
    let function = env.create_function_from_closure::<Unknown, (), _>("onAbort", move |_| {
        on_abort();
        Ok(())
    })?;
    let listener = Object::from_raw(env.raw(), function.raw());
    call_method(signal, "addEventListener", &listener)?;
    Ok(AbortListener {
        signal: signal.create_ref()?,
        listener: listener.create_ref()?,
    })
}

impl AbortListener {
    pub fn remove(self, env: &Env) -> Result<()> {
        let signal = self.signal.get_value(env)?;
        let listener = self.listener.get_value(env)?;
        let removed = call_method(&signal, "removeEventListener", &listener);
        self.signal.unref(env)?;
        self.listener.unref(env)?;
        removed
    }
}
