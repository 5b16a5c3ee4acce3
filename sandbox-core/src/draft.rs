//! Prompt-lookup drafting, speculative decoding without a second model: when the last
//! few tokens of the text so far (prompt and answer) appeared before, the tokens that
//! followed them then are a good guess at what follows now (an edited file, a quoted
//! passage, a repeated name). The guess is checked in one batch; see `runner` for how
//! each guessed position is sampled exactly as without the guess, and [`Widths`] for
//! how many guesses a step checks.

use llama_sys::TokenId;

mod width;

pub(crate) use width::{StepCosts, Widths};

/// The longest n-gram matched; longer matches are tried first.
const MAX_NGRAM: usize = 4;
/// How far back a match is looked for, in tokens: enough for any prompt in a context
/// of this size class, and a bound on the work per token.
const LOOKBACK: usize = 16_384;

/// Drafting by prompt lookup, with what the engine learnt of its batches' costs.
#[derive(Debug, Clone)]
pub(crate) struct Drafter {
    max_draft: usize,
    costs: StepCosts,
}

impl Drafter {
    /// Drafting `max_draft` tokens at most; `None` when that is 0 (off).
    pub(crate) fn new(max_draft: usize) -> Option<Self> {
        (max_draft > 0).then(|| Self {
            max_draft,
            costs: StepCosts::default(),
        })
    }

    /// A job's choice of width, starting at one token a step.
    pub(crate) fn widths(&mut self) -> Widths<'_> {
        Widths::new(self.max_draft, &mut self.costs)
    }
}

/// Exactly `k` guessed tokens for what follows `history` + `last`: the tokens that
/// followed the latest earlier place where its last 4, 3, 2 or 1 tokens stand (the
/// longest match wins), else `last` again, filled to `k` with the last guessed token.
/// A batch as wide as the step before costs little, so even a weak guess is worth its
/// place in it. The guess for a shorter `k` is this one's beginning.
pub(crate) fn guess(history: &[TokenId], last: TokenId, k: usize) -> Vec<TokenId> {
    let from = history.len().saturating_sub(LOOKBACK);
    let seq = &history[from..];
    // One pass back over the text, stopping only at copies of `last` (a search per
    // n-gram length would scan a history without a match four times: 165 µs at 16k
    // tokens, on the step's path when it checks): the latest place where the most
    // tokens agree with the text's tail wins.
    let mut best: Option<(usize, usize)> = None;
    for end in (0..seq.len()).rev() {
        if seq[end] != last {
            continue;
        }
        let mut agree = 1;
        while agree < MAX_NGRAM && agree <= end && seq[end - agree] == seq[seq.len() - agree] {
            agree += 1;
        }
        if best.is_none_or(|(a, _)| agree > a) {
            best = Some((agree, end));
            if agree == MAX_NGRAM {
                break;
            }
        }
    }
    // The text is `seq` followed by `last`; `at(i)` reads it.
    let len = seq.len() + 1;
    let at = |i: usize| if i == seq.len() { last } else { seq[i] };
    let mut guess = Vec::with_capacity(k);
    if let Some((_, end)) = best {
        guess.extend((end + 1..(end + 1 + k).min(len)).map(at));
    }
    if k > 0 {
        let pad = guess.last().copied().unwrap_or(last);
        guess.resize(k, pad);
    }
    guess
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokens_after_the_latest_match_are_the_guess() {
        // ... 5 6 7 8 9 ... 5 6 | 7 → guess 8 9 2
        let history = [1, 5, 6, 7, 8, 9, 2, 3, 5, 6];
        assert_eq!(guess(&history, 7, 3), [8, 9, 2]);
        assert_eq!(guess(&history, 7, 1), [8]);
        assert!(guess(&history, 7, 0).is_empty());
    }

    #[test]
    fn longer_matches_win_and_the_latest_one_is_used() {
        // "3 4" is followed by 10 early and by 20 later; "2 3 4" only by 10.
        let history = [2, 3, 4, 10, 11, 3, 4, 20, 21, 2, 3];
        assert_eq!(guess(&history, 4, 2), [10, 11]);
        let history = [3, 4, 10, 11, 3, 4, 20, 21, 9, 3];
        assert_eq!(guess(&history, 4, 2), [20, 21]);
        // One token matches when no two do.
        assert_eq!(guess(&[1, 8, 2, 3], 8, 2), [2, 3]);
    }

    #[test]
    fn a_guess_has_its_length_whatever_the_text_holds() {
        // Nothing matches: the last token again.
        assert_eq!(guess(&[1, 2, 3], 4, 3), [4, 4, 4]);
        assert_eq!(guess(&[], 7, 2), [7, 7]);
        // A match near the end: what followed it, then its last token again.
        assert_eq!(guess(&[1, 2, 1], 2, 4), [1, 2, 2, 2]);
        assert_eq!(guess(&[7, 7, 7], 7, 3), [7, 7, 7]);
        // A shorter guess is the longer one's beginning.
        let history = [5, 6, 7, 8, 9, 1, 5, 6];
        let long = guess(&history, 7, 8);
        for k in 1..8 {
            assert_eq!(guess(&history, 7, k), long[..k]);
        }
    }

    /// The definition, n-gram by n-gram, longest first.
    fn reference(history: &[TokenId], last: TokenId, k: usize) -> Vec<TokenId> {
        let text: Vec<TokenId> = history.iter().copied().chain([last]).collect();
        let len = text.len();
        let mut guess = Vec::new();
        for n in (1..=MAX_NGRAM).rev().filter(|&n| n < len) {
            let tail = &text[len - n..];
            if let Some(i) = (0..len - n).rev().find(|&i| &text[i..i + n] == tail) {
                guess.extend_from_slice(&text[i + n..(i + n + k).min(len)]);
                break;
            }
        }
        if k > 0 {
            let pad = guess.last().copied().unwrap_or(last);
            guess.resize(k, pad);
        }
        guess
    }

    #[test]
    fn the_one_pass_search_finds_what_the_definition_does() {
        let mut x: u64 = 7;
        let mut next = |alphabet: u64| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((x >> 33) % alphabet) as TokenId
        };
        for case in 0..2_000 {
            let alphabet = [2, 3, 5, 40][case % 4];
            let len = case % 60;
            let history: Vec<TokenId> = (0..len).map(|_| next(alphabet)).collect();
            let last = next(alphabet);
            for k in [1, 3, 8] {
                assert_eq!(
                    guess(&history, last, k),
                    reference(&history, last, k),
                    "{history:?} then {last}, k = {k}"
                );
            }
        }
    }
}
