//! What a caller submits and what it gets back.

use std::time::{Duration, SystemTime};

use llama_sys::{SamplingParams, TokenId, TokenLogprob};

use crate::EngineError;
use crate::template::ChatMessage;

/// Identifies a job; ids grow in submission order.
pub type JobId = u64;

/// The prompt of a job.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Plain text, tokenized as the model's tokenizer does (BOS added when the model
    /// uses one).
    Text(String),
    /// Ready-made token ids, used as they are.
    Tokens(Vec<TokenId>),
    /// A chat, rendered with the model's own chat template.
    Chat {
        /// The messages.
        messages: Vec<ChatMessage>,
        /// OpenAI-style tool definitions, for templates that render them.
        tools: Option<Vec<serde_json::Value>>,
    },
    /// A chat whose final message, the assistant's, is continued rather than answered:
    /// rendered without that turn's end, so the model goes on with its text (an answer
    /// cut off by a length limit, or words put in the model's mouth).
    Continue {
        /// The messages; the last one is the assistant's.
        messages: Vec<ChatMessage>,
        /// OpenAI-style tool definitions, for templates that render them.
        tools: Option<Vec<serde_json::Value>>,
    },
}

/// Per-job limits.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Most tokens to generate; `None` fills the rest of the context window.
    pub max_tokens: Option<usize>,
    /// Generation stops before the first occurrence of any of these.
    pub stop: Vec<String>,
    /// Fail the job if it waits longer than this in the queue.
    pub max_queue_wait: Option<Duration>,
    /// Wall-clock budget from submission to the last token.
    pub deadline: Option<Duration>,
    /// Keep generating past end-of-generation tokens (benchmarks).
    pub ignore_eos: bool,
}

/// A job: prompt, sampling and limits.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// What to continue.
    pub prompt: Prompt,
    /// How to pick tokens.
    pub sampling: SamplingParams,
    /// When to stop.
    pub limits: Limits,
    /// Report log-probabilities with this many alternatives per token.
    pub logprobs: Option<usize>,
}

impl JobRequest {
    /// A job with default sampling and no limits.
    pub fn new(prompt: Prompt) -> Self {
        Self {
            prompt,
            sampling: SamplingParams::default(),
            limits: Limits::default(),
            logprobs: None,
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// A stop string matched.
    StopString,
    /// `max_tokens` was reached.
    Length,
    /// The wall-clock deadline passed.
    Deadline,
    /// The job was cancelled (explicitly or by dropping its handle).
    Cancelled,
}

/// Token counts of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose evaluation was skipped because the cache held them.
    pub cached_prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Tokens guessed by prompt lookup (speculative decoding; filler that widens a guess
    /// to the last batch's size counts too), and how many of them the model then wrote:
    /// the generated tokens that cost no decoding step of their own.
    pub draft_tokens: usize,
    /// See `draft_tokens`.
    pub accepted_draft_tokens: usize,
    /// Batches in which guesses were checked (each also decodes one token that was
    /// not guessed): with `draft_tokens`, what the guessing cost.
    pub draft_checks: usize,
}

/// Where a job's time went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    /// From submission to start.
    pub queue_wait: Duration,
    /// Evaluating the (uncached part of the) prompt.
    pub prefill: Duration,
    /// Generating tokens after the first.
    pub decode: Duration,
    /// When the engine started the job.
    pub started_at: SystemTime,
    /// When the engine finished it.
    pub finished_at: SystemTime,
}

impl Timings {
    /// Prompt tokens evaluated per second.
    pub fn prefill_tokens_per_second(&self, usage: &Usage) -> f64 {
        per_second(
            usage.prompt_tokens - usage.cached_prompt_tokens,
            self.prefill,
        )
    }

    /// Tokens generated per second after the first.
    pub fn decode_tokens_per_second(&self, usage: &Usage) -> f64 {
        per_second(usage.completion_tokens.saturating_sub(1), self.decode)
    }
}

fn per_second(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// What a job reports, in order: `Queued` (maybe several times as the queue moves),
/// `Started`, any number of `Token`, maybe a `Tail`, then exactly one of `Done` or
/// `Failed`. A job cancelled or expired while waiting gets only `Failed`.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// Waiting; `position` jobs are ahead (0 = next).
    Queued {
        /// Jobs ahead of this one, counting the running one.
        position: usize,
    },
    /// The engine took the job.
    Started {
        /// Prompt length in tokens.
        prompt_tokens: usize,
    },
    /// A generated token. `text` is what became visible with it: it may be empty (an
    /// incomplete character, or text that might start a stop string) or hold text of
    /// earlier tokens.
    Token {
        /// Token id.
        id: TokenId,
        /// Newly visible text.
        text: String,
        /// Log-probabilities, when asked for.
        logprob: Option<TokenLogprob>,
    },
    /// Text held back until the end (an incomplete character, or the start of a stop
    /// string that never completed); sent just before `Done`.
    Tail {
        /// The text.
        text: String,
    },
    /// Finished.
    Done {
        /// What ended it.
        finish_reason: FinishReason,
        /// Token counts.
        usage: Usage,
        /// Time spent.
        timings: Timings,
    },
    /// Failed; nothing more comes.
    Failed {
        /// What went wrong.
        error: EngineError,
    },
}

/// A finished job, collected from its events.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The generated text.
    pub text: String,
    /// The generated tokens.
    pub tokens: Vec<TokenId>,
    /// Per-token log-probabilities, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Time spent.
    pub timings: Timings,
}
