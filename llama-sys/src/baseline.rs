use std::time::{Duration, Instant};

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use crate::{LlamaError, Session, TokenId};

/// Timings of [`bare_greedy_decode`].
#[derive(Debug, Clone)]
pub struct BareRun {
    /// Time to evaluate the prompt.
    pub prefill: Duration,
    /// Time to generate all tokens after the prompt.
    pub decode: Duration,
    /// The generated tokens.
    pub tokens: Vec<TokenId>,
}

/// The simplest possible greedy generation loop written directly against llama-cpp-2:
/// the yardstick that benchmarks hold the engine against. It generates exactly
/// `n_tokens` tokens, ignoring end-of-generation, in `session` (whose cache is cleared
/// first, so a warm session can be reused across runs like the engine reuses its own).
pub fn bare_greedy_decode(
    session: &mut Session<'_>,
    prompt: &[TokenId],
    n_tokens: usize,
) -> Result<BareRun, LlamaError> {
    session.clear();
    let started = Instant::now();
    session.prefill(prompt, &mut || false)?;
    let prefill = started.elapsed();
    let ctx = session.context_mut();
    let mut sampler = LlamaSampler::greedy();
    let mut batch = LlamaBatch::new(1, 1);
    let mut tokens = Vec::with_capacity(n_tokens);
    let first_pos = prompt.len() as i32;
    let started = Instant::now();
    for pos in (first_pos..).take(n_tokens) {
        let token = sampler.sample(ctx, -1);
        tokens.push(token.0);
        batch.clear();
        batch
            .add(LlamaToken(token.0), pos, &[0], true)
            .map_err(|e| LlamaError::Decode(e.to_string()))?;
        ctx.decode(&mut batch)
            .map_err(|e| LlamaError::Decode(e.to_string()))?;
    }
    Ok(BareRun {
        prefill,
        decode: started.elapsed(),
        tokens,
    })
}

/// Where one prompt evaluation's time goes (see [`timed_prefill`]).
#[derive(Debug, Clone, Copy)]
pub struct PrefillPhases {
    /// Prompt tokens evaluated (those not kept from the cache).
    pub evaluated: usize,
    /// Until the last `llama_decode` returned: batch filling, graph build and
    /// allocation, input upload and kernel launches (earlier batches' GPU work too, when
    /// a batch has to wait for the one before).
    pub submit: Duration,
    /// Waiting for the device to finish after that (`llama_synchronize`).
    pub wait: Duration,
    /// Picking the first token from the logits (greedy).
    pub sample: Duration,
}

/// Evaluates `prompt` in `session` as [`Session::prefill`] does (keeping the cached
/// common prefix unless `clear`), then waits for the device and samples greedily,
/// timing each phase apart.
pub fn timed_prefill(
    session: &mut Session<'_>,
    prompt: &[TokenId],
    clear: bool,
) -> Result<PrefillPhases, LlamaError> {
    if clear {
        session.clear();
    }
    let started = Instant::now();
    let outcome = session
        .prefill(prompt, &mut || false)?
        .ok_or_else(|| LlamaError::Decode("prefill interrupted".into()))?;
    let submit = started.elapsed();
    session.context_mut().synchronize();
    let wait = started.elapsed() - submit;
    let started = Instant::now();
    session.sample(&mut crate::Sampler::greedy())?;
    Ok(PrefillPhases {
        evaluated: outcome.evaluated,
        submit,
        wait,
        sample: started.elapsed(),
    })
}

/// Time to decode `tokens` in one batch after what `session` holds, with logits for
/// each (what checking a speculative draft costs), device work included; the batch is
/// dropped from the cache again afterwards.
pub fn timed_batch(session: &mut Session<'_>, tokens: &[TokenId]) -> Result<Duration, LlamaError> {
    let base = session.cached_tokens().len();
    let started = Instant::now();
    session.push_draft(tokens)?;
    session.context_mut().synchronize();
    let took = started.elapsed();
    session.keep(base)?;
    Ok(took)
}

/// How far one batch's logits stand from decoding the same `tokens` one at a time after
/// what `session` holds: the largest absolute difference over every row and token, and
/// in how many rows the best token differs. Both are dropped from the cache afterwards.
/// A draft check reads batch rows where plain decoding reads single steps, so this is
/// how far speculative output can drift from plain output on this backend.
pub fn batch_logit_gap(
    session: &mut Session<'_>,
    tokens: &[TokenId],
) -> Result<(f32, usize), LlamaError> {
    let base = session.cached_tokens().len();
    session.push_draft(tokens)?;
    let batched: Vec<Vec<f32>> = (0..tokens.len())
        .map(|row| {
            let row = i32::try_from(row).unwrap_or(i32::MAX);
            session.context_mut().get_logits_ith(row).to_vec()
        })
        .collect();
    session.keep(base)?;
    let (mut gap, mut flips) = (0f32, 0);
    for (&token, batch_row) in tokens.iter().zip(&batched) {
        session.push(token)?;
        let single = session.context_mut().get_logits_ith(0);
        gap = single
            .iter()
            .zip(batch_row)
            .map(|(a, b)| (a - b).abs())
            .fold(gap, f32::max);
        flips += usize::from(crate::session::argmax(single) != crate::session::argmax(batch_row));
    }
    session.keep(base)?;
    Ok((gap, flips))
}
