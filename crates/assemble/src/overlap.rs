//! Removal of words an engine repeated from the previous segment.
//!
//! The rule, applied to segment `n` given segment `n - 1` of the same track:
//! - words are compared after [`normalize_word`], and tokens that normalize to nothing
//!   (a lone dash, an ellipsis) are skipped when comparing;
//! - find the largest `k` with `min_echo_words <= k <= max_echo_words` such that the first `k`
//!   words of segment `n` equal the last `k` words of segment `n - 1`;
//! - drop them only if every span holding them starts within `echo_window_ms` of the segment
//!   start.
//!
//! Anything else is kept: a repeat shorter than `min_echo_words`, the same words later in the
//! segment, a partial overlap that is not exactly the previous segment's tail, or a repeat of a
//! segment that is not the immediately preceding one.

use chronote_transcribe::TimedText;

use crate::AssembleConfig;

/// A word reduced for comparison: lowercase letters and digits only, so `"Friday."`,
/// `"friday"` and `"FRIDAY,"` are equal and `"don't"` becomes `"dont"`.
pub fn normalize_word(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Position of a comparable word: span index and token index within that span's text.
struct WordAt {
    span: usize,
    token: usize,
    norm: String,
}

pub(crate) fn remove_echo(
    previous: &[TimedText],
    current: &mut Vec<TimedText>,
    config: &AssembleConfig,
) {
    let max = config.max_echo_words;
    let min = config.min_echo_words.max(1);
    if max < min {
        return;
    }
    let tail: Vec<String> = {
        let mut rev: Vec<String> = previous
            .iter()
            .rev()
            .flat_map(|s| s.text.split_whitespace().rev())
            .map(normalize_word)
            .filter(|w| !w.is_empty())
            .take(max)
            .collect();
        rev.reverse();
        rev
    };
    let head: Vec<WordAt> = current
        .iter()
        .enumerate()
        .flat_map(|(span, s)| {
            s.text
                .split_whitespace()
                .enumerate()
                .map(move |(token, w)| WordAt {
                    span,
                    token,
                    norm: normalize_word(w),
                })
        })
        .filter(|w| !w.norm.is_empty())
        .take(max)
        .collect();

    let longest = tail.len().min(head.len());
    let Some(k) = (min..=longest).rev().find(|&k| {
        tail[tail.len() - k..]
            .iter()
            .zip(&head[..k])
            .all(|(t, h)| *t == h.norm)
    }) else {
        return;
    };
    let last = &head[k - 1];
    // Spans are in time order, so the span holding the last repeated word starts latest.
    if current[last.span].start_ms > config.echo_window_ms {
        return;
    }
    let rest: Vec<&str> = current[last.span]
        .text
        .split_whitespace()
        .skip(last.token + 1)
        .collect();
    let rest = rest.join(" ");
    let keep_from = if rest.is_empty() {
        last.span + 1
    } else {
        current[last.span].text = rest;
        last.span
    };
    current.drain(..keep_from);
}
