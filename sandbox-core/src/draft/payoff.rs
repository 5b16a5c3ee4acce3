//! Whether checking guesses pays on this machine and model, judged by the clock.
//!
//! What a check costs is not only its batch. llama.cpp keeps one graph, so a batch of
//! another size than the step before builds the graph again, and on a GPU its CUDA
//! graph is captured again over the next two one-token steps (on an H200 with the
//! 7B: a batch of 2 tokens takes 5.3 ms between one-token steps against 4.3 repeated,
//! and the one-token step after it 5.0 ms against 3.8). How much of that a stood guess
//! buys back depends on the GPU, the model and the text, so no table can say; the
//! clock can. A check and the steps after it form a span; the span paid when it gave
//! at least as many tokens as plain steps would have in its time.

use std::time::Duration;

/// Steps after a check that still carry its cost (the graph rebuilt, then captured),
/// plus one: a step waits for the device work the step before it started.
const AFTER: usize = 3;
/// Steps at a job's start left out of the plain step time (the first waits for the
/// prompt's last batch).
const WARM_UP: usize = 2;
/// The weight of the newest plain step in the running estimate.
const ALPHA: f64 = 0.125;
/// A plain step slower than this many times the estimate is an outlier (the host
/// descheduled, say), kept out of it.
const OUTLIER: f64 = 4.0;
/// Outliers in a row after which the estimate starts again from the newest step: the
/// machine got slower for good (or the first steps were too fast to stand for it).
const RESEED: usize = 3;

/// One job's judge of its checks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Payoff {
    steps: usize,
    /// Seconds per token of a plain step, once known.
    plain: Option<f64>,
    outliers: usize,
    span: Option<Span>,
}

/// Checks that follow each other closely, judged together.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    secs: f64,
    tokens: usize,
    kept: usize,
    /// Whether a check in it kept nothing, which counted as a miss already.
    missed: bool,
    left: usize,
}

impl Payoff {
    /// A step that took `took` and reported `tokens`; `kept` is how many guessed
    /// tokens stood if the step checked a guess. When this step closes a span in which
    /// some guess stood, whether the span paid; `None` otherwise: a span of which
    /// nothing stood is a miss already, an unpaid one holding such a check too (one
    /// span, one miss), and nothing is judged before a plain step's time is known.
    pub(crate) fn step(&mut self, took: Duration, tokens: usize, kept: Option<usize>) -> Option<bool> {
        self.steps += 1;
        let secs = took.as_secs_f64();
        if let Some(kept) = kept {
            let span = self.span.get_or_insert_with(Span::default);
            span.secs += secs;
            span.tokens += tokens;
            span.kept += kept;
            span.missed |= kept == 0;
            span.left = AFTER;
            return None;
        }
        if let Some(span) = &mut self.span {
            span.secs += secs;
            span.tokens += tokens;
            span.left -= 1;
            if span.left > 0 {
                return None;
            }
            let span = self.span.take()?;
            let plain = self.plain?;
            let paid = span.tokens as f64 * plain >= span.secs;
            return (span.kept > 0 && (paid || !span.missed)).then_some(paid);
        }
        if self.steps > WARM_UP && tokens > 0 {
            self.time_plain(secs / tokens as f64);
        }
        None
    }

