//! ct2-to-ggml MODEL_DIR OUTPUT.bin
//!
//! Converts a float16/float32 CTranslate2 Whisper model (faster-whisper's format:
//! model.bin plus vocabulary.txt or vocabulary.json) to whisper.cpp's ggml format.

mod ct2;
mod ggml;
mod half;
mod mel;
mod vocab;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn convert(model_dir: &Path, output: &Path) -> std::io::Result<ggml::HParams> {
    let bytes = std::fs::read(model_dir.join("model.bin"))?;
    let model = ct2::Model::parse(&bytes)?;
    let tokens = vocab::load(model_dir)?;
    // Write beside the target, then rename: an interrupted run never leaves a
    // half-written model where a loader would find it.
    let partial = output.with_extension("partial");
    let mut out = BufWriter::new(std::fs::File::create(&partial)?);
    let hp = ggml::write(&mut out, &model, &tokens)?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, output)?;
    Ok(hp)
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [model_dir, output] = args.as_slice() else {
        eprintln!("usage: ct2-to-ggml MODEL_DIR OUTPUT.bin");
        return ExitCode::from(2);
    };
    match convert(model_dir, output) {
        Ok(hp) => {
            println!("wrote {} ({hp:?})", output.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: converting {}: {err}", model_dir.display());
            ExitCode::FAILURE
        }
    }
}
