//! The embedded extractive summarizer: no model, no network, deterministic.
//!
//! It picks sentences people actually said; it never writes new ones. Per call:
//!
//! 1. **Sentences.** Each utterance of the window is split into sentences (see
//!    [`crate::text::sentences`]), in time order.
//! 2. **Decisions and action items** come from explicit cues in a sentence (see
//!    [`crate::cues`]): labels such as "Action item:", "TODO", "Decision:", and phrases such as
//!    "we decided", "we agreed", "let's go with", "approved", "please <verb>", "let's make
//!    sure", "<someone> will <verb> ... by <day>". An action item is written as
//!    `"Speaker: item"`, so it keeps who said it.
//! 3. **Scores.** A sentence's score is `tf_sum / sqrt(n) * length * position`, where
//!    - `n` is the number of distinct content words in it (words of 3 or more characters not
//!      in the stopword list, a plural `s` removed) and `tf_sum` the sum of their counts over
//!      the whole window: sentences about what the meeting keeps talking about score high;
//!      dividing by `sqrt(n)` keeps long sentences from winning by length alone;
//!    - `length` is 1 up to 30 words and `30 / words` beyond, because run-on sentences make
//!      poor notes;
//!    - `position` is `1 + 0.25 / (1 + i)` for the `i`-th sentence of a speaker's turn: people
//!      tend to state their point first and elaborate after.
//!
//!    Sentences of fewer than 4 words or fewer than 2 content words ("Yes, sure."), and
//!    questions, are never picked: a question is not a point made. Ties go to the earlier
//!    sentence.
//! 4. **Picks.** The window adds its best `summary_per_window` sentences to the summary, then
//!    its next best `key_points_per_window` to the key points. Decisions and action items are
//!    not picked (they have their own lists), and nothing appears twice in the notes.
//! 5. **Merge** with `previous`: earlier decisions and action items are kept, new ones are
//!    appended unless an equal one (same [`crate::text::item_key`]) exists. The summary and the
//!    key points keep their earlier sentences plus the new picks; when that exceeds
//!    `summary_sentences` or `key_points`, the sentences that least share the notes' own
//!    vocabulary go (the score above with counts taken over the summary and key points rather
//!    than the window), the older first on a tie: what the meeting kept coming back to stays.
//! 6. **Bounds.** Everything passes through [`NotesLimits::bound`], so the notes, and with them
//!    the next call's input, stay bounded however long the meeting runs.
//!
//! The summary and the key points are the picked sentences in time order. A summary sentence
//! is prefixed with its speaker (`"Alice: ..."`) when the speaker differs from the previous
//! summary sentence's.
//!
//! When the window has no usable speech and there is no `previous`, the notes are empty
//! ([`Notes::is_empty`]). A window with no sentences returns `previous` unchanged (bounded).
//! A final call (`is_final`) is treated like a rolling one: the last window merges in the same
//! way, so the final notes are the rolling notes plus whatever the last window adds.

use std::collections::{BTreeSet, HashMap};

use crate::cues::{self, Cues};
use crate::limits::{NotesLimits, keep_last};
use crate::stopwords::is_stopword;
use crate::text::{clip, item_key, sentences, speaker_label, split_attribution, words};
use crate::{BoxFuture, Notes, SummarizeError, SummarizeRequest, Summarizer};

/// Sentences shorter than this many words are never summary or key-point material.
const MIN_WORDS: usize = 4;
/// Nor are sentences with fewer distinct content words than this.
const MIN_CONTENT_WORDS: usize = 2;
/// Beyond this many words a sentence's score shrinks in proportion.
const LONG_SENTENCE_WORDS: usize = 30;

/// The extractive summarizer. Stateless apart from its limits: everything it uses comes from
/// the [`SummarizeRequest`].
#[derive(Debug, Clone, Default)]
pub struct ExtractiveSummarizer {
    limits: NotesLimits,
}

#[derive(Debug, Clone)]
struct Sentence {
    text: String,
    speaker: Option<String>,
    /// Time order across the call: carried sentences first, then the window's.
    order: usize,
    /// Position within the speaker's turn (0 for carried sentences).
    turn_index: usize,
    content: BTreeSet<String>,
    words: usize,
}

