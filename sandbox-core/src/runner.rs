//! Runs one job on the engine thread: prefill, then step (sample → decode → report)
//! until a limit, a stop string, end-of-generation or cancellation, then finish (the
//! held-back tail and the timings).

use std::time::{Duration, Instant, SystemTime};

use llama_sys::{Model, PieceDecoder, Sampler, Session, TokenId};

use crate::EngineError;
use crate::draft::{self, Drafter, Widths};
use crate::job::{FinishReason, JobEvent, Timings, Usage};
use crate::queue::Pending;
use crate::stop::{StopMatcher, StopOutcome};

/// How often a running job checks whether waiting jobs have expired.
const EXPIRE_EVERY: Duration = Duration::from_millis(200);

/// Runs the job and returns its final event (`Done` or `Failed`), which the caller
/// sends once the queue has recorded the job as finished; `None` if it never started.
/// `beat` is called before every prefill batch and every sampled token.
pub(crate) fn run(
    session: &mut Session<'_>,
    model: &Model,
    p: &mut Pending,
    drafter: Option<&mut Drafter>,
    expire: &dyn Fn(),
    beat: &dyn Fn(),
) -> Option<JobEvent> {
    let clock = Clock::start(p);
    if p.is_cancelled() {
        return None;
    }
    if let Some(d) = p.job.limits.deadline
        && clock.queue_wait > d
    {
        return Some(JobEvent::Failed {
            error: EngineError::DeadlineExceeded(d),
        });
    }
    p.send(JobEvent::Started {
        prompt_tokens: p.job.tokens.len(),
    });
    let sampler = std::mem::replace(&mut p.job.sampler, Sampler::greedy());
    let mut run = Run::new(model, p, sampler, drafter.map(Drafter::widths));
    let outcome = (|| {
        let finish = if run.prefill(session, beat)? {
            run.decode(session, expire, beat)?
        } else {
            run.interruption().unwrap_or(FinishReason::Cancelled)
        };
        Ok(run.finish(finish, &clock))
    })();
    Some(outcome.unwrap_or_else(|error| JobEvent::Failed { error }))
}

/// When the job was queued and started.
struct Clock {
    started: Instant,
    started_at: SystemTime,
    queue_wait: Duration,
}

impl Clock {
    fn start(p: &Pending) -> Self {
        let started = Instant::now();
        Self {
            started,
            started_at: SystemTime::now(),
            queue_wait: started.saturating_duration_since(p.submitted),
        }
    }
}

/// A job while it runs.
struct Run<'a> {
    model: &'a Model,
    p: &'a Pending,
    sampler: Sampler,
    deadline: Option<Instant>,
    usage: Usage,
    decoder: PieceDecoder,
    stops: StopMatcher,
    first_token_at: Option<Instant>,
    /// How many guesses each step checks, when drafting is on.
    widths: Option<Widths<'a>>,
    /// Tokens in the last batch decoded (1 for a plain step).
    width: usize,
    /// A token sampled while checking a draft, to be reported by the next step.
    carried: Option<TokenId>,
}

impl<'a> Run<'a> {
    /// The job `p`, sampled by `sampler` (taken from it: built when it was prepared).
    fn new(
        model: &'a Model,
        p: &'a Pending,
        sampler: Sampler,
        widths: Option<Widths<'a>>,
    ) -> Self {
        let job = &p.job;
        Self {
            model,
            p,
            sampler,
            deadline: job.limits.deadline.map(|d| p.submitted + d),
            usage: Usage {
                prompt_tokens: job.tokens.len(),
                ..Usage::default()
            },
            decoder: PieceDecoder::new(job.strip_leading_space),
            stops: StopMatcher::new(&job.limits.stop),
            first_token_at: None,
            widths,
            width: 1,
            carried: None,
        }
    }

    /// Why the job must stop now, if it must: its client went away, or its deadline
    /// passed.
    fn interruption(&self) -> Option<FinishReason> {
        if self.p.is_cancelled() {
            Some(FinishReason::Cancelled)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(FinishReason::Deadline)
        } else {
            None
        }
    }

