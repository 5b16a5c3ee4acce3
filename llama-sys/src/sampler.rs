use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;

use crate::{LlamaError, Model, TokenId};

/// Sampling settings. The defaults are llama.cpp's own.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 (or below) means greedy: always the most likely token.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens; 0 disables.
    pub top_k: u32,
    /// Nucleus sampling; 1.0 disables.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely one; 0 disables.
    pub min_p: f32,
    /// Random seed; `None` picks a fresh one.
    pub seed: Option<u32>,
    /// Multiplicative repetition penalty; 1.0 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: i32,
    /// OpenAI-style presence penalty; 0 disables.
    pub presence_penalty: f32,
    /// OpenAI-style frequency penalty; 0 disables.
    pub frequency_penalty: f32,
    /// Added to the logit of each listed token (`f32::NEG_INFINITY` bans it).
    pub logit_bias: Vec<(TokenId, f32)>,
    /// A GBNF grammar every generated token must respect (root rule `root`).
    pub grammar: Option<String>,
    /// Makes the grammar lazy: the model writes freely until one of these words
    /// appears in its output, and the grammar then holds from that word on (so it must
    /// match starting with the word). Empty with no trigger tokens: the grammar holds
    /// from the first token.
    pub grammar_triggers: Vec<String>,
    /// Tokens that set off a lazy grammar as the words do (their text is fed to it).
    pub grammar_trigger_tokens: Vec<TokenId>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            seed: None,
            repeat_penalty: 1.0,
            penalty_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            grammar: None,
            grammar_triggers: Vec::new(),
            grammar_trigger_tokens: Vec::new(),
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with nothing else applied.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }
}

/// A sampling chain built from [`SamplingParams`] for one model. Stateful: it remembers
/// the tokens it produced (penalties, grammar position).
#[derive(Debug)]
pub struct Sampler {
    pub(crate) inner: LlamaSampler,
    /// Set for plain greedy decoding (logit biases allowed, nothing stateful): the
    /// token is then the arg-max of the biased logits, read straight from the logits
    /// instead of through llama.cpp's sampler chain, which copies the whole
    /// vocabulary into a candidate array for every token.
    pub(crate) greedy_bias: Option<Vec<(TokenId, f32)>>,
    /// For a lazy grammar: the same chain without the grammar. Once triggered, a lazy
    /// grammar is fed the text from the trigger on, and a token that carried the
    /// trigger may end in text the grammar refuses; llama.cpp then throws, which
    /// through its plain C sampling call would abort the process. Such a token is
    /// accepted through the catching path instead, and the rest of the answer is
    /// written with this chain (unconstrained, as before the trigger).
    pub(crate) unconstrained: Option<LlamaSampler>,
}

// SAFETY: a llama.cpp sampler chain is heap state owned by this value alone, with no
// thread affinity (no thread-locals; the grammar sampler only reads the model's
// vocabulary, which is immutable and shared across threads as `LlamaModel` is). Moving
// it to another thread is therefore sound. It stays `!Sync`: `sample` mutates it.
unsafe impl Send for Sampler {}

impl Sampler {
    /// Plain greedy decoding, without a model: the arg-max of the logits. A placeholder
    /// where a sampler must be, and what a greedy job without biases builds anyway.
    pub fn greedy() -> Self {
        Self {
            inner: LlamaSampler::greedy(),
            greedy_bias: Some(Vec::new()),
            unconstrained: None,
        }
    }

    /// Builds the chain: logit bias, grammar, penalties, then either greedy or
    /// top-k → top-p → min-p → temperature → random draw.
    pub fn new(model: &Model, params: &SamplingParams) -> Result<Self, LlamaError> {
        let lazy = params.grammar.is_some()
            && !(params.grammar_triggers.is_empty() && params.grammar_trigger_tokens.is_empty());
        let unconstrained = if lazy {
            let plain = SamplingParams {
                grammar: None,
                ..params.clone()
            };
            Some(Self::new(model, &plain)?.inner)
        } else {
            None
        };
        let n_vocab = model.info().n_vocab as i32;
        let mut chain = Vec::new();
        if !params.logit_bias.is_empty() {
            let mut biases = Vec::with_capacity(params.logit_bias.len());
            for &(t, bias) in &params.logit_bias {
                model.check_token(t)?;
                biases.push(LlamaLogitBias::new(LlamaToken(t), bias));
            }
            chain.push(LlamaSampler::logit_bias(n_vocab, &biases));
        }
        if let Some(grammar) = &params.grammar {
            let g = if params.grammar_triggers.is_empty()
                && params.grammar_trigger_tokens.is_empty()
            {
                LlamaSampler::grammar(&model.inner, grammar, "root")
            } else {
                let mut tokens = Vec::with_capacity(params.grammar_trigger_tokens.len());
                for &t in &params.grammar_trigger_tokens {
                    model.check_token(t)?;
                    tokens.push(LlamaToken(t));
                }
                LlamaSampler::grammar_lazy(
                    &model.inner,
                    grammar,
                    "root",
                    &params.grammar_triggers,
                    &tokens,
                )
            }
            .map_err(|e| LlamaError::Grammar(format!("{e} (llama.cpp logs the parse error)")))?;
            chain.push(g);
        }
        if params.repeat_penalty != 1.0
            || params.presence_penalty != 0.0
            || params.frequency_penalty != 0.0
        {
            chain.push(LlamaSampler::penalties(
                n_vocab,
                params.penalty_last_n,
                params.repeat_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            ));
        }
        let penalties = params.repeat_penalty != 1.0
            || params.presence_penalty != 0.0
            || params.frequency_penalty != 0.0;
        let greedy_bias = (params.temperature <= 0.0 && params.grammar.is_none() && !penalties)
            .then(|| params.logit_bias.clone());
        if params.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if params.top_k > 0 {
                chain.push(LlamaSampler::top_k(params.top_k as i32));
            }
            if params.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(params.top_p, 1));
            }
            if params.min_p > 0.0 {
                chain.push(LlamaSampler::min_p(params.min_p, 1));
            }
            chain.push(LlamaSampler::temp(params.temperature));
            chain.push(LlamaSampler::dist(params.seed.unwrap_or(u32::MAX)));
        }
        Ok(Self {
            inner: LlamaSampler::chain_simple(chain),
            greedy_bias,
            unconstrained,
        })
    }
}

/// Converts a JSON Schema into a GBNF grammar (llama.cpp's converter), for output that
/// must parse as JSON matching the schema.
pub fn json_schema_to_gbnf(schema: &serde_json::Value) -> Result<String, LlamaError> {
    llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
        LlamaError::Grammar(format!(
            "the JSON schema cannot be turned into a grammar: {e}"
        ))
    })
}
