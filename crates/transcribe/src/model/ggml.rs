//! whisper.cpp's ggml model file, written from a CTranslate2 Whisper model.
//!
//! File layout (little-endian `i32` unless noted): magic `0x67676d6c`; hparams n_vocab,
//! n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state,
//! n_text_head, n_text_layer, n_mels, ftype (0 all-f32, 1 f16 weights); the mel filter bank as
//! rows, cols and `f32` values; the token count and each token as length plus bytes; then
//! every tensor as n_dims, name length, type (0 f32, 1 f16), the dimensions innermost first,
//! the name and the row-major data. whisper.cpp looks tensors up by name, checks each one's
//! shape and type, and refuses a file with a tensor it does not know or one missing.
//!
//! CTranslate2 fuses attention projections: self-attention query, key and value are one
//! `[3d, d]` matrix, cross-attention key and value one `[2d, d]`. They are cut back apart row
//! block by row block. Whisper's key projection has no bias; CTranslate2 stores zeros in its
//! place, which are dropped. (Even a non-zero key bias would not matter: it adds the same
//! `q·b` to every attention logit of a query, which softmax cancels.)

use std::io::Write;

use super::ModelError;
use super::ct2::{Ct2Model, DType, Variable};
use super::mel;

pub const MAGIC: u32 = 0x6767_6d6c;

/// CTranslate2's activation id for exact (erf) GELU, the one Whisper uses.
const CT2_GELU: i64 = 3;

/// Which rows of a CTranslate2 variable make up a whisper.cpp tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Whole,
    /// Row block `index` of `count` equal blocks along the first dimension.
    Block {
        index: usize,
        count: usize,
    },
}

/// Where one whisper.cpp tensor comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub ct2: String,
    pub piece: Piece,
}

fn whole(ct2: String) -> Source {
    Source {
        ct2,
        piece: Piece::Whole,
    }
}

fn block(ct2: String, index: usize, count: usize) -> Source {
    Source {
        ct2,
        piece: Piece::Block { index, count },
    }
}

/// Every tensor whisper.cpp expects, named its way, with its CTranslate2 source.
pub fn tensor_sources(encoder_layers: usize, decoder_layers: usize) -> Vec<(String, Source)> {
    let mut out: Vec<(String, Source)> = Vec::new();
    let mut add = |name: String, src: Source| out.push((name, src));
    add(
        "encoder.positional_embedding".into(),
        whole("encoder/position_encodings/encodings".into()),
    );
    for conv in ["conv1", "conv2"] {
        for p in ["weight", "bias"] {
            add(
                format!("encoder.{conv}.{p}"),
                whole(format!("encoder/{conv}/{p}")),
            );
        }
    }
    for i in 0..encoder_layers {
        let w = format!("encoder.blocks.{i}");
        let c = format!("encoder/layer_{i}");
        norm_and_mlp(&mut add, &w, &c);
        norm(
            &mut add,
            &format!("{w}.attn_ln"),
            &format!("{c}/self_attention/layer_norm"),
        );
        fused_self_attention(
            &mut add,
            &format!("{w}.attn"),
            &format!("{c}/self_attention"),
        );
    }
    norm(&mut add, "encoder.ln_post", "encoder/layer_norm");

    add(
        "decoder.positional_embedding".into(),
        whole("decoder/position_encodings/encodings".into()),
    );
    add(
        "decoder.token_embedding.weight".into(),
        whole("decoder/embeddings/weight".into()),
    );
    for i in 0..decoder_layers {
        let w = format!("decoder.blocks.{i}");
        let c = format!("decoder/layer_{i}");
        norm_and_mlp(&mut add, &w, &c);
        norm(
            &mut add,
            &format!("{w}.attn_ln"),
            &format!("{c}/self_attention/layer_norm"),
        );
        fused_self_attention(
            &mut add,
            &format!("{w}.attn"),
            &format!("{c}/self_attention"),
        );
        norm(
            &mut add,
            &format!("{w}.cross_attn_ln"),
            &format!("{c}/attention/layer_norm"),
        );
        let (w, c) = (format!("{w}.cross_attn"), format!("{c}/attention"));
        add(
            format!("{w}.query.weight"),
            whole(format!("{c}/linear_0/weight")),
        );
        add(
            format!("{w}.query.bias"),
            whole(format!("{c}/linear_0/bias")),
        );
        add(
            format!("{w}.key.weight"),
            block(format!("{c}/linear_1/weight"), 0, 2),
        );
        add(
            format!("{w}.value.weight"),
            block(format!("{c}/linear_1/weight"), 1, 2),
        );
        add(
            format!("{w}.value.bias"),
            block(format!("{c}/linear_1/bias"), 1, 2),
        );
        add(
            format!("{w}.out.weight"),
            whole(format!("{c}/linear_2/weight")),
        );
        add(format!("{w}.out.bias"), whole(format!("{c}/linear_2/bias")));
    }
    norm(&mut add, "decoder.ln", "decoder/layer_norm");
    out
}