impl Sentence {
    fn new(text: &str, speaker: Option<String>, order: usize, turn_index: usize) -> Self {
        Sentence {
            text: text.to_string(),
            speaker,
            order,
            turn_index,
            content: content_words(text).into_iter().collect(),
            words: words(text).len(),
        }
    }

    fn usable(&self) -> bool {
        self.words >= MIN_WORDS
            && self.content.len() >= MIN_CONTENT_WORDS
            && !self.text.trim_end().ends_with('?')
    }

    fn score(&self, tf: &HashMap<String, usize>) -> f64 {
        if self.content.is_empty() {
            return 0.0;
        }
        // An integer sum: the same value whatever the order of the words.
        let tf_sum: usize = self
            .content
            .iter()
            .map(|w| tf.get(w).copied().unwrap_or(0))
            .sum();
        let base = tf_sum as f64 / (self.content.len() as f64).sqrt();
        let length = if self.words > LONG_SENTENCE_WORDS {
            LONG_SENTENCE_WORDS as f64 / self.words as f64
        } else {
            1.0
        };
        let position = 1.0 + 0.25 / (1.0 + self.turn_index as f64);
        base * length * position
    }
}

impl ExtractiveSummarizer {
    /// The summarizer with [`NotesLimits::default`].
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: NotesLimits) -> Self {
        ExtractiveSummarizer { limits }
    }

    pub fn limits(&self) -> &NotesLimits {
        &self.limits
    }

    /// The notes for one request; what [`Summarizer::summarize`] returns, synchronously.
    pub fn notes(&self, request: &SummarizeRequest) -> Notes {
        let limits = &self.limits;
        let previous = limits.bound(request.previous.clone().unwrap_or_default());

        // 1. Sentences of the window, in time order.
        let mut utterances: Vec<_> = request.window.iter().collect();
        utterances.sort_by_key(|u| u.start_ms);
        let carried_summary = summary_sentences(&previous.summary);
        let carried_points: Vec<Sentence> = (previous.key_points.iter().enumerate())
            .map(|(i, text)| Sentence::new(text, None, carried_summary.len() + i, 0))
            .collect();
        let mut order = carried_summary.len() + carried_points.len();
        let mut window: Vec<(Sentence, Cues)> = Vec::new();
        for u in utterances {
            let speaker = speaker_label(&u.speaker);
            for (turn_index, s) in sentences(&u.text).iter().enumerate() {
                let text = clip(s, limits.item_chars);
                let cues = cues::find(&text);
                window.push((
                    Sentence::new(&text, speaker.clone(), order, turn_index),
                    cues,
                ));
                order += 1;
            }
        }
        if window.is_empty() {
            return previous;
        }

        // 2. Decisions and action items, appended to the earlier ones.
        let mut decisions = previous.decisions.clone();
        let mut action_items = previous.action_items.clone();
        for (sentence, cues) in &window {
            if let Some(d) = &cues.decision {
                decisions.push(d.clone());
            }
            if let Some(a) = &cues.action {
                action_items.push(match &sentence.speaker {
                    Some(who) => format!("{who}: {a}"),
                    None => a.clone(),
                });
            }
        }
        let decisions = keep_last(limits.items(decisions), limits.decisions);
        let action_items = keep_last(limits.items(action_items), limits.action_items);
        let mut taken: BTreeSet<String> = decisions
            .iter()
            .chain(&action_items)
            .map(|i| item_key(i))
            .collect();

        // 3. and 4. The window's own ranking picks its summary sentences and key points.
        let mut tf = HashMap::new();
        for (s, _) in &window {
            for w in content_words(&s.text) {
                *tf.entry(w).or_insert(0usize) += 1;
            }
        }
        let mut ranked: Vec<(f64, usize)> = window
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| s.usable())
            .map(|(i, (s, _))| (s.score(&tf), i))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

        let mut summary: Vec<Sentence> = Vec::new();
        for s in carried_summary {
            if taken.insert(item_key(&s.text)) {
                summary.push(s);
            }
        }
        let mut added = 0;
        for &(_, i) in &ranked {
            let (s, cues) = &window[i];
            if added == limits.summary_per_window {
                break;
            }
            if !cues.any() && taken.insert(item_key(&s.text)) {
                summary.push(s.clone());
                added += 1;
            }
        }
        let mut points: Vec<Sentence> = Vec::new();
        for s in carried_points {
            if taken.insert(item_key(&s.text)) {
                points.push(s);
            }
        }
        let mut added = 0;
        for &(_, i) in &ranked {
            let (s, cues) = &window[i];
            if added == limits.key_points_per_window {
                break;
            }
            if !cues.any() && taken.insert(item_key(&s.text)) {
                points.push(s.clone());
                added += 1;
            }
        }

        // 5. Prune to the overall caps by the notes' own vocabulary.
        let mut notes_tf = HashMap::new();
        for s in summary.iter().chain(&points) {
            for w in &s.content {
                *notes_tf.entry(w.clone()).or_insert(0usize) += 1;
            }
        }
        prune(&mut summary, limits.summary_sentences, &notes_tf);
        prune(&mut points, limits.key_points, &notes_tf);
        points.sort_by_key(|s| s.order);

        tracing::debug!(
            sentences = window.len(),
            summary = summary.len(),
            key_points = points.len(),
            decisions = decisions.len(),
            action_items = action_items.len(),
            "extractive notes"
        );
        limits.bound(Notes {
            summary: render_summary(&summary),
            key_points: points.into_iter().map(|s| s.text).collect(),
            decisions,
            action_items,
        })
    }
}

