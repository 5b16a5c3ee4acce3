//! Quantizes a GGUF file with llama.cpp's quantizer (through llama-sys), e.g. to make
//! Q4_K_M and Q8_0 files for the GPU benchmark.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use sandbox_core::diagnostics::{Quant, quantize};

/// Quantize INPUT.gguf into OUTPUT.gguf as Q4_K_M, Q5_K_M, Q6_K or Q8_0.
#[derive(Parser)]
struct Args {
    input: PathBuf,
    output: PathBuf,
    /// Q4_K_M, Q5_K_M, Q6_K or Q8_0.
    quant: String,
    /// Threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: u32,
}

fn main() -> ExitCode {
    sandbox_examples::run(run)
}

fn run(a: Args) -> Result<(), String> {
    let q = Quant::parse(&a.quant).ok_or_else(|| {
        format!(
            "unknown quantization {:?} (use Q4_K_M, Q5_K_M, Q6_K or Q8_0)",
            a.quant
        )
    })?;
    let t = Instant::now();
    quantize(&a.input, &a.output, q, a.threads).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} ({size} bytes) in {:.1} s",
        a.output.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
