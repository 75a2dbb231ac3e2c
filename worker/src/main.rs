//! persistent-whisper-worker: loads a whisper model once and serves
//! transcriptions over its stdin and stdout (persistent-whisper-protocol),
//! several at once, each on a fresh whisper state in its own thread. It
//! exits when its stdin closes, so it never outlives the process that
//! started it.
//!
//! usage: persistent-whisper-worker --model PATH [--slots N] [--no-gpu]
//!        [--no-flash-attn] [--verbose] [--gpu-device N] [--decoders N]
//!        persistent-whisper-worker --list-devices
//!
//! `--list-devices` prints the devices ggml sees as one JSON line
//! (persistent_whisper_protocol::device::DeviceList) and exits: the engine
//! asks a GPU build this before choosing it.
//!        persistent-whisper-worker --vad-model PATH [--verbose]
//!
//! With `--vad-model` it loads a Silero VAD model instead and serves voice
//! activity detection streams (live dictation's), no transcriptions.

mod audio;
mod device;
mod ffi;
mod vad;
mod whisper;

use audio::{AudioError, Limits};
use persistent_whisper_protocol::{self as proto, Audio, Failure, Params, Reply, Request, Segment};
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const USAGE: &str = "usage: persistent-whisper-worker --model PATH [--slots N] [--no-gpu] [--gpu-device N] [--decoders N] [--no-flash-attn] [--verbose]\n       persistent-whisper-worker --list-devices\n       persistent-whisper-worker --vad-model PATH [--verbose]\n\nServes transcriptions (or, with --vad-model, voice activity detection) over stdin and stdout in persistent-whisper's framed protocol; exits when stdin closes.";

struct Args {
    model: String,
    /// VAD mode: the Silero model.
    vad_model: String,
    slots: u32,
    gpu: bool,
    /// Which GPU, in whisper's count (`--gpu-device`).
    gpu_index: u32,
    /// Decoders a decode runs at once (the larger of beam size and
    /// best-of): what a decode holds on a GPU (`--decoders`).
    decoders: u32,
    flash_attn: bool,
    verbose: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: String::new(),
        vad_model: String::new(),
        slots: 1,
        gpu: true,
        gpu_index: 0,
        decoders: 5,
        flash_attn: true,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--model" | "-m" => args.model = it.next().ok_or("--model needs a path")?,
            "--vad-model" => args.vad_model = it.next().ok_or("--vad-model needs a path")?,
            "--slots" => {
                args.slots = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=256).contains(n))
                    .ok_or("--slots needs a number from 1 to 256")?
            }
            "--no-gpu" => args.gpu = false,
            "--gpu-device" => {
                args.gpu_index = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n < 256)
                    .ok_or("--gpu-device needs a number from 0 to 255")?
            }
            "--decoders" => {
                args.decoders = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=8).contains(n))
                    .ok_or("--decoders needs a number from 1 to 8")?
            }
            "--no-flash-attn" => args.flash_attn = false,
            "--verbose" => args.verbose = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.model.is_empty() == args.vad_model.is_empty() {
        return Err("one of --model and --vad-model is required".into());
    }
    Ok(args)
}

/// The worker's stdout: whole frames, one writer at a time.
struct Output(Mutex<io::Stdout>);

impl Output {
    fn send(&self, reply: &Reply) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // The engine is gone if this fails; stdin's end will tell the main loop.
        let _ = proto::write_frame(&mut *out, reply, &[]);
    }
}

/// What the main loop can change in a running transcription.
#[derive(Clone)]
struct Controls {
    stop: Arc<AtomicBool>,
    /// Its thread count, read by whisper before each step.
    threads: Arc<AtomicI32>,
}

/// One transcription's reports and controls.
struct Job {
    id: u64,
    out: Arc<Output>,
    controls: Controls,
}

impl whisper::Observer for Job {
    fn progress(&self, percent: u8) {
        self.out.send(&Reply::Progress {
            id: self.id,
            percent,
        });
    }

