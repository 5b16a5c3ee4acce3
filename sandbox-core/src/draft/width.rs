//! How many guessed tokens each step decodes with the sampled one, chosen by what the
//! guesses would have given and what a batch of that width costs by the clock.
//!
//! llama.cpp keeps one graph, so a batch of another width than the step before builds
//! it again (on an H200 about 0.6 ms with SmolLM2, 1 ms with the 7B, with
//! `llama-sys/patches`' CUDA graphs per shape), which costs more than a one-token step
//! of a small model. A batch as wide as the step before costs only its kernels: with
//! SmolLM2 on an H200 a step of 2 tokens 1.07 times one token, where the same batch
//! between one-token steps took 1.5 times, and the step after it 1.5 times again. So
//! a job decodes at one width for stretches, and changes it only when another width
//! pays clearly:
//! - every step makes the longest guess ([`Widths::longest`]) and keeps it as a
//!   shadow, whatever width it decoded: the tokens that follow tell how many of its
//!   first k guesses would have stood, for every width at once, at no device cost;
//! - the steps at one width after one at the same width time its batch, as a ratio to
//!   a one-token step's time ([`StepCosts`]); the ratios belong to the machine and
//!   the model, so they outlive the job, and each width is timed once per engine;
//! - every [`DECIDE_EVERY`] steps the job takes the width with the most tokens per
//!   unit of time, (1 + guesses that would have stood) ÷ its ratio, if it beats the
//!   present one by [`MARGIN`]. A width never timed counts as costing what the widest
//!   narrower one timed costs (a one-token step if none was): it is tried once its
//!   guesses would have paid at that price, and timed.
//!
//! Text whose guesses do not stand (a model with random weights, free writing that
//! repeats nothing) stays at one token a step and pays only the host's lookup, which
//! runs while the device decodes.

use std::collections::VecDeque;
use std::time::Duration;

use llama_sys::TokenId;

/// Steps between two choices of width: switching rebuilds graphs, so not every step.
const DECIDE_EVERY: usize = 8;
/// How much more tokens per unit of time another width must promise to be taken.
const MARGIN: f64 = 0.03;
/// The weight of the newest shadow guess in the running count of what would have
/// stood: about the last 10 guesses, so a copied passage is noticed within a few steps.
const ALPHA_GUESS: f64 = 0.1;
/// The weight of the newest step time in a running time.
const ALPHA_TIME: f64 = 0.125;
/// A step slower than this many times its running time is an outlier (the host
/// descheduled, say), kept out of it, unless [`RESEED`] come in a row: then the
/// machine got slower for good and the running time starts again.
const OUTLIER: f64 = 4.0;
/// See [`OUTLIER`].
const RESEED: usize = 3;

/// What a batch of each width the job may choose costs, as a ratio to a one-token
/// step, measured by the clock; kept by the engine from job to job.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepCosts {
    ratios: Vec<Option<Running>>,
}

impl StepCosts {
    /// The ratio for the `i`-th width; one never timed costs what the widest narrower
    /// one timed does (a batch costs no less for more tokens), 1 if none was.
    fn ratio(&self, i: usize) -> f64 {
        let timed = |j: usize| self.ratios.get(j).copied().flatten().map(|r| r.value);
        timed(i).unwrap_or_else(|| (0..i).rev().find_map(timed).unwrap_or(1.0))
    }

    fn observe(&mut self, i: usize, ratio: f64) {
        if self.ratios.len() <= i {
            self.ratios.resize(i + 1, None);
        }
        Running::observe(&mut self.ratios[i], ratio);
    }
}

/// A running mean that keeps outliers out.
#[derive(Debug, Clone, Copy)]
struct Running {
    value: f64,
    outliers: usize,
}

impl Running {
    fn observe(slot: &mut Option<Running>, x: f64) {
        let Some(r) = slot else {
            *slot = Some(Running { value: x, outliers: 0 });
            return;
        };
        if x > OUTLIER * r.value {
            r.outliers += 1;
            if r.outliers >= RESEED {
                *r = Running { value: x, outliers: 0 };
            }
            return;
        }
        r.outliers = 0;
        r.value += ALPHA_TIME * (x - r.value);
    }
}

/// A guess made at one step, resolved against the tokens that followed.
#[derive(Debug, Clone)]
struct Shadow {
    /// The text's index of the first guessed token.
    start: usize,
    guess: Vec<TokenId>,
    /// Leading guesses known to have stood.
    stood: usize,
}

/// One job's choice of width.
#[derive(Debug)]
pub(crate) struct Widths<'c> {
    /// The guess lengths the job may choose from, shortest first.
    lengths: Vec<usize>,
    /// Per length, how many of its guesses would have stood, running.
    stood: Vec<f64>,
    costs: &'c mut StepCosts,
    /// The index into `lengths` decoded now; `None`: one token a step.
    now: Option<usize>,
    shadows: VecDeque<Shadow>,
    /// A one-token step's seconds, running.
    plain: Option<Running>,
    /// The width of the step before, 0 before the first.
    last_width: usize,
    steps: usize,
}

