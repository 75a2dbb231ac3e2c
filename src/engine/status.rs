//! getStatus(): the engine's state and its pool's statistics.

use crate::locate::Located;
use crate::pool::PoolStats;

#[derive(Debug, Clone)]
pub struct EngineStatus {
    pub is_running: bool,
    pub is_ready: bool,
    pub model_loaded: bool,
    pub requests_processed: u64,
    pub average_latency_ms: f64,
    pub last_error: Option<String>,
    pub pool_stats: Option<PoolStats>,
    pub worker_count: usize,
    pub available_workers: usize,
    pub pool_utilization: f64,
    pub backend: &'static str,
    /// Threads a request gets: fixed, or (with a budget) what a lone request gets.
    pub threads_per_worker: usize,
    /// Requests get the cores that running requests leave free.
    pub thread_budget: bool,
    /// The whisper program the workers run, once initialized.
    pub program: Option<Located>,
    /// The changes to whisper.cpp it has, where it says (the worker program).
    pub whisper_features: Option<Vec<String>>,
    /// The device whisper decodes on, and how many decodes run there at
    /// once (where a worker process said).
    pub device: Option<(persistent_whisper_protocol::device::Device, Option<u32>)>,
}

impl EngineStatus {
    /// The status of an engine whose task has ended.
    pub fn gone() -> Self {
        EngineStatus {
            is_running: false,
            is_ready: false,
            model_loaded: false,
            requests_processed: 0,
            average_latency_ms: 0.0,
            last_error: None,
            pool_stats: None,
            worker_count: 0,
            available_workers: 0,
            pool_utilization: 0.0,
            backend: "",
            threads_per_worker: 0,
            thread_budget: false,
            program: None,
            whisper_features: None,
            device: None,
        }
    }

    pub fn with_device(
        self,
        device: Option<(persistent_whisper_protocol::device::Device, Option<u32>)>,
    ) -> Self {
        EngineStatus { device, ..self }
    }

    pub fn new(
        running: bool,
        ready: bool,
        stats: Option<PoolStats>,
        backend: &'static str,
        threads: crate::backend::Threads,
        program: Option<Located>,
        whisper_features: Option<Vec<String>>,
    ) -> Self {
        let s = stats.as_ref();
        let (threads_per_worker, thread_budget) = match threads {
            crate::backend::Threads::Fixed(n) => (n, false),
            crate::backend::Threads::Budget { cores } => (cores, true),
        };
        let worker_count = s.map_or(0, |s| s.total_workers);
        EngineStatus {
            is_running: running,
            // Ready means a request can be served: a pool whose replacements
            // failed, with no worker left, is not.
            is_ready: ready && worker_count > 0,
            model_loaded: s.is_some_and(|s| s.loaded_workers > 0),
            requests_processed: s.map_or(0, |s| s.total_requests_processed),
            average_latency_ms: s.map_or(0.0, |s| s.average_latency_ms),
            last_error: s.and_then(|s| s.last_error.clone()),
            worker_count,
            available_workers: s.map_or(0, |s| s.available_workers),
            pool_utilization: s.map_or(0.0, |s| s.pool_utilization),
            pool_stats: stats,
            backend,
            threads_per_worker,
            thread_budget,
            program,
            whisper_features,
            device: None,
        }
    }
}
