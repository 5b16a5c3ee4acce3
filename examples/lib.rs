//! Shared bits of the example programs: model selection and logging.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// Where the test setup puts SmolLM2-135M-Instruct; the examples' default model.
pub fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.fixtures/smollm2-135m-instruct.gguf")
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings only, so the programs'
/// own output stays readable).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Fails with a helpful message when the model file is missing.
pub fn check_model(path: &std::path::Path) -> Result<(), String> {
    if path.is_file() {
        Ok(())
    } else {
        Err(format!(
            "model {} not found: pass --model PATH.gguf, or run scripts/fixtures/setup to fetch SmolLM2-135M-Instruct",
            path.display()
        ))
    }
}
