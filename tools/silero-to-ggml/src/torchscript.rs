//! The named tensors of a TorchScript archive (`torch.jit.save`'s zip): the
//! module tree in `<folder>/data.pkl`, the raw storages in `<folder>/data/<key>`.
//! Names are the attribute paths, as `state_dict()` spells them
//! (`_model.encoder.0.reparam_conv.weight`).

use crate::pickle::{self, TensorRef, Value};
use crate::zip::{invalid, Archive};
use std::collections::BTreeMap;
use std::io;

/// Far above any Silero tensor (66,048 values): a crafted size stays cheap.
const MAX_ELEMENTS: u64 = 1 << 24;

#[derive(Debug, PartialEq)]
pub struct Tensor {
    /// PyTorch's order: outermost dimension first.
    pub shape: Vec<usize>,
    /// Row-major (C order), whatever the strides in the archive.
    pub values: Vec<f32>,
}

pub struct Checkpoint<'a> {
    archive: Archive<'a>,
    folder: String,
    tensors: BTreeMap<String, TensorRef>,
}

impl<'a> Checkpoint<'a> {
    pub fn parse(bytes: &'a [u8]) -> io::Result<Self> {
        let archive = Archive::parse(bytes)?;
        let mut folders = archive
            .entries()
            .iter()
            .filter_map(|e| e.name.strip_suffix("/data.pkl"))
            .filter(|folder| !folder.contains('/'));
        let folder = match (folders.next(), folders.next()) {
            (Some(folder), None) => folder.to_owned(),
            _ => {
                return Err(invalid(
                    "not a TorchScript archive (expected one <folder>/data.pkl)",
                ))
            }
        };
        // Archives written on a big-endian machine say so; the data would need swapping.
        if let Ok(order) = archive.read(&format!("{folder}/byteorder")) {
            if order.trim_ascii() != b"little" {
                return Err(invalid(
                    "the archive's tensors are big-endian; only little-endian is supported",
                ));
            }
        }
        let root = pickle::load(archive.read(&format!("{folder}/data.pkl"))?)?;
        let mut tensors = BTreeMap::new();
        collect("", &root, &mut tensors);
        Ok(Checkpoint {
            archive,
            folder,
            tensors,
        })
    }

    #[cfg(test)]
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The tensor's shape only: cheap, for checking before reading.
    pub fn shape(&self, name: &str) -> io::Result<Vec<usize>> {
        Ok(self.get(name)?.size.iter().map(|&d| d as usize).collect())
    }

    pub fn tensor(&self, name: &str) -> io::Result<Tensor> {
        let t = self.get(name)?;
        if t.storage.dtype != "FloatStorage" {
            return Err(invalid(format!(
                "`{name}` is a {}; only float32 weights are supported",
                t.storage.dtype
            )));
        }
        let count = t
            .size
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| invalid(format!("`{name}` claims too many elements")))?;
        let mut values = Vec::with_capacity(count as usize);
        if count > 0 {
            // The last element the strides reach must lie inside the storage.
            let last = t
                .size
                .iter()
                .zip(&t.stride)
                .try_fold(t.offset, |at, (&d, &s)| {
                    at.checked_add((d - 1).checked_mul(s)?)
                })
                .filter(|&at| at < t.storage.numel)
                .ok_or_else(|| invalid(format!("`{name}` reaches past the end of its storage")))?;
            let data = self
                .archive
                .read(&format!("{}/data/{}", self.folder, t.storage.key))?;
            // PyTorch writes a storage as exactly its elements, 4 bytes each.
            if Some(data.len() as u64) != t.storage.numel.checked_mul(4) || last >= t.storage.numel
            {
                return Err(invalid(format!(
                    "the storage of `{name}` is not the size it claims"
                )));
            }
            gather(t, data, &mut values);
        }
        Ok(Tensor {
            shape: t.size.iter().map(|&d| d as usize).collect(),
            values,
        })
    }

    fn get(&self, name: &str) -> io::Result<&TensorRef> {
        self.tensors
            .get(name)
            .ok_or_else(|| invalid(format!("the model has no tensor `{name}`")))
    }
}

/// Module attributes, depth first; tensors keyed by their dotted path.
fn collect(path: &str, value: &Value, out: &mut BTreeMap<String, TensorRef>) {
    let Value::Object { state, .. } = value else {
        return;
    };
    let Value::Dict(attributes) = state.as_ref() else {
        return;
    };
    for (key, value) in attributes {
        let Value::Str(key) = key else { continue };
        let name = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            Value::Tensor(t) => {
                out.insert(name, t.clone());
            }
            Value::Object { .. } => collect(&name, value, out),
            _ => {}
        }
    }
}

