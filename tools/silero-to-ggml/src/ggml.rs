//! Writes whisper.cpp's ggml VAD file, byte for byte as whisper.cpp's
//! `models/convert-silero-vad-to-ggml.py` does, for the loader
//! `whisper_vad_init_with_params` (src/whisper.cpp, names in whisper-arch.h).
//!
//! ```text
//! i32 magic 0x67676d6c
//! i32 len, "silero-16k" ; i32 major, minor, patch (the silero-vad package version)
//! i32 n_window 512, n_context 64
//! i32 n_encoder_layers 4 ; 4 x { i32 in, out, kernel }
//! i32 lstm_input 128, lstm_hidden 128, final_conv_in 128, final_conv_out 1
//! tensors until EOF: { i32 n_dims, name_len, type (0 f32, 1 f16);
//!                      i32 dims[n_dims] innermost first; name; data }
//! ```

use crate::half::f32_to_f16;
use crate::torchscript::Checkpoint;
use crate::zip::invalid;
use std::io::{self, Write};

const MAGIC: i32 = 0x6767_6d6c;
const MODEL_TYPE: &str = "silero-16k";
/// Samples per VAD window at 16 kHz, and the context carried between windows.
const WINDOW: i32 = 512;
const CONTEXT: i32 = 64;
/// (in, out) channels of the four encoder convolutions; 129 = STFT bins.
const ENCODER: [(usize, usize); 4] = [(129, 128), (128, 64), (64, 64), (64, 128)];
const KERNEL: usize = 3;
const LSTM: usize = 128;
const FINAL_CONV: (usize, usize) = (128, 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: i32,
    pub minor: i32,
    pub patch: i32,
}

