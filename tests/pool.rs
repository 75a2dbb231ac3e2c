//! Pool behaviour, driven through the engine with the FAKE whisper-cli
//! (fault injection only: it prints canned results or misbehaves on purpose).
//! The fakes are shell scripts (#!/bin/sh): Unix only.

#![cfg(unix)]

mod common;

use common::*;
use persistent_whisper::options::{EngineOptions, TranscribeOptions};
use persistent_whisper::pool::WorkerState;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_runs_more_processes_than_workers() {
    let s = Scratch::new("concurrency");
    let engine = s.engine(s.options(3)).await;
    let jobs: Vec<_> = (0..9)
        .map(|i| submit(&engine, &s.job(&format!("work 0.3 job{i}"))))
        .collect();
    let states: Vec<_> = engine
        .worker_statuses()
        .await
        .iter()
        .map(|w| w.state)
        .collect();
    assert_eq!(states, [WorkerState::Processing; 3]);
    assert_eq!(engine.queue_status().await.queue_length, 6);
    for j in jobs {
        assert_eq!(code(&settle(j).await), "ok");
    }
    // Replay the fake's start/end log: concurrency never exceeds the pool.
    let (mut now, mut max) = (0i32, 0i32);
    for line in s.log_lines() {
        if line.starts_with("start") {
            now += 1;
        } else if line.starts_with("end") {
            now -= 1;
        }
        max = max.max(now);
    }
    assert_eq!(now, 0);
    assert_eq!(max, 3, "three workers ran at once, never more");
}

#[tokio::test]
async fn serves_the_queue_in_submission_order() {
    let s = Scratch::new("fifo");
    let engine = s.engine(s.options(1)).await;
    let files: Vec<String> = (0..6).map(|i| s.job(&format!("ok number {i}"))).collect();
    let jobs: Vec<_> = files.iter().map(|f| submit(&engine, f)).collect();
    let queued: Vec<String> = engine
        .queue_status()
        .await
        .queued_requests
        .into_iter()
        .map(|q| q.audio_file_path)
        .collect();
    assert_eq!(queued, files[1..]);
    for (i, j) in jobs.into_iter().enumerate() {
        assert_eq!(text(&settle(j).await), format!("number {i}"));
    }
    let started: Vec<String> = s
        .log_lines()
        .iter()
        .filter_map(|l| {
            l.strip_prefix("start ")
                .map(|r| r.split_once(' ').unwrap().1.to_owned())
        })
        .collect();
    assert_eq!(started, files);
}

#[tokio::test]
async fn hands_work_to_the_least_recently_used_worker() {
    let s = Scratch::new("lru");
    let engine = s.engine(s.options(3)).await;
    let mut used = Vec::new();
    for i in 0..6 {
        let r = settle(submit(&engine, &s.job(&format!("ok {i}"))))
            .await
            .unwrap();
        used.push(r.worker_id);
    }
    assert_eq!(
        used,
        ["worker-1", "worker-2", "worker-3", "worker-1", "worker-2", "worker-3"]
    );
}

#[tokio::test]
async fn worker_states_follow_the_documented_machine() {
    let s = Scratch::new("states");
    let engine = s.engine(s.options(1)).await;
    let state = || async { engine.worker_statuses().await[0].clone() };
    assert_eq!(state().await.state, WorkerState::Idle);

    let running = submit(&engine, &s.job("work 0.2 hello"));
    assert_eq!(state().await.state, WorkerState::Processing);
    assert_eq!(
        state().await.current_request.as_deref(),
        Some(running.request_id.as_str())
    );
    settle(running).await.unwrap();
    let w = state().await;
    assert_eq!(
        (w.state, w.requests_processed, w.pid),
        (WorkerState::Completed, 1, None)
    );

    assert_eq!(
        code(&settle(submit(&engine, &s.job("garbage"))).await),
        "ERR_WHISPER_FAILED"
    );
    let w = state().await;
    assert_eq!(
        (w.state, w.requests_failed, w.consecutive_failures),
        (WorkerState::Failed, 1, 1)
    );
    assert!(w.last_error.unwrap().contains("JSON"));

    // Failed below the threshold: still available, and a success resets the run.
    settle(submit(&engine, &s.job("ok again"))).await.unwrap();
    assert_eq!(
        (state().await.state, state().await.consecutive_failures),
        (WorkerState::Completed, 0)
    );

    engine.shutdown().await.unwrap();
    assert_eq!(state().await.state, WorkerState::Terminated);
}

#[tokio::test]
async fn a_timeout_kills_the_process_and_replaces_the_worker() {
    let s = Scratch::new("timeout");
    let engine = s.engine(s.options(1)).await;
    let options = TranscribeOptions {
        timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let hung = engine.transcribe(s.job("hang"), options);
    let reply = settle(hung).await;
    assert_eq!(code(&reply), "ERR_TIMEOUT");
    assert!(reply.unwrap_err().to_string().contains("300 ms"));
    let pids = s.pids();
    assert_eq!(pids.len(), 1);
    assert!(is_gone(pids[0]), "the hung process was killed and reaped");
    let workers = engine.worker_statuses().await;
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].id, "worker-2", "worker-1 was replaced");
    assert_eq!(
        text(&settle(submit(&engine, &s.job("ok after"))).await),
        "after"
    );
}

