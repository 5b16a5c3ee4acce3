//! Runs one job on the engine thread: prefill, then sample → report → decode until a
//! limit, a stop string, end-of-generation or cancellation.

use std::time::{Duration, Instant, SystemTime};

use llama_sys::{Model, PieceDecoder, Sampler, Session};

use crate::EngineError;
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
    p: &Pending,
    expire: &dyn Fn(),
    beat: &dyn Fn(),
) -> Option<JobEvent> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let queue_wait = started.saturating_duration_since(p.submitted);
    let job = &p.job;
    if p.is_cancelled() {
        return None;
    }
    if let Some(d) = job.limits.deadline
        && queue_wait > d
    {
        return Some(JobEvent::Failed {
            error: EngineError::DeadlineExceeded(d),
        });
    }
    p.send(JobEvent::Started {
        prompt_tokens: job.tokens.len(),
    });

    let mut sampling = job.sampling.clone();
    if job.limits.ignore_eos {
        sampling.logit_bias.extend(
            model
                .info()
                .end_of_generation
                .iter()
                .map(|&t| (t, f32::NEG_INFINITY)),
        );
    }
    let mut sampler = match Sampler::new(model, &sampling) {
        Ok(s) => s,
        Err(e) => {
            return Some(JobEvent::Failed { error: e.into() });
        }
    };
    let deadline = job.limits.deadline.map(|d| p.submitted + d);
    let past_deadline = || deadline.is_some_and(|d| Instant::now() >= d);

    let mut usage = Usage {
        prompt_tokens: job.tokens.len(),
        ..Usage::default()
    };
    let mut interrupt = || {
        beat();
        p.is_cancelled() || past_deadline()
    };
    let prefill = match session.prefill(&job.tokens, &mut interrupt) {
        Ok(Some(outcome)) => {
            usage.cached_prompt_tokens = outcome.cached;
            Some(())
        }
        Ok(None) => None,
        Err(e) => {
            return Some(JobEvent::Failed { error: e.into() });
        }
    };

    let mut decoder = PieceDecoder::new(job.strip_leading_space);
    let mut stops = StopMatcher::new(&job.limits.stop);
    let mut first_token_at = None;
    let mut last_expire = Instant::now();
    let finish = if prefill.is_none() {
        if p.is_cancelled() {
            FinishReason::Cancelled
        } else {
            FinishReason::Deadline
        }
    } else {
        loop {
            beat();
            if p.is_cancelled() {
                break FinishReason::Cancelled;
            }
            if past_deadline() {
                break FinishReason::Deadline;
            }
            let token = match session.sample(&mut sampler) {
                Ok(t) => t,
                Err(e) => {
                    return Some(JobEvent::Failed { error: e.into() });
                }
            };
            first_token_at.get_or_insert_with(Instant::now);
            if !job.limits.ignore_eos && model.is_end_of_generation(token) {
                break FinishReason::EndOfGeneration;
            }
            usage.completion_tokens += 1;
            let logprob = job.logprobs.and_then(|n| session.logprobs(token, n).ok());
            let piece = model.token_bytes(token, true).unwrap_or_default();
            let (text, stopped) = match stops.push(&decoder.push(&piece)) {
                StopOutcome::Continue(t) => (t, false),
                StopOutcome::Stopped(t) => (t, true),
            };
            if !p.send(JobEvent::Token {
                id: token,
                text,
                logprob,
            }) {
                break FinishReason::Cancelled;
            }
            if stopped {
                break FinishReason::StopString;
            }
            if usage.completion_tokens >= job.max_tokens {
                break FinishReason::Length;
            }
            if let Err(e) = session.push(token) {
                return Some(JobEvent::Failed { error: e.into() });
            }
            if last_expire.elapsed() >= EXPIRE_EVERY {
                expire();
                last_expire = Instant::now();
            }
        }
    };
    if finish != FinishReason::StopString && finish != FinishReason::Cancelled {
        let tail = stops.push(&decoder.finish());
        let mut text = match tail {
            StopOutcome::Continue(t) | StopOutcome::Stopped(t) => t,
        };
        text.push_str(&stops.flush());
        if !text.is_empty() {
            p.send(JobEvent::Tail { text });
        }
    }
    let now = Instant::now();
    let first = first_token_at.unwrap_or(now);
    Some(JobEvent::Done {
        finish_reason: finish,
        usage,
        timings: Timings {
            queue_wait,
            prefill: first.saturating_duration_since(started),
            decode: now.saturating_duration_since(first),
            started_at,
            finished_at: SystemTime::now(),
        },
    })
}
