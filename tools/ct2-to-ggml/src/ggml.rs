//! Writes a whisper.cpp ggml model from a parsed CTranslate2 Whisper model.

use crate::ct2::{invalid, Model};
use crate::half::f32_to_f16;
use crate::mel;
use std::io::{self, Write};

const MAGIC: i32 = 0x6767_6d6c;
const FTYPE_F16: i32 = 1;

#[derive(Debug, PartialEq, Eq)]
pub struct HParams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
}

fn count_layers(model: &Model, prefix: &str) -> usize {
    (0..)
        .take_while(|n| {
            let layer = format!("{prefix}/layer_{n}/");
            model.names().any(|name| name.starts_with(&layer))
        })
        .count()
}

fn dim(model: &Model, name: &str, axis: usize) -> io::Result<usize> {
    let var = model.require(name)?;
    var.dims
        .get(axis)
        .copied()
        .ok_or_else(|| invalid(format!("`{name}` has no axis {axis}")))
}

fn heads(model: &Model, name: &str, state: usize) -> usize {
    model
        .get(name)
        .and_then(|v| v.scalar_int())
        .unwrap_or(state / 64)
}

/// Hyperparameters come from the shapes of the weights.
pub fn hparams(model: &Model) -> io::Result<HParams> {
    let n_audio_state = dim(model, "encoder/position_encodings/encodings", 1)?;
    let n_text_state = dim(model, "decoder/embeddings/weight", 1)?;
    Ok(HParams {
        n_vocab: dim(model, "decoder/embeddings/weight", 0)?,
        n_audio_ctx: dim(model, "encoder/position_encodings/encodings", 0)?,
        n_audio_state,
        n_audio_head: heads(model, "encoder/num_heads", n_audio_state),
        n_audio_layer: count_layers(model, "encoder"),
        n_text_ctx: dim(model, "decoder/position_encodings/encodings", 0)?,
        n_text_state,
        n_text_head: heads(model, "decoder/num_heads", n_text_state),
        n_text_layer: count_layers(model, "decoder"),
        n_mels: dim(model, "encoder/conv1/weight", 1)?,
    })
}

#[derive(Clone, Copy)]
enum Kind {
    /// Weight matrices: f16.
    Matrix,
    /// Biases, layer norms, positional embeddings: f32.
    Vector,
    /// Conv biases: f32 written as [n, 1].
    ConvBias,
}

/// Which rows of a (possibly fused) CT2 tensor become one ggml tensor.
#[derive(Clone, Copy)]
enum Part {
    Whole,
    /// Part `index` of `of` equal row blocks.
    Split {
        index: usize,
        of: usize,
    },
}

struct Tensor {
    ggml: String,
    ct2: String,
    part: Part,
    kind: Kind,
}

fn t(ggml: String, ct2: String, kind: Kind) -> Tensor {
    Tensor {
        ggml,
        ct2,
        part: Part::Whole,
        kind,
    }
}

fn split(ggml: String, ct2: String, index: usize, of: usize, kind: Kind) -> Tensor {
    Tensor {
        ggml,
        ct2,
        part: Part::Split { index, of },
        kind,
    }
}

/// Self-attention: fused q/k/v (key has no bias), then the output projection.
fn self_attention(out: &mut Vec<Tensor>, g: &str, c: &str) {
    let lin0 = format!("{c}/self_attention/linear_0");
    for (i, name) in ["query", "key", "value"].iter().enumerate() {
        out.push(split(
            format!("{g}.attn.{name}.weight"),
            format!("{lin0}/weight"),
            i,
            3,
            Kind::Matrix,
        ));
        if *name != "key" {
            out.push(split(
                format!("{g}.attn.{name}.bias"),
                format!("{lin0}/bias"),
                i,
                3,
                Kind::Vector,
            ));
        }
    }
    let lin1 = format!("{c}/self_attention/linear_1");
    out.push(t(
        format!("{g}.attn.out.weight"),
        format!("{lin1}/weight"),
        Kind::Matrix,
    ));
    out.push(t(
        format!("{g}.attn.out.bias"),
        format!("{lin1}/bias"),
        Kind::Vector,
    ));
    layer_norm(
        out,
        &format!("{g}.attn_ln"),
        &format!("{c}/self_attention/layer_norm"),
    );
}

fn layer_norm(out: &mut Vec<Tensor>, g: &str, c: &str) {
    out.push(t(format!("{g}.weight"), format!("{c}/gamma"), Kind::Vector));
    out.push(t(format!("{g}.bias"), format!("{c}/beta"), Kind::Vector));
}

fn linear(out: &mut Vec<Tensor>, g: &str, c: &str) {
    out.push(t(
        format!("{g}.weight"),
        format!("{c}/weight"),
        Kind::Matrix,
    ));
    out.push(t(format!("{g}.bias"), format!("{c}/bias"), Kind::Vector));
}

fn mlp(out: &mut Vec<Tensor>, g: &str, c: &str) {
    linear(out, &format!("{g}.mlp.0"), &format!("{c}/ffn/linear_0"));
    linear(out, &format!("{g}.mlp.2"), &format!("{c}/ffn/linear_1"));
    layer_norm(out, &format!("{g}.mlp_ln"), &format!("{c}/ffn/layer_norm"));
}

