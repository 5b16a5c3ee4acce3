//! `sandbox-core`: the reusable heart of AI Sandbox.
//!
//! - [`Engine`]: one thread owns the model and runs jobs strictly one at a time from a
//!   bounded FIFO queue; [`JobHandle`]s stream [`JobEvent`]s and cancel on drop.
//! - [`ChatTemplate`]: the model's own Jinja chat template, rendered like Hugging Face.
//! - [`Service`]: the model's life cycle (downloading, loading, ready, error) for servers
//!   that must answer before the model is loaded.
//! - [`EngineConfig`]: what to load and how big the queue and context are.
//!
//! Binaries and other Rust programs embed this crate; only `llama-sys` below it talks
//! to llama.cpp.
#![forbid(unsafe_code)]

mod config;
pub mod download;
mod engine;
mod error;
pub mod gpu;
mod heartbeat;
mod job;
mod nvidia;
mod queue;
mod runner;
mod service;
mod stop;
mod template;

pub use config::EngineConfig;
pub use engine::{Engine, JobHandle};
pub use error::{EngineError, LlamaError};
pub use job::{
    Completion, FinishReason, JobEvent, JobId, JobRequest, Limits, Prompt, Timings, Usage,
};
pub use llama_sys::{
    ModelInfo, SamplingParams, SpecialToken, TokenId, TokenLogprob, json_schema_to_gbnf,
};
pub use nvidia::NvidiaVersions;
pub use queue::QueueStatus;
pub use service::{ModelState, Service};
pub use stop::{StopMatcher, StopOutcome};
pub use template::{ChatMessage, ChatTemplate, FunctionCall, ToolCall};

/// Things for benchmarks and diagnostics that are not part of serving.
pub mod diagnostics {
    pub use llama_sys::{
        BareRun, GgufShape, GpuDevice, Model, ModelParams, PrefillOutcome, Quant, Session,
        SessionParams, bare_greedy_decode, gpu_devices, quantize,
    };
}
