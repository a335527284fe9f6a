use super::*;

const SEC: u64 = 48_000;

fn span(start_ms: u64, end_ms: u64, text: &str) -> TimedText {
    TimedText {
        start_ms,
        end_ms,
        text: text.into(),
    }
}

fn seg(track: &str, seq: u64, start_s: u64, spans: Vec<TimedText>) -> SegmentText {
    SegmentText {
        track: track.into(),
        speaker: match track {
            "me" => "Alice".into(),
            "others" => "Bob".into(),
            other => other.to_uppercase(),
        },
        seq,
        start_48k: start_s * SEC,
        length_48k: 30 * SEC,
        spans,
    }
}

fn utt(start_ms: u64, end_ms: u64, track: &str, speaker: &str, text: &str) -> Utterance {
    Utterance {
        start_ms,
        end_ms,
        track: track.into(),
        speaker: speaker.into(),
        text: text.into(),
    }
}

fn texts(segments: &[SegmentText]) -> Vec<String> {
    assemble(segments, &AssembleConfig::default())
        .into_iter()
        .map(|u| u.text)
        .collect()
}

#[test]
fn spans_are_shifted_by_the_segment_start_exactly() {
    let mut s = seg("me", 7, 0, vec![span(250, 1_750, "Hello there.")]);
    // 1:23:45.678 plus a fraction of a millisecond that must floor, not round.
    s.start_48k = (5_025_678 * 48) + 47;
    let out = assemble(&[s], &AssembleConfig::default());
    assert_eq!(
        out,
        vec![utt(5_025_928, 5_027_428, "me", "Alice", "Hello there.")]
    );
}

#[test]
fn two_interleaved_tracks_come_out_in_time_order_with_their_labels() {
    let segments = vec![
        // Given out of order on purpose.
        seg(
            "others",
            0,
            0,
            vec![
                span(3_000, 5_000, "Hi Alice."),
                span(12_000, 14_000, "Sounds good."),
            ],
        ),
        seg(
            "me",
            0,
            0,
            vec![
                span(1_000, 2_500, "Hello Bob."),
                span(8_000, 10_000, "Shall we start?"),
            ],
        ),
        seg(
            "me",
            1,
            30,
            vec![span(500, 2_000, "First item is the budget.")],
        ),
        seg("others", 1, 30, vec![span(100, 400, "Okay.")]),
    ];
    let out = assemble(&segments, &AssembleConfig::default());
    assert_eq!(
        out,
        vec![
            utt(1_000, 2_500, "me", "Alice", "Hello Bob."),
            utt(3_000, 5_000, "others", "Bob", "Hi Alice."),
            utt(8_000, 10_000, "me", "Alice", "Shall we start?"),
            utt(12_000, 14_000, "others", "Bob", "Sounds good."),
            utt(30_100, 30_400, "others", "Bob", "Okay."),
            utt(30_500, 32_000, "me", "Alice", "First item is the budget."),
        ]
    );
    assert_eq!(
        render_text(&out),
        "[00:00:01] Alice: Hello Bob.\n\
         [00:00:03] Bob: Hi Alice.\n\
         [00:00:08] Alice: Shall we start?\n\
         [00:00:12] Bob: Sounds good.\n\
         [00:00:30] Bob: Okay.\n\
         [00:00:30] Alice: First item is the budget.\n"
    );
}

#[test]
fn equal_start_times_break_ties_by_track_then_seq_whatever_the_input_order() {
    // Segment 0 of "b" is 1 s long; its span is clamped to its end, 1000 ms, where segment 1
    // of "b" starts too. Track "a" also speaks at 1000 ms.
    let mut b0 = seg("b", 0, 0, vec![span(900, 5_000, "tail")]);
    b0.length_48k = SEC;
    let b1 = seg("b", 1, 1, vec![span(0, 500, "next")]);
    let a0 = seg("a", 0, 1, vec![span(0, 500, "other")]);
    let forward = assemble(
        &[a0.clone(), b0.clone(), b1.clone()],
        &AssembleConfig::default(),
    );
    let backward = assemble(&[b1, b0, a0], &AssembleConfig::default());
    assert_eq!(
        forward,
        vec![
            utt(900, 1_000, "b", "B", "tail"),
            utt(1_000, 1_500, "a", "A", "other"),
            utt(1_000, 1_500, "b", "B", "next"),
        ]
    );
    assert_eq!(forward, backward);
}

