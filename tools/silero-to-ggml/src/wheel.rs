//! The pieces of an unpacked `silero-vad` wheel the converter reads: the
//! TorchScript model and the package version (which whisper.cpp's converter
//! takes from the installed package's metadata, as this does).

use crate::ggml::Version;
use crate::zip::invalid;
use std::io;
use std::path::{Path, PathBuf};

pub const MODEL: &str = "silero_vad/data/silero_vad.jit";

pub struct Wheel {
    pub model: PathBuf,
    pub version: Version,
}

pub fn open(dir: &Path) -> io::Result<Wheel> {
    let mut infos = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("silero_vad-") && name.ends_with(".dist-info") {
            infos.push(name.into_owned());
        }
    }
    let [info] = infos.as_slice() else {
        return Err(invalid(format!(
            "{} should hold one silero_vad-*.dist-info folder (an unpacked silero-vad wheel), found {}",
            dir.display(),
            infos.len()
        )));
    };
    let metadata = std::fs::read_to_string(dir.join(info).join("METADATA"))?;
    let version = metadata
        .lines()
        .take_while(|line| !line.is_empty()) // the headers end at the first blank line
        .find_map(|line| line.strip_prefix("Version:"))
        .ok_or_else(|| invalid(format!("{info}/METADATA has no Version")))?;
    Ok(Wheel {
        model: dir.join(MODEL),
        version: Version::parse(version)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel_dir(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "silero-wheel-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn version_comes_from_the_metadata_headers() {
        let body = "Metadata-Version: 2.4\nName: silero-vad\nVersion: 6.2.0\n\nVersion: 9.9.9 in the description\n";
        let dir = wheel_dir(&[("silero_vad-6.2.0.dist-info/METADATA", body)]);
        let wheel = open(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(wheel.version.to_string(), "6.2.0");
        assert!(wheel.model.ends_with("silero_vad/data/silero_vad.jit"));
    }

    #[test]
    fn a_folder_that_is_not_the_wheel_is_refused() {
        let dir = wheel_dir(&[("other/README", "x"), ("x", "y"), ("z", "w")]);
        let err = open(&dir).err().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.to_string().contains("dist-info"), "{err}");
    }
}
