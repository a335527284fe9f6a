//! Transcript assembly for Chronote recordings.
//!
//! A speech-to-text engine answers per segment, with times relative to the start of that
//! segment ([`chronote_transcribe::TimedText`]). This crate turns those answers into one
//! transcript on the recording's timeline:
//!
//! 1. **Shift.** Every span is moved by its segment's start: `start_48k / 48` milliseconds
//!    (integer division, so times are exact to the millisecond and never drift). Span times are
//!    clamped to the segment's own extent, so a hallucinated timestamp cannot push text into
//!    another segment's time.
//! 2. **Overlap removal.** The continuity prompt (the previous segment's last words, see
//!    [`prompt_tail`]) sometimes makes an engine repeat those words at the start of the next
//!    segment. When the first words of segment `n` repeat the last words of segment `n - 1` of
//!    the same track, they are dropped. The rule is deliberately narrow so that real speech is
//!    never removed; see [`AssembleConfig`] for its exact conditions.
//! 3. **Merge.** Consecutive spans of one segment are joined into one [`Utterance`] when the pause
//!    between them is short. Utterances never cross a segment boundary: a finished segment's
//!    utterances then never change when later segments arrive, which is what lets
//!    [`next_window`] hand out rolling windows that neither miss nor repeat text.
//! 4. **Order.** Utterances of all tracks are sorted by start time; ties go by track name, then
//!    segment sequence, then position in the segment, so the output is the same whatever order
//!    the segments were given in.
//!
//! Output is JSON through serde ([`Utterance`] derives it) or text lines through
//! [`render_text`].
//!
//! The crate is pure logic: no I/O, no clocks, no allocation beyond the output.

mod overlap;
mod window;

use chronote_transcribe::TimedText;
use serde::{Deserialize, Serialize};

pub use overlap::normalize_word;
pub use window::{DEFAULT_WINDOW_MS, Window, final_window, next_window};

/// One segment's transcription result, as stored by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentText {
    /// Track identifier (e.g. `"me"`, `"others"`, a Discord user id); part of the sort key.
    pub track: String,
    /// Label shown in the transcript for this track.
    pub speaker: String,
    /// Sequence number of the segment within its track, starting anywhere; consecutive
    /// segments differ by one.
    pub seq: u64,
    /// Start of the segment on the recording's timeline, in 48 kHz samples.
    pub start_48k: u64,
    /// Length of the segment in 48 kHz samples.
    pub length_48k: u64,
    /// The engine's spans, timed relative to the segment start. Empty for silence or for a
    /// segment that could not be transcribed.
    pub spans: Vec<TimedText>,
}

/// One line of the assembled transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utterance {
    /// Start on the recording's timeline, in milliseconds.
    pub start_ms: u64,
    /// End on the recording's timeline, in milliseconds; never before `start_ms`.
    pub end_ms: u64,
    pub track: String,
    pub speaker: String,
    /// Words separated by single spaces; never empty.
    pub text: String,
}

/// Tuning of [`assemble`]. [`Default`] gives the values documented on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembleConfig {
    /// Two consecutive spans of one segment are merged when the silence between them is at
    /// most this long. Default 1500 ms: longer than a breath, shorter than a turn change.
    pub max_pause_ms: u64,
    /// A merged utterance stops growing once it would span more than this. Default 60 000 ms,
    /// which keeps transcript lines readable.
    pub max_utterance_ms: u64,
    /// Overlap removal compares at most this many words. Default 8, which is more than a
    /// straddled word and about as long as an echoed prompt phrase gets before engines start
    /// paraphrasing it.
    pub max_echo_words: usize,
    /// Overlap removal only drops a repeat of at least this many words. Default 2: a single
    /// repeated word ("No. No, that's wrong.") is too often real speech to remove.
    pub min_echo_words: usize,
    /// The repeated words must lie in spans that start at most this long after the segment
    /// start. Default 1000 ms: an echo sits at the very start of a segment, while the same
    /// words spoken again later are speech.
    pub echo_window_ms: u64,
}

impl Default for AssembleConfig {
    fn default() -> Self {
        AssembleConfig {
            max_pause_ms: 1_500,
            max_utterance_ms: 60_000,
            max_echo_words: 8,
            min_echo_words: 2,
            echo_window_ms: 1_000,
        }
    }
}

