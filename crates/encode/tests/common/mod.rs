//! Shared helpers for the integration tests: deterministic signals, writers, measurements.
#![allow(dead_code)]

use chronote_encode::{EncoderConfig, SegmentTags, SegmentWriter};
use std::f64::consts::TAU;
use std::path::Path;

/// xorshift64* — a small deterministic PRNG so tests need no extra crate.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// A speech-like voiced signal, defined for any time so it can be sampled at 16 kHz for the
/// encoder and at 48 kHz as the reference for the decoded audio: harmonics of a gliding pitch
/// (110..170 Hz), a formant-like spectral tilt, syllable-rate amplitude modulation. All
/// components stay below 4 kHz, well inside the wideband codec's passband.
pub fn voiced(t: f64) -> f64 {
    let f0 = 140.0;
    let depth = 30.0;
    let fm = 2.3;
    // Phase of f0 + depth*sin(2π fm t), integrated analytically.
    let phase = TAU * f0 * t + depth / fm * (1.0 - (TAU * fm * t).cos());
    let mut s = 0.0;
    for k in 1..=22 {
        let f = k as f64 * f0;
        let formant = 1.0 / (1.0 + ((f - 500.0) / 250.0).powi(2))
            + 0.6 / (1.0 + ((f - 1500.0) / 300.0).powi(2))
            + 0.3 / (1.0 + ((f - 2500.0) / 400.0).powi(2));
        s += (0.15 / k as f64 + formant) * (k as f64 * phase + 0.3 * k as f64).sin();
    }
    let syllable = 0.55 + 0.45 * (TAU * 3.7 * t).sin();
    0.12 * s * syllable
}

/// A linear sine sweep from 150 Hz rising 1600 Hz per second (3.35 kHz at 2 s). Its phase
/// changes so fast with time that it pins down alignment to the sample.
pub fn sweep(t: f64) -> f64 {
    0.3 * (TAU * (150.0 * t + 800.0 * t * t)).sin()
}

/// `n` samples of [`sweep`] at `rate`.
pub fn sweep_at(rate: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| sweep(i as f64 / f64::from(rate)) as f32)
        .collect()
}

/// `n` samples of [`voiced`] at `rate`.
pub fn voiced_at(rate: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| voiced(i as f64 / f64::from(rate)) as f32)
        .collect()
}

/// Voiced signal plus deterministic noise (fricative-like bursts), at `rate`.
pub fn speechlike_at(rate: u32, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Prng::new(seed);
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let burst = if (t * 1.7).fract() < 0.2 { 0.08 } else { 0.01 };
            (voiced(t) + burst * f64::from(rng.next_f32())) as f32
        })
        .collect()
}

pub fn tags(sequence: u64) -> SegmentTags {
    SegmentTags {
        recording_id: "0193a5c2-7d1e-7000-8000-000000000001".into(),
        track: "mic".into(),
        sequence,
        start_48k: 1_440_000 * sequence,
        start_time: "2025-03-04T05:06:07.089Z".into(),
    }
}

/// Creates a writer at `part` and pushes `pcm` (a whole number of frames).
pub fn write(part: &Path, config: &EncoderConfig, pcm: &[f32], sequence: u64) -> SegmentWriter {
    let mut w = SegmentWriter::create(part, config, &tags(sequence)).unwrap();
    assert_eq!(pcm.len() % w.frame_len(), 0);
    for frame in pcm.chunks(w.frame_len()) {
        w.push_frame(frame).unwrap();
    }
    w
}

/// Normalised cross-correlation of `a` against `b` shifted by `lag` (a[i] vs b[i - lag]).
pub fn ncc(a: &[f32], b: &[f32], lag: i64) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &x) in a.iter().enumerate() {
        let j = i as i64 - lag;
        if j < 0 || j as usize >= b.len() {
            continue;
        }
        let y = b[j as usize];
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// The lag in `-max..=max` with the highest correlation, and that correlation.
pub fn best_lag(a: &[f32], b: &[f32], max: i64) -> (i64, f64) {
    (-max..=max)
        .map(|lag| (lag, ncc(a, b, lag)))
        .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best })
}

/// Decodes raw Opus packets at 48 kHz mono, drops `pre_skip`, keeps `len` samples.
pub fn decode_packets(packets: &[Vec<u8>], pre_skip: usize, len: usize) -> Vec<f32> {
    let mut d = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut buf = vec![0f32; 5760];
    let mut out = Vec::new();
    for p in packets {
        let n = d.decode_float(p, &mut buf, false).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    assert!(
        out.len() >= pre_skip + len,
        "{} < {} + {}",
        out.len(),
        pre_skip,
        len
    );
    out[pre_skip..pre_skip + len].to_vec()
}
