//! The text vocabulary whisper.cpp wants, from a Hugging Face `tokenizer.json`.
//!
//! Whisper's tokenizer is GPT-2's byte-level BPE: every byte is shown as a printable Unicode
//! character so tokens can live in JSON. whisper.cpp stores the raw bytes, so each token is
//! mapped back. Only the ordinary tokens are written (ids 0 up to the first special token);
//! whisper.cpp numbers the special tokens itself from the vocabulary size in the header.

use std::collections::HashMap;

use serde::Deserialize;

use super::ModelError;

#[derive(Deserialize)]
struct TokenizerFile {
    model: BpeModel,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct BpeModel {
    #[serde(rename = "type")]
    kind: Option<String>,
    vocab: HashMap<String, u32>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    #[serde(default)]
    special: bool,
}

/// The printable character GPT-2's byte-level encoding uses for each byte value.
pub fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next_shifted = 0u32;
    for b in 0..=255u8 {
        // Printable Latin-1 bytes stand for themselves; the rest move past U+00FF in order.
        let printable = matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
        let code = if printable {
            u32::from(b)
        } else {
            let c = 256 + next_shifted;
            next_shifted += 1;
            c
        };
        table[usize::from(b)] = char::from_u32(code).unwrap_or('\0');
    }
    table
}

/// Decodes one byte-level token string back to its bytes.
pub fn token_bytes(token: &str, inverse: &HashMap<char, u8>) -> Option<Vec<u8>> {
    token.chars().map(|c| inverse.get(&c).copied()).collect()
}

/// Token byte strings indexed by id, ordinary tokens only.
pub fn vocabulary(tokenizer_json: &[u8]) -> Result<Vec<Vec<u8>>, ModelError> {
    let file: TokenizerFile = serde_json::from_slice(tokenizer_json)
        .map_err(|e| ModelError::Tokenizer(format!("not a tokenizer.json: {e}")))?;
    if let Some(kind) = &file.model.kind
        && kind != "BPE"
    {
        return Err(ModelError::Tokenizer(format!(
            "model type {kind} is not byte-level BPE"
        )));
    }
    let first_special = file
        .added_tokens
        .iter()
        .filter(|t| t.special)
        .map(|t| t.id)
        .min()
        .unwrap_or(u32::MAX);
    let inverse: HashMap<char, u8> = byte_to_char()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    let mut by_id: Vec<Option<Vec<u8>>> = Vec::new();
    for (text, &id) in &file.model.vocab {
        if id >= first_special {
            continue;
        }
        let bytes = token_bytes(text, &inverse).ok_or_else(|| {
            ModelError::Tokenizer(format!("token {id} {text:?} is not byte-level encoded"))
        })?;
        let slot = id as usize;
        if by_id.len() <= slot {
            by_id.resize(slot + 1, None);
        }
        if by_id[slot].replace(bytes).is_some() {
            return Err(ModelError::Tokenizer(format!(
                "token id {id} appears twice"
            )));
        }
    }
    let mut out = Vec::with_capacity(by_id.len());
    for (id, token) in by_id.into_iter().enumerate() {
        out.push(token.ok_or_else(|| ModelError::Tokenizer(format!("token id {id} is missing")))?);
    }
    if out.is_empty() {
        return Err(ModelError::Tokenizer("the vocabulary is empty".into()));
    }
    Ok(out)
}
