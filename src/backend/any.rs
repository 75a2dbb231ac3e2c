//! `Backend`: how one pool worker runs whisper, whichever backend it is.

use super::cli::CliBackend;
use super::program::ProgramSlot;
use super::request::{PidReporter, Request, Unfinished};
use super::server::ServerBackend;
use crate::cancel::{CancelReason, CancelToken};
use crate::error::WhisperError;
use crate::transcript::Transcript;
use std::future::Future;

/// One value per pool worker, made by the factory (prepare.rs).
pub enum Backend {
    Cli(CliBackend),
    Server(ServerBackend),
    Worker(ProgramSlot),
}

impl Backend {
    /// Whether the worker owns a long-lived process that must start first.
    pub fn is_persistent(&self) -> bool {
        matches!(self, Backend::Server(_) | Backend::Worker(_))
    }

    /// Whether a running request's thread count can change (the worker
    /// program reads it before each step).
    pub fn adjusts_threads(&self) -> bool {
        matches!(self, Backend::Worker(_))
    }

    /// Which process it shares with other workers, if it shares one (the
    /// worker backend's slots): a request that must run alone in its
    /// process keeps the others off it.
    pub fn process_key(&self) -> Option<u64> {
        match self {
            Backend::Cli(_) | Backend::Server(_) => None,
            Backend::Worker(w) => w.process_key(),
        }
    }

    /// The changes to whisper.cpp its program was built with, where it says
    /// (the worker program, once started).
    pub fn whisper_features(&self) -> Option<Vec<String>> {
        match self {
            Backend::Cli(_) | Backend::Server(_) => None,
            Backend::Worker(w) => w.whisper_features(),
        }
    }

    /// Where its process decodes and how many decodes run there at once,
    /// as the process said (the worker program, once started).
    pub fn placement(&self) -> Option<(persistent_whisper_protocol::device::Device, u32)> {
        match self {
            Backend::Cli(_) | Backend::Server(_) => None,
            Backend::Worker(w) => w.placement(),
        }
    }

    /// The program it runs, for logs.
    pub fn program(&self) -> &'static str {
        match self {
            Backend::Cli(_) => "whisper-cli",
            Backend::Server(_) => "whisper-server",
            Backend::Worker(_) => "persistent-whisper-worker",
        }
    }

    /// Starts the worker's process (server: model loaded, its socket proven
    /// to be its own, health check answered). `stop` ends a start under way,
    /// and its process, at once.
    pub async fn start(&self, stop: &CancelToken) -> Result<(), WhisperError> {
        match self {
            Backend::Cli(_) => Ok(()),
            Backend::Server(s) => s.start(stop).await,
            Backend::Worker(w) => w.start(stop).await,
        }
    }

    /// Ends the worker's process, if it has one, and reaps it.
    pub async fn stop(&self) {
        match self {
            Backend::Cli(_) => {}
            Backend::Server(s) => s.stop().await,
            Backend::Worker(w) => w.stop().await,
        }
    }

    /// The long-lived process's pid (server backend).
    pub fn pid(&self) -> Option<u32> {
        match self {
            Backend::Cli(_) => None,
            Backend::Server(s) => s.pid(),
            Backend::Worker(w) => w.pid(),
        }
    }

    /// Resolves when the long-lived process exits or must be replaced; never
    /// for the cli backend.
    pub async fn lost(&self) -> String {
        match self {
            Backend::Cli(_) => std::future::pending().await,
            Backend::Server(s) => s.lost().await,
            Backend::Worker(w) => w.lost().await,
        }
    }

    pub async fn health_check(&self) -> bool {
        match self {
            Backend::Cli(_) => true,
            Backend::Server(s) => s.health_check().await,
            Backend::Worker(w) => w.is_healthy(),
        }
    }

    pub async fn transcribe(
        &self,
        request: &Request,
        cancel: impl Future<Output = CancelReason> + Send,
        report_pid: PidReporter<'_>,
    ) -> Result<Transcript, Unfinished> {
        match self {
            Backend::Cli(cli) => cli.transcribe(request, cancel, report_pid).await,
            Backend::Server(server) => server.transcribe(request, cancel).await,
            Backend::Worker(slot) => slot.transcribe(request, cancel).await,
        }
    }
}
