//! Helpers for pool tests that drive the engine with the FAKE whisper-cli
//! (tests/fake-whisper/fake-whisper-cli), which exists for fault injection only.

#![allow(dead_code)]

use persistent_whisper::engine::{Engine, Submitted};
use persistent_whisper::error::WhisperError;
use persistent_whisper::events;
use persistent_whisper::options::{BackendOptions, EngineOptions, TranscribeOptions};
use persistent_whisper::pool::Reply;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FAKE_WHISPER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fake-whisper/fake-whisper-cli"
);
pub const FAKE_SERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fake-whisper/fake-whisper-server"
);

pub const FAKE_WORKER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fake-whisper/fake-persistent-whisper-worker"
);

/// What the engine checks of a model: ggml's magic and tiny.en's dimensions.
fn fake_model_header() -> Vec<u8> {
    let mut bytes = b"lmgg".to_vec();
    for v in [51864i32, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// A scratch folder with a model file that passes the engine's magic check,
/// a log the fake appends to, and directive files for the fake.
pub struct Scratch {
    pub dir: PathBuf,
    next: std::cell::Cell<u32>,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.bin"), fake_model_header()).unwrap();
        std::fs::write(dir.join("fake.log"), b"").unwrap();
        Scratch {
            dir,
            next: 0.into(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("fake.log")
    }

    /// A file whose content tells the fake whisper what to do.
    pub fn job(&self, directive: &str) -> String {
        let n = self.next.get() + 1;
        self.next.set(n);
        let p = self.dir.join(format!("job-{n}.wav"));
        std::fs::write(&p, format!("{directive}\n")).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// Options for the server backend, with the fake whisper-server.
    pub fn server_options(&self, pool_size: usize) -> EngineOptions {
        EngineOptions {
            backend: BackendOptions::Server {
                path: Some(FAKE_SERVER.into()),
                base_port: None,
                health_check_interval: Duration::from_secs(5),
            },
            ..self.options(pool_size)
        }
    }

    /// Options for the worker backend, with the fake worker program: one
    /// process per slot, so that a fault in one leaves the others serving.
    pub fn worker_options(&self, pool_size: usize) -> EngineOptions {
        self.worker_processes(pool_size, pool_size)
    }

    /// The worker backend with the fake worker program, its slots over `processes`.
    pub fn worker_processes(&self, pool_size: usize, processes: usize) -> EngineOptions {
        EngineOptions {
            backend: BackendOptions::Worker {
                path: Some(FAKE_WORKER.into()),
                processes,
            },
            ..self.options(pool_size)
        }
    }

    /// How the fake worker program starts (see its header).
    pub fn worker_start(&self, directive: &str) {
        std::fs::write(self.dir.join("worker-start"), directive).unwrap();
    }

    /// How the fake whisper-server starts (see its header).
    pub fn server_start(&self, directive: &str) {
        std::fs::write(self.dir.join("server-start"), directive).unwrap();
    }

    pub fn options(&self, pool_size: usize) -> EngineOptions {
        EngineOptions {
            backend: BackendOptions::Cli,
            backend_chosen: true,
            whisper_path: Some(FAKE_WHISPER.into()),
            log_level: persistent_whisper::log::LogLevel::Silent,
            ..EngineOptions::new(self.dir.join("model.bin")).with_pool_size(pool_size)
        }
    }

    /// An initialized engine whose fake whisper logs to this scratch folder.
    pub async fn engine(&self, options: EngineOptions) -> Engine {
        let engine = new_engine(options);
        engine.initialize().await.unwrap();
        engine
    }

    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Pids of fake processes (and their children) that this test started.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .log_lines()
            .iter()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                match parts.next() {
                    Some("start") | Some("child") => parts.next()?.parse().ok(),
                    _ => None,
                }
            })
            .collect();
        pids.dedup();
        pids
    }

    /// An engine whose initialize() result is the caller's to check.
    pub async fn try_engine(&self, options: EngineOptions) -> (Engine, Result<(), WhisperError>) {
        let engine = new_engine(options);
        let result = engine.initialize().await;
        (engine, result)
    }
}

/// An engine on the current runtime, not yet initialized.
pub fn new_engine(options: EngineOptions) -> Engine {
    Engine::new(
        options.finish().unwrap(),
        &tokio::runtime::Handle::current(),
        None,
        events::ignore(),
    )
}

pub fn submit(engine: &Engine, path: &str) -> Submitted {
    engine.transcribe(path.to_owned(), TranscribeOptions::default())
}

pub async fn settle(s: Submitted) -> Reply {
    s.reply.await.expect("every request gets a reply")
}

pub fn code(reply: &Reply) -> &'static str {
    match reply {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

pub fn text(reply: &Reply) -> String {
    reply
        .as_ref()
        .map(|r| r.transcript.text.clone())
        .unwrap_or_else(|e: &WhisperError| e.to_string())
}

/// True when the process is not running: no such pid, or a zombie that only
/// waits for its reaper (a killed grandchild is reaped by init, not by us).
pub fn is_gone(pid: i32) -> bool {
    if unsafe { libc::kill(pid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    is_zombie(pid)
}

/// Linux: the state letter follows the parenthesised command name in /proc.
#[cfg(target_os = "linux")]
fn is_zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'))
}

/// Elsewhere (macOS: no /proc) ps says; a pid it cannot read is not a zombie.
#[cfg(not(target_os = "linux"))]
fn is_zombie(pid: i32) -> bool {
    std::process::Command::new("ps")
        .args(["-o", "stat=", "-p", &pid.to_string()])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim_start()
                .starts_with('Z')
        })
}

pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}
