//! Sample format conversion and downmixing: pure functions, used by the audio callback and the
//! file reader alike, so both sources produce bit-identical mono f32 for the same input.
//!
//! Integers are *scaled*, never reinterpreted: a signed `N`-bit value is divided by `2^(N-1)`, an
//! unsigned one first has its midpoint `2^(N-1)` subtracted. The result is clamped to `[-1, 1]`
//! (only floats can exceed it; NaN becomes 0 so one bad sample cannot poison an encoder).

use cpal::{I24, U24};

/// A device or file sample type that converts to a normalised `f32`.
pub trait AudioSample: Copy + Send + 'static {
    /// The value scaled to `[-1.0, 1.0]`.
    fn to_f32(self) -> f32;
}

const fn scale(bits: u32) -> f64 {
    // 2^(bits-1) is exact in f64 for every width up to 64.
    (1u64 << (bits - 1)) as f64
}

fn clamp_unit(v: f64) -> f32 {
    let v = v as f32;
    if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) }
}

macro_rules! signed {
    ($t:ty, $bits:expr) => {
        impl AudioSample for $t {
            #[inline]
            fn to_f32(self) -> f32 {
                clamp_unit(self as f64 / scale($bits))
            }
        }
    };
}

macro_rules! unsigned {
    ($t:ty, $bits:expr) => {
        impl AudioSample for $t {
            #[inline]
            fn to_f32(self) -> f32 {
                // Centre in i64 first: exact for every width up to 32 bits.
                clamp_unit((self as i64 - (1i64 << ($bits - 1))) as f64 / scale($bits))
            }
        }
    };
}

signed!(i8, 8);
signed!(i16, 16);
signed!(i32, 32);
signed!(i64, 64);
unsigned!(u8, 8);
unsigned!(u16, 16);
unsigned!(u32, 32);

impl AudioSample for u64 {
    #[inline]
    fn to_f32(self) -> f32 {
        // Flipping the top bit subtracts 2^63 without overflow.
        clamp_unit((self ^ (1u64 << 63)) as i64 as f64 / scale(64))
    }
}

impl AudioSample for I24 {
    #[inline]
    fn to_f32(self) -> f32 {
        clamp_unit(self.inner() as f64 / scale(24))
    }
}

impl AudioSample for U24 {
    #[inline]
    fn to_f32(self) -> f32 {
        clamp_unit((self.inner() as i64 - (1i64 << 23)) as f64 / scale(24))
    }
}

impl AudioSample for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        if self.is_nan() {
            0.0
        } else {
            self.clamp(-1.0, 1.0)
        }
    }
}

impl AudioSample for f64 {
    #[inline]
    fn to_f32(self) -> f32 {
        clamp_unit(self)
    }
}

/// One interleaved frame to mono: the mean of its channels.
///
/// The mean is taken in f64 so that identical channels give back exactly the single-channel value.
#[inline]
pub fn frame_to_mono<T: AudioSample>(frame: &[T]) -> f32 {
    match frame {
        [] => 0.0,
        [one] => one.to_f32(),
        _ => {
            let sum: f64 = frame.iter().map(|s| f64::from(s.to_f32())).sum();
            (sum / frame.len() as f64) as f32
        }
    }
}

