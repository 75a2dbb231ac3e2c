//! Where the loaded addon file lives: its platform package (or the checkout
//! it was built in) holds the whisper programs beside it.

use std::path::PathBuf;

/// The napi platform this addon was built for: the name of its package
/// (`persistent-whisper-<platform>`) and of its checkout build folder.
pub const PLATFORM: &str = {
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        "linux-x64-gnu"
    } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        "linux-arm64-gnu"
    } else if cfg!(all(target_os = "macos", target_arch = "x86_64")) {
        "darwin-x64"
    } else if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        "darwin-arm64"
    } else if cfg!(all(
        target_os = "windows",
        target_arch = "x86_64",
        target_env = "gnu"
    )) {
        // mingw-w64: the build this project tests under Wine, never published.
        "win32-x64-gnu"
    } else if cfg!(all(target_os = "windows", target_arch = "x86_64")) {
        "win32-x64-msvc"
    } else {
        "unsupported"
    }
};

/// The folder of the file this code was loaded from: the `.node` addon in
/// Node, a test executable under `cargo test`.
pub fn dir() -> Option<PathBuf> {
    loaded_file().and_then(|f| f.parent().map(PathBuf::from))
}

#[cfg(unix)]
fn loaded_file() -> Option<PathBuf> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`.
    let found = unsafe { libc::dladdr(dir as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr's file name is a NUL-terminated string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    std::fs::canonicalize(std::ffi::OsStr::from_bytes(name.to_bytes())).ok()
}

#[cfg(windows)]
fn loaded_file() -> Option<PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::Foundation::HMODULE;
    use windows_sys::Win32::System::LibraryLoader::{
        GetModuleFileNameW, GetModuleHandleExW, GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
        GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
    };
    let mut module: HMODULE = std::ptr::null_mut();
    // SAFETY: asks which module contains this function; fills `module`.
    let ok = unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            dir as *const u16,
            &mut module,
        )
    };
    if ok == 0 {
        return None;
    }
    let mut buf = vec![0u16; 32768];
    // SAFETY: writes at most buf.len() UTF-16 units into buf.
    let len = unsafe { GetModuleFileNameW(module, buf.as_mut_ptr(), buf.len() as u32) } as usize;
    (len > 0).then(|| PathBuf::from(std::ffi::OsString::from_wide(&buf[..len])))
}

#[cfg(not(any(unix, windows)))]
fn loaded_file() -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_file_it_was_loaded_from() {
        // Under cargo test, that is the test executable in target/.
        let dir = super::dir().expect("dladdr knows this test executable");
        assert!(dir
            .join(std::env::current_exe().unwrap().file_name().unwrap())
            .exists());
    }
}
