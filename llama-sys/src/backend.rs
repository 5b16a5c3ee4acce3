use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

use crate::LlamaError;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// llama.cpp's process-wide backend; initialised once, on first use, and kept for the
/// life of the process (freeing it while a model lives would be unsound).
pub(crate) fn backend() -> Result<&'static LlamaBackend, LlamaError> {
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs go through `tracing` (target `llama_cpp_2`), so the
            // binaries' log filter decides what is shown.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlamaError::Backend(e.clone()))
}

/// llama.cpp's switch for fused CUDA kernels (read once per process, when the first
/// graph runs).
const CUDA_FUSION_OFF: &str = "GGML_CUDA_DISABLE_FUSION";

/// Whether llama.cpp's CUDA backend fuses chains of operations (matrix-vector product
/// with its gate, norm with scale, RoPE with the cache write, adds) into single
/// kernels. On by default in llama.cpp; on an H200 turning it off made decoding 3–7 %
/// faster and prompts 1–5 % slower, with identical output. Must be called before the
/// first model computes anything; a `GGML_CUDA_DISABLE_FUSION` already in the
/// environment wins. Does nothing without a GPU backend.
pub fn set_cuda_op_fusion(on: bool) -> Result<(), LlamaError> {
    if !backend()?.supports_gpu_offload() || std::env::var_os(CUDA_FUSION_OFF).is_some() {
        return Ok(());
    }
    if !on {
        // SAFETY: called before any model is loaded, so no llama.cpp code runs yet in
        // another thread that could read the environment while it changes; Rust's own
        // readers take the same lock as this writer.
        unsafe { std::env::set_var(CUDA_FUSION_OFF, "1") };
    }
    Ok(())
}
