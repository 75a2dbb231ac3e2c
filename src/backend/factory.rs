//! One place that turns the validated options into workers' backends.

use super::cli::CliBackend;
use super::server::{ServerBackend, ServerConfig};
use super::worker::{Processes, WorkerConfig, WorkerSlot};
use super::Backend;
use crate::options::{available_cpus, BackendKind, EngineOptions};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How many threads a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The caller chose, or the program fixes its threads when it starts.
    Fixed(usize),
    /// Per request: its share of the cores that running requests leave
    /// free (at least one), so a lone request gets all of them.
    Budget { cores: usize },
}

impl Threads {
    pub fn is_budget(self) -> bool {
        matches!(self, Threads::Budget { .. })
    }

    /// Threads for a request that starts while `in_use` threads run and
    /// `starting` requests (itself included) start at the same moment: the
    /// free cores are split between those, so that a burst of requests does
    /// not hand them all to the first and oversubscribe the cores with the
    /// rest (ggml's threads wait for each other at every graph node, so a
    /// multi-threaded decode sharing cores slows down far more than its share).
    pub fn for_request(self, in_use: usize, starting: usize) -> usize {
        match self {
            Threads::Fixed(n) => n,
            Threads::Budget { cores } => (cores.saturating_sub(in_use) / starting.max(1)).max(1),
        }
    }
}

/// Makes each new worker's backend.
#[derive(Clone)]
pub struct BackendFactory {
    make: Arc<dyn Fn() -> Backend + Send + Sync>,
    renew: Option<Arc<dyn Fn() + Send + Sync>>,
    pub threads: Threads,
    /// Its backends own a process that must start before they take work.
    pub persistent: bool,
}

impl BackendFactory {
    pub fn make(&self) -> Backend {
        (self.make)()
    }

    /// restart(): backends made from now on share nothing with earlier ones
    /// (the worker backend's slots get new processes, which load the model
    /// again).
    pub fn renew(&self) {
        if let Some(renew) = &self.renew {
            renew()
        }
    }

    fn new(
        threads: Threads,
        persistent: bool,
        make: impl Fn() -> Backend + Send + Sync + 'static,
    ) -> Self {
        BackendFactory {
            make: Arc::new(make),
            renew: None,
            threads,
            persistent,
        }
    }
}

/// The backend the options ask for, running `program` with a model of `model_bytes`.
pub fn factory(options: &EngineOptions, program: PathBuf, model_bytes: u64) -> BackendFactory {
    let cores = available_cpus();
    match options.backend {
        BackendKind::Cli => {
            let cli = CliBackend {
                program,
                model: options.model_path.clone(),
                args: options.extra.cli_args(),
            };
            BackendFactory::new(
                options
                    .threads
                    .map_or(Threads::Budget { cores }, Threads::Fixed),
                false,
                move || Backend::Cli(cli.clone()),
            )
        }
        BackendKind::Server => {
            // A server's threads are fixed when it starts; each gets every
            // core (OpenMP's idle threads sleep, so concurrent servers share
            // them), and a lone request is not held to a share.
            let threads = options.threads.unwrap_or(cores);
            let config = Arc::new(ServerConfig {
                program,
                model: options.model_path.clone(),
                model_bytes,
                threads,
                extra: options.extra.clone(),
                ports: super::server::Ports::new(options.base_port),
            });
            BackendFactory::new(Threads::Fixed(threads), true, move || {
                Backend::Server(ServerBackend::new(config.clone()))
            })
        }
        BackendKind::Worker => {
            let config = Arc::new(WorkerConfig {
                program,
                model: options.model_path.clone(),
                model_bytes,
                extra: options.extra.clone(),
                limits: options.limits,
                processes: options.processes,
                slots_per_process: options.max_workers.div_ceil(options.processes.max(1)),
            });
            let current = Arc::new(Mutex::new(Processes::new(config.clone())));
            let (make_from, renew) = (current.clone(), current);
            let mut factory = BackendFactory::new(
                options
                    .threads
                    .map_or(Threads::Budget { cores }, Threads::Fixed),
                true,
                move || {
                    let processes = make_from.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    Backend::Worker(WorkerSlot::new(processes))
                },
            );
            factory.renew = Some(Arc::new(move || {
                *renew.lock().unwrap_or_else(|e| e.into_inner()) = Processes::new(config.clone());
            }));
            factory
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_request_gets_every_core_and_later_ones_what_is_left() {
        let budget = Threads::Budget { cores: 8 };
        assert_eq!(budget.for_request(0, 1), 8);
        assert_eq!(budget.for_request(6, 1), 2);
        assert_eq!(budget.for_request(8, 1), 1, "never fewer than one");
        assert_eq!(budget.for_request(20, 1), 1);
        assert_eq!(Threads::Fixed(3).for_request(7, 1), 3);
    }

    #[test]
    fn requests_starting_together_split_the_free_cores() {
        let budget = Threads::Budget { cores: 8 };
        assert_eq!(budget.for_request(0, 3), 2, "8 cores for 3: 2 each");
        assert_eq!(budget.for_request(2, 2), 3, "6 left for 2: 3 each");
        assert_eq!(budget.for_request(5, 1), 3, "the last takes what is left");
        let two = Threads::Budget { cores: 2 };
        assert_eq!(two.for_request(0, 3), 1, "a burst on 2 cores: 1 each");
        assert_eq!(two.for_request(0, 0), 2, "0 starting counts as 1");
        assert_eq!(Threads::Fixed(4).for_request(0, 3), 4);
    }
}
