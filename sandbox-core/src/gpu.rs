//! GPU memory preflight: will the model and the KV cache for the configured context
//! fit into the GPU's free memory? If not, say so with the numbers, the largest context
//! that would fit, and what instance would.

use llama_sys::{GgufShape, GpuDevice};

use crate::EngineError;

/// Room for the CUDA context, compute buffers and fragmentation.
pub const GPU_OVERHEAD_BYTES: u64 = 1 << 30;

const GIB: f64 = (1u64 << 30) as f64;

/// What the model needs on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuNeed {
    /// Weights.
    pub model_bytes: u64,
    /// KV cache for the whole context.
    pub kv_bytes: u64,
    /// Overhead.
    pub overhead_bytes: u64,
}

impl GpuNeed {
    /// For a model shape and context.
    pub fn of(shape: &GgufShape, n_ctx: u32) -> Self {
        Self {
            model_bytes: shape.file_bytes,
            kv_bytes: shape.kv_bytes_per_token() * u64::from(n_ctx),
            overhead_bytes: GPU_OVERHEAD_BYTES,
        }
    }

    /// Everything together.
    pub fn total(&self) -> u64 {
        self.model_bytes + self.kv_bytes + self.overhead_bytes
    }
}

/// Checks `need` against `device`; the error message is meant for an operator.
pub fn check_fit(device: &GpuDevice, shape: &GgufShape, n_ctx: u32) -> Result<GpuNeed, String> {
    let need = GpuNeed::of(shape, n_ctx);
    if need.total() <= device.memory_free {
        return Ok(need);
    }
    let fixed = need.model_bytes + need.overhead_bytes;
    let advice = if fixed < device.memory_free {
        let max_ctx = (device.memory_free - fixed) / shape.kv_bytes_per_token().max(1);
        // Round down to a multiple of 256 tokens, as llama.cpp pads the cache.
        let max_ctx = max_ctx / 256 * 256;
        format!(
            "the largest context that fits is {max_ctx} tokens: set --ctx {max_ctx} (or smaller), or use an instance with more GPU memory (Linode g2-gpu-rtx4000a1-s has 20 GB)"
        )
    } else {
        "the weights alone do not fit: use a smaller quantization (Q4_K_M needs about 5 GiB with an 8k context) or an instance with more GPU memory, e.g. Linode g2-gpu-rtx4000a1-s (one RTX 4000 Ada, 20 GB) or g2-gpu-rtx4000a2-s (two, 40 GB)".into()
    };
    Err(format!(
        "{} ({}) has {:.1} GiB free of {:.1} GiB, but this model needs {:.1} GiB: {:.1} GiB of weights + {:.1} GiB of KV cache for {n_ctx} tokens + {:.1} GiB of overhead; {advice}",
        device.description,
        device.name,
        device.memory_free as f64 / GIB,
        device.memory_total as f64 / GIB,
        need.total() as f64 / GIB,
        need.model_bytes as f64 / GIB,
        need.kv_bytes as f64 / GIB,
        need.overhead_bytes as f64 / GIB,
    ))
}

/// On a GPU build with offloading, checks that the model and its KV cache fit into
/// the GPU with the most free memory, and logs what was found.
pub(crate) fn preflight(config: &crate::EngineConfig) -> Result<(), EngineError> {
    if config.gpu_layers == Some(0) {
        return Ok(());
    }
    let Some(device) = llama_sys::gpu_devices()
        .into_iter()
        .max_by_key(|d| d.memory_free)
    else {
        return Ok(()); // a CPU build, or no usable GPU: nothing to check
    };
    let versions = crate::NvidiaVersions::of_this_process();
    let shape = llama_sys::GgufShape::read(&config.model_path)?;
    let n_ctx = if config.n_ctx == 0 {
        32768
    } else {
        config.n_ctx
    };
    match check_fit(&device, &shape, n_ctx) {
        Ok(need) => {
            tracing::info!(
                gpu = %device.description,
                device = %device.name,
                driver = versions.driver.as_deref().unwrap_or("unknown"),
                cuda_runtime = versions.cuda_runtime.as_deref().unwrap_or("unknown"),
                cublas = versions.cublas.as_deref().unwrap_or("unknown"),
                free_bytes = device.memory_free,
                total_bytes = device.memory_total,
                need_bytes = need.total(),
                layers = shape.n_layer,
                "GPU preflight passed; offloading all layers"
            );
            Ok(())
        }
        Err(message) => {
            tracing::error!(gpu = %device.description, nvidia = %versions, %message, "GPU preflight failed");
            Err(EngineError::Resources(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mistral_q4() -> GgufShape {
        GgufShape {
            architecture: "llama".into(),
            n_layer: 32,
            n_head: 32,
            n_head_kv: 8,
            n_embd: 4096,
            file_bytes: 4_372_781_984,
        }
    }

    fn gpu(free_gib: f64) -> GpuDevice {
        GpuDevice {
            name: "CUDA0".into(),
            description: "NVIDIA RTX 4000 Ada Generation".into(),
            memory_total: (20.0 * GIB) as u64,
            memory_free: (free_gib * GIB) as u64,
        }
    }

    #[test]
    fn mistral_kv_cache_is_128_kib_per_token() {
        assert_eq!(mistral_q4().kv_bytes_per_token(), 128 << 10);
    }

    #[test]
    fn full_32k_context_fits_an_rtx_4000_ada_with_q4_k_m() {
        // 4.07 GiB weights + 4 GiB KV + 1 GiB overhead ≈ 9.1 GiB of 19.5 GiB usable.
        let need = check_fit(&gpu(19.5), &mistral_q4(), 32768).unwrap();
        assert_eq!(need.kv_bytes, 4 << 30);
        assert!(need.total() < (10.0 * GIB) as u64);
    }

    #[test]
    fn too_small_a_gpu_gets_the_numbers_and_the_largest_context() {
        let err = check_fit(&gpu(7.0), &mistral_q4(), 32768).unwrap_err();
        assert!(err.contains("7.0 GiB free"), "{err}");
        assert!(
            err.contains("4.0 GiB of KV cache for 32768 tokens"),
            "{err}"
        );
        // (7 GiB - 4.07 GiB - 1 GiB) / 128 KiB = 15,790 tokens, rounded down to 256.
        assert!(err.contains("--ctx 15616"), "{err}");
        let err = check_fit(&gpu(4.0), &mistral_q4(), 4096).unwrap_err();
        assert!(
            err.contains("weights alone do not fit") && err.contains("g2-gpu-rtx4000a1-s"),
            "{err}"
        );
    }
}
