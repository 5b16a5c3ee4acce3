//! The one crate that touches llama.cpp.
//!
//! Everything above this crate sees a small safe API: [`Model`] (a loaded GGUF with its
//! metadata and tokenizer), [`Session`] (an inference context whose KV cache keeps the
//! longest common prefix between consecutive prompts), [`Sampler`] (a configurable
//! sampling chain, optionally constrained by a GBNF grammar) and [`PieceDecoder`]
//! (streaming detokenization that never splits a UTF-8 character).
//!
//! llama.cpp types never appear in this API: tokens are plain [`TokenId`]s and every
//! failure is a [`LlamaError`].

#![warn(missing_docs)]

mod backend;
mod baseline;
mod error;
mod gpu;
mod model;
mod quantize;
mod sampler;
mod session;
mod utf8;

pub use backend::{cuda_op_fusion, set_cuda_op_fusion};
pub use baseline::{
    BareRun, PrefillPhases, bare_greedy_decode, batch_logit_gap, timed_batch, timed_prefill,
};
pub use error::LlamaError;
pub use gpu::{GgufShape, GpuDevice, gpu_devices};
pub use model::{Model, ModelInfo, ModelParams, SpecialToken};
pub use quantize::{Quant, quantize};
pub use sampler::{Sampler, SamplingParams, json_schema_to_gbnf};
pub use session::{PrefillOutcome, Session, SessionParams, TokenLogprob};
pub use utf8::PieceDecoder;

/// A token id in the model's vocabulary.
pub type TokenId = i32;
