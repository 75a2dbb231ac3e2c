//! What whisper-cli needs on Windows, where two of its habits differ:
//!
//! - `-of -` writes its JSON to `CON`, the console, not to stdout: with no
//!   console window (CREATE_NO_WINDOW) it is lost. The JSON goes instead
//!   through a named pipe of this process's own: whisper-cli writes to
//!   `<-of>.json`, which is the pipe's name.
//! - It opens files by narrow names, which Windows reads in the ANSI code
//!   page: a path with letters outside it (Cyrillic or Japanese on a Western
//!   system) is not found. Such a file goes as bytes on its stdin (`-f -`),
//!   as audio from memory does.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{FromRawHandle, RawHandle};
use std::path::Path;
use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_NO_DATA, ERROR_PIPE_CONNECTED, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Globalization::{WideCharToMultiByte, CP_ACP, WC_NO_BEST_FIT_CHARS};
use windows_sys::Win32::Storage::FileSystem::{FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_ACCESS_INBOUND};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_BYTE, PIPE_WAIT,
};

/// Whether a narrow-name program can open `path`: every character has an
/// exact counterpart in the ANSI code page (no "best fit" stand-in, no `?`).
pub fn fits_ansi_code_page(path: &Path) -> bool {
    let wide: Vec<u16> = path.as_os_str().encode_wide().collect();
    if wide.is_empty() {
        return true;
    }
    let mut used_default = 0;
    // SAFETY: reads `wide`; with no output buffer it only measures, and
    // reports whether a character had no counterpart.
    let n = unsafe {
        WideCharToMultiByte(
            CP_ACP,
            WC_NO_BEST_FIT_CHARS,
            wide.as_ptr(),
            wide.len() as i32,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
            &mut used_default,
        )
    };
    n > 0 && used_default == 0
}

/// A named pipe that receives whisper-cli's JSON: pass [`JsonPipe::of_arg`]
/// as `-of`, start reading with [`JsonPipe::read`] before the program runs,
/// and call [`JsonPipe::close_unused`] once it has exited.
pub struct JsonPipe {
    /// `\\.\pipe\persistent-whisper-<pid>-<random>`, without `.json`.
    base: String,
    server: Option<File>,
}

impl JsonPipe {
    pub fn create() -> std::io::Result<Self> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
        let base = format!(
            r"\\.\pipe\persistent-whisper-{}-{:016x}",
            std::process::id(),
            u64::from_le_bytes(random)
        );
        let name: Vec<u16> = OsStr::new(&format!("{base}.json"))
            .encode_wide()
            .chain([0])
            .collect();
        // SAFETY: a NUL-terminated name; one instance, only this process
        // creates it (FIRST_PIPE_INSTANCE), no client from another machine.
        let handle = unsafe {
            CreateNamedPipeW(
                name.as_ptr(),
                PIPE_ACCESS_INBOUND | FILE_FLAG_FIRST_PIPE_INSTANCE,
                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                1,
                0,
                64 * 1024,
                0,
                std::ptr::null(),
            )
        };
        if handle == INVALID_HANDLE_VALUE {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh handle this process owns; File closes it.
        let server = unsafe { File::from_raw_handle(handle as RawHandle) };
        Ok(JsonPipe {
            base,
            server: Some(server),
        })
    }

    /// The value of whisper-cli's `-of`: it appends `.json`.
    pub fn of_arg(&self) -> &str {
        &self.base
    }

    /// Waits (on a blocking thread) for whisper-cli to connect, and reads
    /// what it writes until it closes the pipe: its JSON, or nothing.
    pub fn read(&mut self) -> tokio::task::JoinHandle<std::io::Result<Vec<u8>>> {
        let server = self.server.take();
        tokio::task::spawn_blocking(move || {
            let Some(mut server) = server else {
                return Ok(Vec::new());
            };
            // SAFETY: a live pipe handle; blocks until a client connects.
            let connected =
                unsafe { ConnectNamedPipe(server_handle(&server), std::ptr::null_mut()) };
            // SAFETY: reads the calling thread's last error.
            let error = unsafe { GetLastError() };
            // Connected before we asked, or already gone: what it wrote is
            // still in the pipe.
            if connected == 0 && error != ERROR_PIPE_CONNECTED && error != ERROR_NO_DATA {
                return Err(std::io::Error::from_raw_os_error(error as i32));
            }
            let mut json = Vec::new();
            // The client closing the pipe reads as the end.
            server.read_to_end(&mut json)?;
            Ok(json)
        })
    }

    /// After whisper-cli exited: if it never opened the pipe (it failed
    /// first), connect to it once so that [`JsonPipe::read`] ends, empty.
    /// If it did, the pipe is busy and this does nothing.
    pub fn close_unused(&self) {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("{}.json", self.base));
    }
}

fn server_handle(file: &File) -> windows_sys::Win32::Foundation::HANDLE {
    use std::os::windows::io::AsRawHandle;
    file.as_raw_handle() as windows_sys::Win32::Foundation::HANDLE
}

/// Copies a file to whisper-cli's stdin and closes it; a whisper-cli that
/// stops reading (it failed) ends the copy, and its verdict says why.
pub async fn feed_file(stdin: Option<tokio::process::ChildStdin>, path: &Path) {
    use tokio::io::AsyncWriteExt;
    if let Some(mut stdin) = stdin {
        if let Ok(mut file) = tokio::fs::File::open(path).await {
            let _ = tokio::io::copy(&mut file, &mut stdin).await;
        }
        let _ = stdin.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_fits_and_letters_of_no_single_code_page_do_not() {
        assert!(fits_ansi_code_page(Path::new(r"C:\pw tests\clip 1.wav")));
        // Cyrillic and Japanese in one name: no ANSI code page has both.
        assert!(!fits_ansi_code_page(Path::new(
            r"C:\журнал 日本語\clip.wav"
        )));
    }

    #[tokio::test]
    async fn the_pipe_carries_what_a_client_writes_and_ends_empty_when_none_came() {
        let mut pipe = JsonPipe::create().unwrap();
        let reading = pipe.read();
        let name = format!("{}.json", pipe.of_arg());
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut client = std::fs::OpenOptions::new().write(true).open(name).unwrap();
            client.write_all(br#"{"transcription": []}"#).unwrap();
        });
        writer.join().unwrap();
        pipe.close_unused();
        assert_eq!(reading.await.unwrap().unwrap(), br#"{"transcription": []}"#);

        let mut unused = JsonPipe::create().unwrap();
        let reading = unused.read();
        unused.close_unused();
        assert_eq!(reading.await.unwrap().unwrap(), b"");
    }
}
