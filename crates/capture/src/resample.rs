//! Exact, latency-compensated sample rate conversion on top of rubato's synchronous FFT
//! resampler.
//!
//! Why FFT: for a fixed rational ratio (48 kHz -> 16 kHz speech) it is much cheaper than a sinc
//! interpolator of the same quality, and its anti-aliasing filter is a windowed sinc applied in
//! the frequency domain. The FFT block is about [`TARGET_BLOCK_IN`] input samples (about 21 ms at
//! 48 kHz), long enough for a steep filter, short enough to keep memory small.
//!
//! Exactness: rubato delays its output by `fft_size_out / 2` samples; the first that many output
//! samples are discarded, so output sample `i` corresponds to input time `i * in_rate / out_rate`.
//! [`Resampler::finish`] feeds zeros until exactly `round(input_total * out_rate / in_rate)` samples
//! have been produced in total.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _, WindowFunction};

use crate::error::CaptureError;

/// Approximate FFT block length on the input side, in samples.
const TARGET_BLOCK_IN: usize = 1024;

/// Streaming mono resampler with exact output length.
///
/// Feed any chunking of the input to [`process`](Self::process); call [`finish`](Self::finish) at
/// the end of the stream. After `finish`, the next `process` starts a new stream from a clean state.
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    /// `None` when the rates are equal: samples pass through untouched.
    engine: Option<Engine>,
    input_total: u64,
    output_total: u64,
    finished: bool,
}

struct Engine {
    fft: Fft<f32>,
    /// One input block; `filled` samples are valid.
    in_buf: Vec<f32>,
    filled: usize,
    out_buf: Vec<f32>,
    /// Output samples still to discard to compensate the filter delay.
    skip: usize,
    delay: usize,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("in_rate", &self.in_rate)
            .field("out_rate", &self.out_rate)
            .field("passthrough", &self.engine.is_none())
            .field("input_total", &self.input_total)
            .field("output_total", &self.output_total)
            .finish()
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Number of minimal rational blocks per FFT block: close to [`TARGET_BLOCK_IN`] input samples, and
/// an even output block so the filter delay (`fft_size_out / 2`) is a whole number of samples.
fn fft_blocks(in_rate: u32, out_rate: u32) -> usize {
    let g = gcd(u64::from(in_rate), u64::from(out_rate));
    let min_in = (u64::from(in_rate) / g) as usize;
    let min_out = (u64::from(out_rate) / g) as usize;
    let mut blocks = ((TARGET_BLOCK_IN + min_in / 2) / min_in).max(1);
    if (blocks * min_out) % 2 == 1 {
        blocks += 1;
    }
    blocks
}

impl Resampler {
    /// A resampler from `in_rate` to `out_rate` (Hz, both non-zero).
    pub fn new(in_rate: u32, out_rate: u32) -> Result<Self, CaptureError> {
        let err = |detail: String| CaptureError::Resampler {
            in_rate,
            out_rate,
            detail,
        };
        if in_rate == 0 || out_rate == 0 {
            return Err(err("sample rates must be non-zero".into()));
        }
        let engine = if in_rate == out_rate {
            None
        } else {
            let blocks = fft_blocks(in_rate, out_rate);
            let g = gcd(u64::from(in_rate), u64::from(out_rate));
            let block_in = blocks * (u64::from(in_rate) / g) as usize;
            let fft = Fft::<f32>::new_custom(
                in_rate as usize,
                out_rate as usize,
                block_in,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Both,
            )
            .map_err(|e| err(e.to_string()))?;
            let chunk_in = fft.input_frames_next();
            let chunk_out = fft.output_frames_next();
            let delay = fft.output_delay();
            Some(Engine {
                fft,
                in_buf: vec![0.0; chunk_in],
                filled: 0,
                out_buf: vec![0.0; chunk_out],
                skip: delay,
                delay,
            })
        };
        Ok(Resampler {
            in_rate,
            out_rate,
            engine,
            input_total: 0,
            output_total: 0,
            finished: false,
        })
    }

    /// Input rate in Hz.
    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    /// Output rate in Hz.
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Resamples `input`, appending every output sample that is ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.finished {
            self.restart();
        }
        self.input_total += input.len() as u64;
        let Some(engine) = self.engine.as_mut() else {
            out.extend_from_slice(input);
            self.output_total += input.len() as u64;
            return;
        };
        let mut rest = input;
        while !rest.is_empty() {
            let take = rest.len().min(engine.in_buf.len() - engine.filled);
            engine.in_buf[engine.filled..engine.filled + take].copy_from_slice(&rest[..take]);
            engine.filled += take;
            rest = &rest[take..];
            if engine.filled == engine.in_buf.len() {
                engine.run_block(out, &mut self.output_total, u64::MAX);
            }
        }
    }

