//! Prompt-lookup drafting, speculative decoding without a second model: when the last
//! few tokens of the text so far (prompt and answer) appeared before, the tokens that
//! followed them then are a good guess at what follows now (an edited file, a quoted
//! passage, a repeated name). The guess is checked in one batch; see `runner` for how
//! each guessed position is sampled exactly as without the guess.

use llama_sys::TokenId;

mod payoff;

pub(crate) use payoff::Payoff;

/// The longest n-gram matched; longer matches are tried first.
const MAX_NGRAM: usize = 4;
/// The shortest: one token alone guesses too often to pay.
const MIN_NGRAM: usize = 2;
/// The longest streak of misses counted: guessing pauses 2^n - 1 steps after the
/// n-th, so at worst one check in 256 steps.
const MAX_MISSES: u32 = 8;
/// How far back a match is looked for, in tokens: enough for any prompt in a context
/// of this size class, and a bound on the work per token.
const LOOKBACK: usize = 16_384;

/// How long a job's next guess may be. A guess costs more the longer it is (on an
/// H200, one batch of 2 tokens takes 1.13 times one token, 9 tokens 2 times), and
/// whether guesses stand depends on the text: a copied passage keeps them for a long
/// stretch, free writing rarely past the first. So a job starts with one-token guesses,
/// doubles the length after a guess that stood whole, and after one that failed goes
/// back to what stood, plus one, rounded up to a power of two: long guesses only while
/// they keep paying, in few sizes (see [`fill`]). A miss pauses guessing for 1, 3, 7,
/// … up to 255 steps as misses follow each other, so text that prompt lookup cannot
/// predict costs few checks. A miss is a guess of which
/// nothing stood, or one whose tokens did not buy back what checking it cost by the
/// clock ([`Payoff`]); only a guess that paid ends the streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DraftLength {
    now: usize,
    max: usize,
    misses: u32,
    pause: usize,
}

impl DraftLength {
    /// Guesses of at most `max` tokens.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            now: 1.min(max),
            max,
            misses: 0,
            pause: 0,
        }
    }

    /// The length this step's guess may have (0 while guessing pauses); asked once
    /// per step.
    pub(crate) fn next(&mut self) -> usize {
        if self.pause > 0 {
            self.pause -= 1;
            return 0;
        }
        self.now
    }

    /// Learns from a guess of `drafted` tokens of which the first `kept` stood.
    pub(crate) fn update(&mut self, drafted: usize, kept: usize) {
        self.now = if kept < drafted {
            (kept + 1).next_power_of_two().min(self.max)
        } else if drafted >= self.now {
            (self.now * 2).min(self.max)
        } else {
            // Cut short by the text or the token limit: it proved no longer guess.
            self.now
        };
        if kept == 0 {
            self.miss();
        }
    }

    /// Learns whether the last guesses of which some tokens stood saved more time than
    /// they cost ([`Payoff`]): a miss if not, the end of a streak of misses if so.
    pub(crate) fn judged(&mut self, paid: bool) {
        if paid {
            self.misses = 0;
        } else {
            self.miss();
        }
    }

    fn miss(&mut self) {
        self.misses = (self.misses + 1).min(MAX_MISSES);
        self.pause = (1 << self.misses) - 1;
    }
}

/// Fills a guess up to `width` tokens with its last one. llama.cpp keeps one graph, so
/// a batch of another size than the step before builds it again, and the one-token step
/// after it too (on an H200 with the 7B about 1 ms each, with llama-sys/patches' CUDA
/// graphs per shape; 6.4 ms a check without); a guess as wide as the last one lets it
/// reuse the graph, and the filler is only a guess more (counted as guessed, and as
/// accepted when it stands). An empty guess stays empty: a one-token
/// step needs no check. Widths are powers of two but for `draft_tokens` itself and
/// where `max_tokens` leaves less room.
pub(crate) fn fill(draft: &mut Vec<TokenId>, width: usize) {
    if let Some(&last) = draft.last() {
        draft.resize(width.max(draft.len()), last);
    }
}

/// Drafts up to `max_draft` tokens by prompt lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PromptLookup {
    max_draft: usize,
}

impl PromptLookup {
    /// Drafting `max_draft` tokens at most; `None` when that is 0 (off).
    pub(crate) fn new(max_draft: usize) -> Option<Self> {
        (max_draft > 0).then_some(Self { max_draft })
    }

    /// A job's draft length, starting short.
    pub(crate) fn length(&self) -> DraftLength {
        DraftLength::new(self.max_draft)
    }