fn norm(add: &mut impl FnMut(String, Source), w: &str, c: &str) {
    add(format!("{w}.weight"), whole(format!("{c}/gamma")));
    add(format!("{w}.bias"), whole(format!("{c}/beta")));
}

fn norm_and_mlp(add: &mut impl FnMut(String, Source), w: &str, c: &str) {
    norm(add, &format!("{w}.mlp_ln"), &format!("{c}/ffn/layer_norm"));
    for (wi, ci) in [("0", "linear_0"), ("2", "linear_1")] {
        for p in ["weight", "bias"] {
            add(
                format!("{w}.mlp.{wi}.{p}"),
                whole(format!("{c}/ffn/{ci}/{p}")),
            );
        }
    }
}

fn fused_self_attention(add: &mut impl FnMut(String, Source), w: &str, c: &str) {
    add(
        format!("{w}.query.weight"),
        block(format!("{c}/linear_0/weight"), 0, 3),
    );
    add(
        format!("{w}.query.bias"),
        block(format!("{c}/linear_0/bias"), 0, 3),
    );
    add(
        format!("{w}.key.weight"),
        block(format!("{c}/linear_0/weight"), 1, 3),
    );
    add(
        format!("{w}.value.weight"),
        block(format!("{c}/linear_0/weight"), 2, 3),
    );
    add(
        format!("{w}.value.bias"),
        block(format!("{c}/linear_0/bias"), 2, 3),
    );
    add(
        format!("{w}.out.weight"),
        whole(format!("{c}/linear_1/weight")),
    );
    add(format!("{w}.out.bias"), whole(format!("{c}/linear_1/bias")));
}

/// Row block `index` of `count` of a row-major tensor: its shape and its bytes.
pub fn split_rows<'a>(
    dims: &[usize],
    data: &'a [u8],
    index: usize,
    count: usize,
) -> Result<(Vec<usize>, &'a [u8]), String> {
    let rows = *dims.first().ok_or("a scalar cannot be split")?;
    if count == 0 || index >= count || rows % count != 0 {
        return Err(format!(
            "{rows} rows cannot be cut into {count} equal blocks (block {index} wanted)"
        ));
    }
    let block_len = data.len() / count;
    let mut out_dims = dims.to_vec();
    out_dims[0] = rows / count;
    Ok((out_dims, &data[index * block_len..(index + 1) * block_len]))
}

/// whisper.cpp's model hyperparameters, in header order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 1 when the matrices are stored as f16, 0 when everything is f32.
    pub ftype: i32,
}

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub hparams: Hparams,
    pub tokens: usize,
    pub tensors: usize,
    pub bytes: u64,
}

