//! Finding the whisper programs at run time. Nothing is compiled in: the
//! option, then its environment variable, then beside a program the caller
//! named, then the installed platform package, then a development checkout's
//! provisioned build (both found from where the addon was loaded), then the
//! PATH. A place the caller named that does not work is an error, never a
//! reason to fall back to another.

pub mod addon;
pub mod cpu;
pub mod device;

use crate::error::{display_path, Result, WhisperError};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

pub const WHISPER_WORKER: Program = Program {
    name: "persistent-whisper-worker",
    option: "workerPath",
    env_var: "PERSISTENT_WHISPER_WORKER_PATH",
};

/// How a program was found, in the order the places are searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    Option,
    Environment,
    /// Beside the whisper-cli that the option or environment named.
    Beside,
    /// The installed `persistent-whisper-<platform>` package.
    Package,
    /// A development checkout's `.whisper/targets/<platform>/` build.
    Checkout,
    Path,
}

impl FoundBy {
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::Option => "option",
            FoundBy::Environment => "environment",
            FoundBy::Beside => "beside",
            FoundBy::Package => "package",
            FoundBy::Checkout => "checkout",
            FoundBy::Path => "path",
        }
    }
}

/// A program that was found: where, how, and which CPU variant of its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub found_by: FoundBy,
    pub variant: Option<String>,
}

/// Reads an environment variable (empty counts as unset).
pub type EnvLookup = Box<dyn Fn(&str) -> Option<OsString> + Send + Sync>;

/// What the search looks at besides the caller's options: the environment
/// and the folder of the loaded addon. Tests substitute both.
pub struct Places {
    pub addon_dir: Option<PathBuf>,
    pub env: EnvLookup,
}

impl Places {
    pub fn of_this_process() -> Self {
        Places {
            addon_dir: addon::dir(),
            env: Box::new(|name| std::env::var_os(name).filter(|v| !v.is_empty())),
        }
    }

    fn package_bin(&self) -> Option<PathBuf> {
        Some(self.addon_dir.as_ref()?.join("bin"))
    }

    fn checkout_bin(&self) -> Option<PathBuf> {
        let dir = self.addon_dir.as_ref()?;
        Some(
            dir.join(".whisper")
                .join("targets")
                .join(addon::PLATFORM)
                .join("bin"),
        )
    }
}

