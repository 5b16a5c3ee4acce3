use std::num::NonZeroU32;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::backend::backend;
use crate::{LlamaError, Model, Sampler, TokenId};

/// How to create a [`Session`].
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// Context window in tokens (prompt + generated).
    pub n_ctx: u32,
    /// Largest number of prompt tokens evaluated in one batch.
    pub n_batch: u32,
    /// CPU threads; `None` uses every available core.
    pub n_threads: Option<u32>,
}

impl Default for SessionParams {
    fn default() -> Self {
        Self {
            n_ctx: 4096,
            n_batch: 512,
            n_threads: None,
        }
    }
}

/// What [`Session::prefill`] did with a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefillOutcome {
    /// Prompt tokens whose KV entries were reused from the previous prompt.
    pub cached: usize,
    /// Prompt tokens evaluated now.
    pub evaluated: usize,
}

/// Log-probability of a sampled token and of the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token whose log-probability was asked for.
    pub token: TokenId,
    /// Its natural-log probability under the model's raw distribution.
    pub logprob: f32,
    /// The `top_n` most likely tokens with their log-probabilities, most likely first.
    pub top: Vec<(TokenId, f32)>,
}

/// One inference context. It remembers which tokens its KV cache holds, so that a new
/// prompt only evaluates what differs from the previous one.
#[derive(Debug)]
pub struct Session<'m> {
    model: &'m Model,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    cached: Vec<TokenId>,
    n_ctx: u32,
    n_batch: u32,
    has_logits: bool,
    /// Which row of the last batch's logits sampling reads: -1 (the last) after a
    /// prefill or a push, the position chosen with [`Session::use_row`] after a draft.
    logits_row: i32,
    /// Cached tokens before the last appended batch: cutting back to this or less
    /// leaves no row of that batch, so no logits.
    batch_start: usize,
}

