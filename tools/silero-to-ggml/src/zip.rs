//! Reader for the zip archive that `torch.jit.save` writes. PyTorch stores the
//! pickle and the tensor data uncompressed (only the TorchScript source may be
//! deflated, and we do not need it), so stored entries are all we read. Every
//! offset and length in the archive is a claim, checked against the bytes.

use std::io;

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const METHOD_STORED: u16 = 0;

pub struct Entry {
    pub name: String,
    method: u16,
    crc32: u32,
    compressed_len: usize,
    len: usize,
    local_header: usize,
}

pub struct Archive<'a> {
    bytes: &'a [u8],
    entries: Vec<Entry>,
}

impl<'a> Archive<'a> {
    pub fn parse(bytes: &'a [u8]) -> io::Result<Self> {
        let eocd = find_eocd(bytes)?;
        let count = le16(bytes, eocd + 10)? as usize;
        let dir_len = le32(bytes, eocd + 12)? as usize;
        let dir_start = le32(bytes, eocd + 16)? as usize;
        if count == 0xffff || dir_len == 0xffff_ffff || dir_start == 0xffff_ffff {
            return Err(invalid(
                "zip64 archives are not supported (the file is far larger than a Silero VAD model)",
            ));
        }
        let dir = slice(bytes, dir_start, dir_len)?;
        let mut entries = Vec::with_capacity(count.min(dir_len / 46 + 1));
        let mut at = 0;
        for _ in 0..count {
            if le32(dir, at)? != CENTRAL_SIGNATURE {
                return Err(invalid("zip central directory is damaged"));
            }
            let name_len = le16(dir, at + 28)? as usize;
            let extra_len = le16(dir, at + 30)? as usize;
            let comment_len = le16(dir, at + 32)? as usize;
            let name = slice(dir, at + 46, name_len)?;
            entries.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                method: le16(dir, at + 10)?,
                crc32: le32(dir, at + 16)?,
                compressed_len: le32(dir, at + 20)? as usize,
                len: le32(dir, at + 24)? as usize,
                local_header: le32(dir, at + 42)? as usize,
            });
            at += 46 + name_len + extra_len + comment_len;
        }
        Ok(Archive { bytes, entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The bytes of a stored entry, after checking its CRC-32.
    pub fn read(&self, name: &str) -> io::Result<&'a [u8]> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| invalid(format!("the archive has no `{name}`")))?;
        if entry.method != METHOD_STORED || entry.compressed_len != entry.len {
            return Err(invalid(format!(
                "`{name}` is compressed (method {}); only stored entries can be read",
                entry.method
            )));
        }
        let at = entry.local_header;
        if le32(self.bytes, at)? != LOCAL_SIGNATURE {
            return Err(invalid(format!("the local header of `{name}` is damaged")));
        }
        // The local header's own name and extra lengths (PyTorch pads the extra
        // field to align tensor data), not the central directory's.
        let name_len = le16(self.bytes, at + 26)? as usize;
        let extra_len = le16(self.bytes, at + 28)? as usize;
        let data = slice(self.bytes, at + 30 + name_len + extra_len, entry.len)?;
        if crc32(data) != entry.crc32 {
            return Err(invalid(format!(
                "`{name}` fails its CRC-32 check (damaged file?)"
            )));
        }
        Ok(data)
    }
}

fn find_eocd(bytes: &[u8]) -> io::Result<usize> {
    // The end record sits in the last 22 bytes plus at most a 65535-byte comment.
    let last = bytes.len().checked_sub(EOCD_LEN).ok_or_else(not_zip)?;
    let first = last.saturating_sub(0xffff);
    (first..=last)
        .rev()
        .find(|&at| le32(bytes, at).ok() == Some(EOCD_SIGNATURE))
        .ok_or_else(not_zip)
}

fn not_zip() -> io::Error {
    invalid("not a zip archive (no end of central directory record)")
}

fn slice(bytes: &[u8], at: usize, len: usize) -> io::Result<&[u8]> {
    at.checked_add(len)
        .and_then(|end| bytes.get(at..end))
        .ok_or_else(|| invalid("zip archive ends early (truncated file?)"))
}

fn le16(bytes: &[u8], at: usize) -> io::Result<u16> {
    let b = slice(bytes, at, 2)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn le32(bytes: &[u8], at: usize) -> io::Result<u32> {
    let b = slice(bytes, at, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// CRC-32 (IEEE 802.3, as zip uses), bit by bit: the data is a few megabytes.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

pub fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::zip_stored;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn reads_stored_entries_by_name() {
        let zip = zip_stored(&[("a/data.pkl", b"pickle"), ("a/data/0", &[1, 2, 3, 4])]);
        let archive = Archive::parse(&zip).unwrap();
        assert_eq!(archive.entries().len(), 2);
        assert_eq!(archive.read("a/data/0").unwrap(), &[1, 2, 3, 4]);
        assert_eq!(archive.read("a/data.pkl").unwrap(), b"pickle");
        let missing = archive.read("a/data/1").unwrap_err();
        assert!(missing.to_string().contains("no `a/data/1`"), "{missing}");
    }

    #[test]
    fn a_flipped_byte_fails_the_crc_check() {
        let mut zip = zip_stored(&[("x", b"payload")]);
        let at = zip.windows(7).position(|w| w == b"payload").unwrap();
        zip[at] ^= 1;
        let err = Archive::parse(&zip).unwrap().read("x").unwrap_err();
        assert!(err.to_string().contains("CRC-32"), "{err}");
    }

    #[test]
    fn truncated_or_foreign_files_are_refused_not_panicked_on() {
        let zip = zip_stored(&[("x", b"payload")]);
        for len in 0..zip.len() {
            // Any prefix either fails to parse or fails to read; none panics.
            if let Ok(archive) = Archive::parse(&zip[..len]) {
                assert!(archive.read("x").is_err());
            }
        }
        assert!(Archive::parse(b"PK\x03\x04 not really a zip").is_err());
    }

    #[test]
    fn directory_offsets_past_the_end_are_refused() {
        let mut zip = zip_stored(&[("x", b"payload")]);
        let eocd = zip.len() - EOCD_LEN;
        zip[eocd + 16..eocd + 20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Archive::parse(&zip).is_err());
        let mut zip = zip_stored(&[("x", b"payload")]);
        // The local header offset of the one entry, in the central directory.
        let dir = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        zip[dir + 42..dir + 46].copy_from_slice(&0xfff0_0000u32.to_le_bytes());
        assert!(Archive::parse(&zip).unwrap().read("x").is_err());
    }

    #[test]
    fn compressed_entries_are_refused_with_a_reason() {
        let mut zip = zip_stored(&[("x", b"payload")]);
        let eocd = zip.len() - EOCD_LEN;
        let dir = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        zip[dir + 10] = 8; // deflate
        let err = Archive::parse(&zip).unwrap().read("x").unwrap_err();
        assert!(err.to_string().contains("compressed"), "{err}");
    }
}
