//! `sandbox-core`: the reusable heart of AI Sandbox.
//!
//! With the `engine` feature (the default):
#![cfg_attr(
    feature = "engine",
    doc = r#"
- [`Engine`]: one thread owns the model and runs jobs strictly one at a time from a
  bounded FIFO queue; [`JobHandle`]s stream [`JobEvent`]s and cancel on drop.
- [`ChatTemplate`]: the model's own Jinja chat template, rendered like Hugging Face.
- [`Service`]: the model's life cycle (downloading, loading, ready, error) for servers
  that must answer before the model is loaded.
- [`EngineConfig`]: what to load and how big the queue and context are.
"#
)]
#![cfg_attr(
    not(feature = "engine"),
    doc = r#"
- `Engine`, `ChatTemplate`, `Service`, `EngineConfig`, the model download and
  everything else that serves a model (this build has none of it).
"#
)]
//!
//! Always, with or without `engine`:
//!
//! - [`systemd`]: `Type=notify` readiness, status lines and a watchdog that pings only
//!   while the process shows progress.
//! - [`config_file`]: what both servers' configuration loaders share (one layering of
//!   defaults, TOML file and flags; private key files with one key per line; logging;
//!   comparing secrets).
//! - [`contract`]: what `sandbox-api` writes and `sandbox-ui` reads (the `/ready` body,
//!   the retry table, SSE, the OpenAI request, response, chunk and error types).
//! - [`request_log`]: request ids and the one log line per request of both servers.
//!
//! Binaries and other Rust programs embed this crate; only `llama-sys` below it talks
//! to llama.cpp, and only with `engine`. Without it (`default-features = false`, as the
//! chat UI uses it) neither `llama-sys` nor llama.cpp is compiled or linked.
//!
//! Features: `engine` (default); `cuda` and `dynamic-link` (each implies `engine`) pass
//! through to `llama-sys`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config_file;
pub mod contract;
pub mod request_log;
pub mod systemd;

/// Every item given is compiled only with the `engine` feature (the one place that says
/// so, instead of an attribute on each).
macro_rules! with_engine {
    ($($item:item)*) => { $( #[cfg(feature = "engine")] $item )* };
}

with_engine! {
    mod config;
    mod control_text;
    mod draft;
    pub mod download;
    mod engine;
    mod error;
    pub mod gpu;
    mod heartbeat;
    mod job;
    mod nvidia;
    mod queue;
    mod runner;
    pub mod schema;
    mod service;
    mod stop;
    mod template;
    pub mod tools;

    pub use config::{EngineConfig, GPU_DRAFT_TOKENS};
    pub use engine::{Engine, JobHandle, apply_process_settings};
    pub use error::{EngineError, LlamaError};
    pub use job::{
        Completion, FinishReason, JobEvent, JobId, JobRequest, Limits, Prompt, Timings, Usage,
    };
    pub use llama_sys::{ModelInfo, SamplingParams, SpecialToken, TokenId, TokenLogprob};
    pub use schema::{GrammarError, grammar_from_schema};
    pub use nvidia::NvidiaVersions;
    pub use queue::QueueStatus;
    pub use service::{ModelState, Service};
    pub use stop::{StopMatcher, StopOutcome};
    pub use template::{ChatMessage, ChatTemplate, FunctionCall, ToolCall};

    /// Things for benchmarks and diagnostics that are not part of serving.
    pub mod diagnostics {
        pub use llama_sys::{
            BareRun, GgufShape, GpuDevice, Model, ModelParams, PrefillOutcome, PrefillPhases, Quant,
            Sampler, Session, SessionParams, bare_greedy_decode, batch_logit_gap, gpu_devices,
            quantize, timed_batch, timed_prefill,
        };
    }
}
