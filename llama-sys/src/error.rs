use std::path::PathBuf;

/// Everything that can go wrong inside llama.cpp, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    /// llama.cpp's global backend could not be initialised.
    #[error("llama.cpp backend initialisation failed: {0}")]
    Backend(String),
    /// The model path does not exist.
    #[error("model file {} does not exist", .0.display())]
    ModelNotFound(PathBuf),
    /// llama.cpp refused the file.
    #[error(
        "llama.cpp could not load {}: not a GGUF file, an unsupported architecture, or a truncated download",
        .0.display()
    )]
    LoadFailed(PathBuf),
    /// The inference context could not be allocated.
    #[error("could not allocate an inference context of {n_ctx} tokens (not enough memory?)")]
    ContextFailed {
        /// Requested context size in tokens.
        n_ctx: u32,
    },
    /// A prompt does not fit into the context.
    #[error("{needed} tokens do not fit into the context window of {n_ctx} tokens")]
    ContextOverflow {
        /// Tokens that would have to be held.
        needed: usize,
        /// The context size.
        n_ctx: u32,
    },
    /// llama.cpp failed to evaluate a batch.
    #[error("llama.cpp failed to evaluate a batch: {0}")]
    Decode(String),
    /// The GBNF grammar did not parse.
    #[error("invalid GBNF grammar: {0}")]
    Grammar(String),
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {n_vocab} tokens")]
    InvalidToken {
        /// The offending id.
        id: crate::TokenId,
        /// Vocabulary size.
        n_vocab: u32,
    },
    /// Text passed to the tokenizer contained a NUL byte or was too long.
    #[error("text cannot be tokenized: {0}")]
    Tokenize(String),
}