    /// Reads the prompt (reusing the cached prefix); false if interrupted.
    fn prefill(&mut self, session: &mut Session<'_>, beat: &dyn Fn()) -> Result<bool, EngineError> {
        let mut interrupt = || {
            beat();
            self.interruption().is_some()
        };
        Ok(match session.prefill(&self.p.job.tokens, &mut interrupt)? {
            Some(outcome) => {
                self.usage.cached_prompt_tokens = outcome.cached;
                true
            }
            None => false,
        })
    }

    /// Steps until the job ends.
    fn decode(
        &mut self,
        session: &mut Session<'_>,
        expire: &dyn Fn(),
        beat: &dyn Fn(),
    ) -> Result<FinishReason, EngineError> {
        let mut last_expire = Instant::now();
        loop {
            beat();
            if let Some(reason) = self.interruption() {
                return Ok(reason);
            }
            let started = Instant::now();
            if let Some(reason) = self.step(session)? {
                return Ok(reason);
            }
            if let Some(w) = &mut self.widths {
                w.stepped(self.width, started.elapsed(), session.cached_tokens());
            }
            if last_expire.elapsed() >= EXPIRE_EVERY {
                expire();
                last_expire = Instant::now();
            }
        }
    }

    /// Samples one token (or takes the one a draft check left), starts decoding it (with
    /// a draft after it when prompt lookup has one) and reports it; why the job ends, if
    /// a token ends it.
    ///
    /// A GPU decodes while the host goes on, so the report (text, stop strings, the
    /// client) runs while the device works, unless the token is the answer's first, may
    /// end the answer, or the report needs the logits that decoding replaces. A report that ends the answer
    /// anyway (a stop string, a client gone) takes the token back out of the cache, as
    /// plain decoding never caches the token that ends an answer.
    fn step(&mut self, session: &mut Session<'_>) -> Result<Option<FinishReason>, EngineError> {
        let token = match self.carried.take() {
            Some(t) => t,
            None => session.sample(&mut self.sampler)?,
        };
        // The first token is reported before its decode is launched: launching costs
        // host time (a graph that changed shape since the prefill cannot be replayed),
        // and the client is waiting for that token, not for the one after it.
        let overlap = self.p.job.logprobs.is_none()
            && !self.may_end(token)
            && self.first_token_at.is_some();
        if !overlap && let Some(reason) = self.report(session, token)? {
            return Ok(Some(reason));
        }
        let reported = self.usage.completion_tokens + usize::from(overlap);
        let base = session.cached_tokens().len();
        let (room, longest) = self.widths.as_ref().map_or((0, 0), |w| {
            (w.now().min(self.p.job.max_tokens - reported), w.longest())
        });
        // A step that checks guesses needs them before it decodes; one that does not
        // makes its shadow guess while the device works.
        let mut shadow = (room > 0).then(|| draft::guess(session.cached_tokens(), token, longest));
        let draft = shadow.as_ref().map_or(&[][..], |g| &g[..room]).to_vec();
        self.width = draft.len() + 1;
        if draft.is_empty() {
            session.push(token)?;
        } else {
            let mut batch = Vec::with_capacity(draft.len() + 1);
            batch.push(token);
            batch.extend_from_slice(&draft);
            session.push_draft(&batch)?;
        }
        if let Some(w) = &mut self.widths {
            let g = shadow
                .take()
                .unwrap_or_else(|| draft::guess(&session.cached_tokens()[..base], token, longest));
            w.guessed(base + 1, g);
        }
        if overlap && let Some(reason) = self.report(session, token)? {
            session.keep(base)?;
            return Ok(Some(reason));
        }
        if draft.is_empty() {
            return Ok(None);
        }
        self.check_draft(session, base, &draft)
    }

    /// Whether `token` may be the answer's last: end-of-generation, or the last one
    /// `max_tokens` allows.
    fn may_end(&self, token: TokenId) -> bool {
        let job = &self.p.job;
        (!job.limits.ignore_eos && self.model.is_end_of_generation(token))
            || self.usage.completion_tokens + 1 >= job.max_tokens
    }

