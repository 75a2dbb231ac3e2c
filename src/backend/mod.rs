//! How a pool worker runs whisper. Every arrow here points down:
//!
//! - `prepare.rs`: from the validated options to a factory of backends:
//!   finds the program and proves it starts (falling back from the default
//!   backend to 'cli' where its program cannot), then makes each worker's
//!   `Backend`.
//! - `device.rs`: which device whisper decodes on (the `gpu` option: a
//!   GPU build where one works here, else the CPU build).
//! - `any.rs`: `Backend`, one value per worker, whichever backend it is.
//! - `cli.rs` (a whisper-cli per request), `server/` (a whisper-server per
//!   worker: ports, the socket owner check, HTTP), `program/` (the worker
//!   program, persistent-whisper-worker: slots over processes).
//! - Shared by them all: `request.rs` (a request, and how it can end
//!   unfinished), `threads.rs` (threads per request), `verdict.rs`
//!   (reading whisper's verdict).

mod any;
pub mod cli;
pub mod device;
mod prepare;
pub mod program;
mod request;
pub mod server;
mod threads;
mod verdict;

pub use any::Backend;
pub use prepare::{factory, locate_worker, prepare, BackendFactory, Prepared};
pub use request::{Loss, LossCause, PidReporter, Request, Unfinished};
pub use threads::Threads;
