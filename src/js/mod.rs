//! The napi glue: JavaScript values in, core types out, and back. Nothing
//! here decides anything the core could.

mod abort;
pub mod engine;
mod error;
mod fields;
pub mod live;
mod options;
mod types;
