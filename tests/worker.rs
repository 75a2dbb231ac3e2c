//! The worker backend's own promises, forced with the FAKE
//! persistent-whisper-worker (tests/fake-whisper/, fault injection only):
//! slots share processes, a crash fails only its process's requests, starts
//! fail with their codes, restart() and shutdown() leave no old process.
//! The fakes are shell scripts (#!/bin/sh): Unix only.

#![cfg(unix)]

mod common;

use common::*;
use persistent_whisper::options::{EngineOptions, TranscribeOptions};
use std::collections::BTreeSet;
use std::time::Duration;

fn pids(statuses: &[persistent_whisper::pool::WorkerStatus]) -> BTreeSet<u32> {
    statuses.iter().filter_map(|w| w.pid).collect()
}

fn worker_options(s: &Scratch, slots: usize, processes: usize) -> EngineOptions {
    s.worker_processes(slots, processes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_spread_evenly_over_the_processes() {
    let s = Scratch::new("worker-spread");
    let engine = s.engine(worker_options(&s, 4, 2)).await;
    let statuses = engine.worker_statuses().await;
    assert_eq!(statuses.len(), 4);
    let processes = pids(&statuses);
    assert_eq!(processes.len(), 2, "{statuses:?}");
    for pid in &processes {
        let slots = statuses.iter().filter(|w| w.pid == Some(*pid)).count();
        assert_eq!(slots, 2, "process {pid}");
    }
    engine.shutdown().await.unwrap();
    assert!(s.pids().iter().all(|&p| is_gone(p)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_only_the_request_that_caused_it_and_its_neighbour_runs_again() {
    let s = Scratch::new("worker-crash");
    let engine = s.engine(worker_options(&s, 2, 1)).await;
    let before = pids(&engine.worker_statuses().await);
    assert_eq!(before.len(), 1);
    let neighbour = submit(&engine, &s.job("work 1 neighbour"));
    let crashing = submit(&engine, &s.job("crash"));
    // Both were in flight when the process died: each runs again, alone in
    // a fresh process. The crash recurs alone, which names its cause.
    let crashed = settle(crashing).await;
    assert_eq!(code(&crashed), "ERR_WORKER_CRASHED");
    assert!(
        crashed
            .unwrap_err()
            .to_string()
            .contains("running it alone"),
        "the error says why it is to blame"
    );
    assert_eq!(text(&settle(neighbour).await), "neighbour");
    let after = settle(submit(&engine, &s.job("ok after"))).await;
    assert_eq!(text(&after), "after");
    let now = pids(&engine.worker_statuses().await);
    assert_eq!(now.len(), 1);
    assert!(now.is_disjoint(&before), "{before:?} -> {now:?}");
    let stats = engine.status().await.pool_stats.unwrap();
    assert_eq!(
        (
            stats.total_requests_retried,
            stats.total_requests_failed,
            stats.total_requests_processed
        ),
        (2, 1, 2)
    );
    engine.shutdown().await.unwrap();
    assert!(s.pids().iter().all(|&p| is_gone(p)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspect_runs_alone_in_its_process_while_the_others_wait() {
    let s = Scratch::new("worker-alone");
    let engine = s.engine(worker_options(&s, 3, 1)).await;
    // Three in one process; the process dies under all three.
    let jobs: Vec<_> = ["work 0.3 a", "work 0.3 b", "crash"]
        .iter()
        .map(|d| submit(&engine, &s.job(d)))
        .collect();
    let mut replies = Vec::new();
    for j in jobs {
        replies.push(settle(j).await);
    }
    assert_eq!(text(&replies[0]), "a");
    assert_eq!(text(&replies[1]), "b");
    assert_eq!(code(&replies[2]), "ERR_WORKER_CRASHED");
    // Every run after the first death had its process to itself.
    let log = s.log_lines();
    let first = log.iter().find_map(|l| l.strip_prefix("start ")).unwrap();
    let mut in_flight: std::collections::HashMap<&str, BTreeSet<&str>> = Default::default();
    let mut most = 0;
    for line in &log {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts[..] {
            ["transcribe", id, _, pid] if pid != first => {
                let running = in_flight.entry(pid).or_default();
                running.insert(id);
                most = most.max(running.len());
            }
            ["answer", id, pid] => {
                in_flight.entry(pid).or_default().remove(id);
            }
            _ => {}
        }
    }
    assert_eq!(most, 1, "a re-run shared its process: {log:#?}");
    assert!(
        !in_flight.is_empty(),
        "the suspects ran in a fresh process: {log:#?}"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_of_many_megabytes_arrives_whole() {
    let s = Scratch::new("worker-long");
    let engine = s.engine(worker_options(&s, 2, 1)).await;
    // 40000 segments of 60 bytes: over 2 MiB, more than one frame may hold.
    let word = "x".repeat(60);
    let reply = settle(submit(&engine, &s.job(&format!("many 40000 {word}")))).await;
    let t = reply.unwrap().transcript;
    assert_eq!(t.segments.len(), 40_000);
    assert!(t.text.len() > 2 << 20, "{}", t.text.len());
    assert_eq!(t.segments[39_999].start_ms, 399_990);
    // The process lives on.
    assert_eq!(
        text(&settle(submit(&engine, &s.job("ok after"))).await),
        "after"
    );
    assert_eq!(
        engine.status().await.pool_stats.unwrap().workers_replaced,
        0
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_whose_replacements_fail_is_not_ready_and_comes_back_when_it_can() {
    let s = Scratch::new("worker-restore");
    let engine = s.engine(worker_options(&s, 2, 2)).await;
    // From now on no process loads the model...
    s.worker_start("fatal");
    for _ in 0..2 {
        let _ = settle(submit(&engine, &s.job("crash"))).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = engine.status().await;
        if status.worker_count == 0 {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the workers did not go"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.is_running);
    assert!(!status.is_ready, "no worker can serve: not ready");
    // ...until the model is back: the pool returns to minWorkers by itself.
    std::fs::remove_file(s.dir.join("worker-start")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(engine.status().await.is_ready && engine.worker_statuses().await.len() == 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        text(&settle(submit(&engine, &s.job("ok back"))).await),
        "back"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_model_that_does_not_load_rejects_initialize_with_its_code() {
    for (start, code) in [("fatal", "ERR_MODEL_LOAD"), ("crash", "ERR_MODEL_LOAD")] {
        let s = Scratch::new(&format!("worker-start-{start}"));
        s.worker_start(start);
        let (engine, result) = s.try_engine(s.worker_options(2)).await;
        assert_eq!(result.unwrap_err().code(), code, "{start}");
        assert!(engine.worker_statuses().await.is_empty(), "{start}");
        assert!(s.pids().iter().all(|&p| is_gone(p)), "{start}");
    }
}

#[tokio::test]
async fn a_slow_start_is_ready_when_initialize_resolves() {
    let s = Scratch::new("worker-slow");
    s.worker_start("slow 0.4");
    let engine = s.engine(s.worker_options(2)).await;
    assert!(engine
        .worker_statuses()
        .await
        .iter()
        .all(|w| w.model_loaded && w.pid.is_some()));
    assert_eq!(text(&settle(submit(&engine, &s.job("ok up"))).await), "up");
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replaces_the_processes_and_keeps_queued_requests() {
    let s = Scratch::new("worker-restart");
    let engine = s.engine(worker_options(&s, 2, 1)).await;
    let before = pids(&engine.worker_statuses().await);
    let running = submit(&engine, &s.job("work 0.3 first"));
    let restarted = engine.restart();
    let queued = submit(&engine, &s.job("ok second"));
    restarted.await.unwrap();
    let now = pids(&engine.worker_statuses().await);
    assert_eq!(now.len(), 1);
    assert!(now.is_disjoint(&before), "restart() kept {before:?}");
    // The running request started over on the new process.
    assert_eq!(text(&settle(running).await), "first");
    assert_eq!(text(&settle(queued).await), "second");
    let old: Vec<i32> = before.iter().map(|&p| p as i32).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !old.iter().all(|&p| is_gone(p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the old process lives on"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_timeout_that_the_process_ignores_kills_it() {
    let s = Scratch::new("worker-hang");
    let engine = s.engine(worker_options(&s, 1, 1)).await;
    let before = pids(&engine.worker_statuses().await);
    let options = TranscribeOptions {
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let hung = engine.transcribe(s.job("hang"), options);
    assert_eq!(code(&settle(hung).await), "ERR_TIMEOUT");
    assert_eq!(
        text(&settle(submit(&engine, &s.job("ok next"))).await),
        "next"
    );
    let now = pids(&engine.worker_statuses().await);
    assert!(now.is_disjoint(&before), "the hung process was kept");
    assert!(before.iter().all(|&p| is_gone(p as i32)));
    engine.shutdown().await.unwrap();
}

#[test]
fn more_processes_than_workers_is_refused() {
    let s = Scratch::new("worker-options");
    let e = worker_options(&s, 2, 3).finish().unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_OPTIONS");
    assert!(e.to_string().contains("processes"), "{e}");
}

/// The fake worker's log lines for request `id`'s thread counts, in order:
/// the count it started with, then every change.
fn thread_counts(s: &Scratch, id: &str) -> Vec<usize> {
    s.log_lines()
        .iter()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let kind = parts.next()?;
            (matches!(kind, "transcribe" | "threads") && parts.next()? == id)
                .then(|| parts.next()?.parse().ok())?
        })
        .collect()
}

/// Waits (bounded) until the fake worker has logged `n` transcribe lines.
async fn started(s: &Scratch, n: usize) {
    for _ in 0..500 {
        let count = s
            .log_lines()
            .iter()
            .filter(|l| l.starts_with("transcribe "))
            .count();
        if count >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the fake worker never received request {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_requests_share_the_cores_as_others_start_and_end() {
    let s = Scratch::new("worker-threads");
    let engine = s.engine(worker_options(&s, 3, 1)).await;
    let cores = persistent_whisper::options::available_cpus();
    let share = |n: usize| cores.div_ceil(n).max(1);
    let first = submit(&engine, &s.job("work 60 first"));
    started(&s, 1).await;
    let second = submit(&engine, &s.job("work 60 second"));
    started(&s, 2).await;
    let third = submit(&engine, &s.job("work 60 third"));
    started(&s, 3).await;
    // The later ones end: the first gets its cores back.
    third.abort_handle().abort();
    assert_eq!(code(&settle(third).await), "ERR_ABORTED");
    second.abort_handle().abort();
    assert_eq!(code(&settle(second).await), "ERR_ABORTED");
    let mut expected = vec![cores, share(2), share(3), share(2), cores];
    expected.dedup();
    // The last change travels after the abort's answer: wait for it.
    for _ in 0..500 {
        if thread_counts(&s, "1") == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(thread_counts(&s, "1"), expected, "{:?}", s.log_lines());
    // Never more threads than cores, unless every request runs on one.
    let second_counts = thread_counts(&s, "2");
    assert!(
        second_counts.iter().all(|&t| t <= cores.max(1)),
        "{second_counts:?}"
    );
    first.abort_handle().abort();
    settle(first).await.unwrap_err();
    engine.shutdown().await.unwrap();
}
