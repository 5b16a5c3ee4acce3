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
/// faster and prompts 1–5 % slower, with identical output. It holds for the whole
/// process, and a `GGML_CUDA_DISABLE_FUSION` already in the environment wins.
///
/// The switch is an environment variable, and changing the environment is only sound
/// while no other thread can read it: this must be called while the process has one
/// thread (first thing in `main`), and refuses otherwise.
pub fn set_cuda_op_fusion(on: bool) -> Result<(), LlamaError> {
    if on || std::env::var_os(CUDA_FUSION_OFF).is_some() {
        return Ok(());
    }
    if !single_threaded() {
        return Err(LlamaError::Backend(format!(
            "CUDA op fusion can only be switched off before the process starts threads; \
             set {CUDA_FUSION_OFF}=1 in its environment instead"
        )));
    }
    // SAFETY: the process has a single thread (checked just above, and only this
    // thread could start another), so nothing can read the environment while it
    // changes.
    unsafe { std::env::set_var(CUDA_FUSION_OFF, "1") };
    Ok(())
}

/// Whether llama.cpp's CUDA backend fuses operations in this process, as it reads its
/// switch (a number other than 0 turns fusion off).
pub fn cuda_op_fusion() -> bool {
    std::env::var(CUDA_FUSION_OFF).map_or(true, |v| v.trim().parse::<i64>().unwrap_or(0) == 0)
}

/// Whether this process runs one thread (Linux's count; elsewhere, unknown: false).
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.strip_prefix("Threads:").is_some_and(|n| n.trim() == "1"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fusion_is_only_switched_off_while_the_process_has_one_thread() {
        // A second thread for as long as the checks run (the harness may run this on
        // the main thread alone): the switch must refuse and leave the environment be.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || wait.recv());
        assert!(!super::single_threaded());
        if std::env::var_os(super::CUDA_FUSION_OFF).is_none() {
            let e = super::set_cuda_op_fusion(false).unwrap_err();
            assert!(e.to_string().contains("GGML_CUDA_DISABLE_FUSION=1"), "{e}");
            assert!(std::env::var_os(super::CUDA_FUSION_OFF).is_none());
        }
        assert!(super::set_cuda_op_fusion(true).is_ok());
        release.send(()).unwrap();
        other.join().unwrap().unwrap();
    }
}