impl Summarizer for ExtractiveSummarizer {
    fn name(&self) -> &str {
        "extractive"
    }

    fn summarize(&self, request: SummarizeRequest) -> BoxFuture<'_, Result<Notes, SummarizeError>> {
        let notes = self.notes(&request);
        Box::pin(async move { Ok(notes) })
    }
}

/// Content words of a text: lowercased, 3 or more characters, not stopwords, a plural `s`
/// removed ("budgets" counts as "budget").
fn content_words(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !is_stopword(w))
        .map(|w| {
            let w = w.strip_suffix("'s").map(str::to_string).unwrap_or(w);
            let plural =
                w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us");
            if plural {
                w[..w.len() - 1].to_string()
            } else {
                w
            }
        })
        .collect()
}

/// The earlier summary read back as sentences; one without a speaker label was said by the
/// speaker of the sentence before it, which is how [`render_summary`] writes them.
fn summary_sentences(summary: &str) -> Vec<Sentence> {
    let mut speaker: Option<String> = None;
    sentences(summary)
        .iter()
        .enumerate()
        .map(|(order, s)| {
            let (label, body) = split_attribution(s);
            if let Some(label) = label {
                speaker = Some(label.to_string());
            }
            Sentence::new(body, speaker.clone(), order, 0)
        })
        .collect()
}

/// Drops the lowest-scoring sentences (the older first on a tie) until at most `cap` remain;
/// the rest keep their time order.
fn prune(list: &mut Vec<Sentence>, cap: usize, tf: &HashMap<String, usize>) {
    if list.len() <= cap {
        return;
    }
    let mut by_score: Vec<(f64, usize, usize)> = list
        .iter()
        .enumerate()
        .map(|(i, s)| (s.score(tf), s.order, i))
        .collect();
    by_score.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let drop: BTreeSet<usize> = by_score[..list.len() - cap].iter().map(|t| t.2).collect();
    let mut index = 0;
    list.retain(|_| {
        let keep = !drop.contains(&index);
        index += 1;
        keep
    });
    list.sort_by_key(|s| s.order);
}

