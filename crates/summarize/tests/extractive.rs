//! The extractive summarizer on scripted meetings: exact decisions, action items, summary and
//! key points; determinism; merging across windows; bounds over a thousand windows.

use chronote_assemble::Utterance;
use chronote_summarize::{
    ExtractiveSummarizer, Notes, NotesLimits, SummarizeRequest, Summarizer, render_markdown,
};

fn say(at: &str, speaker: &str, text: &str) -> Utterance {
    let parts: Vec<u64> = at.split(':').map(|p| p.parse().unwrap()).collect();
    let start_ms = (parts[0] * 3600 + parts[1] * 60 + parts[2]) * 1000;
    Utterance {
        start_ms,
        end_ms: start_ms + 5_000,
        track: speaker.to_lowercase(),
        speaker: speaker.into(),
        text: text.into(),
    }
}

fn first_window() -> Vec<Utterance> {
    vec![
        say(
            "00:00:05",
            "Alice",
            "Good morning everyone. Today we need to plan the product launch and review the marketing budget.",
        ),
        say(
            "00:00:20",
            "Bob",
            "The launch date depends on the vendor contract. The vendor contract is still waiting for legal review.",
        ),
        say("00:00:40", "Carol", "Yeah."),
        say(
            "00:01:00",
            "Alice",
            "Action item: the design team will send the budget by Friday.",
        ),
        say(
            "00:01:30",
            "Carol",
            "The marketing budget covers ads, events and the launch video.",
        ),
        say(
            "00:02:00",
            "Bob",
            "We decided to move the launch to May. That gives legal time for the vendor contract.",
        ),
        say(
            "00:02:30",
            "Alice",
            "Okay. Carol will book the venue by Monday.",
        ),
        say("00:03:00", "Carol", "Sure, I can do that."),
        say("00:03:20", "Bob", "Did we decide on the launch video?"),
        say(
            "00:03:40",
            "Alice",
            "Let's go with the short launch video. Please share the storyboard with the team.",
        ),
        say(
            "00:04:00",
            "Carol",
            "The launch video needs music rights from the vendor.",
        ),
        say("00:04:30", "Bob", "TODO check the music rights."),
    ]
}

fn request(previous: Option<Notes>, window: Vec<Utterance>) -> SummarizeRequest {
    SummarizeRequest {
        previous,
        window,
        is_final: false,
    }
}

fn second_window() -> Vec<Utterance> {
    vec![
        say(
            "00:10:05",
            "Bob",
            "The vendor contract was signed yesterday. Legal approved the vendor contract terms.",
        ),
        // A repeat of the first window's item, from someone else: the same item.
        say(
            "00:10:30",
            "Carol",
            "Action item: the design team will send the budget by Friday!",
        ),
        say(
            "00:11:00",
            "Alice",
            "The launch event needs a bigger venue for two hundred guests.",
        ),
        say(
            "00:11:40",
            "Dave",
            "I'll email the caterer about the launch event.",
        ),
        // A repeat of the first window's decision, worded with other case and punctuation.
        say(
            "00:12:10",
            "Alice",
            "So, we decided to move the launch to May.",
        ),
        say(
            "00:12:40",
            "Bob",
            "The venue for the launch event must fit the guests and the vendor booths.",
        ),
    ]
}

fn third_window() -> Vec<Utterance> {
    vec![
        say(
            "00:20:10",
            "Carol",
            "Decision: the launch event moves to the bigger venue.",
        ),
        say(
            "00:20:40",
            "Bob",
            "Please update the launch timeline for the vendor.",
        ),
        say(
            "00:21:10",
            "Alice",
            "The launch timeline now depends on the venue booking and the vendor.",
        ),
        say(
            "00:21:50",
            "Carol",
            "Let's make sure the guests get invitations by April.",
        ),
        say(
            "00:22:30",
            "Dave",
            "Catering for the launch event is booked for two hundred guests.",
        ),
    ]
}

fn first_notes() -> Notes {
    Notes {
        summary: "Bob: The launch date depends on the vendor contract. \
                  Carol: The marketing budget covers ads, events and the launch video. \
                  The launch video needs music rights from the vendor."
            .into(),
        key_points: vec![
            "Today we need to plan the product launch and review the marketing budget.".into(),
            "The vendor contract is still waiting for legal review.".into(),
            "That gives legal time for the vendor contract.".into(),
        ],
        decisions: vec![
            "We decided to move the launch to May".into(),
            "Let's go with the short launch video".into(),
        ],
        action_items: vec![
            "Alice: The design team will send the budget by Friday".into(),
            "Alice: Carol will book the venue by Monday".into(),
            "Alice: Please share the storyboard with the team".into(),
            "Bob: Check the music rights".into(),
        ],
    }
}