    /// Samples each position of the `draft` decoded after the cache's first `base`
    /// tokens and the one before it, from its own logits exactly as plain decoding
    /// would, in order, with the same sampler (its random draws and grammar state
    /// advance once per reported token, as they would). A guess stands while the
    /// sampled token equals it; the first token that differs is kept for the next step
    /// and the rest of the guess is dropped from the cache. Greedy output is therefore
    /// the same token for token up to the difference between a batch's logits and one
    /// token's (near-ties on a CPU; on a GPU, llama.cpp's kernels move logits with the
    /// batch size), and sampled output has the same distribution: this is the standard
    /// acceptance rule for a draft that puts all its probability on one token. Filler
    /// guesses are checked the same way.
    fn check_draft(
        &mut self,
        session: &mut Session<'_>,
        base: usize,
        draft: &[TokenId],
    ) -> Result<Option<FinishReason>, EngineError> {
        self.usage.draft_tokens += draft.len();
        self.usage.draft_checks += 1;
        for (row, &guess) in draft.iter().enumerate() {
            session.use_row(row);
            let next = session.sample(&mut self.sampler)?;
            if next != guess {
                session.keep(base + 1 + row)?;
                self.carried = Some(next);
                return Ok(None);
            }
            self.usage.accepted_draft_tokens += 1;
            if let Some(reason) = self.report(session, next)? {
                // As in plain decoding, the token that ends the answer is not cached.
                session.keep(base + 1 + row)?;
                return Ok(Some(reason));
            }
        }
        session.use_row(draft.len());
        self.carried = Some(session.sample(&mut self.sampler)?);
        Ok(None)
    }

    /// Reports a sampled token (from the logits the session reads now, for its
    /// log-probabilities); why the job ends, if it ends it.
    fn report(
        &mut self,
        session: &Session<'_>,
        token: TokenId,
    ) -> Result<Option<FinishReason>, EngineError> {
        let job = &self.p.job;
        self.first_token_at.get_or_insert_with(Instant::now);
        if !job.limits.ignore_eos && self.model.is_end_of_generation(token) {
            return Ok(Some(FinishReason::EndOfGeneration));
        }
        self.usage.completion_tokens += 1;
        let logprob = job.logprobs.and_then(|n| session.logprobs(token, n).ok());
        let piece = self.model.token_bytes(token, true).unwrap_or_default();
        let (text, stopped) = match self.stops.push(&self.decoder.push(&piece)) {
            StopOutcome::Continue(t) => (t, false),
            StopOutcome::Stopped(t) => (t, true),
        };
        if !self.p.send(JobEvent::Token {
            id: token,
            text,
            logprob,
        }) {
            return Ok(Some(FinishReason::Cancelled));
        }
        if stopped {
            return Ok(Some(FinishReason::StopString));
        }
        if self.usage.completion_tokens >= job.max_tokens {
            return Ok(Some(FinishReason::Length));
        }
        Ok(None)
    }

    /// Sends the text held back (an incomplete character, a possible stop string's
    /// start) unless a stop string or the client ended the job; the final event.
    fn finish(mut self, reason: FinishReason, clock: &Clock) -> JobEvent {
        if reason != FinishReason::StopString && reason != FinishReason::Cancelled {
            let mut text = match self.stops.push(&self.decoder.finish()) {
                StopOutcome::Continue(t) | StopOutcome::Stopped(t) => t,
            };
            text.push_str(&self.stops.flush());
            if !text.is_empty() {
                self.p.send(JobEvent::Tail { text });
            }
        }
        let now = Instant::now();
        let first = self.first_token_at.unwrap_or(now);
        JobEvent::Done {
            finish_reason: reason,
            usage: self.usage,
            timings: Timings {
                queue_wait: clock.queue_wait,
                prefill: first.saturating_duration_since(clock.started),
                decode: now.saturating_duration_since(first),
                started_at: clock.started_at,
                finished_at: SystemTime::now(),
            },
        }
    }
}
