//! Rolling windows over an assembled transcript.
//!
//! A summarizer sees the transcript in windows of `window_ms` (default 10 minutes). Window
//! boundaries lie on a grid of multiples of the window length from the last summarized point,
//! and an utterance belongs to the window that contains its **start**. Because utterances never
//! cross a segment boundary (see the crate docs), once every segment starting before a window's
//! end is finished, the window's utterances are final: a later segment can only add utterances
//! that start at or after its own start, which lies beyond the window.
//!
//! Grid cells that hold no utterance are **skipped**, never handed out: after a long silence or
//! a gap in the recording (or a segment placed far along the timeline) the next window is the
//! cell that holds the next utterance. The number of windows is therefore bounded by the amount
//! of transcript, not by the length of the timeline. Skipping loses nothing: every utterance
//! starting before the contiguous end is final, so the skipped stretch is known to be empty.
//!
//! The caller tracks two times per recording:
//! - `summarized_until_ms`: the end of the last window it summarized (0 at first);
//! - `contiguous_until_ms`: the latest time `t` such that every segment of every track that
//!   starts before `t` has been received and is finished (transcribed, or given up on).
//!
//! [`next_window`] hands out the next full window that holds at least one utterance once the
//! contiguous transcript has reached its end; with a backlog, calling it again after each
//! summary (with `summarized_until_ms` set to the window's `end_ms`) yields the following
//! windows one by one. At the end of a recording, [`final_window`] takes whatever is left.

use crate::Utterance;

/// Ten minutes, the default rolling window.
pub const DEFAULT_WINDOW_MS: u64 = 10 * 60 * 1000;

/// A slice of the transcript to summarize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start: the previous `summarized_until_ms`, or a later multiple of the window
    /// length from it when the stretch in between holds no utterance.
    pub start_ms: u64,
    /// Exclusive end; the caller's next `summarized_until_ms` once this window is summarized.
    pub end_ms: u64,
    /// Utterances starting in `[start_ms, end_ms)`, in the order given.
    pub utterances: Vec<Utterance>,
}

/// The next full window that holds an utterance, or `None` if there is none yet (or when
/// `window_ms` is 0, which would never advance).
///
/// Only utterances starting in `[summarized_until_ms, contiguous_until_ms)` are final, so
/// only they are looked at. The window is the grid cell of length `window_ms` (counted from
/// `summarized_until_ms`) holding the earliest of them, handed out once `contiguous_until_ms`
/// reaches its end. The cells before it hold no utterance and are skipped, so a window is never empty and
/// the returned `start_ms` may lie beyond `summarized_until_ms`. Arithmetic is checked: times
/// near `u64::MAX` give `None`, never a panic.
pub fn next_window(
    utterances: &[Utterance],
    summarized_until_ms: u64,
    contiguous_until_ms: u64,
    window_ms: u64,
) -> Option<Window> {
    if window_ms == 0 {
        return None;
    }
    let first = utterances
        .iter()
        .map(|u| u.start_ms)
        .filter(|&t| t >= summarized_until_ms && t < contiguous_until_ms)
        .min()?;
    // The grid cell holding `first`: start <= first, so neither operation can overflow.
    let skipped = (first - summarized_until_ms) / window_ms * window_ms;
    let start = summarized_until_ms + skipped;
    let end = start.checked_add(window_ms)?;
    if contiguous_until_ms < end {
        return None;
    }
    Some(Window {
        start_ms: start,
        end_ms: end,
        utterances: starting_in(utterances, start, Some(end)),
    })
}

/// Everything from `summarized_until_ms` on: the last, usually partial, window of a recording.
///
/// `end_ms` is the latest utterance end, or `summarized_until_ms` when nothing is left. Take
/// full windows with [`next_window`] first so that this one stays shorter than a window.
pub fn final_window(utterances: &[Utterance], summarized_until_ms: u64) -> Window {
    let picked = starting_in(utterances, summarized_until_ms, None);
    let end = picked
        .iter()
        .map(|u| u.end_ms)
        .max()
        .unwrap_or(summarized_until_ms)
        .max(summarized_until_ms);
    Window {
        start_ms: summarized_until_ms,
        end_ms: end,
        utterances: picked,
    }
}

fn starting_in(utterances: &[Utterance], from: u64, to: Option<u64>) -> Vec<Utterance> {
    utterances
        .iter()
        .filter(|u| u.start_ms >= from && to.is_none_or(|t| u.start_ms < t))
        .cloned()
        .collect()
}
