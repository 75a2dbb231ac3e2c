//! The machinery behind [`crate::Decoding`]: one row per setting, from which
//! the macro below makes the struct, its defaults (whisper-cli's), its
//! whisper flags (parsing, range checks, and back to argv), its
//! whisper-server form fields, and its C form for the worker's shim (the
//! `#[repr(C)]` struct in Rust and the C declaration that build.rs writes
//! for shim.cpp), so that the two sides of the FFI cannot disagree.

use std::ffi::{c_char, CString};

/// A setting's type as a flag value, on the wire, and across the FFI.
pub trait Setting: Clone + PartialEq + Sized {
    /// Its form in the C struct.
    type Raw: Copy;
    /// Its C type, for the generated declaration.
    const C_TYPE: &'static str;
    /// Whether its flag takes a value (a switch does not).
    const TAKES_VALUE: bool = true;
    /// The value after `flag` (None for a switch).
    fn parse(flag: &str, value: Option<&str>) -> Result<Self, String>;
    /// The value after its flag in an argv (None: a switch, set).
    fn arg(&self) -> Option<String>;
    /// Its form-field text for whisper-server.
    fn form(&self) -> String;
    /// Its C form; strings are kept alive in `keep`.
    fn raw(&self, keep: &mut Vec<CString>) -> Result<Self::Raw, String>;
    /// Whether it lies in `min..=max`.
    fn within(&self, _min: f64, _max: f64) -> bool {
        true
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<&str>, what: &str) -> Result<T, String> {
    value
        .ok_or_else(|| format!("{flag} needs {what} after it"))?
        .trim()
        .parse()
        .map_err(|_| {
            format!(
                "{flag} needs {what} after it (got {:?})",
                value.unwrap_or("")
            )
        })
}

impl Setting for i32 {
    type Raw = i32;
    const C_TYPE: &'static str = "int32_t";
    fn parse(flag: &str, value: Option<&str>) -> Result<Self, String> {
        number(flag, value, "a whole number")
    }
    fn arg(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn form(&self) -> String {
        self.to_string()
    }
    fn raw(&self, _: &mut Vec<CString>) -> Result<i32, String> {
        Ok(*self)
    }
    fn within(&self, min: f64, max: f64) -> bool {
        (min..=max).contains(&(*self as f64))
    }
}

impl Setting for f32 {
    type Raw = f32;
    const C_TYPE: &'static str = "float";
    fn parse(flag: &str, value: Option<&str>) -> Result<Self, String> {
        let v: f32 = number(flag, value, "a number")?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{flag} needs a finite number after it"))
        }
    }
    fn arg(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn form(&self) -> String {
        self.to_string()
    }
    fn raw(&self, _: &mut Vec<CString>) -> Result<f32, String> {
        Ok(*self)
    }
    fn within(&self, min: f64, max: f64) -> bool {
        (min..=max).contains(&(*self as f64))
    }
}

impl Setting for bool {
    type Raw = bool;
    const C_TYPE: &'static str = "bool";
    const TAKES_VALUE: bool = false;
    fn parse(_: &str, _: Option<&str>) -> Result<Self, String> {
        Ok(true)
    }
    fn arg(&self) -> Option<String> {
        None
    }
    fn form(&self) -> String {
        self.to_string()
    }
    fn raw(&self, _: &mut Vec<CString>) -> Result<bool, String> {
        Ok(*self)
    }
}

impl Setting for String {
    type Raw = *const c_char;
    const C_TYPE: &'static str = "const char *";
    fn parse(flag: &str, value: Option<&str>) -> Result<Self, String> {
        value
            .map(str::to_owned)
            .ok_or_else(|| format!("{flag} needs a text after it"))
    }
    fn arg(&self) -> Option<String> {
        Some(self.clone())
    }
    fn form(&self) -> String {
        self.clone()
    }
    fn raw(&self, keep: &mut Vec<CString>) -> Result<*const c_char, String> {
        let c =
            CString::new(self.as_str()).map_err(|_| "a text holds a NUL character".to_owned())?;
        // The CString's heap buffer does not move when the Vec grows.
        let ptr = c.as_ptr();
        keep.push(c);
        Ok(ptr)
    }
}

/// One whisper flag of a setting: its names, how it reads its value into
/// the settings, and how the settings give it back as arguments.
#[derive(Clone, Copy)]
pub struct SettingFlag {
    /// The short name (`-bs`), or "" when there is none.
    pub short: &'static str,
    /// The long name (`--beam-size`).
    pub long: &'static str,
    pub takes_value: bool,
    /// How whisper-server takes it.
    pub server: ServerTakes,
    /// Reads the flag (and its value) into the settings, range-checked.
    pub apply: fn(&mut crate::Decoding, &str, Option<&str>) -> Result<(), String>,
    /// The flag and its value as whisper-cli takes them, when the setting
    /// is not at its default.
    pub args: fn(&crate::Decoding) -> Option<Vec<String>>,
}

impl SettingFlag {
    /// Whether `flag` is one of its names.
    pub fn is(&self, flag: &str) -> bool {
        flag == self.long || (!self.short.is_empty() && flag == self.short)
    }

