//! Spawning and ending whisper processes: argv only (no shell), its own process
//! group, death with the host (death.rs), and how OpenMP's threads wait.

pub mod death;
#[cfg(windows)]
mod error_mode;
#[cfg(windows)]
pub mod windows_cli;

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, Command};

/// How long a process may take to exit after SIGTERM before it gets SIGKILL.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// Keep only the end of stderr: whisper's error lines come last, and a
/// runaway process must not grow the host's memory.
const STDERR_KEEP: usize = 64 * 1024;

pub fn command(program: &Path) -> Command {
    command_ending(program, death::Ends::WithHost)
}

/// How OpenMP's threads wait in a whisper process (the Linux builds link
/// libgomp): a short spin (GOMP_SPINCOUNT 10000, about 0.1 ms), then sleep.
/// Spinning for libgomp's default 3 ms, or forever as ggml's own pool does,
/// lets concurrent decodes and other programs' work fight over the cores;
/// sleeping at once makes every barrier of a lone decode a system call
/// (`npm run bench -- --only threading`, README). A caller who set either
/// variable chose for themselves, and gets nothing added.
fn openmp_waiting(is_set: impl Fn(&str) -> bool) -> Vec<(&'static str, &'static str)> {
    if is_set("OMP_WAIT_POLICY") || is_set("GOMP_SPINCOUNT") {
        return Vec::new();
    }
    vec![("OMP_WAIT_POLICY", "passive"), ("GOMP_SPINCOUNT", "10000")]
}

/// A command for a program that exits when its stdin closes; stdin is piped.
pub fn command_ending_with_stdin(program: &Path) -> Command {
    let mut cmd = command_ending(program, death::Ends::WithStdin);
    cmd.stdin(Stdio::piped());
    cmd
}

fn command_ending(program: &Path, ends: death::Ends) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in openmp_waiting(|name| std::env::var_os(name).is_some()) {
        cmd.env(name, value);
    }
    // On a failed assertion ggml attaches gdb to print a backtrace: slow, and
    // one more process in the group. The error line says enough.
    if std::env::var_os("GGML_NO_BACKTRACE").is_none() {
        cmd.env("GGML_NO_BACKTRACE", "1");
    }
    #[cfg(unix)]
    {
        // Own group: ending it ends anything the process started.
        cmd.process_group(0);
    }
    death::prepare(&mut cmd, ends);
    cmd
}

/// Starts the command; the child is bound to the host's lifetime, and on
/// Windows shows no error dialog (error_mode.rs).
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    #[cfg(windows)]
    error_mode::quiet_children();
    let child = cmd.spawn()?;
    death::adopt(&child);
    Ok(child)
}

/// Waits for the child to exit and reaps it.
pub async fn wait(child: &mut Child) -> std::io::Result<ExitStatus> {
    let pid = child.id();
    let status = child.wait().await;
    if let (Some(pid), Ok(_)) = (pid, &status) {
        death::released(pid);
    }
    status
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Reads `pipe` to its end into `kept`, keeping only about the last
/// STDERR_KEEP bytes (whisper's stderr can be long; its tail says why).
async fn read_tail(pipe: &mut ChildStderr, kept: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > 2 * STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
        }
    }
}

