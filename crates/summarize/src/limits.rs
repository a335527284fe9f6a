//! The bounds every set of notes is held to, whichever summarizer made it.
//!
//! Rolling notes are fed back into the next call as `previous`, so unbounded notes would make
//! the input of each call grow with the meeting. Both summarizers pass their output through
//! [`NotesLimits::bound`], and the prompt of the chat summarizer only ever carries bounded notes.

use std::collections::HashSet;

use crate::Notes;
use crate::text::{clip, item_key, single_spaced};

/// Caps on the size of [`Notes`]. [`Default`] gives the values documented on each field; they
/// fit a three-hour meeting's notes on one screen or two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotesLimits {
    /// Sentences the extractive summary keeps overall. Default 6.
    pub summary_sentences: usize,
    /// Sentences one window may add to the extractive summary before the overall cap prunes.
    /// Default 3, so a one-window meeting still gets a three-sentence summary.
    pub summary_per_window: usize,
    /// Characters of the summary, whoever wrote it. Default 2,400 (six sentences of 300
    /// characters plus speaker labels).
    pub summary_chars: usize,
    /// Key points kept overall. Default 10.
    pub key_points: usize,
    /// Key points one window may add before the overall cap prunes. Default 5.
    pub key_points_per_window: usize,
    /// Decisions kept; beyond this the oldest go first. Default 20.
    pub decisions: usize,
    /// Action items kept; beyond this the oldest go first. Default 25.
    pub action_items: usize,
    /// Characters of one key point, decision, action item or summary sentence; longer ones are
    /// clipped at a word boundary with `…`. Default 300.
    pub item_chars: usize,
}

impl Default for NotesLimits {
    fn default() -> Self {
        NotesLimits {
            summary_sentences: 6,
            summary_per_window: 3,
            summary_chars: 2_400,
            key_points: 10,
            key_points_per_window: 5,
            decisions: 20,
            action_items: 25,
            item_chars: 300,
        }
    }
}

impl NotesLimits {
    /// Applies every cap: whitespace collapsed, items clipped to `item_chars`, empty items
    /// dropped, duplicates (same [`item_key`]) dropped keeping the first, key points cut to the
    /// first `key_points`, decisions and action items to the last `decisions` / `action_items`
    /// (the most recent: later items in a meeting tend to refine earlier ones), and the summary
    /// clipped to `summary_chars`.
    pub fn bound(&self, notes: Notes) -> Notes {
        let summary = clip(&single_spaced(&notes.summary), self.summary_chars);
        let mut key_points = self.items(notes.key_points);
        key_points.truncate(self.key_points);
        Notes {
            summary,
            key_points,
            decisions: keep_last(self.items(notes.decisions), self.decisions),
            action_items: keep_last(self.items(notes.action_items), self.action_items),
        }
    }

    /// Cleans, clips and dedupes one list, keeping the first of equal items.
    pub(crate) fn items(&self, items: Vec<String>) -> Vec<String> {
        let mut seen = HashSet::new();
        items
            .into_iter()
            .map(|i| clip(&single_spaced(&i), self.item_chars))
            .filter(|i| {
                let key = item_key(i);
                !key.is_empty() && seen.insert(key)
            })
            .collect()
    }
}

pub(crate) fn keep_last(mut items: Vec<String>, cap: usize) -> Vec<String> {
    let excess = items.len().saturating_sub(cap);
    items.drain(..excess);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_applies_every_cap() {
        let limits = NotesLimits {
            summary_chars: 12,
            key_points: 2,
            decisions: 2,
            action_items: 1,
            item_chars: 10,
            ..NotesLimits::default()
        };
        let notes = Notes {
            summary: "one  two\nthree four five".into(),
            key_points: vec![
                "a b".into(),
                "A, b.".into(),
                " ".into(),
                "c".into(),
                "d".into(),
            ],
            decisions: vec!["d1".into(), "d2".into(), "d3".into()],
            action_items: vec!["x".into(), "Bob: y".into(), "y".into()],
        };
        assert_eq!(
            limits.bound(notes),
            Notes {
                summary: "one two…".into(),
                key_points: vec!["a b".into(), "c".into()],
                decisions: vec!["d2".into(), "d3".into()],
                action_items: vec!["Bob: y".into()],
            }
        );
        let long = Notes {
            key_points: vec!["abcdefghijklmnop".into()],
            ..Notes::default()
        };
        assert_eq!(limits.bound(long).key_points, ["abcdefghi…"]);
    }
}