impl<'m> Session<'m> {
    pub(crate) fn new(model: &'m Model, params: &SessionParams) -> Result<Self, LlamaError> {
        let backend = backend()?;
        let threads = params.n_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get() as i32),
            |n| n.max(1) as i32,
        );
        let n_batch = params.n_batch.clamp(1, params.n_ctx.max(1));
        let cparams = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(params.n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx =
            model
                .inner
                .new_context(backend, cparams)
                .map_err(|_| LlamaError::ContextFailed {
                    n_ctx: params.n_ctx,
                })?;
        let n_ctx = ctx.n_ctx();
        Ok(Self {
            model,
            ctx,
            batch: LlamaBatch::new(n_batch as usize, 1),
            cached: Vec::new(),
            n_ctx,
            n_batch,
            has_logits: false,
            logits_row: -1,
            batch_start: 0,
        })
    }

    /// Context window in tokens.
    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// Runs one full prompt batch and one single-token step, then empties the cache
    /// again: the device loads its kernels, sizes its buffers and settles on its
    /// launch plans before the first real request instead of during it.
    pub fn warm_up(&mut self) -> Result<(), LlamaError> {
        let filler = self.model.info().bos.as_ref().map_or(0, |t| t.id);
        let n = (self.n_batch as usize).min(self.n_ctx as usize - 1).max(1);
        let result = self
            .prefill(&vec![filler; n], &mut || false)
            .and_then(|_| self.push(filler));
        if result.is_ok() {
            self.ctx.synchronize();
        }
        self.clear();
        result
    }

    /// Forgets everything in the KV cache.
    pub fn clear(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
        self.has_logits = false;
        self.batch_start = 0;
    }

    /// Makes the KV cache hold `prompt` and leaves the logits for its last token ready
    /// for sampling. The longest common prefix with what the cache already holds is
    /// kept; only the rest is evaluated (the last token always is, for its logits).
    ///
    /// `interrupt` is asked before each batch; when it returns true the prefill stops
    /// and `Ok(None)` is returned (what was evaluated stays cached).
    pub fn prefill(
        &mut self,
        prompt: &[TokenId],
        interrupt: &mut dyn FnMut() -> bool,
    ) -> Result<Option<PrefillOutcome>, LlamaError> {
        if prompt.is_empty() {
            return Err(LlamaError::Tokenize("the prompt is empty".into()));
        }
        if prompt.len() > self.n_ctx as usize {
            return Err(LlamaError::ContextOverflow {
                needed: prompt.len(),
                n_ctx: self.n_ctx,
            });
        }
        for &t in prompt {
            self.model.check_token(t)?;
        }
        let common = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let keep = common.min(prompt.len() - 1);
        self.truncate_cache(keep);
        self.has_logits = false;
        let mut pos = keep;
        for chunk in prompt[keep..].chunks(self.n_batch as usize) {
            if interrupt() {
                return Ok(None);
            }
            let last_chunk = pos + chunk.len() == prompt.len();
            self.batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let logits = last_chunk && i + 1 == chunk.len();
                self.batch
                    .add(LlamaToken(t), (pos + i) as i32, &[0], logits)
                    .map_err(|e| LlamaError::Decode(e.to_string()))?;
            }
            self.batch_start = pos;
            self.decode_batch()?;
            self.cached.extend_from_slice(chunk);
            pos += chunk.len();
        }
        self.has_logits = true;
        self.logits_row = -1;
        Ok(Some(PrefillOutcome {
            cached: keep,
            evaluated: prompt.len() - keep,
        }))
    }

    /// Appends one (generated) token to the cache and computes the logits that follow it.
    pub fn push(&mut self, token: TokenId) -> Result<(), LlamaError> {
        self.append(&[token])?;
        self.logits_row = -1;
        Ok(())
    }

    /// Appends several tokens in one batch (a token and the draft that may follow it)
    /// with logits after each of them; row `i` ([`Session::use_row`]) holds what follows
    /// `tokens[..=i]`. Sampling reads row 0 until told otherwise.
    pub fn push_draft(&mut self, tokens: &[TokenId]) -> Result<(), LlamaError> {
        if tokens.is_empty() || tokens.len() > self.n_batch as usize {
            return Err(LlamaError::Decode(format!(
                "a draft of {} tokens does not fit a batch of {}",
                tokens.len(),
                self.n_batch
            )));
        }
        self.append(tokens)?;
        self.logits_row = 0;
        Ok(())
    }

    /// Decodes `tokens` after the cache in one batch, with logits after each.
    fn append(&mut self, tokens: &[TokenId]) -> Result<(), LlamaError> {
        for &t in tokens {
            self.model.check_token(t)?;
        }
        if self.cached.len() + tokens.len() > self.n_ctx as usize {
            return Err(LlamaError::ContextOverflow {
                needed: self.cached.len() + tokens.len(),
                n_ctx: self.n_ctx,
            });
        }
        self.has_logits = false;
        self.batch.clear();
        let base = self.cached.len();
        self.batch_start = base;
        for (i, &t) in tokens.iter().enumerate() {
            self.batch
                .add(LlamaToken(t), (base + i) as i32, &[0], true)
                .map_err(|e| LlamaError::Decode(e.to_string()))?;
        }
        self.decode_batch()?;
        self.cached.extend_from_slice(tokens);
        self.has_logits = true;
        Ok(())
    }

    /// Makes sampling read row `row` of the last [`Session::push_draft`].
    pub fn use_row(&mut self, row: usize) {
        self.logits_row = i32::try_from(row).unwrap_or(i32::MAX);
    }

    /// Forgets the cached tokens past the first `len` (a draft's rejected tail); the
    /// logits of the rows kept stay readable. Fails, leaving the cache empty, on a
    /// model whose cache cannot drop a tail (recurrent ones).
    pub fn keep(&mut self, len: usize) -> Result<(), LlamaError> {
        let before = self.cached.len();
        self.truncate_cache(len);
        if len <= self.batch_start {
            self.has_logits = false;
        }
        if self.cached.len() == len.min(before) {
            Ok(())
        } else {
            Err(LlamaError::Decode(
                "this model's cache cannot drop a draft".into(),
            ))
        }
    }

    /// The tokens the cache holds, in order (a prompt lookup's history).
    pub fn cached_tokens(&self) -> &[TokenId] {
        &self.cached
    }

    /// Samples the next token from the current logits (and lets the sampler record it).
    pub fn sample(&mut self, sampler: &mut Sampler) -> Result<TokenId, LlamaError> {
        if !self.has_logits {
            return Err(LlamaError::Decode(
                "no logits: prefill or push a token first".into(),
            ));
        }
        if let Some(bias) = &sampler.greedy_bias {
            return Ok(biased_argmax(
                self.ctx.get_logits_ith(self.logits_row),
                bias,
            ));
        }
        if sampler.unconstrained.is_some() {
            return Ok(self.sample_lazy(sampler));
        }
        Ok(sampler.inner.sample(&self.ctx, self.logits_row).0)
    }

    /// Sampling with a lazy grammar: the chain picks the token, and it is accepted
    /// through the call that catches llama.cpp's exceptions (see
    /// `Sampler::unconstrained`). A refused token ends the grammar.
    fn sample_lazy(&mut self, sampler: &mut Sampler) -> TokenId {
        let mut candidates = self.ctx.token_data_array_ith(self.logits_row);
        candidates.apply_sampler(&mut sampler.inner);
        let token = candidates
            .selected_token()
            .unwrap_or_else(|| LlamaToken(self.model.info().eos.as_ref().map_or(0, |t| t.id)));
        let refused = sampler.inner.try_accept(token).is_err();
        if let Some(plain) = &mut sampler.unconstrained {
            // Kept in step, so that penalties still see the whole answer after a swap.
            plain.accept(token);
        }
        if refused && let Some(plain) = sampler.unconstrained.take() {
            sampler.inner = plain;
        }
        token.0
    }

    /// Log-probabilities of `token` and of the `top_n` most likely tokens, from the raw
    /// (unsampled) distribution of the current logits.
    pub fn logprobs(&self, token: TokenId, top_n: usize) -> Result<TokenLogprob, LlamaError> {
        if !self.has_logits {
            return Err(LlamaError::Decode(
                "no logits: prefill or push a token first".into(),
            ));
        }
        self.model.check_token(token)?;
        let logits = self.ctx.get_logits_ith(self.logits_row);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln() + max;
        let mut top: Vec<(TokenId, f32)> = Vec::with_capacity(top_n);
        if top_n > 0 {
            let mut idx: Vec<usize> = (0..logits.len()).collect();
            let n = top_n.min(idx.len());
            idx.select_nth_unstable_by(n - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
            idx.truncate(n);
            idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            top.extend(idx.into_iter().map(|i| (i as TokenId, logits[i] - log_sum)));
        }
        Ok(TokenLogprob {
            token,
            logprob: logits[token as usize] - log_sum,
            top,
        })
    }

    /// The raw context, for the baseline loop in this crate only.
    pub(crate) fn context_mut(&mut self) -> &mut LlamaContext<'m> {
        &mut self.ctx
    }

    fn truncate_cache(&mut self, keep: usize) {
        if keep >= self.cached.len() {
            return;
        }
        // A decode may still run on the device (the engine reports a token while it
        // decodes): the cache changes only once it is done.
        self.ctx.synchronize();
        let removed = u32::try_from(keep)
            .ok()
            .and_then(|p0| self.ctx.clear_kv_cache_seq(Some(0), Some(p0), None).ok())
            .unwrap_or(false);
        if removed {
            self.cached.truncate(keep);
        } else {
            // A partial removal is not possible for this cache type: start over.
            self.clear();
        }
    }

    fn decode_batch(&mut self) -> Result<(), LlamaError> {
        self.ctx.decode(&mut self.batch).map_err(|e| {
            // The cache may now hold part of the batch: drop it so the bookkeeping
            // stays true.
            self.ctx.clear_kv_cache();
            self.cached.clear();
            self.has_logits = false;
            LlamaError::Decode(e.to_string())
        })
    }
}

