//! Spotting decisions and action items in single sentences by explicit cues.
//!
//! The rules are deliberately literal: a sentence only counts when it carries a cue a listener
//! would also take as one ("Action item: ...", "we decided ...", "Bob will send it by Friday").
//! Questions never count ("Did we decide on the vendor?").

use crate::text::{capitalize, words};

/// What a sentence says, if it is a decision or an action item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cues {
    /// The decision's text, without a label such as "Decision:".
    pub decision: Option<String>,
    /// The action item's text, without a label such as "Action item:".
    pub action: Option<String>,
    /// Whether the cue was an explicit label ("Action item:", "Decision:", "TODO"). Such a
    /// sentence is bookkeeping, not prose, and stays out of the summary.
    pub labelled: bool,
}

impl Cues {
    pub fn any(&self) -> bool {
        self.decision.is_some() || self.action.is_some()
    }
}

/// Labels that introduce an action item; matched case-insensitively at a word start.
const ACTION_LABELS: &[&str] = &[
    "action items:",
    "action item:",
    "action:",
    "to-do:",
    "to do:",
    "todo:",
    "next steps:",
    "next step:",
    "follow-up:",
    "follow up:",
];

/// Labels that introduce a decision.
const DECISION_LABELS: &[&str] = &[
    "decisions:",
    "decision:",
    "decided:",
    "agreed:",
    "resolved:",
];

/// Word sequences that make a sentence a decision.
const DECISION_PHRASES: &[&[&str]] = &[
    &["we", "decided"],
    &["we've", "decided"],
    &["we", "have", "decided"],
    &["it", "was", "decided"],
    &["we", "agreed"],
    &["we've", "agreed"],
    &["we", "have", "agreed"],
    &["we", "all", "agreed"],
    &["we", "all", "agree"],
    &["everyone", "agreed"],
    &["we", "will", "go", "with"],
    &["we'll", "go", "with"],
    &["let's", "go", "with"],
    &["we're", "going", "with"],
    &["we", "are", "going", "with"],
    &["we're", "going", "to", "go", "with"],
    &["we", "are", "going", "to", "go", "with"],
    &["approved"],
    &["final", "decision"],
    &["the", "decision", "is"],
];

/// Word sequences that make a sentence an action item wherever they appear.
const ACTION_PHRASES: &[&[&str]] = &[
    &["let's", "make", "sure"],
    &["make", "sure", "to"],
    &["don't", "forget", "to"],
    &["please", "remember", "to"],
];

/// Words after "please" that make it politeness rather than a request to do something.
const PLEASE_EXCEPTIONS: &[&str] = &[
    "note",
    "bear",
    "hold",
    "wait",
    "go",
    "continue",
    "ignore",
    "disregard",
    "excuse",
    "stop",
];

/// Verbs that turn "I will ..." / "we'll ..." into a commitment even without a deadline.
const COMMIT_VERBS: &[&str] = &[
    "send",
    "share",
    "write",
    "draft",
    "prepare",
    "update",
    "email",
    "call",
    "schedule",
    "book",
    "fix",
    "review",
    "check",
    "follow",
    "set",
    "create",
    "circulate",
    "organize",
    "organise",
    "investigate",
    "finish",
    "ping",
    "file",
    "contact",
    "reach",
    "look",
];

/// Words that may follow "by" (or "before") and make the phrase a deadline.
const DEADLINE_WORDS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "tomorrow",
    "tonight",
    "today",
    "eod",
    "eow",
    "noon",
    "midnight",
    "next",
    "end",
    "this",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Words a speaker opens a sentence with that carry nothing; dropped from the start of items.
const OPENERS: &[&str] = &[
    "so", "okay", "ok", "alright", "and", "um", "uh", "well", "right", "yeah", "yes", "then",
    "also", "oh", "now",
];

/// Finds the decision and action-item cues of one sentence.
pub fn find(sentence: &str) -> Cues {
    let mut cues = Cues::default();
    if sentence.trim_end().ends_with('?') {
        return cues;
    }
    if let Some(rest) = after_label(sentence, ACTION_LABELS) {
        cues.action = item_text(rest);
        cues.labelled = true;
        return cues;
    }
    if let Some(rest) = after_label(sentence, DECISION_LABELS) {
        cues.decision = item_text(rest);
        cues.labelled = true;
        return cues;
    }
    let body = strip_openers(sentence);
    let tokens = words(body);
    if let Some(rest) = todo_prefix(body) {
        cues.action = item_text(rest);
        cues.labelled = true;
        return cues;
    }
    if DECISION_PHRASES.iter().any(|p| contains_phrase(&tokens, p)) {
        cues.decision = item_text(body);
    }
    if is_action(&tokens) {
        cues.action = item_text(body);
    }
    cues
}

