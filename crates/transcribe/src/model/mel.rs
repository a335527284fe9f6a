//! Whisper's log-mel filter bank: triangular filters on the Slaney mel scale with Slaney area
//! normalisation, the same definition as librosa's `filters.mel(sr, n_fft, n_mels)` defaults,
//! which is what Whisper was trained with. whisper.cpp reads the bank from the model file, so
//! the converter computes it.
//!
//! Arithmetic is in `f64` and each weight is rounded to `f32` before the normalisation, the
//! order in which the reference implementation stores them.

/// Whisper's audio front end: 16 kHz input, 25 ms (400-sample) FFT window.
pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;

/// The Slaney mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hertz to Slaney mel.
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

/// Slaney mel to hertz.
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        mel * F_SP
    }
}

/// `n_mels` filters over the `n_fft / 2 + 1` FFT bins from 0 Hz to the Nyquist frequency,
/// row-major (`n_mels` rows).
pub fn filter_bank(n_mels: usize, n_fft: usize, sample_rate: u32) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    let bin_step = nyquist / (n_bins - 1) as f64;
    let bin_hz: Vec<f64> = (0..n_bins).map(|k| k as f64 * bin_step).collect();
    // n_mels + 2 points evenly spaced in mel: each filter spans three consecutive points.
    let top = hz_to_mel(nyquist);
    let mel_step = top / (n_mels + 1) as f64;
    let points: Vec<f64> = (0..n_mels + 2)
        .map(|i| {
            mel_to_hz(if i == n_mels + 1 {
                top
            } else {
                i as f64 * mel_step
            })
        })
        .collect();
    let mut bank = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (lo, mid, hi) = (points[m], points[m + 1], points[m + 2]);
        // Slaney normalisation: each triangle has unit area in hertz.
        let norm = 2.0 / (hi - lo);
        for (k, &f) in bin_hz.iter().enumerate() {
            let rising = (f - lo) / (mid - lo);
            let falling = (hi - f) / (hi - mid);
            let w = rising.min(falling).max(0.0) as f32;
            bank[m * n_bins + k] = (f64::from(w) * norm) as f32;
        }
    }
    bank
}