    /// The guess for what follows `history` + `last`, at most `room` tokens (possibly
    /// none).
    pub(crate) fn draft(&self, history: &[TokenId], last: TokenId, room: usize) -> Vec<TokenId> {
        let limit = self.max_draft.min(room);
        if limit == 0 {
            return Vec::new();
        }
        let from = history.len().saturating_sub(LOOKBACK);
        let seq = &history[from..];
        // The text is `seq` followed by `last`; `at(i)` reads it.
        let len = seq.len() + 1;
        let at = |i: usize| if i == seq.len() { last } else { seq[i] };
        for n in (MIN_NGRAM..=MAX_NGRAM).rev() {
            if len <= n {
                continue;
            }
            let tail = len - n;
            // The latest earlier place where the same n tokens stand.
            let found = (0..tail).rev().find(|&i| (0..n).all(|k| at(i + k) == at(tail + k)));
            if let Some(i) = found {
                let start = i + n;
                let end = (start + limit).min(len);
                if start < end {
                    return (start..end).map(at).collect();
                }
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokens_after_the_latest_match_are_the_guess() {
        let l = PromptLookup::new(3).unwrap();
        // ... 5 6 7 8 9 ... 5 6 | 7 → guess 8 9 (and no further than the text goes)
        let history = [1, 5, 6, 7, 8, 9, 2, 3, 5, 6];
        assert_eq!(l.draft(&history, 7, 10), [8, 9, 2]);
        assert_eq!(l.draft(&history, 7, 1), [8]);
        assert_eq!(l.draft(&history, 4, 10), Vec::<TokenId>::new());
        assert!(PromptLookup::new(0).is_none());
    }

    #[test]
    fn longer_matches_win_and_the_latest_one_is_used() {
        let l = PromptLookup::new(2).unwrap();
        // "3 4" is followed by 10 early and by 20 later; "2 3 4" only by 10.
        let history = [2, 3, 4, 10, 11, 3, 4, 20, 21, 2, 3];
        assert_eq!(l.draft(&history, 4, 5), [10, 11]);
        let history = [3, 4, 10, 11, 3, 4, 20, 21, 9, 3];
        assert_eq!(l.draft(&history, 4, 5), [20, 21]);
    }

    #[test]
    fn guesses_grow_while_they_stand_and_shrink_to_what_stood() {
        let mut len = PromptLookup::new(16).unwrap().length();
        assert_eq!(len.next(), 1);
        for expected in [2, 4, 8, 16, 16] {
            let drafted = len.next();
            len.update(drafted, drafted);
            assert_eq!(len.next(), expected);
        }
        len.update(16, 5);
        assert_eq!(len.next(), 8);
        // A guess shorter than allowed (the text ran out) that stood proves nothing
        // about longer ones.
        len.update(3, 3);
        assert_eq!(len.next(), 8);
        let mut small = PromptLookup::new(3).unwrap().length();
        small.update(1, 1);
        small.update(2, 2);
        assert_eq!(small.next(), 3);
        small.update(3, 3);
        assert_eq!(small.next(), 3);
    }

    #[test]
    fn misses_in_a_row_pause_guessing_longer_and_longer() {
        let mut len = PromptLookup::new(16).unwrap().length();
        let paused = |len: &mut DraftLength| (0..).take_while(|_| len.next() == 0).count();
        for expected in [1, 3, 7, 15, 31, 63, 127, 255, 255] {
            len.update(1, 0);
            // The step that ends the pause guesses again, one token long.
            assert_eq!(paused(&mut len), expected);
        }
        // A guess that stands and pays ends the streak: the next miss pauses one step
        // again.
        len.update(1, 1);
        assert_eq!(len.next(), 2);
        len.judged(true);
        len.update(2, 0);
        assert_eq!(paused(&mut len), 1);
        // A partial guess is no miss by itself; one the clock says did not pay is, and
        // the streak goes on.
        len.update(1, 1);
        len.update(2, 1);
        assert_eq!(len.next(), 2);
        len.judged(false);
        assert_eq!(paused(&mut len), 3);
        len.update(2, 1);
        len.judged(false);
        assert_eq!(paused(&mut len), 7);
        len.update(2, 0);
        assert_eq!(paused(&mut len), 15);
    }

    #[test]
    fn a_guess_is_filled_to_the_width_with_its_last_token_unless_empty() {
        let mut d = vec![4, 5];
        fill(&mut d, 4);
        assert_eq!(d, [4, 5, 5, 5]);
        fill(&mut d, 2);
        assert_eq!(d, [4, 5, 5, 5], "never shortened");
        let mut empty = Vec::new();
        fill(&mut empty, 4);
        assert!(empty.is_empty());
    }

    #[test]
    fn a_guess_never_reaches_past_the_text() {
        let l = PromptLookup::new(8).unwrap();
        // A repeating pattern: what followed the match runs into the tail itself.
        assert_eq!(l.draft(&[7, 7, 7], 7, 8), [7]);
        assert_eq!(l.draft(&[1, 2, 1], 2, 8), [1, 2]);
        assert_eq!(l.draft(&[], 7, 8), Vec::<TokenId>::new());
    }
}