impl Version {
    /// `6.2.0`: three integers, as the Python converter requires.
    pub fn parse(text: &str) -> io::Result<Self> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let bad = || {
            invalid(format!(
                "silero-vad version `{text}` is not MAJOR.MINOR.PATCH"
            ))
        };
        let [major, minor, patch] = parts.as_slice() else {
            return Err(bad());
        };
        let int = |s: &str| s.parse::<i32>().map_err(|_| bad());
        Ok(Version {
            major: int(major)?,
            minor: int(minor)?,
            patch: int(patch)?,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// As the Python script: size-1 dimensions squeezed out (the final conv's
    /// bias becomes a 0-dimensional tensor), then the dimensions reversed.
    Squeezed,
    /// The STFT basis keeps all three dimensions: [256, 1, 258] in the file.
    Unsqueezed,
}

#[derive(Debug)]
struct Planned {
    name: String,
    /// The PyTorch shape the model must have.
    shape: Vec<usize>,
    f16: bool,
    layout: Layout,
}

fn planned(name: String, shape: &[usize], f16: bool) -> Planned {
    Planned {
        name,
        shape: shape.to_vec(),
        f16,
        layout: Layout::Squeezed,
    }
}

/// The 16 kHz model's tensors in the Python script's order. Convolution
/// weights and the STFT basis are f16, everything else f32 (the script's
/// `is_conv_weight`), which is what the loader allocates.
fn plan() -> Vec<Planned> {
    let mut out = Vec::new();
    for (i, (input, output)) in ENCODER.into_iter().enumerate() {
        let conv = format!("_model.encoder.{i}.reparam_conv");
        out.push(planned(
            format!("{conv}.weight"),
            &[output, input, KERNEL],
            true,
        ));
        out.push(planned(format!("{conv}.bias"), &[output], false));
    }
    for (name, shape) in [
        ("weight_ih", &[4 * LSTM, LSTM][..]),
        ("weight_hh", &[4 * LSTM, LSTM]),
        ("bias_ih", &[4 * LSTM]),
        ("bias_hh", &[4 * LSTM]),
    ] {
        out.push(planned(format!("_model.decoder.rnn.{name}"), shape, false));
    }
    let (conv_in, conv_out) = FINAL_CONV;
    out.push(planned(
        "_model.decoder.decoder.2.weight".into(),
        &[conv_out, conv_in, 1],
        true,
    ));
    out.push(planned(
        "_model.decoder.decoder.2.bias".into(),
        &[conv_out],
        false,
    ));
    out.push(Planned {
        layout: Layout::Unsqueezed,
        ..planned(
            "_model.stft.forward_basis_buffer".into(),
            &[258, 1, 256],
            true,
        )
    });
    out
}

fn i32s(w: &mut impl Write, values: &[i32]) -> io::Result<()> {
    values
        .iter()
        .try_for_each(|v| w.write_all(&v.to_le_bytes()))
}

fn header(w: &mut impl Write, version: Version) -> io::Result<()> {
    i32s(w, &[MAGIC, MODEL_TYPE.len() as i32])?;
    w.write_all(MODEL_TYPE.as_bytes())?;
    i32s(
        w,
        &[version.major, version.minor, version.patch, WINDOW, CONTEXT],
    )?;
    i32s(w, &[ENCODER.len() as i32])?;
    for (input, output) in ENCODER {
        i32s(w, &[input as i32, output as i32, KERNEL as i32])?;
    }
    let (conv_in, conv_out) = FINAL_CONV;
    i32s(
        w,
        &[LSTM as i32, LSTM as i32, conv_in as i32, conv_out as i32],
    )
}

/// ggml's dimensions, innermost first, as the script computes them.
fn file_dims(shape: &[usize], layout: Layout) -> Vec<i32> {
    let mut dims: Vec<i32> = match layout {
        Layout::Squeezed => shape
            .iter()
            .filter(|&&d| d != 1)
            .map(|&d| d as i32)
            .collect(),
        Layout::Unsqueezed => shape.iter().map(|&d| d as i32).collect(),
    };
    dims.truncate(4);
    dims.reverse();
    dims
}

/// Writes the whole file; returns the number of tensors written.
pub fn write(w: &mut impl Write, model: &Checkpoint, version: Version) -> io::Result<usize> {
    let plan = plan();
    // Check every shape before writing a byte: another model fails whole.
    for t in &plan {
        let shape = model.shape(&t.name)?;
        if shape != t.shape {
            return Err(invalid(format!(
                "`{}` has shape {shape:?}, expected {:?}: not the Silero VAD model whisper.cpp loads",
                t.name, t.shape
            )));
        }
    }
    header(w, version)?;
    for t in &plan {
        let tensor = model.tensor(&t.name)?;
        let dims = file_dims(&t.shape, t.layout);
        i32s(w, &[dims.len() as i32, t.name.len() as i32, t.f16 as i32])?;
        i32s(w, &dims)?;
        w.write_all(t.name.as_bytes())?;
        let mut data = Vec::with_capacity(tensor.values.len() * 4);
        for v in tensor.values {
            if t.f16 {
                data.extend_from_slice(&f32_to_f16(v).to_le_bytes());
            } else {
                data.extend_from_slice(&v.to_le_bytes());
            }
        }
        w.write_all(&data)?;
    }
    Ok(plan.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::half::f16_to_f32;
    use crate::testdata::{silero_archive, SileroTensor};

    /// The official ggml-silero-v6.2.0.bin (and v5.1.2) is 885,098 bytes.
    const OFFICIAL_BYTES: usize = 885_098;

    fn convert(archive: &[u8]) -> io::Result<Vec<u8>> {
        let model = Checkpoint::parse(archive)?;
        let mut out = Vec::new();
        write(&mut out, &model, Version::parse("6.2.0")?)?;
        Ok(out)
    }

    fn i32_at(bytes: &[u8], at: usize) -> i32 {
        i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// Walks the tensor records after the header: (name, n_dims, dims, type, data).
    fn records(file: &[u8]) -> Vec<(String, Vec<i32>, i32, &[u8])> {
        let mut at = 106; // header: 4 + 4 + 10 + 5*4 + 4 + 12*4 + 4*4
        let mut out = Vec::new();
        while at < file.len() {
            let (n_dims, name_len, ttype) =
                (i32_at(file, at), i32_at(file, at + 4), i32_at(file, at + 8));
            at += 12;
            let dims: Vec<i32> = (0..n_dims as usize)
                .map(|i| i32_at(file, at + 4 * i))
                .collect();
            at += 4 * n_dims as usize;
            let name = String::from_utf8(file[at..at + name_len as usize].to_vec()).unwrap();
            at += name_len as usize;
            let len = dims.iter().product::<i32>() as usize * if ttype == 1 { 2 } else { 4 };
            out.push((name, dims, ttype, &file[at..at + len]));
            at += len;
        }
        out
    }

    #[test]
    fn header_is_the_scripts() {
        let file = convert(&silero_archive(&[])).unwrap();
        let ints: Vec<i32> = (0..6).map(|i| i32_at(&file, 18 + 4 * i)).collect();
        assert_eq!(i32_at(&file, 0), 0x6767_6d6c);
        assert_eq!((i32_at(&file, 4), &file[8..18]), (10, &b"silero-16k"[..]));
        assert_eq!(ints, [6, 2, 0, 512, 64, 4]);
        let encoder: Vec<i32> = (0..12).map(|i| i32_at(&file, 42 + 4 * i)).collect();
        assert_eq!(encoder, [129, 128, 3, 128, 64, 3, 64, 64, 3, 64, 128, 3]);
        let tail: Vec<i32> = (0..4).map(|i| i32_at(&file, 90 + 4 * i)).collect();
        assert_eq!(tail, [128, 128, 128, 1]);
    }

    #[test]
    fn the_file_has_the_official_size_and_the_loaders_names_shapes_and_types() {
        let file = convert(&silero_archive(&[])).unwrap();
        assert_eq!(file.len(), OFFICIAL_BYTES);
        let got: Vec<(String, Vec<i32>, i32)> = records(&file)
            .into_iter()
            .map(|(n, d, t, _)| (n, d, t))
            .collect();
        let want: Vec<(&str, Vec<i32>, i32)> = vec![
            ("_model.encoder.0.reparam_conv.weight", vec![3, 129, 128], 1),
            ("_model.encoder.0.reparam_conv.bias", vec![128], 0),
            ("_model.encoder.1.reparam_conv.weight", vec![3, 128, 64], 1),
            ("_model.encoder.1.reparam_conv.bias", vec![64], 0),
            ("_model.encoder.2.reparam_conv.weight", vec![3, 64, 64], 1),
            ("_model.encoder.2.reparam_conv.bias", vec![64], 0),
            ("_model.encoder.3.reparam_conv.weight", vec![3, 64, 128], 1),
            ("_model.encoder.3.reparam_conv.bias", vec![128], 0),
            ("_model.decoder.rnn.weight_ih", vec![128, 512], 0),
            ("_model.decoder.rnn.weight_hh", vec![128, 512], 0),
            ("_model.decoder.rnn.bias_ih", vec![512], 0),
            ("_model.decoder.rnn.bias_hh", vec![512], 0),
            // Squeezed as the script does: [1, 128, 1] -> [128], and [1] -> 0 dimensions.
            ("_model.decoder.decoder.2.weight", vec![128], 1),
            ("_model.decoder.decoder.2.bias", vec![], 0),
            ("_model.stft.forward_basis_buffer", vec![256, 1, 258], 1),
        ];
        let want: Vec<(String, Vec<i32>, i32)> = want
            .into_iter()
            .map(|(n, d, t)| (n.to_owned(), d, t))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn values_are_the_16k_models_in_row_major_order_and_rounded_to_f16() {
        let file = convert(&silero_archive(&[])).unwrap();
        let records = records(&file);
        let by_name = |name: &str| records.iter().find(|r| r.0 == name).unwrap().3;
        let f32s = |b: &[u8]| -> Vec<f32> {
            b.chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let f16s = |b: &[u8]| -> Vec<f32> {
            b.chunks(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect()
        };
        // silero_archive fills tensor k with k + i / 4096 (the 8 kHz copies with -1).
        let bias = f32s(by_name("_model.decoder.rnn.bias_hh"));
        assert_eq!(bias[..3], [11.0, 11.0 + 1.0 / 4096.0, 11.0 + 2.0 / 4096.0]);
        let final_bias = f32s(by_name("_model.decoder.decoder.2.bias"));
        assert_eq!(final_bias, [13.0]);
        // The STFT basis is stored with a stride-0 dimension; its values still come in order.
        let basis = f16s(by_name("_model.stft.forward_basis_buffer"));
        assert_eq!(basis.len(), 258 * 256);
        assert_eq!(
            [basis[0], basis[64], basis[4096]],
            [14.0, 14.0 + 1.0 / 64.0, 15.0]
        );
        // Halves are 1/128 apart in [8, 16): 8 + 1/256 is a tie and goes to the even 8.0,
        // 8 + 17/4096 rounds up.
        let weight = f16s(by_name("_model.encoder.0.reparam_conv.weight"));
        assert_eq!(weight[3], 3.0 / 4096.0);
        assert_eq!(
            [weight[32768 + 16], weight[32768 + 17]],
            [8.0, 8.0 + 1.0 / 128.0]
        );
        // Nothing of the 8 kHz model (all negative) is in the file.
        for (name, _, ttype, data) in &records {
            let values = if *ttype == 1 { f16s(data) } else { f32s(data) };
            assert!(values.iter().all(|v| *v >= 0.0), "{name}");
        }
    }

    #[test]
    fn a_wrong_shape_fails_before_anything_is_written() {
        let archive = silero_archive(&[SileroTensor::Shape(
            "_model.decoder.rnn.weight_ih",
            vec![512, 64],
        )]);
        let model = Checkpoint::parse(&archive).unwrap();
        let mut out = Vec::new();
        let err = write(&mut out, &model, Version::parse("6.2.0").unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("_model.decoder.rnn.weight_ih"),
            "{err}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_missing_tensor_is_named() {
        let archive = silero_archive(&[SileroTensor::Missing("_model.stft.forward_basis_buffer")]);
        let err = convert(&archive).unwrap_err();
        assert!(
            err.to_string().contains("_model.stft.forward_basis_buffer"),
            "{err}"
        );
    }

    #[test]
    fn versions_must_be_three_integers() {
        assert_eq!(
            Version::parse("5.1.2\n").unwrap(),
            Version {
                major: 5,
                minor: 1,
                patch: 2
            }
        );
        for bad in ["6.2", "6.2.0.1", "6.2.0rc1", "", "a.b.c"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