    /// The name whisper-cli is given: the short one where there is one.
    pub fn name(&self) -> &'static str {
        if self.short.is_empty() {
            self.long
        } else {
            self.short
        }
    }
}

/// How whisper-server takes a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTakes {
    /// Per request, in this form field.
    Form(&'static str),
    /// Only on its command line, when it starts.
    CommandLine,
    /// Not at all.
    No,
}

/// Writes the C declaration of a struct, one `(type, name)` per field.
pub fn c_struct(name: &str, fields: &[(&str, &str)]) -> String {
    let mut out = format!("struct {name} {{\n");
    for (ty, field) in fields {
        out.push_str(&format!("    {ty} {field};\n"));
    }
    out.push_str("};\n");
    out
}

/// Declares the decoding settings: each row is a field, its type and
/// default, its whisper flags, optionally the range its value must lie in,
/// and how whisper-server takes it.
macro_rules! decoding_settings {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $default:expr,
            flags($short:literal, $long:literal)
            $(, range($min:expr, $max:expr))?,
            server($server:expr);
    )*) => {
        /// How whisper decodes: whisper-cli's settings, its defaults unless
        /// a flag in `extraArgs` says otherwise. The one definition of every
        /// decoding flag (see the table in `lib.rs`).
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        pub struct Decoding {
            $($(#[doc = $doc])* pub $field: $ty,)*
        }

        impl Default for Decoding {
            /// whisper-cli 1.9.1's defaults.
            fn default() -> Self {
                Decoding { $($field: $default,)* }
            }
        }

        /// The settings as shim.cpp reads them (same fields, C types).
        #[repr(C)]
        #[derive(Clone, Copy)]
        pub struct RawDecoding {
            $(pub $field: <$ty as $crate::settings::Setting>::Raw,)*
        }

        impl Decoding {
            /// Every decoding flag, in declaration order.
            pub const FLAGS: &'static [$crate::settings::SettingFlag] = &[$(
                $crate::settings::SettingFlag {
                    short: $short,
                    long: $long,
                    takes_value: <$ty as $crate::settings::Setting>::TAKES_VALUE,
                    server: $server,
                    apply: |d, flag, value| {
                        let v = <$ty as $crate::settings::Setting>::parse(flag, value)?;
                        $(
                            if !$crate::settings::Setting::within(&v, $min as f64, $max as f64) {
                                return Err(format!("{flag} must be from {} to {} (got {})", $min, $max, value.unwrap_or("")));
                            }
                        )?
                        d.$field = v;
                        Ok(())
                    },
                    args: |d| {
                        if d.$field == Decoding::default().$field {
                            return None;
                        }
                        let name = if $short.is_empty() { $long } else { $short };
                        let mut args = vec![name.to_owned()];
                        args.extend($crate::settings::Setting::arg(&d.$field));
                        Some(args)
                    },
                },
            )*];

            /// Its whisper-server form fields, for the settings whisper-server
            /// takes per request.
            pub fn form_fields(&self) -> Vec<(&'static str, String)> {
                let mut fields = Vec::new();
                $(
                    if let $crate::settings::ServerTakes::Form(name) = $server {
                        fields.push((name, $crate::settings::Setting::form(&self.$field)));
                    }
                )*
                fields
            }

            /// Its C form; the strings it points to live in `keep`.
            pub fn raw(&self, keep: &mut Vec<std::ffi::CString>) -> Result<RawDecoding, String> {
                Ok(RawDecoding {
                    $($field: $crate::settings::Setting::raw(&self.$field, keep)?,)*
                })
            }

            /// The C declaration of [`RawDecoding`], for shim.cpp.
            pub fn c_declaration() -> String {
                $crate::settings::c_struct("pw_decoding", &[
                    $((<$ty as $crate::settings::Setting>::C_TYPE, stringify!($field)),)*
                ])
            }
        }
    };
}

pub(crate) use decoding_settings;
