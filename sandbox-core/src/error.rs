use std::time::Duration;

pub use llama_sys::LlamaError;

/// Every way a job can be refused or fail, typed so that each front end can map it to
/// its own terms (an HTTP status, a UI message, a log line).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The queue is at capacity; the caller should retry after the estimate.
    #[error("the queue is full ({capacity} jobs waiting); retry in about {}s", retry_after.as_secs().max(1))]
    QueueFull {
        /// Queue capacity.
        capacity: usize,
        /// Estimated time until a slot frees.
        retry_after: Duration,
    },
    /// Prompt plus the requested completion do not fit into the context window.
    #[error(
        "this request needs {} tokens ({prompt_tokens} in the prompt + {max_tokens} to generate) but the context window holds {n_ctx}; shorten the prompt or lower max_tokens",
        prompt_tokens + max_tokens
    )]
    ContextOverflow {
        /// Prompt length in tokens.
        prompt_tokens: usize,
        /// Tokens requested for the completion.
        max_tokens: usize,
        /// Context window.
        n_ctx: u32,
    },
    /// The chat template refused the messages; the message is the template's own.
    #[error("{0}")]
    Template(String),
    /// The request itself is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The job waited in the queue longer than its limit allowed.
    #[error("the job waited {}s in the queue, longer than its limit of {}s", waited.as_secs(), limit.as_secs())]
    QueueTimeout {
        /// How long it waited.
        waited: Duration,
        /// Its limit.
        limit: Duration,
    },
    /// The job's wall-clock deadline passed before it could start.
    #[error("the job's deadline of {}s passed before it started", .0.as_secs_f32())]
    DeadlineExceeded(Duration),
    /// The job was cancelled before it started.
    #[error("the job was cancelled")]
    Cancelled,
    /// The machine cannot hold the model as configured (GPU memory).
    #[error("{0}")]
    Resources(String),
    /// The engine is shutting down or has (or its thread died).
    #[error("the model server is stopping; it restarts by itself, retry in a few seconds")]
    Stopped,
    /// llama.cpp failed.
    #[error(transparent)]
    Llama(#[from] std::sync::Arc<LlamaError>),
}

impl From<LlamaError> for EngineError {
    fn from(e: LlamaError) -> Self {
        Self::Llama(std::sync::Arc::new(e))
    }
}