#[test]
fn spans_beyond_the_segment_are_clamped_to_it() {
    let mut s = seg(
        "me",
        0,
        60,
        vec![
            span(29_000, 45_000, "runs over"),
            span(40_000, 41_000, "past"),
        ],
    );
    s.length_48k = 30 * SEC;
    let out = assemble(&[s], &AssembleConfig::default());
    assert_eq!(
        out,
        vec![utt(89_000, 90_000, "me", "Alice", "runs over past")]
    );
}

#[test]
fn short_pauses_merge_long_pauses_and_segment_boundaries_do_not() {
    let segments = vec![
        seg(
            "me",
            0,
            0,
            vec![
                span(0, 1_000, "One"),
                span(2_500, 3_000, "two"),    // 1500 ms pause: merged
                span(4_501, 5_000, "three."), // 1501 ms pause: new utterance
                span(29_000, 30_000, "Four"),
            ],
        ),
        // Starts right where the last span ended, but in the next segment.
        seg("me", 1, 30, vec![span(0, 1_000, "five six.")]),
    ];
    let out = assemble(&segments, &AssembleConfig::default());
    assert_eq!(
        out,
        vec![
            utt(0, 3_000, "me", "Alice", "One two"),
            utt(4_501, 5_000, "me", "Alice", "three."),
            utt(29_000, 30_000, "me", "Alice", "Four"),
            utt(30_000, 31_000, "me", "Alice", "five six."),
        ]
    );
}

#[test]
fn merging_stops_at_the_maximum_utterance_length() {
    let config = AssembleConfig {
        max_utterance_ms: 3_000,
        ..AssembleConfig::default()
    };
    let s = seg(
        "me",
        0,
        0,
        vec![
            span(0, 1_000, "a"),
            span(1_000, 3_000, "b"),
            span(3_000, 3_001, "c"),
        ],
    );
    let out = assemble(&[s], &config);
    assert_eq!(
        out,
        vec![
            utt(0, 3_000, "me", "Alice", "a b"),
            utt(3_000, 3_001, "me", "Alice", "c")
        ]
    );
}

#[test]
fn whitespace_is_normalised_and_empty_spans_vanish() {
    let s = seg(
        "me",
        0,
        0,
        vec![
            span(0, 100, "  "),
            span(200, 900, "  so \t we  go \n"),
            span(5_000, 6_000, ""),
        ],
    );
    let out = assemble(&[s], &AssembleConfig::default());
    assert_eq!(out, vec![utt(200, 900, "me", "Alice", "so we go")]);
}

#[test]
fn duplicate_segments_count_once_and_the_first_wins() {
    let first = seg("me", 3, 90, vec![span(0, 1_000, "first answer")]);
    let retry = seg("me", 3, 90, vec![span(0, 1_000, "second answer")]);
    assert_eq!(texts(&[first, retry]), vec!["first answer"]);
}

#[test]
fn an_echoed_prompt_at_the_start_of_a_segment_is_dropped() {
    let segments = vec![
        seg(
            "me",
            0,
            0,
            vec![span(
                20_000,
                29_900,
                "Maria will send the budget by Friday.",
            )],
        ),
        seg(
            "me",
            1,
            30,
            vec![
                span(0, 1_200, "Send the budget by Friday."),
                span(1_500, 3_000, "Then we review it."),
            ],
        ),
    ];
    assert_eq!(
        texts(&segments),
        vec![
            "Maria will send the budget by Friday.",
            "Then we review it."
        ]
    );
}