/// Reads stdout and stderr to their ends and waits for the exit status.
pub async fn collect(child: &mut Child) -> std::io::Result<Output> {
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let read_stdout = async {
        let mut buf = Vec::new();
        if let Some(pipe) = stdout_pipe.as_mut() {
            pipe.read_to_end(&mut buf).await?;
        }
        Ok::<_, std::io::Error>(buf)
    };
    let read_stderr = async {
        let mut kept = Vec::new();
        if let Some(pipe) = stderr_pipe.as_mut() {
            read_tail(pipe, &mut kept).await?;
        }
        Ok::<_, std::io::Error>(kept)
    };
    let (stdout, stderr) = tokio::try_join!(read_stdout, read_stderr)?;
    let status = wait(child).await?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Like `collect`, for a process that may leave a descendant holding its
/// stdout or stderr open (a GPU driver's helper; under Wine, the
/// explorer.exe the first program touching the desktop starts): once the
/// process has exited, what it wrote is read for at most `grace` more, and
/// anything left in its process group is ended (Unix). Without this the
/// reader waits for an end of file that comes only when the holder exits.
pub async fn collect_exited(child: &mut Child, grace: Duration) -> std::io::Result<Output> {
    let pid = child.id();
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let status = {
        let readers = async {
            if let Some(pipe) = stdout_pipe.as_mut() {
                pipe.read_to_end(&mut stdout).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let errors = async {
            if let Some(pipe) = stderr_pipe.as_mut() {
                read_tail(pipe, &mut stderr).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let reading = async { tokio::try_join!(readers, errors) };
        tokio::pin!(reading);
        let waiting = wait(child);
        tokio::pin!(waiting);
        tokio::select! {
            read = &mut reading => {
                read?;
                waiting.await?
            }
            status = &mut waiting => {
                let status = status?;
                // What it wrote before it exited is in the pipes already.
                let _ = tokio::time::timeout(grace, &mut reading).await;
                status
            }
        }
    };
    #[cfg(unix)]
    if let Some(pid) = pid {
        // The leader is reaped; what it left in its group goes too.
        kill_group(pid, Kill::Now);
    }
    #[cfg(not(unix))]
    let _ = pid;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// How to end a process group.
#[derive(Debug, Clone, Copy)]
pub enum Kill {
    /// SIGTERM: a chance to clean up.
    Gracefully,
    /// SIGKILL.
    Now,
}

/// Ends the process group the child leads (the child and anything it started).
pub fn kill_group(pid: u32, how: Kill) {
    #[cfg(unix)]
    {
        let sig = match how {
            Kill::Gracefully => libc::SIGTERM,
            Kill::Now => libc::SIGKILL,
        };
        // Negative pid: the whole group.
        unsafe {
            libc::kill(-(pid as i32), sig);
        }
    }
    #[cfg(windows)]
    {
        // No signals: both end the process at once (whisper starts no children).
        use windows_sys::Win32::Foundation::CloseHandle;
        use windows_sys::Win32::System::Threading::{
            OpenProcess, TerminateProcess, PROCESS_TERMINATE,
        };
        let _ = how;
        // SAFETY: opens, terminates and closes a handle to the process.
        unsafe {
            let process = OpenProcess(PROCESS_TERMINATE, 0, pid);
            if !process.is_null() {
                TerminateProcess(process, 1);
                CloseHandle(process);
            }
        }
    }
}

/// SIGTERM to the process group, SIGKILL after `grace`, and reap the child.
pub async fn terminate(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else {
        let _ = wait(child).await;
        return;
    };
    kill_group(pid, Kill::Gracefully);
    if tokio::time::timeout(grace, wait(child)).await.is_err() {
        kill_group(pid, Kill::Now);
        let _ = wait(child).await;
    } else {
        // The leader is gone; anything left in its group goes too.
        kill_group(pid, Kill::Now);
    }
}

/// `Some("SIGSEGV")` when the process was ended by a signal.
pub fn killed_by(status: &ExitStatus) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal().map(|s| {
            let name = match s {
                libc::SIGSEGV => "SIGSEGV",
                libc::SIGABRT => "SIGABRT",
                libc::SIGKILL => "SIGKILL",
                libc::SIGTERM => "SIGTERM",
                libc::SIGBUS => "SIGBUS",
                libc::SIGILL => "SIGILL",
                libc::SIGFPE => "SIGFPE",
                libc::SIGINT => "SIGINT",
                _ => return format!("signal {s}"),
            };
            name.to_owned()
        })
    }
    #[cfg(windows)]
    {
        status.code().and_then(|code| crash_name(code as u32))
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = status;
        None
    }
}

/// Windows ends a process that crashed with the exception's NTSTATUS as its
/// exit code (0xC.......: an error no program exits with by choice). The
/// names of the common ones, as `killed_by` gives signals on Unix.
#[cfg_attr(not(windows), allow(dead_code))]
fn crash_name(code: u32) -> Option<String> {
    if code & 0xF000_0000 != 0xC000_0000 {
        return None;
    }
    let name = match code {
        0xC000_001D => "STATUS_ILLEGAL_INSTRUCTION",
        0xC000_0005 => "STATUS_ACCESS_VIOLATION",
        0xC000_0409 => "STATUS_STACK_BUFFER_OVERRUN",
        0xC000_00FD => "STATUS_STACK_OVERFLOW",
        0xC000_0094 => "STATUS_INTEGER_DIVIDE_BY_ZERO",
        0xC000_0096 => "STATUS_PRIVILEGED_INSTRUCTION",
        0xC000_013A => "STATUS_CONTROL_C_EXIT",
        0xC000_0374 => "STATUS_HEAP_CORRUPTION",
        // The loader's: an imported DLL, or a function in it, is not there.
        0xC000_0135 => "STATUS_DLL_NOT_FOUND",
        0xC000_0139 => "STATUS_ENTRYPOINT_NOT_FOUND",
        _ => return Some(format!("exception 0x{code:08X}")),
    };
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{crash_name, openmp_waiting};

    #[test]
    fn windows_crash_codes_are_named_and_ordinary_exit_codes_are_not() {
        assert_eq!(
            crash_name(0xC000_001D).as_deref(),
            Some("STATUS_ILLEGAL_INSTRUCTION")
        );
        assert_eq!(
            crash_name(0xC000_0005).as_deref(),
            Some("STATUS_ACCESS_VIOLATION")
        );
        assert_eq!(
            crash_name(0xC000_0135).as_deref(),
            Some("STATUS_DLL_NOT_FOUND")
        );
        assert_eq!(
            crash_name(0xC000_0142).as_deref(),
            Some("exception 0xC0000142")
        );
        for ordinary in [0, 1, 2, 3, 255, 0x8000_0000] {
            assert_eq!(crash_name(ordinary), None, "{ordinary:#x}");
        }
    }

    #[test]
    fn openmp_threads_spin_briefly_then_sleep_unless_the_caller_chose() {
        assert_eq!(
            openmp_waiting(|_| false),
            [("OMP_WAIT_POLICY", "passive"), ("GOMP_SPINCOUNT", "10000")]
        );
        for chosen in ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"] {
            assert!(openmp_waiting(|name| name == chosen).is_empty(), "{chosen}");
        }
    }
}
