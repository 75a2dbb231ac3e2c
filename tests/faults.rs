//! Injected faults, the same for every backend: each fails its own request
//! with its code and the pool heals. Driven by the FAKE whisper-cli, FAKE
//! whisper-server and FAKE persistent-whisper-worker (tests/fake-whisper/,
//! fault injection only).
//! The fakes are shell scripts (#!/bin/sh): Unix only.

#![cfg(unix)]

mod common;

use common::*;
use persistent_whisper::options::{EngineOptions, TranscribeOptions};
use std::time::Duration;

fn backends(s: &Scratch, pool_size: usize) -> [(&'static str, EngineOptions); 3] {
    [
        ("cli", s.options(pool_size)),
        ("server", s.server_options(pool_size)),
        ("worker", s.worker_options(pool_size)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_one_request_with_its_code_and_the_pool_heals() {
    let s = Scratch::new("faults");
    let faults = [
        ("crash", "ERR_WORKER_CRASHED"),
        ("hang", "ERR_TIMEOUT"),
        ("garbage", "ERR_WHISPER_FAILED"),
        ("die-mid-output", "ERR_WORKER_CRASHED"),
        ("unreadable", "ERR_AUDIO_UNREADABLE"),
    ];
    for (backend, raw) in backends(&s, 2) {
        // A worker process that prints garbage cannot be trusted with the
        // other requests in it: it is killed, and its request crashed.
        let garbage = if backend == "worker" {
            "ERR_WORKER_CRASHED"
        } else {
            "ERR_WHISPER_FAILED"
        };
        let engine = s.engine(raw).await;
        let timeout = TranscribeOptions {
            timeout: Some(Duration::from_millis(400)),
            ..Default::default()
        };
        for (directive, expected) in faults {
            let expected = if directive == "garbage" {
                garbage
            } else {
                expected
            };
            let bystander = submit(&engine, &s.job("work 0.1 bystander"));
            let faulty = engine.transcribe(s.job(directive), timeout.clone());
            assert_eq!(
                code(&settle(faulty).await),
                expected,
                "{backend}: {directive}"
            );
            assert_eq!(
                text(&settle(bystander).await),
                "bystander",
                "{backend}: {directive} hurt another request"
            );
            let healed = settle(submit(&engine, &s.job("ok healed"))).await;
            assert_eq!(text(&healed), "healed", "{backend}: after {directive}");
            assert_eq!(
                engine.worker_statuses().await.len(),
                2,
                "{backend}: after {directive}"
            );
        }
        let stats = engine.status().await.pool_stats.unwrap();
        // A request whose process dies runs once more, alone; dying again
        // proves it the cause. crash and die-mid-output (and garbage, which
        // gets a worker process killed) replace their worker twice, hang once.
        let (replaced, retried) = if backend == "worker" { (7, 3) } else { (5, 2) };
        assert_eq!(stats.workers_replaced, replaced, "{backend}");
        assert_eq!(stats.total_requests_retried, retried, "{backend}");
        assert_eq!(
            stats.total_requests_failed,
            faults.len() as u64,
            "{backend}"
        );
        engine.shutdown().await.unwrap();
        assert!(
            s.pids().iter().all(|&p| is_gone(p)),
            "{backend}: a process outlived shutdown"
        );
    }
}

#[tokio::test]
async fn aborting_a_running_request_keeps_its_worker_serving() {
    let s = Scratch::new("abort-running");
    for (backend, raw) in backends(&s, 1) {
        let engine = s.engine(raw).await;
        let running = submit(&engine, &s.job("work 60 never"));
        let queued = submit(&engine, &s.job("ok next"));
        let before = engine.worker_statuses().await[0].clone();
        running.abort_handle().abort();
        assert_eq!(code(&settle(running).await), "ERR_ABORTED", "{backend}");
        let next = settle(queued).await.unwrap();
        assert_eq!(next.transcript.text, "next");
        if backend != "cli" {
            // The same process serves on: a dropped connection stops
            // whisper-server, whisper's abort callback the worker.
            assert_eq!(next.worker_id, before.id, "{backend}");
            let after = engine.worker_statuses().await[0].clone();
            assert_eq!(after.pid, before.pid, "{backend}");
        }
        let stats = engine.status().await.pool_stats.unwrap();
        assert_eq!(
            (
                stats.total_requests_aborted,
                stats.total_requests_failed,
                stats.workers_replaced
            ),
            (1, 0, 0)
        );
        engine.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn aborting_a_queued_request_removes_it_from_the_queue() {
    let s = Scratch::new("abort-queued");
    let engine = s.engine(s.options(1)).await;
    let running = submit(&engine, &s.job("work 0.2 first"));
    let queued = submit(&engine, &s.job("ok never"));
    assert_eq!(engine.queue_status().await.queue_length, 1);
    queued.abort_handle().abort();
    assert_eq!(engine.queue_status().await.queue_length, 0);
    assert_eq!(code(&settle(queued).await), "ERR_ABORTED");
    assert_eq!(text(&settle(running).await), "first");
    assert!(
        !s.log_lines().iter().any(|l| l.contains("never")),
        "the aborted request never ran"
    );
}

#[tokio::test]
async fn high_priority_requests_go_before_queued_normal_ones() {
    use persistent_whisper::options::Priority;
    let s = Scratch::new("priority");
    let engine = s.engine(s.options(1)).await;
    let high = |d: &str| {
        let o = TranscribeOptions {
            priority: Priority::High,
            ..Default::default()
        };
        engine.transcribe(s.job(d), o)
    };
    let first = submit(&engine, &s.job("work 0.1 first"));
    let n1 = submit(&engine, &s.job("ok n1"));
    let h1 = high("ok h1");
    let n2 = submit(&engine, &s.job("ok n2"));
    let h2 = high("ok h2");
    let order: Vec<String> = engine
        .queue_status()
        .await
        .queued_requests
        .into_iter()
        .map(|q| q.id)
        .collect();
    let expected = [&h1, &h2, &n1, &n2].map(|j| j.request_id.clone());
    assert_eq!(order, expected);
    for j in [first, h1, h2, n1, n2] {
        settle(j).await.unwrap();
    }
    let ran: Vec<String> = s
        .log_lines()
        .iter()
        .filter_map(|l| l.strip_prefix("start "))
        .map(|l| {
            std::fs::read_to_string(l.split_once(' ').unwrap().1)
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(ran, ["work 0.1 first", "ok h1", "ok h2", "ok n1", "ok n2"]);
}

#[tokio::test]
async fn workers_are_recycled_after_max_requests() {
    let s = Scratch::new("recycle");
    for (backend, raw) in backends(&s, 1) {
        let raw = EngineOptions {
            max_requests_per_worker: Some(2),
            ..raw
        };
        let engine = s.engine(raw).await;
        let mut workers = Vec::new();
        for i in 0..5 {
            workers.push(
                settle(submit(&engine, &s.job(&format!("ok {i}"))))
                    .await
                    .unwrap()
                    .worker_id,
            );
        }
        let first = workers[0].clone();
        assert_eq!(workers[1], first, "{backend}");
        assert_ne!(workers[2], first, "{backend}: recycled after two requests");
        assert_eq!(workers[2], workers[3], "{backend}");
        assert_ne!(workers[4], workers[3], "{backend}");
        let stats = engine.status().await.pool_stats.unwrap();
        assert_eq!(
            (stats.workers_recycled, stats.workers_replaced),
            (2, 0),
            "{backend}"
        );
        engine.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_slow_starting_server_is_ready_when_initialize_resolves() {
    let s = Scratch::new("slow-start");
    s.server_start("slow 0.4");
    let engine = s.engine(s.server_options(2)).await;
    assert!(
        s.log_lines().iter().any(|l| l.starts_with("loading")),
        "it was asked while loading"
    );
    assert!(engine
        .worker_statuses()
        .await
        .iter()
        .all(|w| w.model_loaded && w.pid.is_some()));
    assert_eq!(
        text(&settle(submit(&engine, &s.job("ok loaded"))).await),
        "loaded"
    );
}

#[tokio::test]
async fn a_server_that_dies_while_loading_rejects_initialize_and_leaves_nothing() {
    let s = Scratch::new("start-crash");
    s.server_start("crash");
    let (engine, result) = s.try_engine(s.server_options(2)).await;
    assert_eq!(result.unwrap_err().code(), "ERR_MODEL_LOAD");
    assert!(engine.worker_statuses().await.is_empty());
    let after = engine.transcribe(s.job("ok x"), TranscribeOptions::default());
    assert_eq!(code(&settle(after).await), "ERR_NOT_INITIALIZED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_engine_ends_its_processes() {
    let s = Scratch::new("drop");
    let engine = s.engine(s.server_options(2)).await;
    let servers: Vec<i32> = engine
        .worker_statuses()
        .await
        .iter()
        .map(|w| w.pid.unwrap() as i32)
        .collect();
    assert_eq!(servers.len(), 2);
    drop(engine);
    // The shutdown runs in the background; wait for its effect.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !servers.iter().all(|&p| is_gone(p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "servers outlived their engine"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
