//! Reader for CTranslate2's `model.bin` (binary version 5 and later).

use std::collections::HashMap;
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(code: u8) -> io::Result<Self> {
        Ok(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            other => return Err(invalid(format!("unknown dtype code {other}"))),
        })
    }
}

pub struct Variable {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

impl Variable {
    /// The values as f32, whatever the stored float type.
    pub fn to_f32(&self) -> io::Result<Vec<f32>> {
        let pairs = self
            .data
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]));
        match self.dtype {
            DType::F32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            DType::F16 => Ok(pairs.map(crate::half::f16_to_f32).collect()),
            DType::BF16 => Ok(pairs.map(|h| f32::from_bits((h as u32) << 16)).collect()),
            other => Err(invalid(format!(
                "{other:?} weights cannot be converted (int8-quantized models are not supported)"
            ))),
        }
    }

    /// A scalar integer (used for `num_heads`).
    pub fn scalar_int(&self) -> Option<usize> {
        match (self.dtype, self.data.len()) {
            (DType::I16, 2) => Some(i16::from_le_bytes([self.data[0], self.data[1]]) as usize),
            (DType::I32, 4) => Some(i32::from_le_bytes(self.data[..4].try_into().ok()?) as usize),
            _ => None,
        }
    }
}

pub struct Model {
    pub spec: String,
    variables: HashMap<String, Variable>,
    aliases: HashMap<String, String>,
}

impl Model {
    pub fn get(&self, name: &str) -> Option<&Variable> {
        let target = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.variables.get(target)
    }

    pub fn require(&self, name: &str) -> io::Result<&Variable> {
        self.get(name)
            .ok_or_else(|| invalid(format!("model.bin has no variable `{name}`")))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables.keys().map(String::as_str)
    }

    pub fn parse(bytes: &[u8]) -> io::Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32()?;
        if version < 5 {
            return Err(invalid(format!(
                "model.bin binary version {version} is too old (need 5 or later)"
            )));
        }
        let spec = r.string()?;
        let _revision = r.u32()?;
        let count = r.u32()? as usize;
        let mut variables = HashMap::with_capacity(count);
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()? as usize;
            let dims = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<io::Result<Vec<_>>>()?;
            let dtype = DType::from_code(r.u8()?)?;
            let len = r.u32()? as usize;
            let data = r.take(len)?.to_vec();
            variables.insert(name, Variable { dims, dtype, data });
        }
        let alias_count = r.u32()? as usize;
        let mut aliases = HashMap::with_capacity(alias_count);
        for _ in 0..alias_count {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
        Ok(Model {
            spec,
            variables,
            aliases,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| invalid("model.bin ends early (truncated file?)"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> io::Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// u16 length (counting a trailing NUL), then the bytes.
    fn string(&mut self) -> io::Result<String> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(text.to_vec()).map_err(|_| invalid("model.bin holds a non-UTF-8 name"))
    }
}

pub fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}