    /// Ends the stream: flushes the filter so that
    /// `output_total() == round(input_total() * out_rate / in_rate)` exactly.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if self.finished {
            return;
        }
        let target = self.expected_output(self.input_total);
        if let Some(engine) = self.engine.as_mut() {
            while self.output_total < target {
                engine.in_buf[engine.filled..].fill(0.0);
                engine.filled = engine.in_buf.len();
                engine.run_block(out, &mut self.output_total, target);
            }
        }
        self.finished = true;
    }

    /// Samples given to [`process`](Self::process) since the stream started.
    pub fn input_total(&self) -> u64 {
        self.input_total
    }

    /// Samples produced since the stream started.
    pub fn output_total(&self) -> u64 {
        self.output_total
    }

    /// `round(input * out_rate / in_rate)`, half rounding up: the exact length of the output
    /// for `input` samples of input.
    pub fn expected_output(&self, input: u64) -> u64 {
        let num = u128::from(input) * u128::from(self.out_rate) + u128::from(self.in_rate) / 2;
        u64::try_from(num / u128::from(self.in_rate)).unwrap_or(u64::MAX)
    }

    fn restart(&mut self) {
        if let Some(engine) = self.engine.as_mut() {
            engine.fft.reset();
            engine.filled = 0;
            engine.skip = engine.delay;
        }
        self.input_total = 0;
        self.output_total = 0;
        self.finished = false;
    }
}

