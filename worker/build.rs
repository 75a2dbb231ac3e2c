//! Links the worker with whisper.cpp 1.9.1, built by `npm run setup` (static
//! libraries of one CPU variant's CMake build), and compiles the C API shim.
//!
//! PW_WHISPER_BUILD: that CMake build folder. Without it, the checkout's
//! baseline build for this target is used (for `cargo test`).
//! PW_WHISPER_SRC: the whisper.cpp source tree, for the headers.

use std::path::{Path, PathBuf};

const WHISPER_VERSION: &str = "1.9.1";

/// The napi platform of the target being built (scripts/targets.mjs).
fn platform(target: &str) -> &'static str {
    match target {
        "x86_64-unknown-linux-gnu" => "linux-x64-gnu",
        "aarch64-unknown-linux-gnu" => "linux-arm64-gnu",
        "x86_64-apple-darwin" => "darwin-x64",
        "aarch64-apple-darwin" => "darwin-arm64",
        "x86_64-pc-windows-msvc" => "win32-x64-msvc",
        other => panic!("persistent-whisper-worker: no whisper.cpp build for {other}"),
    }
}

/// The first variant of the target's builds that exists (the baseline runs everywhere).
fn default_build(checkout: &Path, target: &str) -> PathBuf {
    let dir = checkout.join(".whisper/build").join(platform(target));
    ["x86-64-v2", "armv8-a", "apple-arm64", "x86-64-v3", "x86-64-v4"]
        .iter()
        .map(|v| dir.join(v))
        .find(|d| d.join("src").exists())
        .unwrap_or_else(|| {
            panic!(
                "persistent-whisper-worker needs whisper.cpp's build in {}: run `npm run setup` first, or set PW_WHISPER_BUILD",
                dir.display()
            )
        })
}

fn main() {
    let target = std::env::var("TARGET").unwrap();
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let checkout = manifest.parent().unwrap().to_path_buf();
    println!("cargo:rerun-if-env-changed=PW_WHISPER_BUILD");
    println!("cargo:rerun-if-env-changed=PW_WHISPER_SRC");
    println!("cargo:rerun-if-changed=src/shim.cpp");
    let build = std::env::var_os("PW_WHISPER_BUILD")
        .map(PathBuf::from)
        .unwrap_or_else(|| default_build(&checkout, &target));
    let src = std::env::var_os("PW_WHISPER_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            checkout
                .join(".whisper/src")
                .join(format!("whisper.cpp-{WHISPER_VERSION}"))
        });

    let mut shim = cc::Build::new();
    shim.cpp(true)
        .std("c++17")
        .file("src/shim.cpp")
        .include(src.join("include"))
        .include(src.join("ggml/include"))
        .include(src.join("examples"));
    if target.contains("msvc") {
        shim.static_crt(true);
    }
    shim.compile("pwshim");

    // The libraries, in link order: the shim's, then whisper, then ggml.
    let dirs = [
        "examples",
        "src",
        "ggml/src",
        "ggml/src/ggml-metal",
        "ggml/src/ggml-blas",
    ];
    for dir in dirs {
        for sub in ["", "Release"] {
            let d = build.join(dir).join(sub);
            if d.exists() {
                println!("cargo:rustc-link-search=native={}", d.display());
            }
        }
    }
    println!("cargo:rerun-if-changed={}", build.join("src").display());
    for lib in ["common", "whisper", "ggml", "ggml-cpu"] {
        println!("cargo:rustc-link-lib=static={lib}");
    }
    let has = |lib: &str| {
        dirs.iter().any(|d| {
            let dir = build.join(d);
            dir.join(format!("lib{lib}.a")).exists()
                || dir.join("Release").join(format!("{lib}.lib")).exists()
        })
    };
    for lib in ["ggml-metal", "ggml-blas"] {
        if has(lib) {
            println!("cargo:rustc-link-lib=static={lib}");
        }
    }
    println!("cargo:rustc-link-lib=static=ggml-base");
    if target.contains("apple") {
        println!("cargo:rustc-link-lib=c++");
        for framework in ["Accelerate", "Foundation", "Metal", "MetalKit"] {
            println!("cargo:rustc-link-lib=framework={framework}");
        }
    } else if target.contains("linux") {
        // Static C++ runtime and OpenMP: the packaging toolchain's linker
        // (scripts/toolchain.mjs) finds the static archives; any GCC does.
        println!("cargo:rustc-link-lib=static=stdc++");
        println!("cargo:rustc-link-lib=gomp");
    }
}