fn is_action(tokens: &[String]) -> bool {
    if ACTION_PHRASES.iter().any(|p| contains_phrase(tokens, p)) {
        return true;
    }
    // "Please <verb> <something>": "Yes, please do." is assent, not a request.
    let please = tokens.iter().enumerate().any(|(i, t)| {
        t == "please"
            && tokens.len() >= i + 3
            && !PLEASE_EXCEPTIONS.contains(&tokens[i + 1].as_str())
    });
    please || will_by_deadline(tokens) || first_person_commitment(tokens)
}

/// "<someone> will <verb> ... by <deadline>" (or "'ll", or "before <deadline>").
fn will_by_deadline(tokens: &[String]) -> bool {
    let Some(will) = tokens.iter().enumerate().position(|(i, t)| {
        let future = (t == "will" && i > 0) || (t.ends_with("'ll") && t.len() > 3);
        future && tokens.get(i + 1).is_some_and(|n| n != "not")
    }) else {
        return false;
    };
    let after = &tokens[will + 1..];
    after.iter().enumerate().any(|(j, t)| {
        if t != "by" && t != "before" {
            return false;
        }
        // "by the end of the week", "before the 3rd".
        let mut next = after.get(j + 1);
        if next.is_some_and(|n| n == "the") {
            next = after.get(j + 2);
        }
        let Some(n) = next else {
            return false;
        };
        if DEADLINE_WORDS.contains(&n.as_str()) {
            return true;
        }
        // A number is a deadline only as a date or a time ("the 3rd", "5pm", "10 am"), not as
        // an amount ("grow by 5 percent").
        let follows = after.iter().skip_while(|t| *t != n).nth(1);
        n.starts_with(|c: char| c.is_ascii_digit())
            && (["st", "nd", "rd", "th", "am", "pm"]
                .iter()
                .any(|suffix| n.ends_with(suffix))
                || follows.is_some_and(|f| ["am", "pm", "o'clock"].contains(&f.as_str())))
    })
}

/// "I will send", "we'll draft": a first-person promise with a verb of doing.
fn first_person_commitment(tokens: &[String]) -> bool {
    tokens.iter().enumerate().any(|(i, t)| {
        let verb = match t.as_str() {
            "i'll" | "we'll" => tokens.get(i + 1),
            "i" | "we" if tokens.get(i + 1).is_some_and(|n| n == "will") => tokens.get(i + 2),
            _ => None,
        };
        verb.is_some_and(|v| COMMIT_VERBS.contains(&v.as_str()))
    })
}

fn contains_phrase(tokens: &[String], phrase: &[&str]) -> bool {
    tokens
        .windows(phrase.len())
        .any(|w| w.iter().zip(phrase).all(|(a, b)| a == b))
}

/// The text after the first label found at a word start, if any.
fn after_label<'a>(sentence: &'a str, labels: &[&str]) -> Option<&'a str> {
    labels
        .iter()
        .filter_map(|label| find_word_ci(sentence, label).map(|i| &sentence[i + label.len()..]))
        .next()
}

/// "TODO send the slides" / "To-do, book the room": the label without a colon at the start.
fn todo_prefix(body: &str) -> Option<&str> {
    let end = body.find(char::is_whitespace)?;
    let first = body[..end].trim_end_matches([',', ':', '-']);
    if first.eq_ignore_ascii_case("todo") || first.eq_ignore_ascii_case("to-do") {
        return Some(body[end..].trim_start_matches([' ', ',', '-']));
    }
    None
}

/// Byte index of `needle` (ASCII, lowercase) in `haystack`, compared ASCII-case-insensitively,
/// where it starts a word. Because the needle is ASCII, a match lies on char boundaries.
fn find_word_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    (0..=h.len().checked_sub(n.len())?).find(|&i| {
        h[i..i + n.len()].eq_ignore_ascii_case(n)
            && haystack[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric())
    })
}

/// Drops leading filler words ("So, okay, we decided ..." -> "we decided ...").
fn strip_openers(s: &str) -> &str {
    let mut rest = s.trim_start();
    loop {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = rest[..end].trim_end_matches([',', '.', '!', ';', '-']);
        let is_opener = OPENERS.iter().any(|o| word.eq_ignore_ascii_case(o));
        if !is_opener || end == rest.len() {
            return rest;
        }
        rest = rest[end..].trim_start();
    }
}

