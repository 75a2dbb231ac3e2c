//! persistent-whisper: a pool of whisper.cpp worker processes for Node.js
//! and Electron.
//!
//! # Layout
//!
//! From the top (JavaScript) down; each layer uses only the ones below it.
//!
//! - `js/`: the napi glue. `engine.rs` the native class and functions,
//!   `options.rs` reading JS options into [`options::EngineOptions`],
//!   `types.rs` what JS gets back, `error.rs` coded JS Errors, `abort.rs`
//!   the caller's AbortSignal.
//! - [`engine`]: the engine's task, which runs every call in the order it
//!   was made (lifecycle, admission with its file checks, status).
//! - [`pool`]: the queue, the workers (one record each), dispatch, growth
//!   and shrinking, replacement, statistics and percentiles.
//! - [`backend`]: how one worker runs whisper: `cli` (a whisper-cli per
//!   request) or `server` (a whisper-server per worker: ports, the socket
//!   owner check, HTTP); the factory from the options; whisper's verdicts.
//! - Plain pieces: [`options`] (validation), [`decoding`] (the whisper flags
//!   `extraArgs` may hold, in one table), [`audio`]
//!   (file checks, duration), [`model`] (model header), [`locate`] (finding
//!   the programs, CPU variants), [`process`] (spawning, death with the host),
//!   [`transcript`], [`language`], [`events`], [`error`],
//!   [`log`], [`cancel`], [`notify`], [`observe`] (progress and segments).

pub mod audio;
pub mod backend;
pub mod cancel;
pub mod decoding;
pub mod engine;
pub mod error;
pub mod events;
pub mod language;
pub mod live;
pub mod locate;
pub mod log;
pub mod model;
pub mod notify;
pub mod observe;
pub mod options;
pub mod pool;
pub mod process;
pub mod transcript;

pub mod js;
