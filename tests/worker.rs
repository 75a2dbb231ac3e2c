//! The worker backend's own promises, forced with the FAKE
//! persistent-whisper-worker (tests/fake-whisper/, fault injection only):
//! slots share processes, a crash fails only its process's requests, starts
//! fail with their codes, restart() and shutdown() leave no old process.

mod common;

use common::*;
use persistent_whisper::options::{EngineOptions, TranscribeOptions};
use std::collections::BTreeSet;
use std::time::Duration;

fn pids(statuses: &[persistent_whisper::pool::WorkerStatus]) -> BTreeSet<u32> {
    statuses.iter().filter_map(|w| w.pid).collect()
}

fn worker_options(s: &Scratch, slots: usize, processes: usize) -> EngineOptions {
    EngineOptions {
        processes,
        ..s.worker_options(slots)
    }
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
async fn a_crash_fails_the_requests_in_its_process_and_a_new_process_serves_on() {
    let s = Scratch::new("worker-crash");
    let engine = s.engine(worker_options(&s, 2, 1)).await;
    let before = pids(&engine.worker_statuses().await);
    assert_eq!(before.len(), 1);
    let neighbour = submit(&engine, &s.job("work 5 neighbour"));
    let crashing = submit(&engine, &s.job("crash"));
    assert_eq!(code(&settle(crashing).await), "ERR_WORKER_CRASHED");
    // Same process: its request was in flight when the process died.
    assert_eq!(code(&settle(neighbour).await), "ERR_WORKER_CRASHED");
    let after = settle(submit(&engine, &s.job("ok after"))).await;
    assert_eq!(text(&after), "after");
    let now = pids(&engine.worker_statuses().await);
    assert_eq!(now.len(), 1);
    assert!(now.is_disjoint(&before), "{before:?} -> {now:?}");
    engine.shutdown().await.unwrap();
    assert!(s.pids().iter().all(|&p| is_gone(p)));
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