/// CTranslate2 variables that describe the architecture rather than hold weights; they are
/// checked, not copied.
fn is_setting(name: &str) -> bool {
    matches!(
        name,
        "decoder/activation"
            | "decoder/alibi"
            | "decoder/alignment_heads"
            | "decoder/alignment_layer"
            | "decoder/num_heads"
            | "decoder/pre_norm"
            | "decoder/scale_embeddings"
            | "decoder/start_from_zero_embedding"
            | "encoder/num_heads"
            | "encoder/activation"
            | "encoder/pre_norm"
    )
}

fn count_layers(model: &Ct2Model<'_>, side: &str) -> usize {
    (0..)
        .take_while(|i| {
            model
                .get(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
                .is_some()
        })
        .count()
}

fn dim(v: &Variable<'_>, axis: usize, name: &str) -> Result<i32, ModelError> {
    v.dims
        .get(axis)
        .and_then(|&d| i32::try_from(d).ok())
        .ok_or_else(|| ModelError::Ct2(format!("variable {name} has shape {:?}", v.dims)))
}

fn small_int(model: &Ct2Model<'_>, name: &str) -> Result<i32, ModelError> {
    let v = model.require_int(name)?;
    i32::try_from(v).map_err(|_| ModelError::Ct2(format!("{name} = {v} is out of range")))
}

/// Checks that the CTranslate2 model is a plain Whisper and reads its hyperparameters.
pub fn hparams(model: &Ct2Model<'_>) -> Result<Hparams, ModelError> {
    if model.spec != "WhisperSpec" {
        return Err(ModelError::Ct2(format!(
            "the model is a {}, not a WhisperSpec",
            model.spec
        )));
    }
    let expect = |name: &str, want: i64, why: &str| -> Result<(), ModelError> {
        match model.get(name).and_then(Variable::scalar_int) {
            None => Ok(()),
            Some(v) if v == want => Ok(()),
            Some(v) => Err(ModelError::Ct2(format!("{name} = {v}: {why}"))),
        }
    };
    expect("decoder/activation", CT2_GELU, "Whisper uses exact GELU")?;
    expect(
        "decoder/pre_norm",
        1,
        "Whisper normalises before each block",
    )?;
    expect(
        "decoder/scale_embeddings",
        0,
        "Whisper does not scale embeddings",
    )?;
    expect(
        "decoder/alibi",
        0,
        "Whisper has learned positions, not ALiBi",
    )?;

    let emb = model.require("decoder/embeddings/weight")?;
    let e_pos = model.require("encoder/position_encodings/encodings")?;
    let d_pos = model.require("decoder/position_encodings/encodings")?;
    let conv1 = model.require("encoder/conv1/weight")?;
    let n_audio_layer = count_layers(model, "encoder");
    let n_text_layer = count_layers(model, "decoder");
    if n_audio_layer == 0 || n_text_layer == 0 {
        return Err(ModelError::Ct2(
            "the model has no encoder or decoder layers".into(),
        ));
    }
    let big_f16 = model
        .variables
        .iter()
        .filter(|(n, v)| v.dims.len() >= 2 && !is_setting(n))
        .all(|(_, v)| v.dtype == DType::F16);
    Ok(Hparams {
        n_vocab: dim(emb, 0, "decoder/embeddings/weight")?,
        n_audio_ctx: dim(e_pos, 0, "encoder/position_encodings/encodings")?,
        n_audio_state: dim(e_pos, 1, "encoder/position_encodings/encodings")?,
        n_audio_head: small_int(model, "encoder/num_heads")?,
        n_audio_layer: n_audio_layer as i32,
        n_text_ctx: dim(d_pos, 0, "decoder/position_encodings/encodings")?,
        n_text_state: dim(emb, 1, "decoder/embeddings/weight")?,
        n_text_head: small_int(model, "decoder/num_heads")?,
        n_text_layer: n_text_layer as i32,
        n_mels: dim(conv1, 1, "encoder/conv1/weight")?,
        ftype: i32::from(big_f16),
    })
}

/// Writes the ggml file for `model` with the given token byte strings.
pub fn write<W: Write>(
    model: &Ct2Model<'_>,
    tokens: &[Vec<u8>],
    out: &mut W,
) -> Result<Converted, ModelError> {
    let hp = hparams(model)?;
    let sources = tensor_sources(hp.n_audio_layer as usize, hp.n_text_layer as usize);

    // Every weight must land somewhere: an unused one means a variant this converter does
    // not understand (quantisation scales, extra layers), and a silent drop would give a
    // model that loads but transcribes wrongly.
    for name in model.variables.keys() {
        if !is_setting(name) && !sources.iter().any(|(_, s)| &s.ct2 == name) {
            return Err(ModelError::Ct2(format!(
                "variable {name} has no place in a whisper.cpp model"
            )));
        }
    }

    let mut w = CountingWriter {
        inner: out,
        bytes: 0,
    };
    w.i32(MAGIC as i32)?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
        hp.ftype,
    ] {
        w.i32(v)?;
    }

    let n_bins = mel::N_FFT / 2 + 1;
    let bank = mel::filter_bank(hp.n_mels as usize, mel::N_FFT, mel::SAMPLE_RATE);
    w.i32(hp.n_mels)?;
    w.i32(n_bins as i32)?;
    for v in &bank {
        w.bytes(&v.to_le_bytes())?;
    }

    if tokens.len() > hp.n_vocab as usize {
        return Err(ModelError::Tokenizer(format!(
            "{} tokens but the model has only {} embeddings",
            tokens.len(),
            hp.n_vocab
        )));
    }
    w.i32(tokens.len() as i32)?;
    for t in tokens {
        w.i32(t.len() as i32)?;
        w.bytes(t)?;
    }

    for (name, src) in &sources {
        let var = model.require(&src.ct2)?;
        let (mut dims, data) = match src.piece {
            Piece::Whole => (var.dims.clone(), var.data),
            Piece::Block { index, count } => split_rows(&var.dims, var.data, index, count)
                .map_err(|e| ModelError::Ct2(format!("{}: {e}", src.ct2)))?,
        };
        let is_conv_bias = name == "encoder.conv1.bias" || name == "encoder.conv2.bias";
        if is_conv_bias {
            // whisper.cpp adds the conv bias as a [1, channels] tensor broadcast over time.
            dims.push(1);
        }
        let keep_f32 = hp.ftype == 0
            || dims.len() < 2
            || is_conv_bias
            || name.ends_with("positional_embedding");
        let piece = Variable {
            dims: dims.clone(),
            dtype: var.dtype,
            data,
        };
        let name_bytes = name.as_bytes();
        w.i32(dims.len() as i32)?;
        w.i32(name_bytes.len() as i32)?;
        w.i32(i32::from(!keep_f32))?;
        for &d in dims.iter().rev() {
            w.i32(d as i32)?;
        }
        w.bytes(name_bytes)?;
        if keep_f32 {
            let values = piece.to_f32().ok_or_else(|| {
                ModelError::Ct2(format!("{}: {:?} is not a float type", src.ct2, var.dtype))
            })?;
            let mut buf = Vec::with_capacity(values.len() * 4);
            for v in values {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.bytes(&buf)?;
        } else {
            // ftype 1 is chosen only when every matrix is already f16: a straight copy.
            w.bytes(data)?;
        }
    }
    Ok(Converted {
        hparams: hp,
        tokens: tokens.len(),
        tensors: sources.len(),
        bytes: w.bytes,
    })
}

struct CountingWriter<'w, W: Write> {
    inner: &'w mut W,
    bytes: u64,
}

impl<W: Write> CountingWriter<'_, W> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), ModelError> {
        self.inner.write_all(b).map_err(ModelError::Write)?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn i32(&mut self, v: i32) -> Result<(), ModelError> {
        self.bytes(&v.to_le_bytes())
    }
}
