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

/// How long the listing is read after the worker has exited (it is in the
/// pipe by then).
const EXIT_GRACE: Duration = Duration::from_millis(500);

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
    // Read until the process exits, not until its pipes close: a driver's
    // helper (or, under Wine, explorer.exe) may keep them open long after.
    let collecting = crate::process::collect_exited(&mut child, EXIT_GRACE);
    let output = match tokio::time::timeout(LIST_TIMEOUT, collecting).await {
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

    /// A FAKE worker (fault injection only): lists one GPU, leaves a
    /// descendant holding its stdout and stderr open (as Wine's explorer.exe
    /// or a driver's helper can), writes that one's pid to `pid_file`, and
    /// exits.
    #[cfg(unix)]
    fn fake_worker_leaving_a_holder(dir: &Path, pid_file: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("persistent-whisper-worker");
        let list = format!(
            r#"{{"protocol":{},"gpus":[{{"kind":"vulkan","name":"FAKE GPU","memoryBytes":1}}],"cpu":{{"kind":"cpu","name":"FAKE CPU"}}}}"#,
            persistent_whisper_protocol::PROTOCOL
        );
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nsleep 60 &\necho $! > '{}'\necho '{list}'\nexit 0\n",
                pid_file.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_descendant_holding_the_pipes_neither_holds_the_probe_nor_outlives_it() {
        let dir = std::env::temp_dir().join(format!("pw-probe-holder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("holder.pid");
        let worker = fake_worker_leaving_a_holder(&dir, &pid_file);
        let started = std::time::Instant::now();
        let list = list_devices(&worker).await.expect("the devices it listed");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(list.gpus.len(), 1);
        assert_eq!(list.gpus[0].name, "FAKE GPU");
        let holder: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Ended with the probe's process group (a zombie until init reaps it).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{holder}/stat")).unwrap_or_default();
            let gone =
                stat.is_empty() || stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'));
            if gone {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the holder {holder} outlived the probe"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        std::fs::remove_dir_all(&dir).unwrap();
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
