//! The device the worker decodes on: the GPUs ggml sees (`--list-devices`),
//! the one the model went to, and on a GPU how many decodes run at once,
//! by the device's free memory (persistent_whisper_protocol::device's rule).
//! Decodes beyond that wait for their turn here, and a cancel reaches them
//! while they wait.

use crate::whisper::Model;
use persistent_whisper_protocol::device::{self, Device, DeviceList};
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// devices.cpp's pw_device_info.
#[repr(C)]
struct RawDevice {
    backend: [c_char; 32],
    name: [c_char; 256],
    memory_free: u64,
    memory_total: u64,
}

extern "C" {
    fn pw_gpu_count() -> i32;
    fn pw_gpu_info(gpu: i32, out: *mut RawDevice) -> i32;
    fn pw_cpu_info(out: *mut RawDevice) -> i32;
    fn pw_set_gpu_device(gpu: i32);
    fn pw_model_context(model: *mut c_void) -> *mut c_void;
    fn pw_state_probe(ctx: *mut c_void, encoders: i32, log: *mut c_char, cap: usize) -> i32;
}

/// How much of whisper's log a state probe keeps (its lines come last).
const PROBE_LOG: usize = 64 * 1024;

fn text(chars: &[c_char]) -> String {
    // SAFETY: devices.cpp writes NUL-terminated text within the array.
    unsafe { CStr::from_ptr(chars.as_ptr()) }
        .to_string_lossy()
        .trim()
        .to_owned()
}

fn device_of(raw: &RawDevice) -> Device {
    let kind = text(&raw.backend).to_lowercase();
    let name = text(&raw.name);
    let gpu = kind != "cpu";
    Device {
        name: if name.is_empty() { kind.clone() } else { name },
        kind,
        // ggml reports the host's memory for its CPU device: not a GPU's.
        memory_bytes: (gpu && raw.memory_total > 0).then_some(raw.memory_total),
        free_bytes: (gpu && raw.memory_total > 0).then_some(raw.memory_free),
    }
}

fn raw_device() -> RawDevice {
    RawDevice {
        backend: [0; 32],
        name: [0; 256],
        memory_free: 0,
        memory_total: 0,
    }
}

/// The `gpu`th GPU whisper can use.
fn gpu(gpu: i32) -> Option<Device> {
    let mut raw = raw_device();
    // SAFETY: a plain query into a struct of the C layout.
    (unsafe { pw_gpu_info(gpu, &mut raw) } == 0).then(|| device_of(&raw))
}

fn cpu() -> Device {
    let mut raw = raw_device();
    // SAFETY: as above.
    if unsafe { pw_cpu_info(&mut raw) } == 0 {
        device_of(&raw)
    } else {
        Device {
            kind: "cpu".into(),
            name: "CPU".into(),
            memory_bytes: None,
            free_bytes: None,
        }
    }
}

/// `--list-devices`: the GPUs whisper can use, in its order, and the CPU.
pub fn list() -> DeviceList {
    // SAFETY: a plain query.
    let count = unsafe { pw_gpu_count() }.max(0);
    DeviceList {
        protocol: persistent_whisper_protocol::PROTOCOL,
        gpus: (0..count).filter_map(gpu).collect(),
        cpu: cpu(),
    }
}

/// Which GPU the next model load uses (`--gpu-device`).
pub fn use_gpu(index: u32) {
    // SAFETY: sets a number the next pw_model_load reads.
    unsafe { pw_set_gpu_device(i32::try_from(index).unwrap_or(i32::MAX)) }
}

/// Where a loaded model decodes, and how many decodes run there at once.
pub struct Placement {
    pub device: Device,
    pub decodes: u32,
}

/// What to weigh when placing decodes on a GPU.
pub struct Wanted {
    pub gpu: bool,
    pub gpu_index: u32,
    /// Decoders a decode runs at once (the larger of beam size and best-of).
    pub decoders: u32,
    pub slots: u32,
    /// Bytes of the model file: what a device that does not track its use
    /// of memory has less free once it holds the model.
    pub model_bytes: u64,
    pub shared_encoders: bool,
}

