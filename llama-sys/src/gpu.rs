use std::path::Path;

use llama_cpp_2::gguf::GgufContext;
use llama_cpp_2::{LlamaBackendDeviceType, list_llama_ggml_backend_devices};

use crate::LlamaError;
use crate::backend::backend;

/// A GPU as llama.cpp sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuDevice {
    /// e.g. `CUDA0`.
    pub name: String,
    /// e.g. `NVIDIA RTX 4000 Ada Generation`.
    pub description: String,
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Free memory in bytes.
    pub memory_free: u64,
}

/// The GPUs this build can use (none on a CPU build).
pub fn gpu_devices() -> Vec<GpuDevice> {
    if backend().is_err() {
        return Vec::new();
    }
    list_llama_ggml_backend_devices()
        .into_iter()
        .filter(|d| matches!(d.device_type, LlamaBackendDeviceType::Gpu))
        .map(|d| GpuDevice {
            name: d.name,
            description: d.description,
            memory_total: d.memory_total as u64,
            memory_free: d.memory_free as u64,
        })
        .collect()
}

/// The sizes that decide a model's memory use, read from the GGUF header without
/// loading the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufShape {
    /// `general.architecture`.
    pub architecture: String,
    /// Transformer layers.
    pub n_layer: u32,
    /// Attention heads.
    pub n_head: u32,
    /// Key/value heads (GQA).
    pub n_head_kv: u32,
    /// Hidden size.
    pub n_embd: u32,
    /// File size in bytes (≈ the weights).
    pub file_bytes: u64,
}

/// gguf.h's type tag for u32 values.
const GGUF_TYPE_UINT32: u32 = 4;

impl GgufShape {
    /// Reads the header of a GGUF file.
    pub fn read(path: &Path) -> Result<Self, LlamaError> {
        let file_bytes = std::fs::metadata(path)
            .map_err(|_| LlamaError::ModelNotFound(path.to_path_buf()))?
            .len();
        let ctx = GgufContext::from_file(path)
            .ok_or_else(|| LlamaError::LoadFailed(path.to_path_buf()))?;
        let string = |key: &str| {
            let i = ctx.find_key(key);
            (i >= 0)
                .then(|| ctx.val_str(i).map(str::to_owned))
                .flatten()
        };
        let architecture = string("general.architecture")
            .ok_or_else(|| LlamaError::LoadFailed(path.to_path_buf()))?;
        let u32_of = |suffix: &str| -> Result<u32, LlamaError> {
            let i = ctx.find_key(&format!("{architecture}.{suffix}"));
            // Reading a value as the wrong type aborts inside ggml: check the tag first.
            if i >= 0 && ctx.kv_type(i) as u32 == GGUF_TYPE_UINT32 {
                Ok(ctx.val_u32(i))
            } else {
                Err(LlamaError::LoadFailed(path.to_path_buf()))
            }
        };
        let n_head = u32_of("attention.head_count")?;
        Ok(Self {
            n_layer: u32_of("block_count")?,
            n_head,
            n_head_kv: u32_of("attention.head_count_kv").unwrap_or(n_head),
            n_embd: u32_of("embedding_length")?,
            architecture,
            file_bytes,
        })
    }

    /// Bytes of f16 KV cache per token of context.
    pub fn kv_bytes_per_token(&self) -> u64 {
        let head_dim = u64::from(self.n_embd / self.n_head.max(1));
        2 * u64::from(self.n_layer) * u64::from(self.n_head_kv) * head_dim * 2
    }
}
