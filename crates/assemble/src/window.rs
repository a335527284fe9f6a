//! Rolling windows over an assembled transcript.
//!
//! A summarizer sees the transcript in windows of `window_ms` (default 10 minutes). Window
//! boundaries are fixed multiples of the window length from the last summarized point, and an
//! utterance belongs to the window that contains its **start**. Because utterances never cross
//! a segment boundary (see the crate docs), once every segment starting before a window's end
//! is finished, the window's utterances are final: a later segment can only add utterances that
//! start at or after its own start, which lies beyond the window.
//!
//! The caller tracks two times per recording:
//! - `summarized_until_ms`: the end of the last window it summarized (0 at first);
//! - `contiguous_until_ms`: the latest time `t` such that every segment of every track that
//!   starts before `t` has been received and is finished (transcribed, or given up on).
//!
//! [`next_window`] hands out the next full window once the contiguous transcript has grown by at
//! least `window_ms`; with a backlog, calling it again after each summary yields the following
//! windows one by one. At the end of a recording, [`final_window`] takes whatever is left.

use crate::Utterance;

/// Ten minutes, the default rolling window.
pub const DEFAULT_WINDOW_MS: u64 = 10 * 60 * 1000;

/// A slice of the transcript to summarize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start: the previous `summarized_until_ms`.
    pub start_ms: u64,
    /// Exclusive end; the caller's next `summarized_until_ms` once this window is summarized.
    pub end_ms: u64,
    /// Utterances starting in `[start_ms, end_ms)`, in the order given.
    pub utterances: Vec<Utterance>,
}

/// The next full window, or `None` while fewer than `window_ms` of new contiguous transcript
/// exist (or when `window_ms` is 0, which would never advance).
///
/// The window is `[summarized_until_ms, summarized_until_ms + window_ms)`; it may hold no
/// utterances if nobody spoke, and the caller should still advance past it.
pub fn next_window(
    utterances: &[Utterance],
    summarized_until_ms: u64,
    contiguous_until_ms: u64,
    window_ms: u64,
) -> Option<Window> {
    if window_ms == 0 {
        return None;
    }
    let end = summarized_until_ms.checked_add(window_ms)?;
    if contiguous_until_ms < end {
        return None;
    }
    Some(Window {
        start_ms: summarized_until_ms,
        end_ms: end,
        utterances: starting_in(utterances, summarized_until_ms, Some(end)),
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
