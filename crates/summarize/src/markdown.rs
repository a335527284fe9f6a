//! Notes as Markdown, for the CLI and other text output.

use crate::Notes;
use crate::text::single_spaced;

/// Renders notes as four Markdown sections: Summary, Key points, Decisions, Action items.
/// An empty section says "None". Every entry is kept on one line, so an item with a newline
/// in it cannot break the list.
pub fn render_markdown(notes: &Notes) -> String {
    let mut out = String::from("## Summary\n\n");
    let summary = single_spaced(&notes.summary);
    out.push_str(if summary.is_empty() { "None" } else { &summary });
    out.push('\n');
    for (title, items) in [
        ("Key points", &notes.key_points),
        ("Decisions", &notes.decisions),
        ("Action items", &notes.action_items),
    ] {
        out.push_str("\n## ");
        out.push_str(title);
        out.push_str("\n\n");
        let lines: Vec<String> = items
            .iter()
            .map(|i| single_spaced(i))
            .filter(|i| !i.is_empty())
            .collect();
        if lines.is_empty() {
            out.push_str("None\n");
        }
        for line in lines {
            out.push_str("- ");
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_in_order_with_none_for_empty() {
        let notes = Notes {
            summary: "Alice: We met.\nBob: Fine.".into(),
            key_points: vec!["The launch moves.".into(), "  ".into()],
            decisions: vec![],
            action_items: vec!["Alice: Send the\nbudget".into()],
        };
        assert_eq!(
            render_markdown(&notes),
            "## Summary\n\nAlice: We met. Bob: Fine.\n\n\
             ## Key points\n\n- The launch moves.\n\n\
             ## Decisions\n\nNone\n\n\
             ## Action items\n\n- Alice: Send the budget\n"
        );
        assert_eq!(
            render_markdown(&Notes::default()),
            "## Summary\n\nNone\n\n## Key points\n\nNone\n\n## Decisions\n\nNone\n\n## Action items\n\nNone\n"
        );
    }
}