/// The list entry for a cue's text: openers dropped, first letter capitalized, final
/// punctuation removed. `None` when nothing but punctuation is left.
fn item_text(s: &str) -> Option<String> {
    let body = strip_openers(s.trim())
        .trim_start_matches([',', '-', ':', ';', ' '])
        .trim_end_matches(['.', '!', ',', ';', ':', ' ']);
    (!words(body).is_empty()).then(|| capitalize(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(s: &str) -> Option<String> {
        find(s).action
    }

    fn decision(s: &str) -> Option<String> {
        find(s).decision
    }

    #[test]
    fn labelled_action_items() {
        for (s, want) in [
            (
                "Action item: the design team will send the budget by Friday.",
                "The design team will send the budget by Friday",
            ),
            (
                "OK, action items: Bob books the room.",
                "Bob books the room",
            ),
            ("ACTION: update the wiki!", "Update the wiki"),
            ("Todo: fix the login bug.", "Fix the login bug"),
            ("TODO fix the login bug.", "Fix the login bug"),
            ("So, to-do, call the vendor.", "Call the vendor"),
            ("Next steps: draft the RFC.", "Draft the RFC"),
        ] {
            let c = find(s);
            assert_eq!(c.action.as_deref(), Some(want), "{s}");
            assert!(c.labelled, "{s}");
            assert_eq!(c.decision, None, "{s}");
        }
        assert_eq!(action("Action item:"), None);
        // "transaction:" contains "action:" but not at a word start.
        assert_eq!(action("The transaction: it failed twice."), None);
    }

    #[test]
    fn implicit_action_items() {
        for (s, want) in [
            (
                "Carol will review the contract by Monday.",
                "Carol will review the contract by Monday",
            ),
            (
                "I'll ship it before the 3rd.",
                "I'll ship it before the 3rd",
            ),
            ("Ann will call them by 5pm.", "Ann will call them by 5pm"),
            ("Ann will ping Raj by 10 am.", "Ann will ping Raj by 10 am"),
            ("Please send me the slides.", "Please send me the slides"),
            (
                "Dave, please update the roadmap.",
                "Dave, please update the roadmap",
            ),
            (
                "Let's make sure the demo works.",
                "Let's make sure the demo works",
            ),
            (
                "Don't forget to invite legal.",
                "Don't forget to invite legal",
            ),
            ("Okay so I will send the invite.", "I will send the invite"),
            ("We'll draft a proposal.", "We'll draft a proposal"),
            (
                "They’ll have numbers by end of week.",
                "They’ll have numbers by end of week",
            ),
        ] {
            let c = find(s);
            assert_eq!(c.action.as_deref(), Some(want), "{s}");
            assert!(!c.labelled, "{s}");
        }
        for s in [
            "It will rain by the look of it.",
            "Will you finish by Friday?",
            "Please note the room changed.",
            "Yes please.",
            "We will not finish by Friday.",
            "I'll think about it.",
            "We have a long todo list.",
            "Will finish by Friday.",
            "Yes, please do.",
            "Sales will grow by 5 percent.",
        ] {
            assert_eq!(action(s), None, "{s}");
        }
    }

    #[test]
    fn decisions() {
        for (s, want) in [
            (
                "So we decided to move the launch to May.",
                "We decided to move the launch to May",
            ),
            ("Decision: use Postgres.", "Use Postgres"),
            (
                "Okay, agreed: weekly syncs on Tuesday.",
                "Weekly syncs on Tuesday",
            ),
            ("We agreed on two sprints.", "We agreed on two sprints"),
            (
                "Let's go with the blue design.",
                "Let's go with the blue design",
            ),
            (
                "We're going to go with option B.",
                "We're going to go with option B",
            ),
            ("The budget is approved.", "The budget is approved"),
            ("We will go with Acme!", "We will go with Acme"),
        ] {
            assert_eq!(decision(s).as_deref(), Some(want), "{s}");
        }
        for s in [
            "Did we decide on a vendor?",
            "We haven't decided yet.",
            "Is it approved?",
            "It's unapproved spending.",
            "The decision was hard.",
        ] {
            assert_eq!(decision(s), None, "{s}");
        }
    }

    #[test]
    fn a_sentence_can_be_both() {
        let c = find("We agreed that Bob will send the budget by Friday.");
        assert_eq!(
            c.decision.as_deref(),
            Some("We agreed that Bob will send the budget by Friday")
        );
        assert_eq!(c.action, c.decision);
        assert!(!c.labelled);
        assert!(c.any());
        assert!(!find("Nothing to see here.").any());
    }
}