fn render_summary(sentences: &[Sentence]) -> String {
    let mut ordered: Vec<&Sentence> = sentences.iter().collect();
    ordered.sort_by_key(|s| s.order);
    let mut out = String::new();
    let mut last_speaker: Option<&str> = None;
    for s in ordered {
        if !out.is_empty() {
            out.push(' ');
        }
        if let Some(who) = s.speaker.as_deref()
            && last_speaker != Some(who)
        {
            out.push_str(who);
            out.push_str(": ");
            last_speaker = Some(who);
        }
        out.push_str(&s.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronote_assemble::Utterance;

    fn said(start_ms: u64, speaker: &str, text: &str) -> Utterance {
        Utterance {
            start_ms,
            end_ms: start_ms + 1_000,
            track: speaker.to_lowercase(),
            speaker: speaker.into(),
            text: text.into(),
        }
    }

    fn window() -> Vec<Utterance> {
        vec![
            said(0, "Alice", "The budget needs review. Lunch was nice today."),
            said(5_000, "Bob", "The budget review happens Monday."),
        ]
    }

    #[test]
    fn content_words_drop_stopwords_short_words_and_plurals() {
        assert_eq!(
            content_words("The budgets, the team's plan and the class is OK by me."),
            ["budget", "team", "plan", "class"]
        );
    }

    #[test]
    fn scores_follow_the_documented_formula() {
        // tf: budget 2, review 2, lunch 1, today 1, happen 1, monday 1 ("needs" and "nice"
        // are stopwords).
        let tf: HashMap<String, usize> = [
            ("budget", 2),
            ("review", 2),
            ("lunch", 1),
            ("today", 1),
            ("happen", 1),
            ("monday", 1),
        ]
        .into_iter()
        .map(|(w, n)| (w.to_string(), n))
        .collect();
        let s0 = Sentence::new("The budget needs review.", None, 0, 0);
        let s1 = Sentence::new("Lunch was nice today.", None, 1, 1);
        let s2 = Sentence::new("The budget review happens Monday.", None, 2, 0);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(s0.score(&tf), 4.0 / 2f64.sqrt() * 1.25));
        assert!(close(s1.score(&tf), 2.0 / 2f64.sqrt() * 1.125));
        assert!(close(s2.score(&tf), 6.0 / 2.0 * 1.25));
        let long = Sentence::new(&"budget review ".repeat(30), None, 3, 0);
        assert_eq!(long.words, 60);
        assert!(close(long.score(&tf), 4.0 / 2f64.sqrt() * 0.5 * 1.25));
        assert!(!Sentence::new("Budget review now.", None, 0, 0).usable());
        assert!(!Sentence::new("Is the budget review done?", None, 0, 0).usable());
        assert!(!Sentence::new("Yes it is so.", None, 0, 0).usable());
    }

    #[test]
    fn the_best_sentences_make_the_summary_then_the_key_points() {
        let one_each = ExtractiveSummarizer::with_limits(NotesLimits {
            summary_per_window: 1,
            key_points_per_window: 1,
            ..NotesLimits::default()
        });
        let request = SummarizeRequest {
            previous: None,
            window: window(),
            is_final: false,
        };
        assert_eq!(
            one_each.notes(&request),
            Notes {
                summary: "Bob: The budget review happens Monday.".into(),
                key_points: vec!["The budget needs review.".into()],
                decisions: vec![],
                action_items: vec![],
            }
        );
        let two = ExtractiveSummarizer::with_limits(NotesLimits {
            summary_per_window: 2,
            ..NotesLimits::default()
        });
        assert_eq!(
            two.notes(&request),
            Notes {
                summary: "Alice: The budget needs review. Bob: The budget review happens Monday."
                    .into(),
                key_points: vec!["Lunch was nice today.".into()],
                decisions: vec![],
                action_items: vec![],
            }
        );
    }

    #[test]
    fn summaries_read_back_with_their_speakers() {
        let read = summary_sentences("Alice: One two three. Four five six. Bob: Seven eight.");
        let got: Vec<(Option<&str>, &str)> = read
            .iter()
            .map(|s| (s.speaker.as_deref(), s.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("Alice"), "One two three."),
                (Some("Alice"), "Four five six."),
                (Some("Bob"), "Seven eight."),
            ]
        );
        assert_eq!(
            render_summary(&read),
            "Alice: One two three. Four five six. Bob: Seven eight."
        );
    }

    #[test]
    fn pruning_keeps_what_the_notes_share() {
        let mut list = vec![
            Sentence::new("Weather was lovely outside today.", None, 0, 0),
            Sentence::new("The budget review slipped again.", None, 1, 0),
            Sentence::new("Lunch options were discussed briefly.", None, 2, 0),
            Sentence::new("Budget review owners were named.", None, 3, 0),
        ];
        let mut tf = HashMap::new();
        for s in &list {
            for w in &s.content {
                *tf.entry(w.clone()).or_insert(0) += 1;
            }
        }
        // Sentences 0 and 2 share nothing and tie; the older goes first.
        prune(&mut list, 3, &tf);
        let texts: Vec<&str> = list.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "The budget review slipped again.",
                "Lunch options were discussed briefly.",
                "Budget review owners were named.",
            ]
        );
        prune(&mut list, 5, &tf);
        assert_eq!(list.len(), 3);
        prune(&mut list, 0, &tf);
        assert!(list.is_empty());
    }
}