#[test]
fn an_echo_ending_inside_a_span_keeps_the_rest_of_that_span() {
    let segments = vec![
        seg(
            "me",
            4,
            120,
            vec![span(0, 29_000, "and the quarterly numbers, look fine")],
        ),
        seg(
            "me",
            5,
            150,
            vec![span(0, 4_000, "Look — FINE! and now the roadmap.")],
        ),
    ];
    // The dash normalises to nothing and is skipped; "FINE!" matches "fine".
    assert_eq!(
        texts(&segments),
        vec![
            "and the quarterly numbers, look fine",
            "and now the roadmap."
        ]
    );
}

#[test]
fn an_echo_spread_over_several_spans_is_dropped_from_all_of_them() {
    let segments = vec![
        seg(
            "me",
            0,
            0,
            vec![span(0, 29_000, "we ship on the first of may")],
        ),
        seg(
            "me",
            1,
            30,
            vec![
                span(0, 300, "on the"),
                span(300, 700, "first of May. Great"),
                span(2_000, 3_000, "news."),
            ],
        ),
    ];
    let out = assemble(&segments, &AssembleConfig::default());
    assert_eq!(out[1], utt(30_300, 33_000, "me", "Alice", "Great news."));
}

#[test]
fn the_longest_repeated_tail_is_dropped() {
    // Both "go team" and "go team go team" are repeats of the tail; the longer one wins.
    let segments = vec![
        seg(
            "me",
            0,
            0,
            vec![span(0, 29_000, "they said go team go team")],
        ),
        seg(
            "me",
            1,
            30,
            vec![span(0, 2_000, "Go team, go team! We win.")],
        ),
    ];
    assert_eq!(
        texts(&segments),
        vec!["they said go team go team", "We win."]
    );
}

#[test]
fn a_whole_segment_that_only_echoes_vanishes() {
    let segments = vec![
        seg("me", 0, 0, vec![span(0, 29_000, "see you all next week")]),
        seg("me", 1, 30, vec![span(0, 900, "All next week.")]),
        seg("others", 0, 0, vec![span(31_000, 32_000, "Bye.")]),
    ];
    assert_eq!(texts(&segments), vec!["see you all next week", "Bye."]);
}

#[test]
fn a_single_repeated_word_is_kept() {
    let segments = vec![
        seg("me", 0, 0, vec![span(0, 29_000, "Is that right? No.")]),
        seg("me", 1, 30, vec![span(0, 2_000, "No, that is wrong.")]),
    ];
    assert_eq!(
        texts(&segments),
        vec!["Is that right? No.", "No, that is wrong."]
    );
}

#[test]
fn words_that_are_not_exactly_the_previous_tail_are_kept() {
    // Starts with words of the previous segment, but not its last words.
    let segments = vec![
        seg(
            "me",
            0,
            0,
            vec![span(0, 29_000, "send the budget by Friday")],
        ),
        seg(
            "me",
            1,
            30,
            vec![span(0, 2_000, "send the budget tomorrow instead")],
        ),
    ];
    assert_eq!(
        texts(&segments),
        vec![
            "send the budget by Friday",
            "send the budget tomorrow instead"
        ]
    );
    // The previous tail appears, but not at the start.
    let segments = vec![
        seg(
            "me",
            0,
            0,
            vec![span(0, 29_000, "send the budget by Friday")],
        ),
        seg("me", 1, 30, vec![span(0, 2_000, "yes, by Friday")]),
    ];
    assert_eq!(
        texts(&segments),
        vec!["send the budget by Friday", "yes, by Friday"]
    );
}

#[test]
fn a_repeat_spoken_after_the_echo_window_is_kept() {
    let segments = vec![
        seg("me", 0, 0, vec![span(0, 29_000, "by Friday")]),
        seg("me", 1, 30, vec![span(1_001, 2_000, "By Friday, really.")]),
    ];
    assert_eq!(texts(&segments), vec!["by Friday", "By Friday, really."]);
    let segments = vec![
        seg("me", 0, 0, vec![span(0, 29_000, "by Friday")]),
        seg("me", 1, 30, vec![span(1_000, 2_000, "By Friday, really.")]),
    ];
    assert_eq!(texts(&segments), vec!["by Friday", "really."]);
}