impl<'c> Widths<'c> {
    /// Guesses of at most `max` tokens (at least 1), with batch costs from `costs`.
    pub(crate) fn new(max: usize, costs: &'c mut StepCosts) -> Self {
        let lengths = lengths(max);
        Self {
            stood: vec![0.0; lengths.len()],
            lengths,
            costs,
            now: None,
            shadows: VecDeque::new(),
            plain: None,
            last_width: 0,
            steps: 0,
        }
    }

    /// The length of the guess every step makes for its shadow.
    pub(crate) fn longest(&self) -> usize {
        self.lengths.last().copied().unwrap_or(0)
    }

    /// How many guessed tokens this step decodes (0: one token alone).
    pub(crate) fn now(&self) -> usize {
        self.now.map_or(0, |i| self.lengths[i])
    }

    /// The step's guess (of [`Self::longest`] tokens) for the text from index `start`
    /// on.
    pub(crate) fn guessed(&mut self, start: usize, guess: Vec<TokenId>) {
        self.shadows.push_back(Shadow {
            start,
            guess,
            stood: 0,
        });
    }

    /// A step of `width` tokens took `took` and left `text` (the session's cached
    /// tokens: the prompt and every token reported); chooses the width now and then.
    pub(crate) fn stepped(&mut self, width: usize, took: Duration, text: &[TokenId]) {
        self.resolve(text);
        let secs = took.as_secs_f64();
        // Only a step as wide as the one before is free of graph rebuilds.
        if width == self.last_width {
            if width == 1 {
                Running::observe(&mut self.plain, secs);
            } else if let (Some(plain), Some(i)) = (self.plain, self.index_of(width - 1)) {
                self.costs.observe(i, secs / plain.value);
            }
        }
        self.last_width = width;
        self.steps += 1;
        if self.steps.is_multiple_of(DECIDE_EVERY) {
            self.decide();
        }
    }

    fn index_of(&self, length: usize) -> Option<usize> {
        self.lengths.iter().position(|&l| l == length)
    }

    /// Counts, for every guess whose fate the text now tells, how many of its first k
    /// tokens stood, for each length k.
    fn resolve(&mut self, text: &[TokenId]) {
        let mut done = Vec::new();
        self.shadows.retain_mut(|s| {
            while let Some(&guessed) = s.guess.get(s.stood) {
                match text.get(s.start + s.stood) {
                    None => return true,
                    Some(&said) if said == guessed => s.stood += 1,
                    Some(_) => break,
                }
            }
            done.push(s.stood);
            false
        });
        for stood in done {
            for (avg, &k) in self.stood.iter_mut().zip(&self.lengths) {
                *avg += ALPHA_GUESS * (stood.min(k) as f64 - *avg);
            }
        }
    }

    /// Takes the width with the most tokens per unit of time, if it beats the present
    /// one clearly.
    fn decide(&mut self) {
        let rate = |i: Option<usize>| match i {
            None => 1.0,
            Some(i) => (1.0 + self.stood[i]) / self.costs.ratio(i),
        };
        let best = (0..self.lengths.len())
            .map(Some)
            .fold(None, |best, i| if rate(i) > rate(best) { i } else { best });
        if rate(best) > rate(self.now) * (1.0 + MARGIN) {
            self.now = best;
        }
    }
}

