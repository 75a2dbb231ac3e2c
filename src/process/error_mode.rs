//! No dialog box from a whisper process on Windows. A program that imports a
//! DLL the machine lacks (the Vulkan build's vulkan-1.dll, which only a
//! graphics driver installs) makes the loader show a modal "System Error -
//! vulkan-1.dll was not found" box, and a crash brings up Windows Error
//! Reporting's, unless the process's error mode says the caller handles
//! these. A child process inherits its parent's error mode at creation
//! (Rust's Command does not pass CREATE_DEFAULT_ERROR_MODE), so the host's
//! mode is set before any whisper program starts: the probe that runs the
//! Vulkan build's worker with --list-devices on every machine with gpu
//! 'auto' then ends with STATUS_DLL_NOT_FOUND, which the engine reads as "no
//! Vulkan loader" and falls back. These are the flags libuv already sets in
//! every Node.js and Electron process; setting them here keeps that true in
//! any host.

use std::sync::Once;

const SEM_FAILCRITICALERRORS: u32 = 0x0001;
const SEM_NOGPFAULTERRORBOX: u32 = 0x0002;
const SEM_NOOPENFILEERRORBOX: u32 = 0x8000;

/// The flags every whisper process is started with.
pub const QUIET: u32 = SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX;

#[link(name = "kernel32")]
extern "system" {
    fn GetErrorMode() -> u32;
    fn SetErrorMode(mode: u32) -> u32;
}

/// Adds the quiet flags to this process's error mode, once (children
/// started from then on inherit them); flags the host set stay.
pub fn quiet_children() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: reads and sets this process's error mode; no pointers.
        unsafe {
            SetErrorMode(GetErrorMode() | QUIET);
        }
    });
}
