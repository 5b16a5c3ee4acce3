//! Test models built by `scripts/fixtures/setup` (the README's test command runs it).
#![allow(dead_code)]

use std::path::PathBuf;

use sandbox_core::{Engine, EngineConfig};

pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("AI_SANDBOX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.fixtures"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "missing test fixture {}: run scripts/fixtures/setup (or scripts/test)",
        path.display()
    );
    path
}

pub fn smollm2() -> PathBuf {
    fixture("smollm2-135m-instruct.gguf")
}

pub fn tiny_mistral() -> PathBuf {
    fixture("tiny-mistral-v0.3.gguf")
}

pub fn engine(model: PathBuf, n_ctx: u32, queue_capacity: usize) -> Engine {
    Engine::start(&EngineConfig {
        model_path: model,
        n_ctx,
        n_threads: 1,
        queue_capacity,
        ..EngineConfig::default()
    })
    .expect("engine starts")
}
