//! Test inputs made here: stored zips, pickles written opcode by opcode, and a
//! TorchScript archive laid out as the silero-vad wheel's `silero_vad.jit`
//! (same module paths, shapes and STFT strides; made-up values).

use crate::zip::crc32;

/// A zip of stored entries, as `torch.jit.save` writes its data.
pub fn zip_stored(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let fixed = |sig: u32| -> Vec<u8> {
            let mut h = sig.to_le_bytes().to_vec();
            h.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method 0, time, date
            h.extend(crc.to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h
        };
        out.extend(fixed(0x0403_4b50));
        out.extend([0, 0]); // extra length
        out.extend(name.as_bytes());
        out.extend(*data);
        let mut c = 0x0201_4b50u32.to_le_bytes().to_vec();
        c.extend([20, 0]); // version made by
        c.extend(&fixed(0)[4..]);
        c.extend([0; 12]); // extra, comment, disk, internal and external attributes
        c.extend(offset.to_le_bytes());
        c.extend(name.as_bytes());
        central.extend(c);
    }
    let dir_start = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0, 0, 0, 0]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(dir_start.to_le_bytes());
    out.extend([0, 0]);
    out
}

/// Writes protocol-2 pickles the way PyTorch's TorchScript pickler does.
pub struct Pickler(Vec<u8>);

impl Pickler {
    pub fn new() -> Self {
        Pickler(vec![0x80, 2])
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.0.extend(bytes);
    }

    pub fn str(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
    }

    fn int(&mut self, v: u64) {
        if v <= i32::MAX as u64 {
            self.0.push(b'J');
            self.0.extend((v as i32).to_le_bytes());
        } else {
            self.0.extend([0x8a, 8]); // LONG1
            self.0.extend(v.to_le_bytes());
        }
    }

    fn global(&mut self, dotted: &str) {
        let (module, name) = dotted.rsplit_once('.').unwrap();
        self.0.push(b'c');
        self.0.extend(format!("{module}\n{name}\n").as_bytes());
    }

    /// NEWOBJ of `class`, then its attributes as key/value pairs until `object_end`.
    pub fn object_start(&mut self, class: &str) {
        self.global(class);
        self.0.extend([b')', 0x81, b'}', b'(']);
    }

    pub fn object_end(&mut self) {
        self.0.extend([b'u', b'b']);
    }

    /// `_rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`.
    pub fn tensor(&mut self, key: &str, numel: u64, offset: u64, size: &[u64], stride: &[u64]) {
        self.global("torch._utils._rebuild_tensor_v2");
        self.0.extend([b'(', b'(']);
        self.str("storage");
        self.global("torch.FloatStorage");
        self.str(key);
        self.str("cpu");
        self.int(numel);
        self.0.extend([b't', b'Q']);
        self.int(offset);
        for dims in [size, stride] {
            self.0.push(b'(');
            dims.iter().for_each(|&d| self.int(d));
            self.0.push(b't');
        }
        self.0.push(0x89);
        self.global("collections.OrderedDict");
        self.0.extend([b')', b'R', b't', b'R']);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.push(b'.');
        self.0
    }
}