#[tokio::test]
async fn a_scripted_meeting_gives_exact_notes() {
    let summarizer = ExtractiveSummarizer::new();
    let notes = summarizer
        .summarize(request(None, first_window()))
        .await
        .unwrap();
    assert_eq!(notes, first_notes());
    assert_eq!(summarizer.name(), "extractive");
}

#[test]
fn the_same_input_gives_byte_identical_notes() {
    let window: Vec<Utterance> = first_window()
        .into_iter()
        .chain(second_window())
        .chain(third_window())
        .collect();
    let req = request(Some(first_notes()), window);
    let once = serde_json::to_string(&ExtractiveSummarizer::new().notes(&req)).unwrap();
    let shared = ExtractiveSummarizer::new();
    for _ in 0..20 {
        // Other meetings' calls in between must not leak into this one.
        shared.notes(&request(None, third_window()));
        assert_eq!(serde_json::to_string(&shared.notes(&req)).unwrap(), once);
    }
    // The window's order of equal start times is the caller's; a shuffled order of distinct
    // times is put back in time order.
    let mut reversed = req.clone();
    reversed.window.reverse();
    assert_eq!(
        serde_json::to_string(&shared.notes(&reversed)).unwrap(),
        once
    );
}

#[test]
fn merging_three_windows_keeps_earlier_items_and_dedupes() {
    let s = ExtractiveSummarizer::new();
    let one = s.notes(&request(None, first_window()));
    let two = s.notes(&request(Some(one.clone()), second_window()));
    let three = s.notes(&request(Some(two.clone()), third_window()));
    assert_eq!(
        two.decisions,
        [
            "We decided to move the launch to May",
            "Let's go with the short launch video",
            "Legal approved the vendor contract terms",
        ]
    );
    assert_eq!(
        three.decisions,
        [
            "We decided to move the launch to May",
            "Let's go with the short launch video",
            "Legal approved the vendor contract terms",
            "The launch event moves to the bigger venue",
        ]
    );
    assert_eq!(
        three.action_items,
        [
            "Alice: The design team will send the budget by Friday",
            "Alice: Carol will book the venue by Monday",
            "Alice: Please share the storyboard with the team",
            "Bob: Check the music rights",
            "Dave: I'll email the caterer about the launch event",
            "Bob: Please update the launch timeline for the vendor",
            "Carol: Let's make sure the guests get invitations by April",
        ]
    );
    // Six sentences at most; the two least connected to the rest of the notes went.
    assert_eq!(
        three.summary,
        "Bob: The launch date depends on the vendor contract. \
         Carol: The launch video needs music rights from the vendor. \
         Alice: The launch event needs a bigger venue for two hundred guests. \
         Bob: The venue for the launch event must fit the guests and the vendor booths. \
         Alice: The launch timeline now depends on the venue booking and the vendor. \
         Dave: Catering for the launch event is booked for two hundred guests."
    );
    assert_eq!(three.key_points, first_notes().key_points);
}

#[test]
fn small_caps_drop_the_oldest_items_and_the_least_connected_sentences() {
    let s = ExtractiveSummarizer::with_limits(NotesLimits {
        summary_sentences: 2,
        summary_per_window: 2,
        key_points: 2,
        key_points_per_window: 2,
        decisions: 3,
        action_items: 4,
        ..NotesLimits::default()
    });
    let one = s.notes(&request(None, first_window()));
    assert_eq!(one.decisions.len(), 2);
    assert_eq!(one.action_items.len(), 4);
    let two = s.notes(&request(Some(one), second_window()));
    let three = s.notes(&request(Some(two), third_window()));
    assert_eq!(
        three.decisions,
        [
            "Let's go with the short launch video",
            "Legal approved the vendor contract terms",
            "The launch event moves to the bigger venue",
        ]
    );
    assert_eq!(
        three.action_items,
        [
            "Bob: Check the music rights",
            "Dave: I'll email the caterer about the launch event",
            "Bob: Please update the launch timeline for the vendor",
            "Carol: Let's make sure the guests get invitations by April",
        ]
    );
    assert!(three.key_points.len() <= 2, "{:?}", three.key_points);
    let sentences = chronote_summarize::text::sentences(&three.summary);
    assert_eq!(sentences.len(), 2, "{}", three.summary);
}