/// Converts interleaved samples to mono into `out`, returning the number of frames written
/// (`min(out.len(), interleaved.len() / channels)`; a trailing partial frame is ignored).
pub fn downmix<T: AudioSample>(interleaved: &[T], channels: usize, out: &mut [f32]) -> usize {
    if channels == 0 {
        return 0;
    }
    let mut n = 0;
    for (frame, o) in interleaved.chunks_exact(channels).zip(out.iter_mut()) {
        *o = frame_to_mono(frame);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i8_scaling() {
        assert_eq!((-128i8).to_f32(), -1.0);
        assert_eq!(0i8.to_f32(), 0.0);
        assert_eq!(64i8.to_f32(), 0.5);
        assert_eq!(127i8.to_f32(), 127.0 / 128.0);
    }

    #[test]
    fn i16_scaling() {
        assert_eq!((-32768i16).to_f32(), -1.0);
        assert_eq!(16384i16.to_f32(), 0.5);
        assert_eq!((-16384i16).to_f32(), -0.5);
        assert_eq!(1i16.to_f32(), 1.0 / 32768.0);
        assert_eq!(32767i16.to_f32(), 32767.0 / 32768.0);
    }

    #[test]
    fn i24_scaling() {
        assert_eq!(I24::new(-8_388_608).unwrap().to_f32(), -1.0);
        assert_eq!(I24::new(4_194_304).unwrap().to_f32(), 0.5);
        assert_eq!(I24::new(0).unwrap().to_f32(), 0.0);
        assert_eq!(I24::new(1).unwrap().to_f32(), 1.0 / 8_388_608.0);
        assert_eq!(
            I24::new(8_388_607).unwrap().to_f32(),
            (8_388_607.0f64 / 8_388_608.0) as f32
        );
        // Out-of-range containers from a misbehaving driver are clamped, not wrapped.
        assert_eq!(I24::new_unchecked(20_000_000).to_f32(), 1.0);
    }

    #[test]
    fn i32_scaling() {
        assert_eq!(i32::MIN.to_f32(), -1.0);
        assert_eq!((1i32 << 30).to_f32(), 0.5);
        assert_eq!(0i32.to_f32(), 0.0);
        // 2^31-1 rounds to 1.0 in f32 (24-bit mantissa), still within range.
        assert_eq!(i32::MAX.to_f32(), 1.0);
        assert_eq!((-(1i32 << 29)).to_f32(), -0.25);
    }

    #[test]
    fn i64_scaling() {
        assert_eq!(i64::MIN.to_f32(), -1.0);
        assert_eq!((1i64 << 62).to_f32(), 0.5);
        assert_eq!(0i64.to_f32(), 0.0);
        assert_eq!(i64::MAX.to_f32(), 1.0);
    }

    #[test]
    fn u8_scaling() {
        assert_eq!(128u8.to_f32(), 0.0);
        assert_eq!(0u8.to_f32(), -1.0);
        assert_eq!(192u8.to_f32(), 0.5);
        assert_eq!(255u8.to_f32(), 127.0 / 128.0);
    }

    #[test]
    fn u16_scaling() {
        assert_eq!(32768u16.to_f32(), 0.0);
        assert_eq!(0u16.to_f32(), -1.0);
        assert_eq!(49152u16.to_f32(), 0.5);
        assert_eq!(65535u16.to_f32(), 32767.0 / 32768.0);
    }

    #[test]
    fn u24_scaling() {
        assert_eq!(U24::new(8_388_608).unwrap().to_f32(), 0.0);
        assert_eq!(U24::new(0).unwrap().to_f32(), -1.0);
        assert_eq!(U24::new(12_582_912).unwrap().to_f32(), 0.5);
        assert_eq!(
            U24::new(16_777_215).unwrap().to_f32(),
            (8_388_607.0f64 / 8_388_608.0) as f32
        );
    }

    #[test]
    fn u32_scaling() {
        assert_eq!((1u32 << 31).to_f32(), 0.0);
        assert_eq!(0u32.to_f32(), -1.0);
        assert_eq!(((1u32 << 31) + (1u32 << 30)).to_f32(), 0.5);
        assert_eq!(u32::MAX.to_f32(), 1.0);
    }

    #[test]
    fn u64_scaling() {
        assert_eq!((1u64 << 63).to_f32(), 0.0);
        assert_eq!(0u64.to_f32(), -1.0);
        assert_eq!(((1u64 << 63) + (1u64 << 62)).to_f32(), 0.5);
        assert_eq!(u64::MAX.to_f32(), 1.0);
    }

    #[test]
    fn f32_passes_through_and_clamps() {
        assert_eq!(0.25f32.to_f32(), 0.25);
        assert_eq!((-0.75f32).to_f32(), -0.75);
        assert_eq!(1.5f32.to_f32(), 1.0);
        assert_eq!((-3.0f32).to_f32(), -1.0);
        assert_eq!(f32::NAN.to_f32(), 0.0);
        assert_eq!(f32::INFINITY.to_f32(), 1.0);
    }

    #[test]
    fn f64_casts_and_clamps() {
        assert_eq!(0.5f64.to_f32(), 0.5);
        assert_eq!(0.1f64.to_f32(), 0.1f32);
        assert_eq!(2.0f64.to_f32(), 1.0);
        assert_eq!((-2.0f64).to_f32(), -1.0);
        assert_eq!(f64::NAN.to_f32(), 0.0);
    }

    #[test]
    fn downmix_means_channels() {
        let stereo: [i16; 6] = [16384, -16384, 16384, 16384, -32768, 0];
        let mut out = [9.0f32; 4];
        assert_eq!(downmix(&stereo, 2, &mut out), 3);
        assert_eq!(out, [0.0, 0.5, -0.5, 9.0]);
    }

    #[test]
    fn downmix_identical_channels_is_exact() {
        for v in [-32768i16, -1, 0, 1, 12345, 32767] {
            let frame = [v; 6];
            assert_eq!(frame_to_mono(&frame), v.to_f32());
        }
    }

    #[test]
    fn downmix_ignores_partial_frame_and_limits_to_out() {
        let three: [u8; 7] = [0, 128, 255, 128, 128, 128, 7];
        let mut out = [0.0f32; 8];
        assert_eq!(downmix(&three, 3, &mut out), 2);
        assert_eq!(out[0], ((-1.0f64 + 0.0 + 127.0 / 128.0) / 3.0) as f32);
        assert_eq!(out[1], 0.0);
        let mut one = [0.0f32; 1];
        assert_eq!(downmix(&three, 3, &mut one), 1);
        assert_eq!(downmix(&three, 0, &mut one), 0);
    }

    #[test]
    fn downmix_float_formats() {
        let f: [f32; 4] = [0.5, 0.25, -1.0, 1.0];
        let mut out = [0.0f32; 2];
        assert_eq!(downmix(&f, 2, &mut out), 2);
        assert_eq!(out, [0.375, 0.0]);
        let d: [f64; 2] = [0.75, 0.25];
        assert_eq!(downmix(&d, 2, &mut out), 1);
        assert_eq!(out[0], 0.5);
    }
}