#[test]
fn only_the_preceding_segment_of_the_same_track_counts() {
    // Another track said it.
    let segments = vec![
        seg("others", 0, 0, vec![span(0, 29_000, "the new budget")]),
        seg("me", 1, 30, vec![span(0, 2_000, "The new budget is late.")]),
    ];
    assert_eq!(
        texts(&segments),
        vec!["the new budget", "The new budget is late."]
    );
    // Segment 1 of the track is missing (not transcribed yet, or lost).
    let segments = vec![
        seg("me", 0, 0, vec![span(0, 29_000, "the new budget")]),
        seg("me", 2, 60, vec![span(0, 2_000, "The new budget is late.")]),
    ];
    assert_eq!(
        texts(&segments),
        vec!["the new budget", "The new budget is late."]
    );
}

#[test]
fn echo_limits_are_configurable() {
    let segments = vec![
        seg("me", 0, 0, vec![span(0, 29_000, "a b c d e f g h i j")]),
        seg("me", 1, 30, vec![span(0, 2_000, "c d e f g h i j k")]),
    ];
    // Eight words is the default maximum: the 8-word tail "c..j" is dropped.
    assert_eq!(texts(&segments)[1], "k");
    let narrow = AssembleConfig {
        max_echo_words: 4,
        ..AssembleConfig::default()
    };
    // With at most 4 words compared, "c d e f" is not the 4-word tail "g h i j": kept.
    let out = assemble(&segments, &narrow);
    assert_eq!(out[1].text, "c d e f g h i j k");
    let single = AssembleConfig {
        min_echo_words: 1,
        ..AssembleConfig::default()
    };
    let yes = vec![
        seg("me", 0, 0, vec![span(0, 29_000, "Yes")]),
        seg("me", 1, 30, vec![span(0, 2_000, "yes. Go on.")]),
    ];
    assert_eq!(assemble(&yes, &single)[1].text, "Go on.");
    assert_eq!(texts(&yes)[1], "yes. Go on.");
}

#[test]
fn normalize_word_drops_case_and_punctuation() {
    assert_eq!(normalize_word("Friday."), "friday");
    assert_eq!(normalize_word("DON'T"), "dont");
    assert_eq!(normalize_word("—"), "");
    assert_eq!(normalize_word("Ärger,"), "ärger");
    assert_eq!(normalize_word("10%"), "10");
}

#[test]
fn timestamps_never_wrap_hours() {
    assert_eq!(format_timestamp(0), "00:00:00");
    assert_eq!(format_timestamp(59_999), "00:00:59");
    assert_eq!(format_timestamp(3_723_000), "01:02:03");
    assert_eq!(format_timestamp(100 * 3_600_000 + 61_000), "100:01:01");
    assert_eq!(
        render_text(&[utt(360_000_000, 360_000_500, "me", "Alice", "Still here.")]),
        "[100:00:00] Alice: Still here.\n"
    );
    assert_eq!(render_text(&[]), "");
}

#[test]
fn utterances_serialize_to_the_documented_json() {
    let json =
        serde_json::to_string(&[utt(1_000, 2_500, "me", "Alice", "Hello \"Bob\".")]).unwrap();
    assert_eq!(
        json,
        r#"[{"start_ms":1000,"end_ms":2500,"track":"me","speaker":"Alice","text":"Hello \"Bob\"."}]"#
    );
    let back: Vec<Utterance> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back,
        vec![utt(1_000, 2_500, "me", "Alice", "Hello \"Bob\".")]
    );
}

#[test]
fn prompt_tail_takes_the_last_words() {
    assert_eq!(prompt_tail("  one two\tthree  four ", 2), "three four");
    assert_eq!(prompt_tail("one two", 5), "one two");
    assert_eq!(prompt_tail("one two", 0), "");
    assert_eq!(prompt_tail("   ", 3), "");
}