impl Engine {
    /// Resamples the full input block, appends the delay-compensated output (never beyond
    /// `limit` samples in total) and empties the block.
    fn run_block(&mut self, out: &mut Vec<f32>, output_total: &mut u64, limit: u64) {
        let (in_len, out_len) = (self.in_buf.len(), self.out_buf.len());
        let produced = match (
            InterleavedSlice::new(&self.in_buf[..], 1, in_len),
            InterleavedSlice::new_mut(&mut self.out_buf[..], 1, out_len),
        ) {
            (Ok(input), Ok(mut output)) => {
                match self.fft.process_into_buffer(&input, &mut output, None) {
                    Ok((_, produced)) => produced,
                    Err(e) => {
                        // Buffers are sized from the resampler itself; this cannot happen. Keep
                        // the timeline exact anyway by emitting silence for the block.
                        tracing::error!(error = %e, "resampler block failed; emitting silence");
                        self.out_buf.fill(0.0);
                        self.out_buf.len()
                    }
                }
            }
            _ => {
                tracing::error!("resampler buffer shape mismatch; emitting silence");
                self.out_buf.fill(0.0);
                self.out_buf.len()
            }
        };
        self.filled = 0;
        let skipped = self.skip.min(produced);
        self.skip -= skipped;
        let ready = &self.out_buf[skipped..produced];
        let room = usize::try_from(limit.saturating_sub(*output_total)).unwrap_or(usize::MAX);
        let n = ready.len().min(room);
        out.extend_from_slice(&ready[..n]);
        *output_total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(in_rate: u32, out_rate: u32, input: &[f32], chunking: &[usize]) -> (Vec<f32>, u64) {
        let mut r = Resampler::new(in_rate, out_rate).unwrap();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < input.len() {
            let n = chunking[i % chunking.len()].min(input.len() - pos);
            r.process(&input[pos..pos + n], &mut out);
            pos += n;
            i += 1;
            assert!(r.output_total() <= r.expected_output(r.input_total()));
        }
        r.finish(&mut out);
        assert_eq!(out.len() as u64, r.output_total());
        assert_eq!(r.input_total(), input.len() as u64);
        (out, r.output_total())
    }

    fn expected(input: u64, in_rate: u64, out_rate: u64) -> u64 {
        (input * out_rate + in_rate / 2) / in_rate
    }

    #[test]
    fn totals_are_exact_across_chunkings() {
        let chunkings: [&[usize]; 6] = [
            &[1],
            &[7, 13, 1],
            &[160],
            &[480, 1, 999],
            &[4096],
            &[100_000],
        ];
        for (in_rate, out_rate) in [
            (44100, 16000),
            (48000, 16000),
            (8000, 16000),
            (16000, 16000),
        ] {
            for len in [0usize, 1, 2, 3, 440, 441, 1023, 1026, 4799, 48_000, 100_003] {
                let input: Vec<f32> = (0..len).map(|i| ((i % 97) as f32 - 48.0) / 100.0).collect();
                for chunking in chunkings {
                    if len > 5000 && chunking == [1] {
                        continue; // covered by the shorter lengths; keeps the test fast
                    }
                    let (_, total) = run(in_rate, out_rate, &input, chunking);
                    assert_eq!(
                        total,
                        expected(len as u64, in_rate as u64, out_rate as u64),
                        "{in_rate}->{out_rate}, len {len}, chunking {chunking:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn known_totals() {
        assert_eq!(run(48000, 16000, &vec![0.0; 48000], &[480]).1, 16000);
        assert_eq!(run(44100, 16000, &vec![0.0; 44100], &[441]).1, 16000);
        assert_eq!(run(44100, 16000, &vec![0.0; 1000], &[441]).1, 363); // 362.81 -> 363
        assert_eq!(run(44100, 16000, &vec![0.0; 100], &[441]).1, 36); // 36.28 -> 36
        assert_eq!(run(8000, 16000, &vec![0.0; 8001], &[441]).1, 16002);
        assert_eq!(run(48000, 16000, &[0.0; 4], &[1]).1, 1); // 1.33 -> 1
        assert_eq!(run(48000, 16000, &[0.0; 5], &[1]).1, 2); // 1.67 -> 2
    }

    #[test]
    fn chunking_does_not_change_output() {
        let input: Vec<f32> = (0..20_000)
            .map(|i| ((i * 7919) % 2001) as f32 / 2000.0 - 0.5)
            .collect();
        let (a, _) = run(48000, 16000, &input, &[20_000]);
        let (b, _) = run(48000, 16000, &input, &[1, 2, 333]);
        assert_eq!(a, b);
    }

    #[test]
    fn passthrough_is_identity() {
        let input: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let (out, total) = run(16000, 16000, &input, &[3, 17]);
        assert_eq!(total, 1000);
        assert_eq!(out, input);
    }

    /// Best lag of `actual` against `reference` (cross-correlation over `-5..=5`).
    fn best_lag(actual: &[f32], reference: &[f32]) -> i64 {
        let mut best = (i64::MIN, f64::MIN);
        for lag in -5i64..=5 {
            let mut sum = 0.0f64;
            for (i, r) in reference
                .iter()
                .enumerate()
                .skip(200)
                .take(reference.len() - 400)
            {
                let j = (i as i64 + lag) as usize;
                sum += f64::from(actual[j]) * f64::from(*r);
            }
            if sum > best.1 {
                best = (lag, sum);
            }
        }
        best.0
    }

    fn sine(rate: u32, freq: f64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    #[test]
    fn sine_keeps_frequency_and_phase() {
        for (in_rate, out_rate) in [(48000, 16000), (44100, 16000), (8000, 16000)] {
            let input = sine(in_rate, 1000.0, in_rate as usize);
            let (out, total) = run(in_rate, out_rate, &input, &[441, 17]);
            assert_eq!(total, u64::from(out_rate));
            let reference = sine(out_rate, 1000.0, out_rate as usize);
            assert_eq!(best_lag(&out, &reference), 0, "{in_rate}->{out_rate}");
            // Away from the edges the waveform matches closely, which only a zero-delay,
            // correct-frequency output can do.
            let worst = out[400..out.len() - 400]
                .iter()
                .zip(&reference[400..reference.len() - 400])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 0.01, "{in_rate}->{out_rate}: max error {worst}");
        }
    }

    #[test]
    fn impulse_lands_at_its_time() {
        // An impulse at input sample 3000 (48 kHz) must peak at output sample 1000 (16 kHz).
        let mut input = vec![0.0f32; 6000];
        input[3000] = 1.0;
        let (out, _) = run(48000, 16000, &input, &[500]);
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap();
        assert_eq!(peak, 1000);
    }

    #[test]
    fn finish_then_process_starts_fresh() {
        let mut r = Resampler::new(48000, 16000).unwrap();
        let mut out = Vec::new();
        r.process(&[0.1; 3000], &mut out);
        r.finish(&mut out);
        assert_eq!(r.output_total(), 1000);
        r.finish(&mut out);
        assert_eq!(out.len(), 1000);
        let mut out2 = Vec::new();
        r.process(&[0.1; 300], &mut out2);
        r.finish(&mut out2);
        assert_eq!(r.input_total(), 300);
        assert_eq!(r.output_total(), 100);
        assert_eq!(out2.len(), 100);
    }

    #[test]
    fn zero_rate_is_an_error() {
        let e = Resampler::new(0, 16000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot resample 0 Hz -> 16000 Hz: sample rates must be non-zero"
        );
        assert!(Resampler::new(16000, 0).is_err());
    }

    /// Passband flat to 7 kHz, aliases (9 and 12 kHz fold into the band at 16 kHz) gone.
    #[test]
    fn speech_band_quality() {
        for in_rate in [48000u32, 44100] {
            for (freq, min_db, max_db) in [
                (3000.0, -0.1, 0.1),
                (7000.0, -0.1, 0.1),
                (9000.0, f64::MIN, -100.0),
                (12000.0, f64::MIN, -100.0),
            ] {
                let input = sine(in_rate, freq, in_rate as usize);
                let (out, _) = run(in_rate, 16000, &input, &[4096]);
                let body = &out[2000..14000];
                let rms = (body.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>()
                    / body.len() as f64)
                    .sqrt();
                let db = 20.0 * (rms / (0.5 / 2f64.sqrt())).log10();
                assert!(
                    (min_db..=max_db).contains(&db),
                    "{in_rate}->16000 at {freq} Hz: {db:.1} dB"
                );
            }
        }
    }

    #[test]
    fn block_sizes() {
        assert_eq!(fft_blocks(48000, 16000), 342); // 1026 in, 342 out
        assert_eq!(fft_blocks(44100, 16000), 2); // 882 in, 320 out
        assert_eq!(fft_blocks(8000, 16000), 1024); // 1024 in, 2048 out
        assert_eq!(fft_blocks(48000, 44100), 6); // 960 in, 882 out
        assert_eq!(fft_blocks(8000, 11025), 4); // 3 blocks would give 1323 out: odd
    }
}
