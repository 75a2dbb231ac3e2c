//! Devices: which one a worker process decodes on, what `--list-devices`
//! reports, and the rule for how many decodes fit on a GPU at once.

use serde::{Deserialize, Serialize};

/// A device whisper runs on, as ggml names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// ggml's backend, lowercased: "cpu", "vulkan", "metal", "cuda" ...
    pub kind: String,
    /// The device's own name, e.g. "NVIDIA GeForce RTX 4070" or the CPU's.
    pub name: String,
    /// Its memory in bytes (a GPU's video memory), where ggml knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Of which free, as the driver reports it when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
}

/// How many times the default timeout a request gets on a software
/// renderer: Mesa's lavapipe decoded 10 times slower than the CPU build
/// here (23 s against 2.5 s for a 7 s clip, warm shader cache), and
/// decodes at once share its threads.
pub const SOFTWARE_RENDERER_SLOWDOWN: u32 = 20;

impl Device {
    pub fn is_gpu(&self) -> bool {
        self.kind != "cpu"
    }

    /// A GPU device that is the CPU in disguise (Mesa's lavapipe/llvmpipe,
    /// SwiftShader): ggml uses one only where GGML_VK_VISIBLE_DEVICES names
    /// it, and it decodes many times slower than the CPU build.
    pub fn is_software(&self) -> bool {
        let name = self.name.to_lowercase();
        self.is_gpu()
            && ["llvmpipe", "lavapipe", "swiftshader", "softpipe"]
                .iter()
                .any(|s| name.contains(s))
    }
}

/// What `persistent-whisper-worker --list-devices` prints: one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceList {
    pub protocol: u32,
    /// The GPUs whisper can use, in its order: `--gpu-device N` picks the Nth.
    pub gpus: Vec<Device>,
    /// The CPU, which runs everything a GPU does not.
    pub cpu: Device,
}

impl DeviceList {
    /// The line `--list-devices` prints.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a device list serializes")
    }

    /// Reads what `--list-devices` printed.
    pub fn parse(text: &str) -> Result<DeviceList, String> {
        serde_json::from_str(text.trim()).map_err(|e| format!("not a device list: {e}"))
    }
}

/// What one decode costs on a device, from the buffers whisper reserves for
/// a state (it logs each one's size as it reserves it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCost {
    /// The self-attention KV cache for one decoder (beam search and
    /// best-of keep one per decoder).
    pub kv_self: u64,
    /// The cross-attention and padding KV caches, and the decoder's
    /// compute buffer: once per state.
    pub per_state: u64,
    /// The encoder's compute buffers (conv, encoder, cross): per state, or
    /// once per shared set where the build shares them.
    pub encoder: u64,
}

/// The rule for how many decodes run at once on a GPU (README, "GPUs"):
/// what the device has free once the model is loaded, less a reserve of a
/// tenth of its memory (at least 256 MiB) for the driver and fragmentation,
/// less the encoder buffers the decodes share (where the build shares them),
/// divided by what one decode holds: its state, with the self-attention
/// cache once per decoder (`decoders`: the larger of beam size and best-of).
/// At least one, at most `slots`.
pub fn decodes_that_fit(
    free: u64,
    total: u64,
    cost: StateCost,
    decoders: u32,
    shared_encoder: bool,
    slots: u32,
) -> u32 {
    let reserve = (total / 10).max(256 << 20);
    let one = cost.kv_self * u64::from(decoders.max(1))
        + cost.per_state
        + if shared_encoder { 0 } else { cost.encoder };
    let shared = if shared_encoder { cost.encoder } else { 0 };
    let room = free.saturating_sub(reserve).saturating_sub(shared);
    let fit = room.checked_div(one.max(1)).unwrap_or(u64::MAX);
    u32::try_from(fit)
        .unwrap_or(u32::MAX)
        .clamp(1, slots.max(1))
}