/// The error for a program that is missing or does not run (built in this one place).
pub fn not_found(program: &Program, path: &Path, reason: impl Into<String>) -> WhisperError {
    WhisperError::WhisperNotFound {
        program: program.name,
        option: program.option,
        env_var: program.env_var,
        platform: addon::PLATFORM,
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

/// The program in the best CPU variant folder of `bin` that this CPU runs.
fn in_variants(bin: &Path, file: &str) -> Option<(PathBuf, String)> {
    let names: Vec<String> = std::fs::read_dir(bin)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| is_executable(&e.path().join(file)).is_ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let best = cpu::best_for_this_cpu(&refs)?;
    Some((bin.join(best).join(file), best.to_owned()))
}

/// Finds `program`. `explicit` is the caller's option; `beside` a program
/// whose folder may hold this one too (whisper-cli named by `whisperPath` or
/// `WHISPER_CLI_PATH`, when looking for whisper-server).
pub fn find(
    program: &Program,
    explicit: Option<&Path>,
    beside: Option<&Path>,
    places: &Places,
) -> Result<Located> {
    let chosen = match explicit {
        Some(path) => Some((path.to_path_buf(), FoundBy::Option)),
        None => (places.env)(program.env_var).map(|p| (PathBuf::from(p), FoundBy::Environment)),
    };
    if let Some((path, found_by)) = chosen {
        return match is_executable(&path) {
            Ok(()) => Ok(Located {
                path,
                found_by,
                variant: None,
            }),
            Err(reason) => Err(not_found(program, &path, reason)),
        };
    }
    let file = executable_name(program.name);
    if let Some(path) = beside.and_then(Path::parent).map(|dir| dir.join(&file)) {
        if is_executable(&path).is_ok() {
            return Ok(Located {
                path,
                found_by: FoundBy::Beside,
                variant: None,
            });
        }
    }
    let installed = [
        (places.package_bin(), FoundBy::Package),
        (places.checkout_bin(), FoundBy::Checkout),
    ];
    for (bin, found_by) in installed {
        if let Some((path, variant)) = bin.and_then(|b| in_variants(&b, &file)) {
            return Ok(Located {
                path,
                found_by,
                variant: Some(variant),
            });
        }
    }
    let on_path = (places.env)("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(&file))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if let Some(path) = on_path.into_iter().find(|p| is_executable(p).is_ok()) {
        return Ok(Located {
            path,
            found_by: FoundBy::Path,
            variant: None,
        });
    }
    let looked = places.package_bin().unwrap_or_else(|| PathBuf::from(&file));
    Err(not_found(
        program,
        &looked,
        format!(
            "not in the platform package persistent-whisper-{}, not in a checkout's .whisper build, not on the PATH, and {} is not set",
            addon::PLATFORM,
            program.env_var
        ),
    ))
}

/// Runs `program --help` to prove the binary starts on this machine (right
/// architecture, libraries present) before any request depends on it.
pub async fn probe(program: &Program, path: &Path) -> Result<()> {
    let mut cmd = crate::process::command(path);
    cmd.arg("--help")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child =
        crate::process::spawn(&mut cmd).map_err(|e| not_found(program, path, e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(10), crate::process::wait(&mut child)).await {
        Ok(Ok(status)) => match crate::process::killed_by(&status) {
            // SIGILL: built for instructions this CPU lacks.
            Some(signal) => Err(not_found(
                program,
                path,
                format!("it was killed by {signal} when started"),
            )),
            None => Ok(()),
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pw-locate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn program_at(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn places(addon_dir: Option<&Path>, env: &[(&str, &Path)]) -> Places {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        Places {
            addon_dir: addon_dir.map(Path::to_path_buf),
            env: Box::new(move |name| env.get(name).cloned()),
        }
    }

    fn cli(dir: &Path) -> PathBuf {
        dir.join(executable_name("whisper-cli"))
    }

    #[test]
    fn an_explicit_path_that_does_not_exist_is_an_error_naming_it() {
        let e = find(
            &WHISPER_CLI,
            Some(Path::new("/nope/whisper-cli")),
            None,
            &places(None, &[]),
        )
        .unwrap_err();
        assert_eq!(e.code(), "ERR_WHISPER_NOT_FOUND");
        assert!(e.to_string().contains("/nope/whisper-cli"), "{e}");
    }

    // Windows has no execute bit: any file may be started.
    #[cfg(unix)]
    #[test]
    fn a_file_without_execute_permission_is_refused() {
        let e = find(
            &WHISPER_CLI,
            Some(Path::new("Cargo.toml")),
            None,
            &places(None, &[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not executable"), "{e}");
    }

    #[test]
    fn the_package_comes_before_the_checkout_and_the_path() {
        let root = scratch("order");
        let package = root.join("pkg");
        let baseline = cpu::best_for_this_cpu(&["x86-64-v2", "armv8-a", "apple-arm64"]).unwrap();
        program_at(&cli(&package.join("bin").join(baseline)));
        let checkout = package
            .join(".whisper/targets")
            .join(addon::PLATFORM)
            .join("bin");
        program_at(&cli(&checkout.join(baseline)));
        let on_path = root.join("path");
        program_at(&cli(&on_path));

        let p = places(Some(&package), &[("PATH", &on_path)]);
        let found = find(&WHISPER_CLI, None, None, &p).unwrap();
        assert_eq!(found.found_by, FoundBy::Package);
        assert_eq!(found.variant.as_deref(), Some(baseline));
        assert_eq!(found.path, cli(&package.join("bin").join(baseline)));

        std::fs::remove_dir_all(package.join("bin")).unwrap();
        let found = find(&WHISPER_CLI, None, None, &p).unwrap();
        assert_eq!(found.found_by, FoundBy::Checkout);

        std::fs::remove_dir_all(package.join(".whisper")).unwrap();
        let found = find(&WHISPER_CLI, None, None, &p).unwrap();
        assert_eq!((found.found_by, found.path), (FoundBy::Path, cli(&on_path)));
    }

    #[test]
    fn the_environment_variable_comes_before_the_package_and_finds_the_server_beside_it() {
        let root = scratch("env");
        let mine = root.join("mine");
        program_at(&cli(&mine));
        let server = mine.join(executable_name("whisper-server"));
        program_at(&server);
        let env_cli = cli(&mine);
        let p = places(Some(&root), &[("WHISPER_CLI_PATH", &env_cli)]);
        let found = find(&WHISPER_CLI, None, None, &p).unwrap();
        assert_eq!(
            (found.found_by, &found.path),
            (FoundBy::Environment, &env_cli)
        );
        let found = find(&WHISPER_SERVER, None, Some(&env_cli), &p).unwrap();
        assert_eq!((found.found_by, found.path), (FoundBy::Beside, server));
    }

    #[test]
    fn nothing_anywhere_says_where_it_looked() {
        let root = scratch("none");
        let e = find(&WHISPER_CLI, None, None, &places(Some(&root), &[])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("persistent-whisper-{}", addon::PLATFORM)),
            "{msg}"
        );
        assert!(msg.contains("WHISPER_CLI_PATH"), "{msg}");
    }
}