/// Row-major walk over the strided view; every index was bounds-checked above.
fn gather(t: &TensorRef, data: &[u8], out: &mut Vec<f32>) {
    let rank = t.size.len();
    let mut index = vec![0u64; rank];
    loop {
        let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
        let b = &data[at as usize * 4..at as usize * 4 + 4];
        out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        // Odometer: bump the innermost dimension, carry outwards.
        let mut dim = rank;
        loop {
            if dim == 0 {
                return;
            }
            dim -= 1;
            index[dim] += 1;
            if index[dim] < t.size[dim] {
                break;
            }
            index[dim] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{zip_stored, Pickler};

    fn archive(pickle: Vec<u8>, storages: &[(&str, Vec<f32>)]) -> Vec<u8> {
        let data: Vec<(String, Vec<u8>)> = storages
            .iter()
            .map(|(key, values)| {
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (format!("m/data/{key}"), bytes)
            })
            .collect();
        let mut entries: Vec<(&str, &[u8])> =
            vec![("m/data.pkl", &pickle), ("m/byteorder", b"little")];
        entries.extend(
            data.iter()
                .map(|(name, bytes)| (name.as_str(), bytes.as_slice())),
        );
        zip_stored(&entries)
    }

    fn one_tensor(numel: u64, offset: u64, size: &[u64], stride: &[u64]) -> Vec<u8> {
        let mut p = Pickler::new();
        p.object_start("__torch__.Top");
        p.str("inner");
        p.object_start("__torch__.Inner");
        p.str("w");
        p.tensor("0", numel, offset, size, stride);
        p.object_end();
        p.object_end();
        p.finish()
    }

    #[test]
    fn nested_attributes_get_dotted_names_and_strides_are_honoured() {
        // A transposed view: size [3, 2] over a [2, 3] storage, strides (1, 3).
        let zip = archive(
            one_tensor(6, 0, &[3, 2], &[1, 3]),
            &[("0", vec![0., 1., 2., 3., 4., 5.])],
        );
        let ckpt = Checkpoint::parse(&zip).unwrap();
        assert_eq!(ckpt.names().collect::<Vec<_>>(), ["inner.w"]);
        let t = ckpt.tensor("inner.w").unwrap();
        assert_eq!(t.shape, [3, 2]);
        assert_eq!(t.values, [0., 3., 1., 4., 2., 5.]);
    }

    #[test]
    fn a_stride_zero_dimension_and_an_offset() {
        // Like Silero's STFT basis: a size-1 dimension with stride 0.
        let zip = archive(
            one_tensor(5, 1, &[2, 1, 2], &[2, 0, 1]),
            &[("0", vec![9., 1., 2., 3., 4.])],
        );
        let t = Checkpoint::parse(&zip).unwrap().tensor("inner.w").unwrap();
        assert_eq!((t.shape, t.values), (vec![2, 1, 2], vec![1., 2., 3., 4.]));
    }

    #[test]
    fn views_past_their_storage_are_refused() {
        for (numel, offset, size, stride, stored) in [
            (6, 0, [3u64, 3], [3u64, 1], 6),       // 9 elements in 6
            (6, 4, [2, 2], [2, 1], 6),             // offset pushes past the end
            (60, 0, [3, 2], [2, 1], 6),            // the storage claims more than is stored
            (6, 0, [1 << 40, 1 << 40], [0, 0], 6), // a size that overflows the budget
        ] {
            let zip = archive(
                one_tensor(numel, offset, &size, &stride),
                &[("0", vec![0.; stored])],
            );
            assert!(
                Checkpoint::parse(&zip).unwrap().tensor("inner.w").is_err(),
                "{size:?} {stride:?}"
            );
        }
    }

    #[test]
    fn archives_that_are_not_torchscript_are_refused() {
        let zip = zip_stored(&[("model.onnx", b"...")]);
        let err = Checkpoint::parse(&zip).err().unwrap();
        assert!(err.to_string().contains("data.pkl"), "{err}");
        let pickle = one_tensor(1, 0, &[1], &[1]);
        let zip = zip_stored(&[("m/data.pkl", &pickle), ("m/byteorder", b"big")]);
        assert!(Checkpoint::parse(&zip)
            .err()
            .unwrap()
            .to_string()
            .contains("big-endian"));
    }

    #[test]
    fn a_missing_tensor_is_named() {
        let zip = archive(one_tensor(1, 0, &[1], &[1]), &[("0", vec![1.])]);
        let err = Checkpoint::parse(&zip)
            .unwrap()
            .tensor("inner.b")
            .unwrap_err();
        assert!(err.to_string().contains("`inner.b`"), "{err}");
    }
}