fn timeline() -> Vec<Utterance> {
    vec![
        utt(0, 4_000, "me", "Alice", "a"),
        utt(599_000, 601_000, "others", "Bob", "b"),
        utt(600_000, 602_000, "me", "Alice", "c"),
        utt(1_199_999, 1_200_500, "me", "Alice", "d"),
        utt(1_200_000, 1_201_000, "others", "Bob", "e"),
        utt(1_500_000, 1_501_000, "me", "Alice", "f"),
    ]
}

#[test]
fn no_window_before_enough_contiguous_transcript() {
    let u = timeline();
    assert_eq!(next_window(&u, 0, 599_999, DEFAULT_WINDOW_MS), None);
    assert_eq!(next_window(&u, 600_000, 1_199_999, DEFAULT_WINDOW_MS), None);
    assert_eq!(next_window(&u, 0, 10_000_000, 0), None);
    assert_eq!(next_window(&u, u64::MAX - 5, u64::MAX, 10), None);
}

#[test]
fn windows_hold_the_utterances_that_start_in_them() {
    let u = timeline();
    let first = next_window(&u, 0, 600_000, DEFAULT_WINDOW_MS).unwrap();
    assert_eq!(
        first,
        Window {
            start_ms: 0,
            end_ms: 600_000,
            utterances: vec![u[0].clone(), u[1].clone()],
        }
    );
    // A backlog: contiguous far ahead, windows come one at a time.
    let second = next_window(&u, first.end_ms, 1_600_000, DEFAULT_WINDOW_MS).unwrap();
    assert_eq!(
        second,
        Window {
            start_ms: 600_000,
            end_ms: 1_200_000,
            utterances: vec![u[2].clone(), u[3].clone()],
        }
    );
    assert_eq!(
        next_window(&u, second.end_ms, 1_600_000, DEFAULT_WINDOW_MS),
        None
    );
    let last = final_window(&u, second.end_ms);
    assert_eq!(
        last,
        Window {
            start_ms: 1_200_000,
            end_ms: 1_501_000,
            utterances: vec![u[4].clone(), u[5].clone()],
        }
    );
    assert_eq!(
        final_window(&u, 2_000_000),
        Window {
            start_ms: 2_000_000,
            end_ms: 2_000_000,
            utterances: vec![],
        }
    );
}

#[test]
fn a_window_is_unchanged_by_segments_that_finish_later() {
    // Window [0, 60 s) is handed out once everything starting before 60 s is done. A segment
    // starting at 60 s that finishes afterwards must not change what the window held.
    let config = AssembleConfig::default();
    let mut done = vec![
        seg(
            "me",
            0,
            0,
            vec![span(0, 29_000, "one"), span(29_500, 30_000, "two")],
        ),
        seg("me", 1, 30, vec![span(0, 29_999, "three")]),
        seg("others", 0, 0, vec![span(10_000, 50_000, "four")]),
    ];
    for s in &mut done {
        if s.track == "others" {
            s.length_48k = 60 * SEC;
        }
    }
    let before = next_window(&assemble(&done, &config), 0, 60_000, 60_000).unwrap();
    done.push(seg(
        "me",
        2,
        60,
        vec![span(0, 500, "five"), span(600, 900, "six")],
    ));
    done.push(seg("others", 1, 60, vec![span(0, 100, "seven")]));
    let all = assemble(&done, &config);
    let after = next_window(&all, 0, 90_000, 60_000).unwrap();
    assert_eq!(before, after);
    assert_eq!(
        before
            .utterances
            .iter()
            .map(|u| u.text.as_str())
            .collect::<Vec<_>>(),
        vec!["one two", "four", "three"]
    );
    let next = final_window(&all, after.end_ms);
    assert_eq!(
        next.utterances
            .iter()
            .map(|u| u.text.as_str())
            .collect::<Vec<_>>(),
        vec!["five six", "seven"]
    );
}

