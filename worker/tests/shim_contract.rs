//! shim.cpp's contract with whisper.cpp, checked against a FAKE whisper.cpp
//! (tests/shim/fake_whisper.cpp, for these tests only): a state whisper
//! frees itself is not freed again, and no C++ exception crosses into Rust.
//! Built with the host's `c++` and -ldl: Linux and macOS.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The shim, the FAKE whisper and the driver, built once into one program.
fn driver() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let src = Path::new(env!("PW_WHISPER_SRC_USED"));
        let out = std::env::temp_dir().join(format!("pw-shim-contract-{}", std::process::id()));
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let status = Command::new(cxx)
            .args(["-std=c++17", "-O0", "-w", "-o"])
            .arg(&out)
            .arg("-I")
            .arg(Path::new(env!("OUT_DIR")).join("include"))
            .arg("-I")
            .arg(src.join("include"))
            .arg("-I")
            .arg(src.join("ggml/include"))
            .arg("-I")
            .arg(src.join("examples"))
            .arg(here.join("src/shim.cpp"))
            .arg(here.join("tests/shim/fake_whisper.cpp"))
            .arg(here.join("tests/shim/contract.cpp"))
            .args(["-lpthread", "-lm", "-ldl"])
            .status()
            .expect("a C++ compiler (c++, or CXX)");
        assert!(status.success(), "the shim and the FAKE whisper compile");
        out
    })
}

/// (the shim's return code, states freed), with the FAKE in `mode`.
fn run(mode: &str) -> (i32, i32) {
    let out = Command::new(driver())
        .env("FAKE_MODE", mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{mode}: the process died ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> i32 {
        stdout
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{mode}: {stdout}"))
    };
    (field("rc="), field("freed="))
}

#[test]
fn a_state_whisper_frees_itself_is_not_freed_again() {
    // whisper_full_with_state returns -7 after freeing the state.
    assert_eq!(run("free-and-7"), (2, 1), "failed, one free");
}

#[test]
fn an_exception_from_whisper_is_a_code_and_the_state_is_freed() {
    assert_eq!(run("bad-alloc"), (3, 1), "no memory");
    assert_eq!(run("throw"), (2, 1), "failed");
}

#[test]
fn a_transcription_frees_its_state_once() {
    assert_eq!(run("ok"), (0, 1));
}
