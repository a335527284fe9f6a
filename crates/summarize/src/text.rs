//! Plain-text helpers shared by the summarizers: sentences, words, normalized keys, clipping.
//!
//! Everything here is a pure function of its input, so the extractive summarizer built on it is
//! deterministic.

/// Abbreviations whose trailing period does not end a sentence (compared lowercased, without
/// the period). Transcription engines write these in meetings often enough to matter.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "approx", "dept",
];

/// Characters that may follow a sentence's final punctuation and still belong to it.
const CLOSERS: &[char] = &['"', '\'', ')', ']', '\u{201d}', '\u{2019}'];

/// Splits text into sentences at `.`, `!` or `?` that end a word, keeping the punctuation.
/// Words are re-joined with single spaces. Text without final punctuation is one sentence.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        current.push(word);
        if ends_sentence(word) {
            out.push(current.join(" "));
            current.clear();
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

fn ends_sentence(word: &str) -> bool {
    let bare = word.trim_end_matches(CLOSERS);
    let Some(last) = bare.chars().last() else {
        return false;
    };
    match last {
        '!' | '?' => true,
        '.' => {
            let stem = bare.trim_end_matches('.').to_lowercase();
            // "..." is a trailing-off, which ends the thought as well.
            !ABBREVIATIONS.contains(&stem.as_str()) || bare.ends_with("..")
        }
        _ => false,
    }
}

/// Lowercased words: runs of letters, digits and inner apostrophes (curly ones made straight).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        let c = if c == '\u{2019}' { '\'' } else { c };
        if c.is_alphanumeric() || (c == '\'' && !current.is_empty()) {
            current.extend(c.to_lowercase());
        } else if !current.is_empty() {
            out.push(
                std::mem::take(&mut current)
                    .trim_end_matches('\'')
                    .to_string(),
            );
        }
    }
    if !current.is_empty() {
        out.push(current.trim_end_matches('\'').to_string());
    }
    out.retain(|w| !w.is_empty());
    out
}

/// The key two items are compared by: the words of the item without its attribution (see
/// [`split_attribution`]), lowercased, apostrophes and punctuation dropped, single-spaced.
/// "Bob: Send the budget by Friday." and "send the budget, by friday" have the same key.
pub fn item_key(item: &str) -> String {
    let (_, body) = split_attribution(item);
    words(body)
        .iter()
        .map(|w| w.replace('\'', ""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The longest attribution label we recognize, in characters.
const MAX_LABEL_CHARS: usize = 40;

/// Splits `"Label: text"` into the label and the text. A label is 1 to 40 characters before the
/// first `": "`, with no sentence punctuation or colon in it; anything else has no label.
/// This is how the summarizers write who said something, so notes can be read back.
pub fn split_attribution(s: &str) -> (Option<&str>, &str) {
    if let Some(i) = s.find(": ") {
        let label = &s[..i];
        let ok = !label.trim().is_empty()
            && label.trim() == label
            && label.chars().count() <= MAX_LABEL_CHARS
            && !label.contains(['.', '!', '?', ':', '\n']);
        if ok {
            return (Some(label), s[i + 2..].trim_start());
        }
    }
    (None, s)
}

/// A speaker label made safe to write as an attribution: single-spaced, no colons, at most 40
/// characters. `None` when nothing is left.
pub fn speaker_label(speaker: &str) -> Option<String> {
    let cleaned: String = speaker
        .replace([':', '.', '!', '?'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let clipped: String = cleaned.chars().take(MAX_LABEL_CHARS).collect();
    let clipped = clipped.trim_end().to_string();
    (!clipped.is_empty()).then_some(clipped)
}

/// Collapses whitespace (newlines included) to single spaces.
pub fn single_spaced(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max_chars` characters of `s`, cut at a word boundary when there is one, with `…`
/// appended when something was cut. `max_chars` counts the `…`.
pub fn clip(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    if max_chars == 0 {
        return String::new();
    }
    let head: String = s.chars().take(max_chars - 1).collect();
    let cut = match head.rfind(' ') {
        Some(i) if i > 0 => head[..i].trim_end().to_string(),
        _ => head,
    };
    format!("{cut}…")
}

/// Uppercases the first character.
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_final_punctuation_only() {
        assert_eq!(
            sentences("We met Dr. Smith at 3.5 pm. Really?  Yes!  \"Fine.\" and then"),
            [
                "We met Dr. Smith at 3.5 pm.",
                "Really?",
                "Yes!",
                "\"Fine.\"",
                "and then"
            ]
        );
        assert_eq!(sentences("Well... maybe."), ["Well...", "maybe."]);
        assert!(sentences("   ").is_empty());
    }

    #[test]
    fn words_are_lowercased_runs() {
        assert_eq!(
            words("Bob’s plan: ship v2, 2027-01 'now'!"),
            ["bob's", "plan", "ship", "v2", "2027", "01", "now"]
        );
    }

    #[test]
    fn keys_ignore_case_punctuation_and_attribution() {
        assert_eq!(
            item_key("Bob: Send the budget, by Friday."),
            "send the budget by friday"
        );
        assert_eq!(
            item_key("send   the budget by FRIDAY"),
            "send the budget by friday"
        );
        assert_eq!(item_key("We'll ship."), "well ship");
    }

    #[test]
    fn attribution_needs_a_short_clean_label() {
        assert_eq!(
            split_attribution("Alice: hi there"),
            (Some("Alice"), "hi there")
        );
        assert_eq!(split_attribution("no label here"), (None, "no label here"));
        assert_eq!(
            split_attribution("It is 5. Note: x"),
            (None, "It is 5. Note: x")
        );
        let long = format!("{}: x", "a".repeat(41));
        assert_eq!(split_attribution(&long).0, None);
        assert_eq!(split_attribution(" Alice: x").0, None);
    }

    #[test]
    fn speaker_labels_are_made_safe() {
        assert_eq!(speaker_label("  Dr. Who:  x ").as_deref(), Some("Dr Who x"));
        assert_eq!(speaker_label(" : ").as_deref(), None);
        assert_eq!(speaker_label(&"b".repeat(50)).unwrap().len(), 40);
    }

    #[test]
    fn clip_cuts_at_words() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("one two three four", 12), "one two…");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
        assert_eq!(clip("abc", 0), "");
        assert_eq!(clip("héllo wörld", 7), "héllo…");
    }

    #[test]
    fn capitalize_first_char() {
        assert_eq!(capitalize("the team"), "The team");
        assert_eq!(capitalize("élan"), "Élan");
        assert_eq!(capitalize(""), "");
    }
}