/// The most likely token after adding `bias` (ties go to the lowest id, as llama.cpp's
/// greedy sampler does).
fn biased_argmax(logits: &[f32], bias: &[(TokenId, f32)]) -> TokenId {
    if bias.is_empty() {
        return argmax(logits) as TokenId;
    }
    let mut biased = logits.to_vec();
    for &(t, b) in bias {
        if let Some(l) = biased.get_mut(t as usize) {
            *l += b;
        }
    }
    argmax(&biased) as TokenId
}

/// The index of the largest value, the first of equal ones; NaN never wins, and 0 when
/// nothing beats minus infinity. It runs between two decodes with nothing to hide it
/// (a GPU waits), so it is written to vectorise: each block's maximum in independent
/// lanes, then one scan of the block that holds the first overall maximum.
pub(crate) fn argmax(values: &[f32]) -> usize {
    const BLOCK: usize = 1024;
    const LANES: usize = 32;
    let block_max = |block: &[f32]| {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let chunks = block.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (m, &v) in lanes.iter_mut().zip(chunk) {
                *m = m.max(v);
            }
        }
        rest.iter()
            .chain(&lanes)
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    };
    let mut best = (f32::NEG_INFINITY, 0usize);
    for (i, block) in values.chunks(BLOCK).enumerate() {
        let m = block_max(block);
        if m > best.0 {
            best = (m, i);
        }
    }
    if best.0 == f32::NEG_INFINITY {
        return 0;
    }
    let start = best.1 * BLOCK;
    values[start..]
        .iter()
        .position(|&v| v == best.0)
        .map_or(0, |i| start + i)
}

#[cfg(test)]
mod tests {
    use super::{argmax, biased_argmax};

    /// The plain loop the vectorised one must agree with.
    fn reference(values: &[f32]) -> usize {
        let mut best = (f32::NEG_INFINITY, 0usize);
        for (i, &v) in values.iter().enumerate() {
            if v > best.0 {
                best = (v, i);
            }
        }
        best.1
    }

    #[test]
    fn argmax_agrees_with_the_plain_loop() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in [0, 1, 31, 32, 33, 1023, 1024, 1025, 32_768, 49_152, 50_001] {
            for case in 0..6 {
                // Few distinct values, so ties across lanes and blocks are common.
                let mut v: Vec<f32> = (0..len).map(|_| (next() % 50) as f32 - 25.0).collect();
                match case {
                    1 => v.iter_mut().for_each(|x| *x = f32::NEG_INFINITY),
                    2 => v.iter_mut().step_by(3).for_each(|x| *x = f32::NAN),
                    3 => v.iter_mut().for_each(|x| *x = f32::NAN),
                    4 if len > 0 => {
                        let i = next() as usize % len;
                        v[i] = f32::INFINITY;
                    }
                    5 => v.iter_mut().for_each(|x| *x = 7.0),
                    _ => {}
                }
                assert_eq!(argmax(&v), reference(&v), "length {len}, case {case}");
            }
        }
    }

    #[test]
    fn argmax_honours_bias_and_ties() {
        let logits = [0.5, 2.0, 2.0, -1.0];
        assert_eq!(biased_argmax(&logits, &[]), 1);
        assert_eq!(biased_argmax(&logits, &[(1, f32::NEG_INFINITY)]), 2);
        assert_eq!(biased_argmax(&logits, &[(3, 10.0)]), 3);
    }
}
