//! Whisper processes die with the host, however the host dies (a crash,
//! SIGKILL, an Electron app closed by the OS), on every system:
//!
//! - Linux: the parent-death signal (`PR_SET_PDEATHSIG`): the kernel kills
//!   each child when the thread that spawned it exits.
//! - macOS (and Linux with the parent-death signal switched off, which is how
//!   the tests prove this path): a watchdog, a `/bin/sh` in its own process
//!   group that reads a pipe from the host. Each child writes its process
//!   group into the pipe before it execs; when the pipe closes because the
//!   host died, the watchdog kills every group still listed.
//! - Windows: a job object with KILL_ON_JOB_CLOSE holds every child; the
//!   system kills them when the host's handle to it closes.

use tokio::process::{Child, Command};

/// Set to any value, this switches the Linux parent-death signal off, so
/// that the watchdog alone must end the children (for tests).
pub const NO_PDEATHSIG_ENV: &str = "PERSISTENT_WHISPER_NO_PDEATHSIG";

/// How a child learns that the host died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// By the means above: the child cannot tell by itself.
    WithHost,
    /// The child exits when its stdin closes, which the system does when the
    /// host dies (persistent-whisper-worker): no watchdog. The Linux
    /// parent-death signal still applies unless switched off.
    WithStdin,
}

/// Arranges, before `cmd` is spawned, for its process to die with the host.
pub fn prepare(cmd: &mut Command, ends: Ends) {
    #[cfg(target_os = "linux")]
    if std::env::var_os(NO_PDEATHSIG_ENV).is_none() {
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || linux::die_with_parent(parent));
        }
        return;
    }
    #[cfg(unix)]
    if ends == Ends::WithHost {
        if let Some(fd) = watchdog::pipe() {
            // SAFETY: only write(2) to an open descriptor between fork and exec.
            unsafe {
                cmd.pre_exec(move || watchdog::register_self(fd));
            }
        }
    }
    #[cfg(windows)]
    {
        // The job object (adopt) covers both ways of ending.
        let _ = ends;
        // No console window flashing up from a GUI (Electron) host, and no
        // share of the console's Ctrl-C.
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(CREATE_NO_WINDOW | CREATE_NEW_PROCESS_GROUP);
    }
}

/// Called right after a spawn: on Windows the child joins the host's job.
pub fn adopt(child: &Child) {
    #[cfg(windows)]
    if let Some(handle) = child.raw_handle() {
        windows::assign(handle);
    }
    #[cfg(not(windows))]
    let _ = child;
}

/// Called once a child has been reaped: the watchdog forgets its group.
pub fn released(pid: u32) {
    #[cfg(unix)]
    watchdog::unregister(pid);
    #[cfg(not(unix))]
    let _ = pid;
}

#[cfg(target_os = "linux")]
mod linux {
    pub fn die_with_parent(parent: u32) -> std::io::Result<()> {
        // SAFETY: prctl with constant arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The parent may have died before prctl took effect.
        if unsafe { libc::getppid() } as u32 != parent {
            return Err(std::io::Error::other("parent exited during spawn"));
        }
        Ok(())
    }
}

#[cfg(unix)]
mod watchdog {
    use std::io::Write;
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::process::CommandExt;
    use std::process::{ChildStdin, Command, Stdio};
    use std::sync::{Mutex, OnceLock};

    /// Reads `+PGID` and `-PGID` lines; at end of input (the host is gone)
    /// kills every group still registered. (`kill -9 -PGID`: dash, Debian's
    /// sh, takes no `--`.)
    const SCRIPT: &str = r#"trap '' HUP INT TERM
groups=""
while read -r line; do
  case "$line" in
    +*) groups="$groups ${line#+}" ;;
    -*) kept=""; for g in $groups; do [ "$g" = "${line#-}" ] || kept="$kept $g"; done; groups="$kept" ;;
  esac