    fn segment(&self, segment: Segment) {
        self.out.send(&Reply::Segment {
            id: self.id,
            segment,
        });
    }

    fn stop(&self) -> &AtomicBool {
        &self.controls.stop
    }

    fn threads(&self) -> &AtomicI32 {
        &self.controls.threads
    }
}

/// A thread count whisper accepts: 1 to 1024.
fn thread_count(n: u32) -> i32 {
    n.clamp(1, 1024) as i32
}

fn transcribe(
    model: &whisper::Model,
    job: &Job,
    audio: Audio,
    payload: Vec<u8>,
    params: &Params,
) -> Reply {
    let failed = |failure, message: &str| Reply::Failed {
        id: job.id,
        failure,
        message: message.to_owned(),
    };
    let limits = Limits {
        max_samples: params.max_samples,
        stop: &job.controls.stop,
    };
    let samples = match audio {
        Audio::Path { path, max_bytes } => {
            audio::read_file(&path, max_bytes, &limits).and_then(|b| audio::decode(&b, &limits))
        }
        Audio::File => audio::decode(&payload, &limits),
        Audio::Samples => audio::samples_of(&payload, &limits),
    };
    drop(payload);
    let samples = match samples {
        Ok(s) if s.is_empty() => {
            return failed(Failure::AudioUnreadable, "it holds no audio");
        }
        Ok(s) => s,
        Err(AudioError::Aborted) => return failed(Failure::Aborted, "aborted"),
        Err(AudioError::NotFound(path)) => {
            return failed(Failure::AudioNotFound, &format!("no file at {path}"))
        }
        Err(AudioError::Unreadable(why)) => return failed(Failure::AudioUnreadable, &why),
        Err(AudioError::Limit(why)) => return failed(Failure::AudioLimit, &why),
    };
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return failed(
            Failure::AudioUnreadable,
            &format!("sample {i} is not a finite number"),
        );
    }
    // On a GPU, at most as many decodes as its memory fits run at once.
    let Some(_turn) = device::turn(&job.controls.stop) else {
        return failed(Failure::Aborted, "aborted");
    };
    match model.transcribe(
        &samples,
        &params.language,
        &params.decoding,
        params.progress,
        job,
    ) {
        whisper::Outcome::Done { language } => Reply::Done {
            id: job.id,
            language,
        },
        whisper::Outcome::Aborted => failed(Failure::Aborted, "aborted"),
        whisper::Outcome::Failed(why) => failed(Failure::Whisper, why),
    }
}