/// Assembles segment results into a time-ordered transcript.
///
/// Segments may come in any order and tracks may be interleaved. If the same `(track, seq)`
/// appears more than once, the first occurrence in `segments` is used and the others are
/// ignored. Overlap removal for segment `n` needs segment `n - 1` of the same track in
/// `segments`; without it the segment is taken as is.
pub fn assemble(segments: &[SegmentText], config: &AssembleConfig) -> Vec<Utterance> {
    let mut order: Vec<&SegmentText> = segments.iter().collect();
    // Stable, so the first of several duplicates stays first and wins below.
    order.sort_by(|a, b| (&a.track, a.seq).cmp(&(&b.track, b.seq)));
    order.dedup_by(|later, earlier| later.track == earlier.track && later.seq == earlier.seq);

    // (start, track, seq, index in segment) is unique, so the final sort is total.
    let mut keyed: Vec<(u64, u64, usize, Utterance)> = Vec::new();
    let mut previous: Option<&SegmentText> = None;
    for seg in order {
        let mut spans = clean_spans(&seg.spans);
        if let Some(prev) = previous
            && prev.track == seg.track
            && prev.seq.checked_add(1) == Some(seg.seq)
        {
            overlap::remove_echo(&clean_spans(&prev.spans), &mut spans, config);
        }
        for (index, utterance) in merge_segment(seg, &spans, config).into_iter().enumerate() {
            keyed.push((utterance.start_ms, seg.seq, index, utterance));
        }
        previous = Some(seg);
    }
    keyed.sort_by(|a, b| (a.0, &a.3.track, a.1, a.2).cmp(&(b.0, &b.3.track, b.1, b.2)));
    keyed.into_iter().map(|(_, _, _, u)| u).collect()
}

/// Spans with their text reduced to single-spaced words, empty ones dropped, in time order.
fn clean_spans(spans: &[TimedText]) -> Vec<TimedText> {
    let mut out: Vec<TimedText> = spans
        .iter()
        .filter_map(|s| {
            let text = s.text.split_whitespace().collect::<Vec<_>>().join(" ");
            (!text.is_empty()).then(|| TimedText {
                start_ms: s.start_ms,
                end_ms: s.end_ms.max(s.start_ms),
                text,
            })
        })
        .collect();
    // Engines answer in time order; a stable sort only repairs the rare one that does not.
    out.sort_by_key(|s| s.start_ms);
    out
}

/// Shifts one segment's spans onto the recording timeline and merges short pauses.
fn merge_segment(
    seg: &SegmentText,
    spans: &[TimedText],
    config: &AssembleConfig,
) -> Vec<Utterance> {
    let seg_start = seg.start_48k / 48;
    let seg_end = seg.start_48k.saturating_add(seg.length_48k) / 48;
    let mut out: Vec<Utterance> = Vec::new();
    for span in spans {
        let start = seg_start.saturating_add(span.start_ms).min(seg_end);
        let end = seg_start.saturating_add(span.end_ms).clamp(start, seg_end);
        if let Some(last) = out.last_mut()
            && start.saturating_sub(last.end_ms) <= config.max_pause_ms
            && end.saturating_sub(last.start_ms) <= config.max_utterance_ms
        {
            last.text.push(' ');
            last.text.push_str(&span.text);
            last.end_ms = last.end_ms.max(end);
            continue;
        }
        out.push(Utterance {
            start_ms: start,
            end_ms: end,
            track: seg.track.clone(),
            speaker: seg.speaker.clone(),
            text: span.text.clone(),
        });
    }
    out
}

/// Formats milliseconds as `HH:MM:SS` (floored to the second). Hours are at least two digits
/// and never wrap: 100 hours is `100:00:00`.
pub fn format_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Renders utterances as text, one line each: `[HH:MM:SS] Speaker: text`, every line ending in
/// `\n`. Utterances are rendered in the order given.
pub fn render_text(utterances: &[Utterance]) -> String {
    let mut out = String::new();
    for u in utterances {
        out.push('[');
        out.push_str(&format_timestamp(u.start_ms));
        out.push_str("] ");
        out.push_str(&u.speaker);
        out.push_str(": ");
        out.push_str(&u.text);
        out.push('\n');
    }
    out
}

/// The last `max_words` whitespace-separated words of `text`, joined by single spaces: the
/// continuity prompt for the next segment of the same track. Empty when `max_words` is 0 or the
/// text has no words.
pub fn prompt_tail(text: &str, max_words: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let from = words.len().saturating_sub(max_words);
    words[from..].join(" ")
}

#[cfg(test)]
mod tests;
