//! Prefixed log lines (`[ProcessPool] ...`) filtered by level, to stderr or to
//! a sink the host provides.

use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Silent,
    Error,
    /// Quiet while things work: only problems the caller may not see otherwise.
    #[default]
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "silent" => LogLevel::Silent,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Silent => "silent",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

pub type LogSink = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

#[derive(Clone)]
pub struct Logger {
    level: LogLevel,
    prefix: Arc<str>,
    sink: LogSink,
}

impl Logger {
    pub fn new(level: LogLevel, sink: Option<LogSink>) -> Self {
        Logger {
            level,
            prefix: "".into(),
            sink: sink.unwrap_or_else(|| Arc::new(|_, line| eprintln!("{line}"))),
        }
    }

    /// The same destination and level under another prefix, e.g. `ProcessPool`.
    pub fn named(&self, name: &str) -> Self {
        Logger {
            prefix: format!("[{name}]").into(),
            ..self.clone()
        }
    }

    pub fn enabled(&self, level: LogLevel) -> bool {
        level != LogLevel::Silent && level <= self.level
    }

    pub fn log(&self, level: LogLevel, message: fmt::Arguments<'_>) {
        if self.enabled(level) {
            (self.sink)(level, &format!("{} {message}", self.prefix));
        }
    }

    pub fn error(&self, message: fmt::Arguments<'_>) {
        self.log(LogLevel::Error, message)
    }
    pub fn warn(&self, message: fmt::Arguments<'_>) {
        self.log(LogLevel::Warn, message)
    }
    pub fn info(&self, message: fmt::Arguments<'_>) {
        self.log(LogLevel::Info, message)
    }
    pub fn debug(&self, message: fmt::Arguments<'_>) {
        self.log(LogLevel::Debug, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn filters_by_level_and_prefixes_lines() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = lines.clone();
        let sink: LogSink = Arc::new(move |_, l| sink_lines.lock().unwrap().push(l.to_owned()));
        let log = Logger::new(LogLevel::Info, Some(sink)).named("ProcessWorker:worker-1");
        log.debug(format_args!("hidden"));
        log.info(format_args!("started pid {}", 42));
        log.error(format_args!("boom"));
        assert_eq!(
            *lines.lock().unwrap(),
            [
                "[ProcessWorker:worker-1] started pid 42",
                "[ProcessWorker:worker-1] boom"
            ]
        );
        assert!(!Logger::new(LogLevel::Silent, None).enabled(LogLevel::Error));
    }
}
