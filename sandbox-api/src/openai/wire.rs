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

/// Where one generation's time went.
pub fn timings(t: &sandbox_core::Timings) -> Timings {
    let secs = |st: SystemTime| {
        st.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    Timings {
        queue_ms: t.queue_wait.as_secs_f64() * 1e3,
        prefill_ms: t.prefill.as_secs_f64() * 1e3,
        decode_ms: t.decode.as_secs_f64() * 1e3,
        started_at: secs(t.started_at),
        finished_at: secs(t.finished_at),
    }
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