/// The device `model` was loaded on: on a GPU, how many decodes fit by the
/// rule (measured by reserving one decode state), and the encoder buffers
/// shared by one set; on the CPU, every slot (the engine's thread budget
/// shares the cores out).
pub fn place(model: &Model, wanted: &Wanted, verbose: bool) -> Placement {
    let on_gpu = if wanted.gpu {
        gpu(i32::try_from(wanted.gpu_index).unwrap_or(i32::MAX))
    } else {
        None
    };
    let Some(device) = on_gpu else {
        return Placement {
            device: cpu(),
            decodes: wanted.slots,
        };
    };
    let mut log = vec![0 as c_char; PROBE_LOG];
    // SAFETY: the model's context, and a buffer of the size given; the probe
    // replaces the log callback, set again right after.
    let rc = unsafe {
        let ctx = pw_model_context(model.raw().cast());
        pw_state_probe(ctx, 1, log.as_mut_ptr(), log.len())
    };
    crate::whisper::log_to_stderr(verbose);
    let cost = (rc == 0)
        .then(|| device::state_cost_from_log(&text(&log)))
        .flatten();
    let total = device.memory_bytes.unwrap_or(0);
    // A device that does not track its use reports all of it free.
    let free = match gpu(i32::try_from(wanted.gpu_index).unwrap_or(i32::MAX)) {
        Some(now) if now.free_bytes.unwrap_or(0) < total => now.free_bytes.unwrap_or(0),
        _ => total.saturating_sub(wanted.model_bytes),
    };
    let decodes = match cost {
        Some(cost) => device::decodes_that_fit(
            free,
            total,
            cost,
            wanted.decoders,
            wanted.shared_encoders,
            wanted.slots,
        ),
        // Nothing to measure by: one at a time is always safe.
        None => 1,
    };
    Placement {
        device: Device {
            free_bytes: Some(free),
            ..device
        },
        decodes,
    }
}

/// A decode that reports nothing, for the warm-up.
struct Quiet {
    stop: AtomicBool,
    threads: AtomicI32,
}

impl crate::whisper::Observer for Quiet {
    fn progress(&self, _: u8) {}
    fn segment(&self, _: persistent_whisper_protocol::Segment) {}
    fn stop(&self) -> &AtomicBool {
        &self.stop
    }
    fn threads(&self) -> &AtomicI32 {
        &self.threads
    }
}

/// One decode of a second of silence with beam search, before
/// the worker says it is ready: on a GPU the first decode compiles the
/// shaders its driver has not cached (seconds on a GPU's driver, minutes on
/// a software renderer), which the first request would otherwise pay for,
/// within its timeout. The engine allows for it (process.rs, GPU_WARM_UP).
pub fn warm_up(model: &Model) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let quiet = Quiet {
        stop: AtomicBool::new(false),
        threads: AtomicI32::new(i32::try_from(cores.min(4)).unwrap_or(1)),
    };
    let silence = vec![0.0f32; 16_000];
    // Beam search as requests decode, without the temperature fallback's
    // retries, which silence would set off.
    let decoding = persistent_whisper_protocol::Decoding {
        temperature_inc: 0.0,
        ..Default::default()
    };
    let _ = model.transcribe(&silence, "en", &decoding, false, &quiet);
}

/// Turns at the device: at most `decodes` transcriptions run at once.
pub struct Gate {
    free: Mutex<u32>,
    freed: Condvar,
}

/// A turn, given back when dropped.
pub struct Turn<'a>(&'a Gate);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// How often a waiting transcription looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(20);

impl Gate {
    pub fn new(decodes: u32) -> Self {
        Gate {
            free: Mutex::new(decodes.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Turns free now.
    #[cfg(test)]
    pub fn available(&self) -> u32 {
        *self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a turn; None if `stop` is set first.
    pub fn enter<'a>(&'a self, stop: &AtomicBool) -> Option<Turn<'a>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if *free > 0 {
                *free -= 1;
                return Some(Turn(self));
            }
            free = self
                .freed
                .wait_timeout(free, STOP_CHECK)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The process's gate, set once its model is placed.
static GATE: OnceLock<Gate> = OnceLock::new();

pub fn set_decodes(decodes: u32) {
    let _ = GATE.set(Gate::new(decodes));
}

/// A turn at the device for one transcription (always one before
/// set_decodes); None if it was stopped while it waited.
pub fn turn(stop: &AtomicBool) -> Option<Turn<'static>> {
    GATE.get_or_init(|| Gate::new(u32::MAX)).enter(stop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_gate_lets_in_as_many_as_fit_and_the_next_when_one_leaves() {
        let gate = Arc::new(Gate::new(2));
        let go = AtomicBool::new(false);
        let a = gate.enter(&go).unwrap();
        let _b = gate.enter(&go).unwrap();
        assert_eq!(gate.available(), 0, "two run, no turn left");
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.enter(&AtomicBool::new(false)).is_some())
        };
        drop(a);
        assert!(waiter.join().unwrap(), "a third goes in when one leaves");
        assert_eq!(gate.available(), 1, "and gives its turn back");
    }

    #[test]
    fn a_stop_reaches_a_transcription_waiting_for_its_turn() {
        let gate = Arc::new(Gate::new(1));
        let _held = gate.enter(&AtomicBool::new(false)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (gate, stop) = (gate.clone(), stop.clone());
            std::thread::spawn(move || gate.enter(&stop).is_none())
        };
        stop.store(true, Ordering::SeqCst);
        assert!(waiter.join().unwrap(), "stopped, not let in");
    }
}