/// Changes to the made-up Silero archive, for failure tests.
pub enum SileroTensor {
    Shape(&'static str, Vec<u64>),
    Missing(&'static str),
}

/// The 16 kHz tensors in the Python converter's order, with PyTorch shapes.
fn silero_16k() -> Vec<(&'static str, Vec<u64>)> {
    vec![
        ("encoder.0.reparam_conv.weight", vec![128, 129, 3]),
        ("encoder.0.reparam_conv.bias", vec![128]),
        ("encoder.1.reparam_conv.weight", vec![64, 128, 3]),
        ("encoder.1.reparam_conv.bias", vec![64]),
        ("encoder.2.reparam_conv.weight", vec![64, 64, 3]),
        ("encoder.2.reparam_conv.bias", vec![64]),
        ("encoder.3.reparam_conv.weight", vec![128, 64, 3]),
        ("encoder.3.reparam_conv.bias", vec![128]),
        ("decoder.rnn.weight_ih", vec![512, 128]),
        ("decoder.rnn.weight_hh", vec![512, 128]),
        ("decoder.rnn.bias_ih", vec![512]),
        ("decoder.rnn.bias_hh", vec![512]),
        ("decoder.decoder.2.weight", vec![1, 128, 1]),
        ("decoder.decoder.2.bias", vec![1]),
        ("stft.forward_basis_buffer", vec![258, 1, 256]),
    ]
}

struct Leaf {
    path: Vec<String>,
    key: String,
    size: Vec<u64>,
    stride: Vec<u64>,
}

/// Objects for each path prefix, tensors at the leaves, in first-seen order.
fn emit(p: &mut Pickler, depth: usize, leaves: &[&Leaf]) {
    let mut done: Vec<&str> = Vec::new();
    for leaf in leaves {
        let head = leaf.path[depth].as_str();
        if done.contains(&head) {
            continue;
        }
        done.push(head);
        p.str(head);
        if leaf.path.len() == depth + 1 {
            let numel = leaf.size.iter().product();
            p.tensor(&leaf.key, numel, 0, &leaf.size, &leaf.stride);
        } else {
            let below: Vec<&Leaf> = leaves
                .iter()
                .copied()
                .filter(|l| l.path[depth] == head)
                .collect();
            p.object_start(&format!("__torch__.Module_{head}"));
            p.str("training");
            p.raw(&[0x89]);
            emit(p, depth + 1, &below);
            p.object_end();
        }
    }
}

/// A `silero_vad.jit` look-alike: `_model` (16 kHz) and `_model_8k` (-1 - i/4096,
/// must never be converted). Tensor k of the 16 kHz model holds k + i/4096.
pub fn silero_archive(changes: &[SileroTensor]) -> Vec<u8> {
    let mut leaves = Vec::new();
    let mut storages: Vec<(String, Vec<u8>)> = Vec::new();
    for (model, sign) in [("_model", 1.0f32), ("_model_8k", -1.0)] {
        for (k, (name, mut size)) in silero_16k().into_iter().enumerate() {
            let full = format!("{model}.{name}");
            if changes
                .iter()
                .any(|c| matches!(c, SileroTensor::Missing(n) if *n == full))
            {
                continue;
            }
            for change in changes {
                if let SileroTensor::Shape(n, s) = change {
                    if *n == full {
                        size = s.clone();
                    }
                }
            }
            let numel: u64 = size.iter().product();
            let base = if sign > 0.0 { k as f32 } else { 1.0 };
            let data = (0..numel)
                .flat_map(|i| (sign * (base + i as f32 / 4096.0)).to_le_bytes())
                .collect();
            // Row-major strides, except the STFT basis's stride 0 on its size-1 dimension.
            let mut stride: Vec<u64> = (0..size.len())
                .map(|d| size[d + 1..].iter().product())
                .collect();
            if name.starts_with("stft") && size.len() == 3 {
                stride[1] = 0;
            }
            let key = storages.len().to_string();
            storages.push((format!("jit/data/{key}"), data));
            leaves.push(Leaf {
                path: full.split('.').map(str::to_owned).collect(),
                key,
                size,
                stride,
            });
        }
    }
    let mut p = Pickler::new();
    p.object_start("__torch__.vad.model.vad_annotator.VADRNNJITMerge");
    p.str("training");
    p.raw(&[0x89]);
    p.str("sample_rates");
    p.raw(&[b']', b'(', b'M', 0x40, 0x1f, b'M', 0x80, 0x3e, b'e']);
    emit(&mut p, 0, &leaves.iter().collect::<Vec<_>>());
    p.object_end();
    let pickle = p.finish();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("jit/version", b"3\n"),
        ("jit/byteorder", b"little"),
        ("jit/data.pkl", &pickle),
    ];
    entries.extend(storages.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    zip_stored(&entries)
}