    /// Takes a plain step's seconds per token into the running estimate.
    fn time_plain(&mut self, per_token: f64) {
        let estimate = match self.plain {
            Some(p) if per_token <= OUTLIER * p => {
                self.outliers = 0;
                p + ALPHA * (per_token - p)
            }
            Some(_) => {
                self.outliers += 1;
                if self.outliers < RESEED {
                    return;
                }
                self.outliers = 0;
                per_token
            }
            None => per_token,
        };
        self.plain = Some(estimate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn plain_steps(p: &mut Payoff, n: usize, each: Duration) {
        for _ in 0..n {
            assert_eq!(p.step(each, 1, None), None);
        }
    }

    #[test]
    fn a_span_pays_when_it_gives_more_tokens_than_plain_steps_would_in_its_time() {
        let mut p = Payoff::default();
        plain_steps(&mut p, 10, 4 * MS);
        // 1 + 3 kept in 6 ms, then three steps slowed by 1.3 ms: 7 tokens in 21.9 ms,
        // where plain steps give 5.5.
        assert_eq!(p.step(6 * MS, 4, Some(3)), None);
        assert_eq!(p.step(Duration::from_micros(5300), 1, None), None);
        assert_eq!(p.step(Duration::from_micros(5300), 1, None), None);
        assert_eq!(p.step(Duration::from_micros(5300), 1, None), Some(true));
        // One kept token does not buy back the same cost: 5 tokens in 21.9 ms.
        assert_eq!(p.step(6 * MS, 2, Some(1)), None);
        plain_steps(&mut p, 2, Duration::from_micros(5300));
        assert_eq!(p.step(Duration::from_micros(5300), 1, None), Some(false));
    }

    #[test]
    fn checks_close_together_are_judged_as_one_span() {
        let mut p = Payoff::default();
        plain_steps(&mut p, 10, 4 * MS);
        // A copied passage: every step checks, each keeps 15 of 16.
        for _ in 0..5 {
            assert_eq!(p.step(10 * MS, 16, Some(15)), None);
        }
        plain_steps(&mut p, 2, 5 * MS);
        assert_eq!(p.step(5 * MS, 1, None), Some(true));
        // The plain estimate did not take the span's steps in.
        assert_eq!(p.plain, Some(0.004));
        // A costly check, then a cheap one: alone the second would have paid (5 tokens
        // in 6 ms), together they did not (7 tokens in 46 ms).
        assert_eq!(p.step(40 * MS, 2, Some(1)), None);
        assert_eq!(p.step(3 * MS, 2, Some(1)), None);
        plain_steps(&mut p, 2, MS);
        assert_eq!(p.step(MS, 1, None), Some(false));
    }

    #[test]
    fn a_span_is_one_miss_at_most() {
        let mut p = Payoff::default();
        plain_steps(&mut p, 10, 4 * MS);
        // One check kept a token, the next none (a miss already): unpaid is no second
        // miss, but paid still ends the streak.
        assert_eq!(p.step(9 * MS, 2, Some(1)), None);
        assert_eq!(p.step(9 * MS, 1, Some(0)), None);
        plain_steps(&mut p, 3, 5 * MS);
        assert!(p.span.is_none());
        assert_eq!(p.step(5 * MS, 9, Some(8)), None);
        assert_eq!(p.step(5 * MS, 1, Some(0)), None);
        plain_steps(&mut p, 2, 4 * MS);
        assert_eq!(p.step(4 * MS, 1, None), Some(true));
    }

    #[test]
    fn nothing_is_judged_without_a_plain_step_time_or_when_nothing_stood() {
        let mut p = Payoff::default();
        // The job checks at once: no plain step timed yet.
        assert_eq!(p.step(6 * MS, 3, Some(2)), None);
        plain_steps(&mut p, 3, 4 * MS);
        assert!(p.plain.is_none(), "steps in a span are not plain ones");
        plain_steps(&mut p, 3, 4 * MS);
        // Nothing stood: the guess length's miss rule already counted it.
        assert_eq!(p.step(6 * MS, 1, Some(0)), None);
        plain_steps(&mut p, 3, 4 * MS);
        assert!(p.span.is_none());
    }

    #[test]
    fn a_slow_outlier_does_not_move_the_plain_step_time_but_a_lasting_slowdown_does() {
        let mut p = Payoff::default();
        // The first two steps wait for the prompt: a warm-up, left out.
        plain_steps(&mut p, 2, 50 * MS);
        plain_steps(&mut p, 3, 4 * MS);
        assert_eq!(p.plain, Some(0.004));
        plain_steps(&mut p, 1, 40 * MS);
        assert_eq!(p.plain, Some(0.004));
        plain_steps(&mut p, 1, 6 * MS);
        let moved = p.plain.unwrap_or_default();
        assert!((moved - 0.00425).abs() < 1e-9, "{moved}");
        plain_steps(&mut p, 2, 40 * MS);
        assert!(p.plain < Some(0.005));
        plain_steps(&mut p, 1, 40 * MS);
        assert_eq!(p.plain, Some(0.04), "three in a row start it again");
    }
}