fn main() {
    if std::env::args().skip(1).eq(["--list-devices"]) {
        println!("{}", device::list().to_line());
        return;
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("persistent-whisper-worker: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    whisper::log_to_stderr(args.verbose);
    let out = Arc::new(Output(Mutex::new(io::stdout())));
    if !args.vad_model.is_empty() {
        return serve_vad(&args.vad_model, &out);
    }
    // More encoders at once than cores gains nothing; each costs its buffers.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let encoders = args.slots.min(u32::try_from(cores).unwrap_or(u32::MAX));
    device::use_gpu(args.gpu_index);
    let model = match whisper::Model::load(&args.model, args.gpu, args.flash_attn, encoders) {
        Ok(model) => Arc::new(model),
        Err(message) => {
            out.send(&Reply::Fatal {
                failure: Failure::ModelLoad,
                message,
            });
            std::process::exit(3);
        }
    };
    let placement = device::place(
        &model,
        &device::Wanted {
            gpu: args.gpu,
            gpu_index: args.gpu_index,
            decoders: args.decoders,
            slots: args.slots,
            model_bytes: std::fs::metadata(&args.model).map_or(0, |m| m.len()),
            shared_encoders: whisper::features().iter().any(|f| f == "sharedEncoders"),
        },
        args.verbose,
    );
    device::set_decodes(placement.decodes);
    let on_gpu = placement.device.is_gpu();
    out.send(&Reply::Device {
        device: placement.device,
        decodes: placement.decodes,
    });
    if on_gpu {
        device::warm_up(&model);
    }
    out.send(&Reply::Ready {
        slots: args.slots,
        protocol: proto::PROTOCOL,
        features: whisper::features(),
    });

    let running: Arc<Mutex<HashMap<u64, Controls>>> = Arc::default();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut stdin = io::stdin().lock();
    loop {
        match proto::read_frame::<Request>(&mut stdin) {
            Ok(Some((Request::Transcribe { id, audio, params }, payload))) => {
                let controls = Controls {
                    stop: Arc::new(AtomicBool::new(false)),
                    threads: Arc::new(AtomicI32::new(thread_count(params.threads))),
                };
                running.lock().unwrap().insert(id, controls.clone());
                let (model, out, running) = (model.clone(), out.clone(), running.clone());
                threads.retain(|t| !t.is_finished());
                threads.push(std::thread::spawn(move || {
                    let job = Job { id, out, controls };
                    // A bug must cost its request, not the process.
                    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        transcribe(&model, &job, audio, payload, &params)
                    }))
                    .unwrap_or_else(|_| Reply::Failed {
                        id,
                        failure: Failure::Whisper,
                        message: "the worker program failed (a bug: please report it)".into(),
                    });
                    running.lock().unwrap().remove(&id);
                    job.out.send(&reply);
                }));
            }
            Ok(Some((Request::Cancel { id }, _))) => {
                if let Some(c) = running.lock().unwrap().get(&id) {
                    c.stop.store(true, Ordering::SeqCst);
                }
            }
            Ok(Some((Request::Threads { id, threads }, _))) => {
                if let Some(c) = running.lock().unwrap().get(&id) {
                    c.threads.store(thread_count(threads), Ordering::Relaxed);
                }
            }
            Ok(Some((Request::VadAudio { id }, _))) => out.send(&Reply::Failed {
                id,
                failure: Failure::Protocol,
                message: "this worker serves transcriptions: start one with --vad-model for VAD"
                    .into(),
            }),
            Ok(Some((Request::VadClose { .. }, _))) => {}
            // The engine closed our stdin, or is gone.
            Ok(None) => break,
            Err(e) => {
                let _ = writeln!(io::stderr(), "persistent-whisper-worker: {e}");
                break;
            }
        }
    }
    // Nobody will read the answers: stop every transcription, then exit.
    for c in running.lock().unwrap().values() {
        c.stop.store(true, Ordering::SeqCst);
    }
    for t in threads {
        let _ = t.join();
    }
}

/// VAD mode: one thread answers every stream's windows in the order they
/// come (each window is a fraction of a millisecond of work).
fn serve_vad(model: &str, out: &Arc<Output>) {
    let mut streams = match vad::Streams::new(model) {
        Ok(streams) => streams,
        Err(message) => {
            out.send(&Reply::Fatal {
                failure: Failure::ModelLoad,
                message,
            });
            std::process::exit(3);
        }
    };
    out.send(&Reply::Ready {
        slots: 0,
        protocol: proto::PROTOCOL,
        features: whisper::features(),
    });
    let mut stdin = io::stdin().lock();
    loop {
        match proto::read_frame::<Request>(&mut stdin) {
            Ok(Some((Request::VadAudio { id }, payload))) => {
                let reply = audio::samples_of_unbounded(&payload)
                    .and_then(|samples| streams.probs(id, &samples))
                    .map(|probs| Reply::VadProbs { id, probs })
                    .unwrap_or_else(|message| Reply::Failed {
                        id,
                        failure: Failure::Whisper,
                        message,
                    });
                out.send(&reply);
            }
            Ok(Some((Request::VadClose { id }, _))) => streams.close(id),
            Ok(Some((other, _))) => {
                let _ = writeln!(
                    io::stderr(),
                    "persistent-whisper-worker: not in VAD mode: {other:?}"
                );
            }
            Ok(None) => break,
            Err(e) => {
                let _ = writeln!(io::stderr(), "persistent-whisper-worker: {e}");
                break;
            }
        }
    }
}