/// Takes every full window, then the final one, the way the server does; returns the
/// `(start_ms, end_ms)` of each full window and the utterances of all windows in order.
fn drain_windows(
    u: &[Utterance],
    contiguous_until_ms: u64,
    window_ms: u64,
) -> (Vec<(u64, u64)>, Vec<Utterance>) {
    let (mut bounds, mut seen, mut until) = (Vec::new(), Vec::new(), 0);
    while let Some(w) = next_window(u, until, contiguous_until_ms, window_ms) {
        assert!(w.start_ms >= until, "windows go forward");
        assert!(!w.utterances.is_empty(), "an empty window was handed out");
        bounds.push((w.start_ms, w.end_ms));
        seen.extend(w.utterances);
        until = w.end_ms;
    }
    seen.extend(final_window(u, until).utterances);
    (bounds, seen)
}

#[test]
fn a_long_empty_stretch_is_skipped_not_walked_window_by_window() {
    // Speech in the first 10 minutes (20 segments of 30 s), then nothing until 10 hours, where
    // one more segment has speech 7 s in: a paused meeting, or a segment placed far along.
    let mut segments: Vec<SegmentText> = (0..20)
        .map(|i| {
            seg(
                "me",
                i,
                i * 30,
                vec![span(1_000, 20_000, &format!("part {i}"))],
            )
        })
        .collect();
    segments.push(seg(
        "me",
        20,
        36_000,
        vec![span(7_000, 9_000, "back again")],
    ));
    let u = assemble(&segments, &AssembleConfig::default());
    assert_eq!(u.len(), 21);
    let late = 36_000_000 + 7_000;
    assert_eq!(u[20].start_ms, late);

    // The recording ends 30 s after the late segment starts: one full window, the rest final.
    let (bounds, seen) = drain_windows(&u, 36_030_000, DEFAULT_WINDOW_MS);
    assert_eq!(bounds, vec![(0, 600_000)]);
    assert_eq!(seen, u, "no utterance missed or repeated");
    let last = final_window(&u, 600_000);
    assert_eq!(last.utterances, vec![u[20].clone()]);

    // The contiguous end far beyond: the next window is the grid cell holding the late
    // utterance, [10 h, 10 h 10 min), not one of the 59 empty cells before it.
    let (bounds, seen) = drain_windows(&u, 40_000_000, DEFAULT_WINDOW_MS);
    assert_eq!(bounds, vec![(0, 600_000), (36_000_000, 36_600_000)]);
    assert_eq!(seen, u);
    assert_eq!(
        next_window(&u, 600_000, 40_000_000, DEFAULT_WINDOW_MS),
        Some(Window {
            start_ms: 36_000_000,
            end_ms: 36_600_000,
            utterances: vec![u[20].clone()],
        })
    );
    // Until the contiguous end passes the late utterance, nothing is known to be there.
    assert_eq!(next_window(&u, 600_000, late, DEFAULT_WINDOW_MS), None);
    // Reached but not yet complete: wait for the cell to end.
    assert_eq!(
        next_window(&u, 600_000, 36_599_999, DEFAULT_WINDOW_MS),
        None
    );
}

#[test]
fn windows_are_bounded_by_the_transcript_not_the_timeline() {
    // One utterance every 3 hours over 30 days: 240 windows however long the timeline is.
    let u: Vec<Utterance> = (0..240u64)
        .map(|i| {
            utt(
                i * 10_800_000 + 1_234,
                i * 10_800_000 + 2_000,
                "me",
                "Alice",
                "x",
            )
        })
        .collect();
    let (bounds, seen) = drain_windows(&u, 240 * 10_800_000, DEFAULT_WINDOW_MS);
    assert_eq!(bounds.len(), 240);
    assert_eq!(seen, u);
    // No utterance at all: no window, however far the contiguous end is.
    assert_eq!(next_window(&[], 0, u64::MAX, DEFAULT_WINDOW_MS), None);
    // Near the end of the number range: no panic, no window.
    let edge = vec![utt(u64::MAX - 3, u64::MAX, "me", "Alice", "edge")];
    assert_eq!(next_window(&edge, 0, u64::MAX, 10), None);
    let w = next_window(&edge, u64::MAX - 10, u64::MAX, 3).unwrap();
    assert_eq!((w.start_ms, w.end_ms), (u64::MAX - 4, u64::MAX - 1));
}