/// Every ggml tensor in file order: the encoder first, then the decoder.
fn tensor_plan(hp: &HParams) -> Vec<Tensor> {
    let mut out = Vec::new();
    out.push(t(
        "encoder.positional_embedding".into(),
        "encoder/position_encodings/encodings".into(),
        Kind::Vector,
    ));
    for conv in ["conv1", "conv2"] {
        out.push(t(
            format!("encoder.{conv}.weight"),
            format!("encoder/{conv}/weight"),
            Kind::Matrix,
        ));
        out.push(t(
            format!("encoder.{conv}.bias"),
            format!("encoder/{conv}/bias"),
            Kind::ConvBias,
        ));
    }
    for n in 0..hp.n_audio_layer {
        let (g, c) = (format!("encoder.blocks.{n}"), format!("encoder/layer_{n}"));
        self_attention(&mut out, &g, &c);
        mlp(&mut out, &g, &c);
    }
    layer_norm(&mut out, "encoder.ln_post", "encoder/layer_norm");

    out.push(t(
        "decoder.positional_embedding".into(),
        "decoder/position_encodings/encodings".into(),
        Kind::Vector,
    ));
    out.push(t(
        "decoder.token_embedding.weight".into(),
        "decoder/embeddings/weight".into(),
        Kind::Matrix,
    ));
    for n in 0..hp.n_text_layer {
        let (g, c) = (format!("decoder.blocks.{n}"), format!("decoder/layer_{n}"));
        self_attention(&mut out, &g, &c);
        let x = format!("{g}.cross_attn");
        linear(
            &mut out,
            &format!("{x}.query"),
            &format!("{c}/attention/linear_0"),
        );
        let kv = format!("{c}/attention/linear_1");
        out.push(split(
            format!("{x}.key.weight"),
            format!("{kv}/weight"),
            0,
            2,
            Kind::Matrix,
        ));
        out.push(split(
            format!("{x}.value.weight"),
            format!("{kv}/weight"),
            1,
            2,
            Kind::Matrix,
        ));
        out.push(split(
            format!("{x}.value.bias"),
            format!("{kv}/bias"),
            1,
            2,
            Kind::Vector,
        ));
        linear(
            &mut out,
            &format!("{x}.out"),
            &format!("{c}/attention/linear_2"),
        );
        layer_norm(
            &mut out,
            &format!("{x}_ln"),
            &format!("{c}/attention/layer_norm"),
        );
        mlp(&mut out, &g, &c);
    }
    layer_norm(&mut out, "decoder.ln", "decoder/layer_norm");
    out
}

fn write_i32s(w: &mut impl Write, values: &[i32]) -> io::Result<()> {
    for v in values {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

fn write_tensor(w: &mut impl Write, model: &Model, tensor: &Tensor) -> io::Result<()> {
    let var = model.require(&tensor.ct2)?;
    let mut dims = var.dims.clone();
    let mut values = var.to_f32()?;
    if let Part::Split { index, of } = tensor.part {
        let rows = dims[0] / of;
        let row_len = values.len() / dims[0];
        values = values[index * rows * row_len..(index + 1) * rows * row_len].to_vec();
        dims[0] = rows;
    }
    if let Kind::ConvBias = tensor.kind {
        dims = vec![dims[0], 1];
    }
    let is_f16 = matches!(tensor.kind, Kind::Matrix);
    // ggml lists dimensions innermost first.
    let file_dims: Vec<i32> = dims.iter().rev().map(|&d| d as i32).collect();
    write_i32s(
        w,
        &[
            file_dims.len() as i32,
            tensor.ggml.len() as i32,
            is_f16 as i32,
        ],
    )?;
    write_i32s(w, &file_dims)?;
    w.write_all(tensor.ggml.as_bytes())?;
    let mut buf = Vec::with_capacity(values.len() * if is_f16 { 2 } else { 4 });
    for v in values {
        if is_f16 {
            buf.extend_from_slice(&f32_to_f16(v).to_le_bytes());
        } else {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    w.write_all(&buf)
}

pub fn write(w: &mut impl Write, model: &Model, tokens: &[Vec<u8>]) -> io::Result<HParams> {
    if model.spec != "WhisperSpec" {
        return Err(invalid(format!(
            "model.bin holds a {}, not a Whisper model",
            model.spec
        )));
    }
    let hp = hparams(model)?;
    write_i32s(
        w,
        &[
            MAGIC,
            hp.n_vocab as i32,
            hp.n_audio_ctx as i32,
            hp.n_audio_state as i32,
            hp.n_audio_head as i32,
            hp.n_audio_layer as i32,
            hp.n_text_ctx as i32,
            hp.n_text_state as i32,
            hp.n_text_head as i32,
            hp.n_text_layer as i32,
            hp.n_mels as i32,
            FTYPE_F16,
        ],
    )?;
    write_i32s(w, &[mel::N_MELS as i32, mel::N_FFT_BINS as i32])?;
    for v in mel::filters() {
        w.write_all(&v.to_le_bytes())?;
    }
    write_i32s(w, &[tokens.len() as i32])?;
    for token in tokens {
        write_i32s(w, &[token.len() as i32])?;
        w.write_all(token)?;
    }
    for tensor in tensor_plan(&hp) {
        write_tensor(w, model, &tensor)?;
    }
    Ok(hp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_every_tensor_whisper_cpp_loads() {
        let hp = HParams {
            n_vocab: 51864,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: 4,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: 4,
            n_mels: 80,
        };
        let plan = tensor_plan(&hp);
        // whisper.cpp: 5 + 15 per encoder layer + 2, then 2 + 24 per decoder layer + 2.
        assert_eq!(plan.len(), 5 + 15 * 4 + 2 + 2 + 24 * 4 + 2);
        let names: Vec<&str> = plan.iter().map(|t| t.ggml.as_str()).collect();
        assert_eq!(names[0], "encoder.positional_embedding");
        assert!(names.contains(&"decoder.blocks.3.cross_attn.value.bias"));
        assert!(!names.contains(&"encoder.blocks.0.attn.key.bias"));
        assert_eq!(*names.last().unwrap(), "decoder.ln.bias");
    }
}
