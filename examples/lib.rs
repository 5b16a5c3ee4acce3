//! Shared bits of the example programs: model selection, engine start, jobs, logging.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use sandbox_core::{Completion, Engine, EngineConfig, JobRequest, Limits, Prompt, SamplingParams};

/// Where the test setup puts SmolLM2-135M-Instruct; the examples' default model.
pub fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.fixtures/smollm2-135m-instruct.gguf")
}

/// Parses the arguments, logs to stderr (filtered by `RUST_LOG`, default warnings only,
/// so the programs' own output stays readable), runs `body` and turns its error into a
/// message and a failing exit code.
pub fn run<A: clap::Parser>(body: impl FnOnce(A) -> Result<(), String>) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match body(A::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts an engine on `model` (default: SmolLM2), explaining a missing file.
pub fn start_engine(model: Option<PathBuf>, n_ctx: u32, n_threads: u32) -> Result<Engine, String> {
    start_engine_with(model, n_ctx, n_threads, 0)
}

/// [`start_engine`] with speculative decoding by prompt lookup (`draft_tokens` > 0).
pub fn start_engine_with(
    model: Option<PathBuf>,
    n_ctx: u32,
    n_threads: u32,
    draft_tokens: u32,
) -> Result<Engine, String> {
    let model_path = model.unwrap_or_else(default_model);
    if !model_path.is_file() {
        return Err(format!(
            "model {} not found: pass --model PATH.gguf, or run scripts/fixtures/setup to fetch SmolLM2-135M-Instruct",
            model_path.display()
        ));
    }
    let config = EngineConfig {
        model_path,
        n_ctx,
        n_threads,
        draft_tokens: Some(draft_tokens),
        ..EngineConfig::default()
    };
    // The examples start their engines from `main`'s thread, before any other.
    sandbox_core::apply_process_settings(&config).map_err(|e| e.to_string())?;
    Engine::start(&config).map_err(|e| e.to_string())
}

/// A job with `max_tokens` and no other limit.
pub fn job(
    prompt: Prompt,
    sampling: SamplingParams,
    max_tokens: usize,
    ignore_eos: bool,
) -> JobRequest {
    JobRequest {
        prompt,
        sampling,
        limits: Limits {
            max_tokens: Some(max_tokens),
            ignore_eos,
            ..Limits::default()
        },
        logprobs: None,
    }
}

/// Runs `job` on `engine` to the end.
pub fn complete(engine: &Engine, job: JobRequest) -> Result<Completion, String> {
    engine
        .submit(job)
        .and_then(|h| h.wait())
        .map_err(|e| e.to_string())
}
