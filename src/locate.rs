//! Finding the whisper.cpp binaries and checking the model before any worker starts.

use crate::error::{display_path, Result, WhisperError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `npm run setup` puts its build, for a checkout of this repository.
const PROVISIONED_BIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.whisper/bin");

/// ggml's magic number, as the bytes of a little-endian i32.
const GGML_MAGIC: [u8; 4] = 0x6767_6d6cu32.to_le_bytes();

pub struct Program {
    pub name: &'static str,
    pub option: &'static str,
    pub env_var: &'static str,
}

pub const WHISPER_CLI: Program = Program {
    name: "whisper-cli",
    option: "whisperPath",
    env_var: "WHISPER_CLI_PATH",
};

pub const WHISPER_SERVER: Program = Program {
    name: "whisper-server",
    option: "serverPath",
    env_var: "WHISPER_SERVER_PATH",
};

fn not_found(program: &Program, path: &Path, reason: impl Into<String>) -> WhisperError {
    WhisperError::WhisperNotFound {
        program: program.name,
        option: program.option,
        env_var: program.env_var,
        path: display_path(path),
        reason: reason.into(),
    }
}

fn executable_name(name: &str) -> String {
    if cfg!(windows) {
        format!("{name}.exe")
    } else {
        name.to_owned()
    }
}

fn is_executable(path: &Path) -> std::result::Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("the file is not executable (chmod +x it)".into());
        }
    }
    Ok(())
}

/// The option, then the environment variable, then beside `sibling` (the
/// whisper-cli the caller named, for whisper-server), then the provisioned
/// build, then the PATH. An explicit choice that does not work is an error,
/// not a reason to fall back to something else.
pub fn find(program: &Program, explicit: Option<&Path>, sibling: Option<&Path>) -> Result<PathBuf> {
    let chosen = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(program.env_var).map(PathBuf::from));
    if let Some(path) = chosen {
        return is_executable(&path)
            .map(|_| path.clone())
            .map_err(|reason| not_found(program, &path, reason));
    }
    let file = executable_name(program.name);
    if let Some(beside) = sibling.and_then(Path::parent).map(|dir| dir.join(&file)) {
        if is_executable(&beside).is_ok() {
            return Ok(beside);
        }
    }
    let provisioned = Path::new(PROVISIONED_BIN).join(&file);
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(&file))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::iter::once(provisioned.clone())
        .chain(on_path)
        .find(|p| is_executable(p).is_ok())
        .ok_or_else(|| {
            not_found(
                program,
                &provisioned,
                format!(
                    "no {file} there, none on the PATH, and {} is not set",
                    program.env_var
                ),
            )
        })
}

/// Runs `program --help` to prove the binary starts on this machine (right
/// architecture, libraries present) before any request depends on it.
pub async fn probe(program: &Program, path: &Path) -> Result<()> {
    let mut cmd = crate::process::command(path);
    cmd.arg("--help")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| not_found(program, path, e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(not_found(program, path, e.to_string())),
        Err(_) => {
            crate::process::terminate(&mut child, crate::process::TERMINATE_GRACE).await;
            Err(not_found(
                program,
                path,
                "`--help` did not return within 10 s",
            ))
        }
    }
}

/// The model exists, is a file, and starts with a plausible ggml whisper
/// header. Returns its size. (A model truncated after its header still gets
/// past this; whisper reports it when it loads the file.)
pub fn check_model(path: &Path) -> Result<u64> {
    let fail = |reason: &str| WhisperError::ModelLoad {
        path: display_path(path),
        reason: reason.to_owned(),
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(&e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("it is not a file"));
    }
    let mut header = [0u8; 48];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .map_err(|_| fail("the file is too short to be a model"))?;
    if header[..4] != GGML_MAGIC {
        return Err(fail("it is not a ggml whisper model (wrong magic number); convert other formats with the project's ct2-to-ggml or whisper.cpp's converters"));
    }
    if !plausible_hparams(&header[4..]) {
        return Err(fail(
            "its header is corrupt (implausible model dimensions); download or convert it again",
        ));
    }
    Ok(meta.len())
}

/// n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
/// n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype.
fn plausible_hparams(bytes: &[u8]) -> bool {
    let v: Vec<i32> = bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let dims_ok = v[..9].iter().all(|&d| (1..=1 << 20).contains(&d));
    let mels_ok = matches!(v[9], 80 | 128);
    // ftype carries the quantization version in its thousands.
    let ftype_ok = v[10] >= 0 && v[10] % 1000 < 64;
    dims_ok && mels_ok && ftype_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_that_does_not_exist_is_an_error_naming_it() {
        let e = find(&WHISPER_CLI, Some(Path::new("/nope/whisper-cli")), None).unwrap_err();
        assert_eq!(e.code(), "ERR_WHISPER_NOT_FOUND");
        assert!(e.to_string().contains("/nope/whisper-cli"), "{e}");
    }

    #[test]
    fn a_file_without_execute_permission_is_refused() {
        let e = find(&WHISPER_CLI, Some(Path::new("Cargo.toml")), None).unwrap_err();
        assert!(e.to_string().contains("not executable"), "{e}");
    }

    #[test]
    fn model_check_reads_the_header() {
        let dir = std::env::temp_dir().join(format!("pw-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut header: Vec<u8> = GGML_MAGIC.to_vec();
        for v in [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1] {
            header.extend_from_slice(&i32::to_le_bytes(v));
        }
        let good = dir.join("good.bin");
        std::fs::write(&good, &header).unwrap();
        assert_eq!(check_model(&good).unwrap(), 48);
        header[4 + 9 * 4] = 7; // n_mels 7
        let bad = dir.join("bad.bin");
        std::fs::write(&bad, &header).unwrap();
        assert!(check_model(&bad)
            .unwrap_err()
            .to_string()
            .contains("corrupt"));
    }

    #[test]
    fn model_check_reads_the_magic_number() {
        let e = check_model(Path::new("Cargo.toml")).unwrap_err();
        assert_eq!(e.code(), "ERR_MODEL_LOAD");
        assert!(e.to_string().contains("magic"), "{e}");
        assert_eq!(
            check_model(Path::new("/no/model.bin")).unwrap_err().code(),
            "ERR_MODEL_LOAD"
        );
    }
}
