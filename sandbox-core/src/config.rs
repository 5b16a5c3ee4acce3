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
    /// earlier text and checked in one batch with the sampled token (0: off). `None`
    /// (the default): [`GPU_DRAFT_TOKENS`] on a GPU, off on a CPU. Each job checks as
    /// many of them as pay by the clock, none where its guesses do not stand; a batch
    /// costs little more than a token on a GPU, nearly a token per token on a CPU.
    /// Greedy output is unchanged but for near-ties on a CPU; on a GPU as valid, not
    /// identical, as a batch's logits differ from one token's (`docs/performance.md`).
    pub draft_tokens: Option<u32>,
    /// Let llama.cpp's CUDA backend fuse chains of operations into single kernels.
    /// Off: on an H200 that decoded Mistral-7B 3–7 % faster (prompts 1–5 % slower),
    /// with the same output (`docs/performance.md`).
    pub cuda_op_fusion: bool,
}

/// Most tokens guessed per step on a GPU unless `draft_tokens` says otherwise: on an
/// H200 4 gave the speedups 8 gave on the repetitive tasks, and never slowed free chat,
/// where 8 twice did (`docs/performance.md`): a wide batch that keeps nothing costs
/// more.
pub const GPU_DRAFT_TOKENS: u32 = 4;

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
            draft_tokens: None,
            cuda_op_fusion: false,
        }
    }
}
