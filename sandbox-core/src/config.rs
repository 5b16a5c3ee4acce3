use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Settings of the engine: which model, how big a context, how long a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// GGUF file to serve.
    pub model_path: PathBuf,
    /// Context window in tokens (prompt + completion). 0 means the model's trained
    /// context length.
    pub n_ctx: u32,
    /// Prompt tokens evaluated per batch.
    pub n_batch: u32,
    /// CPU threads; 0 means all cores.
    pub n_threads: u32,
    /// Layers offloaded to the GPU; `None` means all of them on a GPU build.
    pub gpu_layers: Option<u32>,
    /// Jobs allowed to wait behind the running one before new ones are refused.
    pub queue_capacity: usize,
    /// A Jinja chat template to use instead of the one in the GGUF file (for a file
    /// without one, or with one that is wrong).
    pub chat_template_file: Option<PathBuf>,
    /// Speculative decoding by prompt lookup: up to this many tokens guessed from
    /// earlier text and checked in one batch (0: off, the default). Greedy output is
    /// unchanged but for near-ties. It can pay only where the answer repeats earlier
    /// text (editing code, quoting) and a batch costs little more than one token. On
    /// an H200 it did not: a batch of another size than the step before rebuilds
    /// llama.cpp's graphs, which cost more than the guesses saved, free chat and
    /// code edits alike (`docs/performance.md`). 16 is the length measured.
    pub draft_tokens: u32,
    /// Let llama.cpp's CUDA backend fuse chains of operations into single kernels.
    /// Off: on an H200 that decoded Mistral-7B 3–7 % faster (prompts 1–5 % slower),
    /// with the same output (`docs/performance.md`).
    pub cuda_op_fusion: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            model_path: PathBuf::new(),
            n_ctx: 8192,
            n_batch: 512,
            n_threads: 0,
            gpu_layers: None,
            queue_capacity: 32,
            chat_template_file: None,
            draft_tokens: 0,
            cuda_op_fusion: false,
        }
    }
}
