//! Downloads one file through the model store and prints how long it took, as JSON
//! (used by scripts/bench/download).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use sandbox_core::download::{HubModel, ModelStore, StoreConfig, sha256_file};

/// Fetch a file from a hub endpoint into a fresh cache and time it.
#[derive(Parser)]
struct Args {
    /// Hub URL (e.g. the fake hub on loopback).
    #[arg(long)]
    endpoint: String,
    /// Repository id.
    #[arg(long)]
    repo: String,
    /// File name.
    #[arg(long)]
    file: String,
    /// Cache directory (should be empty to measure a download).
    #[arg(long)]
    cache: PathBuf,
    /// Parallel ranged requests.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Size of each ranged request in MiB.
    #[arg(long, default_value_t = 16)]
    chunk_mib: usize,
}

fn main() -> ExitCode {
    sandbox_examples::run(run)
}

fn run(a: Args) -> Result<(), String> {
    let store = ModelStore::new(StoreConfig {
        endpoint: a.endpoint,
        cache_dir: a.cache,
        token: None,
        offline: false,
        parallel: a.parallel,
        chunk_bytes: a.chunk_mib << 20,
        retry_for: Duration::from_secs(30),
        disk_margin: 0,
    });
    let model = HubModel {
        repo: a.repo,
        file: a.file,
        revision: "main".into(),
        sha256: None,
    };
    let t = Instant::now();
    let path = store
        .fetch_blocking(&model, |_| {})
        .map_err(|e| e.to_string())?;
    let total = t.elapsed().as_secs_f64();
    let v = Instant::now();
    sha256_file(&path).map_err(|e| e.to_string())?;
    let verify = v.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{{\"bytes\": {bytes}, \"seconds_with_verify\": {total:.3}, \"verify_seconds\": {verify:.3}}}"
    );
    Ok(())
}
