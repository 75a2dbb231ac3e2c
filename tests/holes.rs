//! Holes an adversarial test run found, each closed, each forced here with
//! the FAKE whisper binaries (tests/fake-whisper/, fault injection only).
//! The fakes are shell scripts (#!/bin/sh): Unix only.

#![cfg(unix)]

mod common;

use common::*;
use persistent_whisper::options::{BackendOptions, EngineOptions};
use std::sync::Arc;
use std::time::Duration;

fn backends(s: &Scratch, pool_size: usize) -> [(&'static str, EngineOptions); 2] {
    [
        ("cli", s.options(pool_size)),
        ("server", s.server_options(pool_size)),
    ]
}

/// The argv of a running process (Linux /proc).
#[cfg(target_os = "linux")]
fn argv(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split('\0')
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_failure_is_read_from_stderr_even_when_the_exit_is_seen_first() {
    let s = Scratch::new("bind-fail-late");
    s.server_start("bind-fail-late");
    let (engine, result) = s.try_engine(s.server_options(1)).await;
    let e = result.unwrap_err();
    // Not "exited with code 1": the port was taken, eight times over.
    assert!(e.to_string().contains("no port of its own"), "{e}");
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_that_cannot_bind_is_a_start_failure_after_a_bounded_number_of_ports() {
    let s = Scratch::new("bind-fail");
    s.server_start("bind-fail");
    let (engine, result) = s.try_engine(s.server_options(1)).await;
    let e = result.unwrap_err();
    assert_eq!(e.code(), "ERR_WHISPER_FAILED");
    assert!(e.to_string().contains("no port of its own"), "{e}");
    // Eight ports tried, then it stopped: no endless replacement loop.
    let starts = s
        .log_lines()
        .iter()
        .filter(|l| l.starts_with("start"))
        .count();
    assert_eq!(starts, 8);
    assert!(engine.worker_statuses().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_are_reused_so_a_base_port_near_the_top_never_runs_out() {
    let s = Scratch::new("ports");
    let options = EngineOptions {
        backend: BackendOptions::Server {
            path: Some(FAKE_SERVER.into()),
            base_port: Some(65532),
            health_check_interval: Duration::from_secs(5),
        },
        max_requests_per_worker: Some(1),
        ..s.server_options(1)
    };
    let engine = s.engine(options).await;
    // Every request retires its server: twelve servers on four ports.
    for i in 0..12 {
        let reply = settle(submit(&engine, &s.job(&format!("ok {i}")))).await;
        assert_eq!(text(&reply), i.to_string());
    }
    let stats = engine.status().await.pool_stats.unwrap();
    assert_eq!(stats.workers_recycled, 12);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_slow_server_start_ends_it_at_once() {
    let s = Scratch::new("slow-shutdown");
    s.server_start("slow 30");
    let engine = Arc::new(new_engine(s.server_options(1)));
    let init = tokio::spawn({
        let engine = engine.clone();
        async move { engine.initialize().await }
    });
    while !s.log_lines().iter().any(|l| l.starts_with("loading")) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The start is overtaken: no waiting for a 30 s model load.
    tokio::time::timeout(Duration::from_secs(5), engine.shutdown())
        .await
        .expect("shutdown() does not wait for the start")
        .unwrap();
    init.await.unwrap().unwrap();
    assert!(
        s.pids().iter().all(|&p| is_gone(p)),
        "the starting server was ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_server_that_just_died_goes_to_another_worker() {
    let s = Scratch::new("died-idle");
    let engine = s.engine(s.server_options(2)).await;
    let first = engine.worker_statuses().await[0].clone();
    // worker-1 is the least recently used: the next request goes to it.
    unsafe { libc::kill(first.pid.unwrap() as i32, libc::SIGKILL) };
    let reply = settle(submit(&engine, &s.job("ok rescued"))).await;
    assert_eq!(text(&reply), "rescued");
    assert_ne!(reply.unwrap().worker_id, first.id);
    engine.shutdown().await.unwrap();
}

// The server's argv, read from /proc: Linux only.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_never_shows_the_route_prefix() {
    use persistent_whisper::engine::Engine;
    use persistent_whisper::events;
    use persistent_whisper::log::{LogLevel, LogSink};
    use std::sync::Mutex;
    let s = Scratch::new("prefix");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink: LogSink = {
        let lines = lines.clone();
        Arc::new(move |_, line| lines.lock().unwrap().push(line.to_owned()))
    };
    let options = EngineOptions {
        log_level: LogLevel::Debug,
        ..s.server_options(1)
    };
    let engine = Engine::new(
        options.finish().unwrap(),
        &tokio::runtime::Handle::current(),
        Some(sink),
        events::ignore(),
    );
    engine.initialize().await.unwrap();
    let pid = engine.worker_statuses().await[0].pid.unwrap() as i32;
    let args = argv(pid);
    let prefix = args[args.iter().position(|a| a == "--request-path").unwrap() + 1].clone();
    let reply = settle(submit(&engine, &s.job("drop-connection"))).await;
    let error = reply.unwrap_err().to_string();
    let status = engine.status().await;
    let secret = prefix.trim_start_matches('/');
    assert!(!error.contains(secret), "in the error: {error}");
    assert!(!status.last_error.unwrap_or_default().contains(secret));
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("failed"),
        "the failure was logged: {logged}"
    );
    assert!(!logged.contains(secret), "in the log");
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_swapped_for_a_fifo_while_queued_is_refused_when_its_turn_comes() {
    let s = Scratch::new("fifo");
    for (backend, options) in backends(&s, 1) {
        let engine = s.engine(options).await;
        let busy = submit(&engine, &s.job("work 0.5 busy"));
        let file = s.job("ok never");
        let queued = submit(&engine, &file);
        assert_eq!(engine.queue_status().await.queue_length, 1);
        std::fs::remove_file(&file).unwrap();
        let c = std::ffi::CString::new(file.as_str()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reply = settle(queued).await;
        assert_eq!(code(&reply), "ERR_AUDIO_UNREADABLE", "{backend}");
        assert!(reply
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert_eq!(text(&settle(busy).await), "busy");
        let stats = engine.status().await.pool_stats.unwrap();
        assert_eq!(
            stats.workers_replaced, 0,
            "{backend}: the worker did nothing wrong"
        );
        engine.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_while_queued_is_not_found_on_every_backend() {
    let s = Scratch::new("deleted");
    for (backend, options) in backends(&s, 1) {
        let engine = s.engine(options).await;
        let busy = submit(&engine, &s.job("work 0.3 busy"));
        let file = s.job("ok never");
        let queued = submit(&engine, &file);
        assert_eq!(engine.queue_status().await.queue_length, 1);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            code(&settle(queued).await),
            "ERR_AUDIO_NOT_FOUND",
            "{backend}"
        );
        settle(busy).await.unwrap();
        engine.shutdown().await.unwrap();
    }
}