/// Adds up the sizes whisper logs as it reserves a state's buffers
/// ("whisper_init_state: kv self size  =   3.15 MB" ...): the stock way to
/// learn them, since whisper.h does not expose them.
pub fn state_cost_from_log(log: &str) -> Option<StateCost> {
    let mut cost = StateCost::default();
    let mut seen = false;
    for line in log.lines() {
        let Some(rest) = line.split_once("whisper_init_state:").map(|(_, r)| r) else {
            continue;
        };
        let Some((what, size)) = rest.split_once('=') else {
            continue;
        };
        let Some(mb) = size
            .trim()
            .strip_suffix("MB")
            .and_then(|n| n.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let bytes = (mb * 1e6) as u64;
        let what = what.trim();
        seen = true;
        if what.starts_with("kv self") {
            cost.kv_self += bytes;
        } else if what.starts_with("kv ") || what.contains("(decode)") {
            cost.per_state += bytes;
        } else if what.contains("(conv)") || what.contains("(encode)") || what.contains("(cross)") {
            cost.encoder += bytes;
        }
    }
    seen.then_some(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;
    const GIB: u64 = 1 << 30;

    #[test]
    fn whispers_state_log_gives_each_buffer_its_place() {
        let log = "\
whisper_init_state: kv self size  =    3.15 MB
whisper_init_state: kv cross size =    9.44 MB
whisper_init_state: kv pad  size  =    2.36 MB
whisper_init_state: compute buffer (conv)   =   13.19 MB
whisper_init_state: compute buffer (encode) =   17.24 MB
whisper_init_state: compute buffer (cross)  =    3.88 MB
whisper_init_state: compute buffer (decode) =   95.81 MB
whisper_model_load: model size    =   73.54 MB
";
        let cost = state_cost_from_log(log).unwrap();
        assert_eq!(cost.kv_self, 3_150_000);
        assert_eq!(cost.per_state, 9_440_000 + 2_360_000 + 95_810_000);
        assert_eq!(cost.encoder, 13_190_000 + 17_240_000 + 3_880_000);
        assert_eq!(state_cost_from_log("nothing to see\n"), None);
    }

    #[test]
    fn decodes_follow_free_memory_less_a_reserve() {
        let cost = StateCost {
            kv_self: 10 * MB,
            per_state: 100 * MB,
            encoder: 50 * MB,
        };
        // 8 GiB card, 4 GiB free: reserve 0.8 GiB, one decode 5*10+100+50 = 200 MB.
        let n = decodes_that_fit(4 * GIB, 8 * GIB, cost, 5, false, 64);
        assert_eq!(n, ((4 * GIB - 8 * GIB / 10) / (200 * MB)) as u32);
        // Sharing the encoder buffers: they count once, so more fit.
        assert!(decodes_that_fit(4 * GIB, 8 * GIB, cost, 5, true, 64) > n);
        // Capped by the slots the engine asks for.
        assert_eq!(decodes_that_fit(4 * GIB, 8 * GIB, cost, 5, false, 3), 3);
    }

    #[test]
    fn a_full_device_still_runs_one_decode() {
        let cost = StateCost {
            kv_self: GIB,
            per_state: GIB,
            encoder: GIB,
        };
        assert_eq!(decodes_that_fit(100 * MB, 2 * GIB, cost, 5, false, 8), 1);
        assert_eq!(decodes_that_fit(0, 0, StateCost::default(), 0, true, 0), 1);
    }

    #[test]
    fn device_lists_round_trip_as_json() {
        let list = DeviceList {
            protocol: 2,
            gpus: vec![Device {
                kind: "vulkan".into(),
                name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
                memory_bytes: Some(8 * GIB),
                free_bytes: None,
            }],
            cpu: Device {
                kind: "cpu".into(),
                name: "AMD EPYC".into(),
                memory_bytes: None,
                free_bytes: None,
            },
        };
        let json = list.to_line();
        assert!(json.contains(r#""memoryBytes":8589934592"#), "{json}");
        assert!(!json.contains("freeBytes"), "{json}");
        assert_eq!(DeviceList::parse(&json).unwrap(), list);
        assert!(DeviceList::parse("ggml_vulkan: error").is_err());
        assert!(list.gpus[0].is_gpu() && !list.cpu.is_gpu());
        assert!(list.gpus[0].is_software() && !list.cpu.is_software());
        let rtx = Device {
            name: "NVIDIA GeForce RTX 4070".into(),
            ..list.gpus[0].clone()
        };
        assert!(!rtx.is_software());
    }
}
