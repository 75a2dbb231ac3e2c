//! Reading a JS options object: each property by its name, with its type,
//! a getter that throws or a wrong type becoming an ERR_INVALID_OPTIONS that
//! names the option. `js_read!` gives an options object declared once (the
//! `#[napi(object)]` struct index.d.ts shows) the reader that takes each
//! field by the name JavaScript gives it, so the two cannot disagree.

use crate::error::WhisperError;
use crate::js::error::take_exception;
use napi::bindgen_prelude::*;

pub(super) type Result<T> = std::result::Result<T, WhisperError>;

pub(super) fn type_name(t: ValueType) -> &'static str {
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
pub(super) struct Fields<'env> {
    env: &'env Env,
    pub object: Object<'env>,
}

impl<'env> Fields<'env> {
    /// `value` must be an object; `what` names it in the error.
    pub fn of(env: &'env Env, value: Unknown<'env>, what: &str, example: &str) -> Result<Self> {
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
    pub fn get(&self, name: &str) -> Result<Option<Unknown<'env>>> {
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

    pub fn wrong(name: &str, wanted: &str, v: &Unknown) -> WhisperError {
        let got = v.get_type().map_or("something else", type_name);
        WhisperError::invalid(
            name,
            format!("has the wrong type: must be {wanted} (got {got})"),
        )
    }

    pub fn string(&self, name: &str) -> Result<Option<String>> {
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

    pub fn number(&self, name: &str) -> Result<Option<f64>> {
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

    pub fn boolean(&self, name: &str) -> Result<Option<bool>> {
        let Some(v) = self.get(name)? else {
            return Ok(None);
        };
        if !matches!(v.get_type(), Ok(ValueType::Boolean)) {
            return Err(Self::wrong(name, "a boolean", &v));
        }
        // SAFETY: a boolean value of this env.
        unsafe { bool::from_napi_value(self.env.raw(), v.raw()) }
            .map(Some)
            .map_err(|e| WhisperError::invalid(name, e.reason))
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
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

/// A field's type as a JS value: how to read it.
pub(super) trait JsField: Sized {
    fn read(f: &Fields, name: &str) -> Result<Self>;
}

impl JsField for Option<String> {
    fn read(f: &Fields, name: &str) -> Result<Self> {
        f.string(name)
    }
}

impl JsField for Option<f64> {
    fn read(f: &Fields, name: &str) -> Result<Self> {
        f.number(name)
    }
}

impl JsField for Option<bool> {
    fn read(f: &Fields, name: &str) -> Result<Self> {
        f.boolean(name)
    }
}

impl JsField for Option<Vec<String>> {
    fn read(f: &Fields, name: &str) -> Result<Self> {
        f.strings(name)
    }
}

/// A required text.
impl JsField for String {
    fn read(f: &Fields, name: &str) -> Result<Self> {
        f.string(name)?
            .ok_or_else(|| WhisperError::invalid(name, "is required"))
    }
}

/// A field whose value is not read by its struct's reader (a handle such as
/// an AbortSignal or a callback, taken where it is used).
pub struct Handle;

impl JsField for Option<Handle> {
    fn read(_: &Fields, _: &str) -> Result<Self> {
        Ok(None)
    }
}

/// The name napi gives a field in JavaScript: `model_path` is `modelPath`.
pub(super) fn js_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Gives a `#[napi(object)]` struct (the TypeScript view, declared once
/// with its doc comments) `read()`, which takes every field by the name
/// JavaScript gives it, its reader chosen by the field's type. The struct
/// literal names every field: one missing or misspelled here does not
/// compile.
macro_rules! js_read {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl $name {
            /// Every field, read by the name JavaScript gives it.
            fn read(f: &$crate::js::fields::Fields) -> $crate::js::fields::Result<Self> {
                Ok($name {
                    $($field: $crate::js::fields::JsField::read(
                        f,
                        &$crate::js::fields::js_name(stringify!($field)),
                    )?,)*
                })
            }
        }
    };
}

pub(super) use js_read;

#[cfg(test)]
mod tests {
    #[test]
    fn js_names_are_napis_camel_case() {
        assert_eq!(super::js_name("model_path"), "modelPath");
        assert_eq!(
            super::js_name("max_requests_per_worker"),
            "maxRequestsPerWorker"
        );
        assert_eq!(super::js_name("language"), "language");
    }
}