#[test]
fn no_usable_speech_and_no_previous_gives_empty_notes() {
    let s = ExtractiveSummarizer::new();
    assert!(s.notes(&request(None, vec![])).is_empty());
    let filler = vec![
        say("00:00:01", "Alice", "Um."),
        say("00:00:03", "Bob", "Yeah, okay."),
        say("00:00:05", "Alice", "Thanks everyone."),
        say("00:00:07", "Bob", "Can you hear me?"),
    ];
    let notes = s.notes(&request(None, filler.clone()));
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(notes, Notes::default());
    // With earlier notes, nothing new leaves them as they were.
    assert_eq!(
        s.notes(&request(Some(first_notes()), vec![])),
        first_notes()
    );
    assert_eq!(
        s.notes(&request(Some(first_notes()), filler)),
        first_notes()
    );
}

#[test]
fn a_thousand_windows_stay_within_the_caps() {
    let s = ExtractiveSummarizer::new();
    let limits = s.limits().clone();
    let topics = [
        "budget", "vendor", "launch", "hiring", "security", "roadmap", "pricing",
    ];
    let mut notes: Option<Notes> = None;
    let mut largest_input = 0;
    for i in 0..1_000u64 {
        let at = i * 600;
        let topic = topics[(i % 7) as usize];
        let t = |offset: u64| {
            let s = at + offset;
            format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        };
        let window = vec![
            say(
                &t(1),
                "Alice",
                &format!(
                    "The {topic} plan number {i} needs a careful review from the {topic} group."
                ),
            ),
            say(
                &t(20),
                "Bob",
                &format!("Action item: Person {i} will file report {i} by Friday."),
            ),
            say(
                &t(40),
                "Carol",
                &format!("Decision: adopt {topic} proposal {i}."),
            ),
            say(
                &t(60),
                "Dave",
                &format!("The {topic} metrics for quarter {i} look different from the forecast."),
            ),
            // An unpunctuated monologue far longer than any item may be.
            say(&t(80), "Erin", &format!("{topic} ").repeat(2_000)),
        ];
        let req = request(notes.take(), window);
        largest_input = largest_input.max(serde_json::to_string(&req.previous).unwrap().len());
        let out = s.notes(&req);
        assert!(out.decisions.len() <= limits.decisions);
        assert!(out.action_items.len() <= limits.action_items);
        assert!(out.key_points.len() <= limits.key_points);
        assert!(out.summary.chars().count() <= limits.summary_chars);
        assert!(
            chronote_summarize::text::sentences(&out.summary).len() <= limits.summary_sentences
        );
        for item in out
            .key_points
            .iter()
            .chain(&out.decisions)
            .chain(&out.action_items)
        {
            assert!(item.chars().count() <= limits.item_chars, "{item}");
        }
        notes = Some(out);
    }
    let last = notes.unwrap();
    let want_decisions: Vec<String> = (980..1_000u64)
        .map(|i| format!("Adopt {} proposal {i}", topics[(i % 7) as usize]))
        .collect();
    assert_eq!(last.decisions, want_decisions);
    let want_actions: Vec<String> = (975..1_000u64)
        .map(|i| format!("Bob: Person {i} will file report {i} by Friday"))
        .collect();
    assert_eq!(last.action_items, want_actions);
    // The previous notes, the part of each call's input that carries history, stay small.
    assert!(
        largest_input < 24_000,
        "previous notes grew to {largest_input} bytes"
    );
}

#[test]
fn notes_render_as_markdown() {
    let md = render_markdown(&first_notes());
    assert_eq!(
        md,
        "## Summary\n\n\
         Bob: The launch date depends on the vendor contract. \
         Carol: The marketing budget covers ads, events and the launch video. \
         The launch video needs music rights from the vendor.\n\n\
         ## Key points\n\n\
         - Today we need to plan the product launch and review the marketing budget.\n\
         - The vendor contract is still waiting for legal review.\n\
         - That gives legal time for the vendor contract.\n\n\
         ## Decisions\n\n\
         - We decided to move the launch to May\n\
         - Let's go with the short launch video\n\n\
         ## Action items\n\n\
         - Alice: The design team will send the budget by Friday\n\
         - Alice: Carol will book the venue by Monday\n\
         - Alice: Please share the storyboard with the team\n\
         - Bob: Check the music rights\n"
    );
}
