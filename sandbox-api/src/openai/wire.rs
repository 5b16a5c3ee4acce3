//! The engine's numbers in the contract's wire types.

use std::time::{SystemTime, UNIX_EPOCH};

use sandbox_core::contract::openai::{
    LegacyLogprobs, LogprobEntry, PromptTokensDetails, Timings, TopLogprob, Usage,
};
use sandbox_core::{Engine, TokenId, TokenLogprob};
use serde_json::{Map, Value};

/// A request's token counts; `cached` adds how much of the prompt the cache held (chat
/// completions report it, legacy completions do not).
pub fn usage(u: &sandbox_core::Usage, cached: bool) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.prompt_tokens + u.completion_tokens,
        prompt_tokens_details: cached.then_some(PromptTokensDetails {
            cached_tokens: u.cached_prompt_tokens,
        }),
    }
}

/// Where the time of `generations` (a request's choices, in order, with their token
/// counts) went: the prompt as the first read it, the answers of all, the first start
/// and the last end.
pub fn timings<'a>(
    generations: impl IntoIterator<Item = (&'a sandbox_core::Usage, &'a sandbox_core::Timings)>,
) -> Timings {
    let secs = |st: SystemTime| {
        st.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let per = |ms: f64, n: usize| if n == 0 { 0.0 } else { ms / n as f64 };
    let rate = |ms: f64, n: usize| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
    let mut out = Timings::default();
    for (i, (u, t)) in generations.into_iter().enumerate() {
        if i == 0 {
            out.cache_n = u.cached_prompt_tokens;
            out.prompt_n = u.prompt_tokens.saturating_sub(u.cached_prompt_tokens);
            out.prompt_ms = t.prefill.as_secs_f64() * 1e3;
            out.queue_ms = t.queue_wait.as_secs_f64() * 1e3;
            out.started_at = secs(t.started_at);
        }
        out.predicted_n += u.completion_tokens;
        out.predicted_ms += t.decode.as_secs_f64() * 1e3;
        if u.draft_tokens > 0 {
            *out.draft_n.get_or_insert(0) += u.draft_tokens;
            *out.draft_n_accepted.get_or_insert(0) += u.accepted_draft_tokens;
        }
        out.finished_at = secs(t.finished_at);
    }
    out.prompt_per_token_ms = per(out.prompt_ms, out.prompt_n);
    out.prompt_per_second = rate(out.prompt_ms, out.prompt_n);
    out.predicted_per_token_ms = per(out.predicted_ms, out.predicted_n);
    out.predicted_per_second = rate(out.predicted_ms, out.predicted_n);
    out
}

/// A chat-format log-probability entry.
pub fn logprob(engine: &Engine, lp: &TokenLogprob) -> LogprobEntry {
    let top = |&(id, logprob): &(TokenId, f32)| TopLogprob {
        token: engine.token_text(id),
        logprob,
        bytes: engine.token_bytes(id),
    };
    LogprobEntry {
        token: engine.token_text(lp.token),
        logprob: lp.logprob,
        bytes: engine.token_bytes(lp.token),
        top_logprobs: lp.top.iter().map(top).collect(),
    }
}

/// Legacy log-probabilities of `lps`, whose text starts at character `offset` of the
/// choice.
pub fn legacy_logprobs(engine: &Engine, lps: &[TokenLogprob], offset: usize) -> LegacyLogprobs {
    let mut out = LegacyLogprobs::default();
    let mut at = offset;
    for lp in lps {
        let t = engine.token_text(lp.token);
        out.text_offset.push(at);
        at += t.chars().count();
        out.tokens.push(t);
        out.token_logprobs.push(lp.logprob);
        let mut m = Map::new();
        for &(id, l) in &lp.top {
            m.insert(engine.token_text(id), Value::from(l));
        }
        out.top_logprobs.push(m);
    }
    out
}

/// Seconds since the Unix epoch (a response's `created`).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