/// The guess lengths to choose from: batches of 2, 4, 8, … tokens, and `max` itself.
fn lengths(max: usize) -> Vec<usize> {
    let mut lengths: Vec<usize> = (1..)
        .map(|p| (1usize << p) - 1)
        .take_while(|&l| l < max)
        .collect();
    if max > 0 {
        lengths.push(max);
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's widths and its text, where token i is `next(i)` and the guess after
    /// position i is `guess(i)`.
    struct Job<'c> {
        w: Widths<'c>,
        text: Vec<TokenId>,
        next: fn(usize) -> TokenId,
        guess: fn(usize) -> Vec<TokenId>,
    }

    impl<'c> Job<'c> {
        fn new(
            max: usize,
            costs: &'c mut StepCosts,
            next: fn(usize) -> TokenId,
            guess: fn(usize) -> Vec<TokenId>,
        ) -> Self {
            Self {
                w: Widths::new(max, costs),
                text: Vec::new(),
                next,
                guess,
            }
        }

        /// `n` steps at `width`, taking `ms` each.
        fn steps(&mut self, n: usize, width: usize, ms: f64) {
            for _ in 0..n {
                let at = self.text.len();
                self.w.guessed(at + 1, (self.guess)(at + 1));
                self.text.push((self.next)(at));
                self.w.stepped(width, Duration::from_secs_f64(ms / 1e3), &self.text);
            }
        }
    }

    /// Token i of a text that never repeats.
    fn counting(i: usize) -> TokenId {
        i as TokenId
    }

    /// A guess that never stands.
    fn wrong(_: usize) -> Vec<TokenId> {
        vec![9999; 4]
    }

    /// Token i of a text every guess knows: i % 50.
    fn cycle(i: usize) -> TokenId {
        (i % 50) as TokenId
    }

    fn right(at: usize) -> Vec<TokenId> {
        (at..at + 4).map(cycle).collect()
    }

    /// Token i of 0 1 0 1 …
    fn alternating(i: usize) -> TokenId {
        (i % 2) as TokenId
    }

    /// Half the guesses would stand: 1.5 tokens a step at width 2.
    fn half(at: usize) -> Vec<TokenId> {
        vec![if at % 4 < 2 { alternating(at) } else { 7 }]
    }

    #[test]
    fn widths_are_powers_of_two_and_the_longest_allowed() {
        assert_eq!(lengths(1), [1]);
        assert_eq!(lengths(4), [1, 3, 4]);
        assert_eq!(lengths(7), [1, 3, 7]);
        assert_eq!(lengths(16), [1, 3, 7, 15, 16]);
        assert!(lengths(0).is_empty());
    }

    #[test]
    fn guesses_that_never_stand_keep_one_token_a_step() {
        let mut costs = StepCosts::default();
        let mut job = Job::new(4, &mut costs, counting, wrong);
        job.steps(200, 1, 4.0);
        assert_eq!(job.w.now(), 0);
        assert!(job.w.shadows.len() <= 1, "a guess that missed is resolved at once");
    }

    #[test]
    fn guesses_that_would_stand_are_tried_and_kept_while_their_batch_pays() {
        let mut costs = StepCosts::default();
        let mut job = Job::new(4, &mut costs, cycle, right);
        job.steps(16, 1, 4.0);
        assert_eq!(job.w.now(), 4, "untimed widths cost a plain step: the longest wins");
        // Batches of 5 cost 1.5 plain steps: 5 tokens for 1.5 beat 4 for an untimed
        // width's 1, which is tried next, found to cost 1.4 and left again.
        job.steps(8, 5, 6.0);
        assert!((job.w.costs.ratio(2) - 1.5).abs() < 1e-9);
        assert_eq!(job.w.now(), 3);
        job.steps(8, 4, 5.6);
        assert_eq!(job.w.now(), 4);
        job.steps(40, 5, 6.0);
        assert_eq!(job.w.now(), 4, "the best stays");
        assert!((job.w.costs.ratio(1) - 1.4).abs() < 1e-9);
    }

    #[test]
    fn a_width_that_costs_more_than_its_guesses_give_is_left_and_stays_known() {
        let mut costs = StepCosts::default();
        {
            let mut job = Job::new(1, &mut costs, alternating, half);
            job.steps(8, 1, 4.0);
            assert_eq!(job.w.now(), 1, "tried");
            // A CPU: a batch of 2 costs twice a token.
            job.steps(8, 2, 8.0);
            assert_eq!(job.w.now(), 0, "1.5 tokens for 2 steps' time does not pay");
        }
        assert!((costs.ratio(0) - 2.0).abs() < 0.2, "{costs:?}");
        // The next job knows the price and does not try again.
        let mut job = Job::new(1, &mut costs, alternating, half);
        job.steps(64, 1, 4.0);
        assert_eq!(job.w.now(), 0);
    }

    #[test]
    fn the_first_step_at_a_new_width_and_outliers_are_not_timed() {
        let mut costs = StepCosts::default();
        let mut job = Job::new(1, &mut costs, counting, wrong);
        job.steps(4, 1, 4.0);
        // One step of 2 after plain ones rebuilds graphs: not its price.
        job.steps(1, 2, 40.0);
        assert_eq!(job.w.costs.ratio(0), 1.0, "never timed");
        job.steps(1, 2, 5.0);
        assert!((job.w.costs.ratio(0) - 1.25).abs() < 1e-9);
        // The host was descheduled once: kept out.
        job.steps(1, 2, 50.0);
        assert!((job.w.costs.ratio(0) - 1.25).abs() < 1e-9);
    }

    #[test]
    fn an_untimed_width_costs_what_the_widest_narrower_timed_one_does() {
        let mut costs = StepCosts::default();
        assert_eq!(costs.ratio(2), 1.0);
        costs.observe(0, 1.3);
        assert_eq!(costs.ratio(0), 1.3);
        assert_eq!(costs.ratio(2), 1.3);
        costs.observe(1, 1.6);
        assert_eq!(costs.ratio(3), 1.6);
    }
}
