//! Time to first token and decode speed of the library called directly, measured the
//! way a client measures a server: from submitting the job to the first token event,
//! then over the token events. Prints one JSON object per run (for
//! scripts/bench/api-overhead, which compares it with the HTTP API).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use sandbox_core::{ChatMessage, JobEvent, Prompt, SamplingParams};

/// Measure time to first token and decode tokens/s through sandbox-core directly.
#[derive(Parser)]
struct Args {
    /// GGUF model file (default: the SmolLM2 test model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The user message.
    #[arg(
        long,
        default_value = "Tell me a long story about a lighthouse keeper."
    )]
    prompt: String,
    /// Tokens per run (end-of-generation is suppressed so every run has this many).
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Runs.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Context window.
    #[arg(long, default_value_t = 2048)]
    ctx: u32,
    /// CPU threads (0 = all).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Idle time before each run, so that runs start from an idle engine like a
    /// server's requests usually do.
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Instead of --runs, run once per line read from stdin (lets a benchmark
    /// interleave this process with others).
    #[arg(long)]
    on_demand: bool,
}

fn main() -> ExitCode {
    sandbox_examples::run(run)
}

fn run(args: Args) -> Result<(), String> {
    let engine = sandbox_examples::start_engine(args.model, args.ctx, args.threads)?;
    let mut lines = std::io::stdin().lines();
    let mut remaining = args.runs;
    loop {
        if args.on_demand {
            if lines.next().is_none() {
                return Ok(());
            }
        } else if remaining == 0 {
            return Ok(());
        } else {
            remaining -= 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(args.pause_ms));
        let job = sandbox_examples::job(
            Prompt::Chat {
                messages: vec![ChatMessage::new("user", args.prompt.clone())],
                tools: None,
            },
            SamplingParams::greedy(),
            args.max_tokens,
            true,
        );
        let t0 = Instant::now();
        let mut handle = engine.submit(job).map_err(|e| e.to_string())?;
        let (mut first, mut last, mut n) = (None, t0, 0usize);
        while let Some(ev) = handle.next_event_blocking() {
            match ev {
                JobEvent::Token { .. } => {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    last = now;
                    n += 1;
                }
                JobEvent::Failed { error } => return Err(error.to_string()),
                _ => {}
            }
        }
        let first = first.ok_or("no token generated")?;
        let decode = last.duration_since(first).as_secs_f64();
        println!(
            "{{\"ttft_ms\": {:.3}, \"tokens\": {n}, \"decode_tps\": {:.3}}}",
            first.duration_since(t0).as_secs_f64() * 1e3,
            if decode > 0.0 {
                (n - 1) as f64 / decode
            } else {
                0.0
            }
        );
        // Flushed per run: the benchmark reads each line as it comes.
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
}