done
for g in $groups; do kill -9 -"$g" 2>/dev/null; done"#;

    struct Watchdog {
        stdin: Mutex<ChildStdin>,
        fd: RawFd,
    }

    static WATCHDOG: OnceLock<Option<Watchdog>> = OnceLock::new();

    /// The watchdog, started by the first child that needs it.
    fn instance() -> Option<&'static Watchdog> {
        WATCHDOG
            .get_or_init(|| {
                let mut child = Command::new("/bin/sh")
                    .args(["-c", SCRIPT])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    // Its own group: a Ctrl-C that kills the host spares it.
                    .process_group(0)
                    .spawn()
                    .ok()?;
                // The host keeps the write end (close-on-exec, so no child
                // inherits it): it closes when the host dies.
                let stdin = child.stdin.take()?;
                Some(Watchdog {
                    fd: stdin.as_raw_fd(),
                    stdin: Mutex::new(stdin),
                })
            })
            .as_ref()
    }

    pub fn pipe() -> Option<RawFd> {
        instance().map(|w| w.fd)
    }

    /// In the child between fork and exec: registers its own process group
    /// (its pid: the child leads a group of its own). Formats without
    /// allocating, since only async-signal-safe calls are allowed here.
    pub fn register_self(fd: RawFd) -> std::io::Result<()> {
        let mut line = [0u8; 24];
        let mut digits = [0u8; 20];
        // SAFETY: getpid has no preconditions.
        let mut pid = unsafe { libc::getpid() } as u32;
        let mut n = 0;
        loop {
            digits[n] = b'0' + (pid % 10) as u8;
            n += 1;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        line[0] = b'+';
        for i in 0..n {
            line[1 + i] = digits[n - 1 - i];
        }
        line[1 + n] = b'\n';
        // One write of at most PIPE_BUF bytes: never interleaved with others.
        // SAFETY: writes bytes of a live buffer to an open descriptor.
        let written = unsafe { libc::write(fd, line.as_ptr().cast(), n + 2) };
        if written < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn script() -> &'static str {
        SCRIPT
    }

    pub fn unregister(pid: u32) {
        // Only a watchdog that exists has anything to forget.
        if let Some(Some(w)) = WATCHDOG.get() {
            let mut stdin = w.stdin.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(stdin, "-{pid}");
        }
    }
}

#[cfg(windows)]
mod windows {
    use std::os::windows::io::RawHandle;
    use std::sync::OnceLock;
    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
        SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };

    /// The job handle, as an integer so that it can live in a static.
    fn job() -> Option<usize> {
        static JOB: OnceLock<Option<usize>> = OnceLock::new();
        *JOB.get_or_init(|| {
            // SAFETY: creates an unnamed job; the handle is never closed, so
            // the job lives exactly as long as the host process.
            unsafe {
                let job: HANDLE = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if job.is_null() {
                    return None;
                }
                let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
                limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                let ok = SetInformationJobObject(
                    job,
                    JobObjectExtendedLimitInformation,
                    &limits as *const _ as *const core::ffi::c_void,
                    std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                );
                (ok != 0).then_some(job as usize)
            }
        })
    }

    pub fn assign(process: RawHandle) {
        if let Some(job) = job() {
            // SAFETY: both handles are live; failure leaves the child outside the job.
            unsafe {
                AssignProcessToJobObject(job as HANDLE, process as HANDLE);
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn alive(pid: u32) -> bool {
        // A zombie still answers kill(0); /proc tells it apart where there is one.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        (unsafe { libc::kill(pid as i32, 0) } == 0) && !state.contains(") Z")
    }

    #[test]
    fn the_watchdog_kills_registered_groups_when_its_input_closes_and_spares_unregistered_ones() {
        let spawn_group = || {
            Command::new("sleep")
                .arg("300")
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let (mut kept, mut forgotten) = (spawn_group(), spawn_group());
        let mut watchdog = Command::new("/bin/sh")
            .args(["-c", super::watchdog::script()])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = watchdog.stdin.take().unwrap();
        writeln!(
            input,
            "+{}\n+{}\n-{}",
            kept.id(),
            forgotten.id(),
            forgotten.id()
        )
        .unwrap();
        assert!(alive(kept.id()));
        drop(input); // the host is gone
        watchdog.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(kept.id()) && Instant::now() < deadline {
            let _ = kept.try_wait();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            kept.try_wait().unwrap().is_some(),
            "the registered group was killed"
        );
        assert!(
            forgotten.try_wait().unwrap().is_none(),
            "an unregistered group is left alone"
        );
        forgotten.kill().unwrap();
        let _ = forgotten.wait();
    }
}
