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

/// The option, then the environment variable, then the provisioned build,
/// then the PATH. An explicit choice that does not work is an error, not a
/// reason to fall back to something else.
pub fn find(program: &Program, explicit: Option<&Path>) -> Result<PathBuf> {
    let chosen = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(program.env_var).map(PathBuf::from));
    if let Some(path) = chosen {
        return is_executable(&path)
            .map(|_| path.clone())
            .map_err(|reason| not_found(program, &path, reason));
    }
    let file = executable_name(program.name);
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

/// The model exists, is a file, and starts with ggml's magic number. Returns its size.
pub fn check_model(path: &Path) -> Result<u64> {
    let fail = |reason: String| WhisperError::ModelLoad {
        path: display_path(path),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("{e}")))?;
    if !meta.is_file() {
        return Err(fail("it is not a file".into()));
    }
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(
        &mut std::fs::File::open(path).map_err(|e| fail(e.to_string()))?,
        &mut magic,
    )
    .map_err(|_| fail("the file is too short to be a model".into()))?;
    if magic != GGML_MAGIC {
        return Err(fail(
            "it is not a ggml whisper model (wrong magic number; convert other formats with the project's ct2-to-ggml or whisper.cpp's converters)".into(),
        ));
    }
    Ok(meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_that_does_not_exist_is_an_error_naming_it() {
        let e = find(&WHISPER_CLI, Some(Path::new("/nope/whisper-cli"))).unwrap_err();
        assert_eq!(e.code(), "ERR_WHISPER_NOT_FOUND");
        assert!(e.to_string().contains("/nope/whisper-cli"), "{e}");
    }

    #[test]
    fn a_file_without_execute_permission_is_refused() {
        let e = find(&WHISPER_CLI, Some(Path::new("Cargo.toml"))).unwrap_err();
        assert!(e.to_string().contains("not executable"), "{e}");
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