#[tokio::test]
async fn a_process_that_ignores_sigterm_gets_sigkill() {
    let s = Scratch::new("sigkill");
    let engine = s.engine(s.options(1)).await;
    let options = TranscribeOptions {
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let reply = settle(engine.transcribe(s.job("hang-ignoring-term"), options)).await;
    assert_eq!(code(&reply), "ERR_TIMEOUT");
    assert!(s.pids().iter().all(|&p| is_gone(p)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_one_request_after_running_it_again_and_the_workers_are_replaced() {
    let s = Scratch::new("crash");
    let engine = s.engine(s.options(3)).await;
    let crash = submit(&engine, &s.job("crash"));
    let others: Vec<_> = (0..4)
        .map(|i| submit(&engine, &s.job(&format!("work 0.1 fine{i}"))))
        .collect();
    let reply = settle(crash).await;
    assert_eq!(code(&reply), "ERR_WORKER_CRASHED");
    assert!(reply.unwrap_err().to_string().contains("SIGSEGV"));
    for o in others {
        assert_eq!(code(&settle(o).await), "ok");
    }
    let ids: Vec<String> = engine
        .worker_statuses()
        .await
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids.len(), 3);
    let replacements = ids
        .iter()
        .filter(|id| id["worker-".len()..].parse::<u32>().unwrap() > 3)
        .count();
    assert!(
        !ids.contains(&"worker-1".to_owned()) && replacements >= 1,
        "{ids:?}"
    );
    let stats = engine.status().await.pool_stats.unwrap();
    // It ran twice (the first death might have been another's doing, such
    // as the OOM killer), and each run's worker was replaced.
    assert_eq!(
        (
            stats.workers_replaced,
            stats.total_requests_failed,
            stats.total_requests_processed,
            stats.total_requests_retried
        ),
        (2, 1, 4, 1)
    );
}

#[tokio::test]
async fn consecutive_failures_replace_the_worker() {
    let s = Scratch::new("failures");
    let raw = EngineOptions {
        max_consecutive_failures: 2,
        ..s.options(1)
    };
    let engine = s.engine(raw).await;
    for directive in ["garbage", "fail-exit 10"] {
        assert_eq!(
            code(&settle(submit(&engine, &s.job(directive))).await),
            "ERR_WHISPER_FAILED"
        );
    }
    let r = settle(submit(&engine, &s.job("ok healed"))).await.unwrap();
    assert_eq!(r.worker_id, "worker-2");
}

#[tokio::test]
async fn dying_mid_output_is_a_crash_not_a_result() {
    let s = Scratch::new("midoutput");
    let engine = s.engine(s.options(1)).await;
    let reply = settle(submit(&engine, &s.job("die-mid-output"))).await;
    assert_eq!(code(&reply), "ERR_WORKER_CRASHED");
    assert!(reply.unwrap_err().to_string().contains("SIGKILL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_rejects_queued_requests_and_leaves_no_process() {
    let s = Scratch::new("shutdown");
    let engine = s.engine(s.options(2)).await;
    let running = [
        submit(&engine, &s.job("hang-with-child")),
        submit(&engine, &s.job("hang-ignoring-term")),
    ];
    let queued: Vec<_> = (0..5)
        .map(|i| submit(&engine, &s.job(&format!("ok {i}"))))
        .collect();
    // The two running processes have started (and logged) before shutdown.
    while s.pids().len() < 3 {
        tokio::task::yield_now().await;
    }
    engine.shutdown().await.unwrap();
    for j in running.into_iter().chain(queued) {
        assert_eq!(code(&settle(j).await), "ERR_SHUTDOWN");
    }
    let pids = s.pids();
    assert_eq!(pids.len(), 3, "two fakes and one grandchild: {pids:?}");
    for pid in pids {
        assert!(is_gone(pid), "pid {pid} outlived shutdown");
    }
    let late = engine.transcribe(s.job("ok late"), TranscribeOptions::default());
    assert_eq!(code(&settle(late).await), "ERR_SHUTDOWN");
    assert_eq!(engine.shutdown().await.unwrap_err().code(), "ERR_SHUTDOWN");
}

#[tokio::test]
async fn a_full_queue_rejects_at_once() {
    let s = Scratch::new("queuefull");
    let raw = EngineOptions {
        max_queue_size: 1,
        ..s.options(1)
    };
    let engine = s.engine(raw).await;
    let first = submit(&engine, &s.job("work 0.2 a"));
    let second = submit(&engine, &s.job("ok b"));
    let third = engine.transcribe(s.job("ok c"), TranscribeOptions::default());
    assert_eq!(code(&settle(third).await), "ERR_QUEUE_FULL");
    assert_eq!(text(&settle(first).await), "a");
    assert_eq!(text(&settle(second).await), "b");
}

#[tokio::test]
async fn restart_replaces_workers_and_loses_no_request() {
    let s = Scratch::new("restart");
    let engine = s.engine(s.options(1)).await;
    let running = submit(&engine, &s.job("work 0.3 first"));
    let queued = submit(&engine, &s.job("ok second"));
    engine.restart().await.unwrap();
    let (a, b) = (
        settle(running).await.unwrap(),
        settle(queued).await.unwrap(),
    );
    assert_eq!(
        (a.transcript.text.as_str(), b.transcript.text.as_str()),
        ("first", "second")
    );
    assert_eq!(
        (a.worker_id.as_str(), b.worker_id.as_str()),
        ("worker-2", "worker-2")
    );
    assert!(s.pids().iter().all(|&p| is_gone(p)));
}

#[tokio::test]
async fn initialize_twice_is_harmless_and_transcribe_before_it_is_refused() {
    let s = Scratch::new("init");
    let engine = new_engine(s.options(2));
    let early = engine.transcribe(s.job("ok x"), TranscribeOptions::default());
    assert_eq!(code(&settle(early).await), "ERR_NOT_INITIALIZED");
    engine.initialize().await.unwrap();
    engine.initialize().await.unwrap();
    assert_eq!(engine.worker_statuses().await.len(), 2);
    assert_eq!(
        text(&settle(submit(&engine, &s.job("ok fine"))).await),
        "fine"
    );
}
