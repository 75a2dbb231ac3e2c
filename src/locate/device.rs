//! GPU builds. A platform package keeps them in variant folders of their
//! own (`bin/vulkan/`, and `bin/cuda/` where one was built), apart from the
//! CPU variants: a program linked to a GPU library (the Vulkan loader, CUDA's
//! runtime) that is missing here does not even start, and must never stop
//! the CPU build from running. Which GPUs a build can use here is asked of
//! its worker program (`--list-devices`), in a process of its own.

use persistent_whisper_protocol::device::DeviceList;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Variant folders that hold a GPU build, best first (a CUDA build exists
/// only where one was built from source).
pub const GPU_BUILDS: &[&str] = &["cuda", "vulkan"];

/// CPU variants whose build also drives a GPU (Metal on Apple silicon).
pub const GPU_IN_CPU_BUILD: &[&str] = &["apple-arm64"];

/// How long a build may take to say which devices it sees: loading a GPU
/// driver takes a second or two; a hung driver must not hang initialize().
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// The GPU builds in `bin` (a package's or a checkout's `bin/`) that hold
/// `file`, best first.
pub fn gpu_builds(bin: &Path, file: &str) -> Vec<(&'static str, PathBuf)> {
    GPU_BUILDS
        .iter()
        .map(|v| (*v, bin.join(v)))
        .filter(|(_, dir)| dir.join(file).is_file())
        .collect()
}

/// Whether a variant's build can use a GPU at all.
pub fn has_gpu(variant: &str) -> bool {
    GPU_BUILDS.contains(&variant) || GPU_IN_CPU_BUILD.contains(&variant)
}

/// The devices the worker program `worker` sees, or why it could not say
/// (it does not start here: a missing GPU library; it crashed; it hung).
pub async fn list_devices(worker: &Path) -> Result<DeviceList, String> {
    let mut cmd = crate::process::command(worker);
    cmd.arg("--list-devices");
    let mut child = crate::process::spawn(&mut cmd).map_err(|e| e.to_string())?;
    let output = match tokio::time::timeout(LIST_TIMEOUT, crate::process::collect(&mut child)).await
    {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            crate::process::terminate(&mut child, crate::process::TERMINATE_GRACE).await;
            return Err(format!(
                "it did not list its devices within {} s",
                LIST_TIMEOUT.as_secs()
            ));
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last_line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    if let Some(why) = missing_library(worker, output.status.code()) {
        return Err(why);
    }
    if let Some(signal) = crate::process::killed_by(&output.status) {
        return Err(format!("it was killed by {signal}{last_line}"));
    }
    if !output.status.success() {
        return Err(format!(
            "it exited with code {}{last_line}",
            output.status.code().unwrap_or(-1)
        ));
    }
    let list = DeviceList::parse(&String::from_utf8_lossy(&output.stdout))?;
    if list.protocol != persistent_whisper_protocol::PROTOCOL {
        return Err(format!(
            "it speaks protocol version {}, and this engine version {}",
            list.protocol,
            persistent_whisper_protocol::PROTOCOL
        ));
    }
    Ok(list)
}

/// Why Windows' loader would not start a GPU build's program, from its exit
/// code: a DLL it imports is not on this machine (STATUS_DLL_NOT_FOUND), or
/// lacks a function (STATUS_ENTRYPOINT_NOT_FOUND). For the Vulkan build that
/// is vulkan-1.dll, the Vulkan loader, which only a graphics driver
/// installs: the usual case on a machine without a GPU, not a failure.
/// (No dialog says so on screen: process/error_mode.rs.)
fn missing_library(worker: &Path, code: Option<i32>) -> Option<String> {
    let (status, what) = match code? as u32 {
        0xC000_0135 => ("STATUS_DLL_NOT_FOUND", "is missing"),
        0xC000_0139 => ("STATUS_ENTRYPOINT_NOT_FOUND", "is too old"),
        _ => return None,
    };
    let build = worker.parent()?.file_name()?.to_str()?;
    let library = match build {
        "vulkan" => "no Vulkan loader here: vulkan-1.dll, which a graphics driver installs,",
        "cuda" => "CUDA's runtime: a DLL of the CUDA toolkit",
        _ => "a DLL it imports",
    };
    Some(format!("{library} {what} (it exited with {status})"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_dll_is_named_as_the_build_s_library() {
        let worker = Path::new("bin/vulkan/persistent-whisper-worker.exe");
        let missing = missing_library(worker, Some(0xC000_0135_u32 as i32)).unwrap();
        assert!(
            missing.contains("no Vulkan loader here: vulkan-1.dll"),
            "{missing}"
        );
        assert!(missing.contains("STATUS_DLL_NOT_FOUND"), "{missing}");
        let old = missing_library(worker, Some(0xC000_0139_u32 as i32)).unwrap();
        assert!(old.contains("is too old"), "{old}");
        // A crash, an ordinary exit code, or a signal (no code) is something else.
        for code in [Some(0xC000_0005_u32 as i32), Some(1), Some(0), None] {
            assert_eq!(missing_library(worker, code), None, "{code:?}");
        }
        let cpu = missing_library(
            Path::new("bin/x86-64-v2/w.exe"),
            Some(0xC000_0135_u32 as i32),
        );
        assert!(cpu.unwrap().starts_with("a DLL it imports"));
    }

    use super::*;

    #[test]
    fn gpu_builds_are_the_known_folders_that_hold_the_program_best_first() {
        let bin = std::env::temp_dir().join(format!("pw-gpu-builds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&bin);
        for dir in ["x86-64-v2", "vulkan", "cuda", "opencl"] {
            std::fs::create_dir_all(bin.join(dir)).unwrap();
            std::fs::write(bin.join(dir).join("whisper-cli"), "").unwrap();
        }
        std::fs::create_dir_all(bin.join("empty")).unwrap();
        let found: Vec<&str> = gpu_builds(&bin, "whisper-cli")
            .iter()
            .map(|(v, _)| *v)
            .collect();
        assert_eq!(found, ["cuda", "vulkan"]);
        std::fs::remove_file(bin.join("cuda").join("whisper-cli")).unwrap();
        let found: Vec<&str> = gpu_builds(&bin, "whisper-cli")
            .iter()
            .map(|(v, _)| *v)
            .collect();
        assert_eq!(found, ["vulkan"]);
        assert!(gpu_builds(&bin, "whisper-server").is_empty());
        assert!(has_gpu("vulkan") && has_gpu("apple-arm64") && !has_gpu("x86-64-v3"));
        std::fs::remove_dir_all(&bin).unwrap();
    }
}
