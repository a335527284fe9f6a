//! Reader for CTranslate2's `model.bin` (binary format version 6 and earlier, back to 3).
//!
//! Layout, all little-endian: `u32` format version; the spec name and a `u32` spec revision;
//! `u32` variable count; per variable a name, `u8` rank, `u32` per dimension, `u8` data type
//! and `u32` byte count followed by the raw row-major data; then `u32` alias count and
//! (alias, target) name pairs. Names are a `u16` length counting a trailing NUL, then the bytes.
//!
//! Variables borrow from the file buffer: a tiny.en model is 75 MB and copying it twice for a
//! one-shot conversion buys nothing.

use std::collections::BTreeMap;

use super::ModelError;

/// The oldest format version whose layout this reader knows (aliases appeared in 3, typed
/// data in 4; earlier files store an item size instead of a type).
const MIN_VERSION: u32 = 4;
const MAX_VERSION: u32 = 6;

/// CTranslate2's `DataType` enum values as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_id(id: u8) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One stored variable.
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// The value of an integer scalar (flags and head counts are stored this way).
    pub fn scalar_int(&self) -> Option<i64> {
        if self.elements() != 1 {
            return None;
        }
        let d = self.data;
        Some(match self.dtype {
            DType::I8 => i64::from(d[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([d[0], d[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            _ => return None,
        })
    }

    /// The elements as `f32`, converting from half or bfloat16.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let d = self.data;
        Some(match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::Bf16 => d
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            _ => return None,
        })
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    pub variables: BTreeMap<String, Variable<'a>>,
    /// Alias name to the variable it stands for (e.g. a tied output projection).
    pub aliases: BTreeMap<String, String>,
}

impl<'a> Ct2Model<'a> {
    /// Parses the whole file; any inconsistency is an error naming where it was found.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32("format version")?;
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(r.bad(format!(
                "format version {version} is not supported (expected {MIN_VERSION} to {MAX_VERSION})"
            )));
        }
        let spec = r.name("spec name")?;
        let revision = r.u32("spec revision")?;
        let count = r.u32("variable count")?;
        let mut variables = BTreeMap::new();
        for index in 0..count {
            let name = r.name("variable name")?;
            let rank = r.u8("rank")?;
            let mut dims = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                dims.push(r.u32("dimension")? as usize);
            }
            let type_id = r.u8("data type")?;
            let dtype = DType::from_id(type_id)
                .ok_or_else(|| r.bad(format!("variable {name}: unknown data type {type_id}")))?;
            let len = r.u32("byte count")? as usize;
            let elements = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| r.bad(format!("variable {name}: dimensions overflow")))?;
            if elements.checked_mul(dtype.size()) != Some(len) {
                return Err(r.bad(format!(
                    "variable {name} (#{index}): {len} bytes do not match shape {dims:?} of {dtype:?}"
                )));
            }
            let data = r.take(len, "variable data")?;
            if variables
                .insert(name.clone(), Variable { dims, dtype, data })
                .is_some()
            {
                return Err(r.bad(format!("variable {name} appears twice")));
            }
        }
        let mut aliases = BTreeMap::new();
        let alias_count = r.u32("alias count")?;
        for _ in 0..alias_count {
            let alias = r.name("alias name")?;
            let target = r.name("alias target")?;
            if !variables.contains_key(&target) {
                return Err(r.bad(format!("alias {alias} points to missing variable {target}")));
            }
            aliases.insert(alias, target);
        }
        if r.pos != bytes.len() {
            return Err(r.bad(format!(
                "{} unexpected bytes after the last alias",
                bytes.len() - r.pos
            )));
        }
        Ok(Ct2Model {
            version,
            spec,
            revision,
            variables,
            aliases,
        })
    }

    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Variable<'a>> {
        self.variables
            .get(name)
            .or_else(|| self.aliases.get(name).and_then(|t| self.variables.get(t)))
    }

    /// A variable that must exist.
    pub fn require(&self, name: &str) -> Result<&Variable<'a>, ModelError> {
        self.get(name)
            .ok_or_else(|| ModelError::Ct2(format!("variable {name} is missing")))
    }

    /// An integer scalar that must exist.
    pub fn require_int(&self, name: &str) -> Result<i64, ModelError> {
        self.require(name)?
            .scalar_int()
            .ok_or_else(|| ModelError::Ct2(format!("variable {name} is not an integer scalar")))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: String) -> ModelError {
        ModelError::Ct2(format!("{what} (at byte {})", self.pos))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.bad(format!(
                "file ends inside the {what}: {n} bytes needed, {} left (truncated?)",
                self.bytes.len() - self.pos
            ))),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8, ModelError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn name(&mut self, what: &str) -> Result<String, ModelError> {
        let b = self.take(2, what)?;
        let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
        let raw = self.take(len, what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| self.bad(format!("{what} is not UTF-8")))
    }
}

/// IEEE 754 half to single precision; exact (every half is representable as a single).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal half: normalise the fraction into a single's implicit-one form.
            let mut e: i32 = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}
