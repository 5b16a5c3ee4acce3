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
