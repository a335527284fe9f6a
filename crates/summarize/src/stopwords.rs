//! The stopword list of the extractive summarizer: English function words and meeting filler,
//! frequent in every meeting and telling about none.

use std::collections::HashSet;
use std::sync::LazyLock;

const WORDS: &str = "a about above actually after again against ago all almost also although always am an and \
     another any anybody anyone anything anyway are aren't around as ask at back be because been \
     before being below between bit both but by can can't cannot come could couldn't did didn't \
     do does doesn't doing don't done down during each else even ever every everybody everyone \
     everything few for from further get getting give go goes going gonna good got great guess \
     had hadn't has hasn't have haven't having he he'd he'll he's hello her here here's hers \
     herself hey hi him himself his how how's i i'd i'll i'm i've if in into is isn't it it'll \
     it's its itself just keep kind know let let's like little lot make many maybe me mean might \
     more most much must mustn't my myself need needs never new nice no nor not nothing now of \
     off oh ok okay on once one only or other others ought our ours ourselves out over own pretty \
     probably put quite rather really right said same say says see seem seems shall shan't she \
     she'd she'll she's should shouldn't so some somebody someone something sort still such sure \
     take talk tell than thank thanks that that's the their theirs them themselves then there \
     there's these they they'd they'll they're they've thing things think this those though \
     through to too under until up us use very want was wasn't way we we'd we'll we're we've well \
     were weren't what what's when when's where where's whether which while who who's whom why \
     why's will with won't would wouldn't yeah yes yet you you'd you'll you're you've your yours \
     yourself yourselves um uh hmm mhm ah gives gets makes takes comes wants thinks knows looks";

static SET: LazyLock<HashSet<&'static str>> = LazyLock::new(|| WORDS.split_whitespace().collect());

/// Whether a lowercased word is a stopword.
pub fn is_stopword(word: &str) -> bool {
    SET.contains(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(is_stopword("the") && is_stopword("we'll") && is_stopword("gonna"));
        assert!(!is_stopword("budget") && !is_stopword("The"));
        // Words at the ends of the source lines, where a missing space would glue two.
        for w in [
            "a", "and", "another", "been", "before", "thing", "though", "looks",
        ] {
            assert!(is_stopword(w), "{w}");
        }
        assert_eq!(SET.len(), WORDS.split_whitespace().count(), "no duplicates");
    }
}
