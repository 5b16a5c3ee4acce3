//! Engine benchmark: prefill and decode speed, where a prompt evaluation's time goes
//! (host work, device work, sampling; in the engine and in bare sessions set up as
//! llama-bench sets its own), what one batch of 1..16 tokens costs (the price of
//! checking a speculative draft), prefix-reuse speedup over a 10-turn chat, and the
//! engine's decode speed against a bare llama-cpp-2 loop on the same model. Prints
//! Markdown tables.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use sandbox_core::diagnostics::{
    Model, ModelParams, PrefillPhases, Sampler, Session, SessionParams, bare_greedy_decode,
    batch_logit_gap, timed_batch, timed_prefill,
};
use sandbox_core::{ChatMessage, Engine, Prompt, SamplingParams};

/// Measure the AI Sandbox engine on a GGUF model (default: SmolLM2-135M-Instruct from
/// .fixtures/). Every figure is the median of --runs runs.
#[derive(Parser)]
struct Args {
    /// GGUF model file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompt length for the prefill measurement, in tokens (approximately).
    #[arg(long, default_value_t = 512)]
    prefill_tokens: usize,
    /// Tokens generated for the decode measurement.
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    /// Repetitions per figure.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Context window.
    #[arg(long, default_value_t = 4096)]
    ctx: u32,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Only the prefill breakdown and the batch-cost table (quick GPU checks).
    #[arg(long)]
    phases_only: bool,
}

fn main() -> ExitCode {
    sandbox_examples::run(run)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(args: Args) -> Result<(), String> {
    let engine = sandbox_examples::start_engine(args.model.clone(), args.ctx, args.threads)?;
    let model_path = engine.model_path().to_path_buf();
    let info = engine.model_info().clone();
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        args.threads
    };
    println!(
        "model: {} ({}, {:.1} M params, {:.1} MiB), {} threads, ctx {}\n",
        info.name.as_deref().unwrap_or("?"),
        model_path.display(),
        info.n_params as f64 / 1e6,
        info.size_bytes as f64 / (1 << 20) as f64,
        threads,
        engine.n_ctx()
    );

    let bare_model =
        Model::load(&model_path, &ModelParams::default()).map_err(|e| e.to_string())?;
    prefill_phases(&engine, &bare_model, &args, threads)?;
    batch_costs(&bare_model, &args, threads)?;
    sampling_costs(&bare_model, &args, threads)?;
    if args.phases_only {
        return Ok(());
    }

    // Prefill: a fresh prompt each run (its first token differs) so nothing is cached.
    let filler = "The quick brown fox jumps over the lazy dog near the river bank. ";
    let words_per_sentence = engine
        .tokenize(filler, false)
        .map_err(|e| e.to_string())?
        .len();
    let base = filler.repeat(args.prefill_tokens / words_per_sentence.max(1));
    let mut prefill = Vec::new();
    let mut prompt_len = 0;
    for i in 0..args.runs {
        let job = sandbox_examples::job(
            Prompt::Text(format!("{i} {base}")),
            SamplingParams::greedy(),
            1,
            false,
        );
        let out = sandbox_examples::complete(&engine, job)?;
        // Prompts differ from their first word on; only BOS (and a word-start piece on
        // SentencePiece models) may be shared.
        if out.usage.cached_prompt_tokens > 2 {
            return Err(format!(
                "prefill run reused {} cached tokens",
                out.usage.cached_prompt_tokens
            ));
        }
        prompt_len = out.usage.prompt_tokens;
        prefill.push(out.timings.prefill_tokens_per_second(&out.usage));
    }

    // Decode: engine vs bare loop, interleaved so both see the same machine state.
    let prompt_tokens = engine
        .tokenize("Once upon a time, in a land far away, there lived", true)
        .map_err(|e| e.to_string())?;
    let bare_params = session_params(&args, threads);
    let mut bare_session = bare_model
        .session(&bare_params)
        .map_err(|e| e.to_string())?;
    let (mut engine_tps, mut bare_tps) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let job = sandbox_examples::job(
            Prompt::Tokens(prompt_tokens.clone()),
            SamplingParams::greedy(),
            args.decode_tokens,
            true,
        );
        let out = sandbox_examples::complete(&engine, job)?;
        engine_tps.push(out.timings.decode_tokens_per_second(&out.usage));
        let bare = bare_greedy_decode(&mut bare_session, &prompt_tokens, args.decode_tokens)
            .map_err(|e| e.to_string())?;
        bare_tps.push(args.decode_tokens as f64 / bare.decode.as_secs_f64());
    }
    drop(bare_session);
    let (engine_tps, bare_tps) = (median(engine_tps), median(bare_tps));

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| prefill, {prompt_len}-token prompt | {:.1} tok/s |",
        median(prefill)
    );
    println!(
        "| decode, {} tokens, engine | {engine_tps:.1} tok/s |",
        args.decode_tokens
    );
    println!(
        "| decode, {} tokens, bare llama-cpp-2 loop | {bare_tps:.1} tok/s |",
        args.decode_tokens
    );
    println!(
        "| engine / bare decode ratio (target ≥ 0.97) | {:.3} |",
        engine_tps / bare_tps
    );
    println!(
        "| engine overhead per token | {:+.1} µs |",
        (1.0 / engine_tps - 1.0 / bare_tps) * 1e6
    );

    prefix_reuse(&engine, &bare_model, &bare_params)
}

/// A token-array prompt of `n` tokens for run `i`: the first token is the same in
/// every run (as a BOS would be), the rest differ, so a kept cache can only reuse one.
fn synthetic_prompt(n: usize, i: usize) -> Vec<i32> {
    (0..n)
        .map(|j| {
            if j == 0 {
                1000
            } else {
                ((1000 + 7 * j + 131 * i) % 30000 + 1000) as i32
            }
        })
        .collect()
}

/// A bare session with the context and threads asked for.
fn session_params(args: &Args, threads: u32) -> SessionParams {
    SessionParams {
        n_ctx: args.ctx,
        n_threads: Some(threads),
        ..SessionParams::default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The prompt evaluation of --prefill-tokens tokens in several set-ups, each phase
/// apart (medians of --runs after one warm-up run): a bare session as llama-bench makes
/// one (context just big enough, cache cleared before each run), the same in the
/// engine's context size, the engine's pattern (the previous prompt left in the cache
/// and cut back to the shared first token), one CPU thread, and the engine itself.
fn prefill_phases(engine: &Engine, model: &Model, args: &Args, threads: u32) -> Result<(), String> {
    let n = args.prefill_tokens;
    println!(
        "Where a {n}-token prompt evaluation's time goes (ms, median of {}):\n",
        args.runs
    );
    println!(
        "| set-up | context | threads | evaluated | host, until llama_decode returns | device wait | first token | total | tok/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let setups: [(&str, u32, u32, bool); 5] = [
        (
            "bare, engine's pattern, its own thread",
            args.ctx,
            threads,
            false,
        ),
        ("bare, as llama-bench (cleared)", n as u32, threads, true),
        ("bare, engine's context (cleared)", args.ctx, threads, true),
        (
            "bare, engine's pattern (kept, cut back)",
            args.ctx,
            threads,
            false,
        ),
        ("bare, engine's context, 1 thread", args.ctx, 1, true),
    ];
    for (name, n_ctx, n_threads, clear) in setups {
        let params = SessionParams {
            n_ctx,
            n_threads: Some(n_threads),
            ..SessionParams::default()
        };
        let runs = args.runs;
        let measure = move || -> Result<Vec<PrefillPhases>, String> {
            let mut session = model.session(&params).map_err(|e| e.to_string())?;
            let mut phases = Vec::new();
            for i in 0..=runs {
                let p = timed_prefill(&mut session, &synthetic_prompt(n, i), clear)
                    .map_err(|e| e.to_string())?;
                if i > 0 {
                    phases.push(p);
                }
            }
            Ok(phases)
        };
        // The engine evaluates on a thread of its own; one set-up does too, to tell
        // that apart from everything else the engine does.
        let phases = if name.ends_with("its own thread") {
            std::thread::scope(|s| s.spawn(measure).join())
                .map_err(|_| "the measuring thread panicked".to_string())??
        } else {
            measure()?
        };
        print_phases(name, n_ctx, n_threads, &phases);
    }
    let mut totals = Vec::new();
    let mut evaluated = 0;
    for i in 0..=args.runs {
        let job = sandbox_examples::job(
            Prompt::Tokens(synthetic_prompt(n, i + 100)),
            SamplingParams::greedy(),
            1,
            false,
        );
        let out = sandbox_examples::complete(engine, job)?;
        if i > 0 {
            totals.push(ms(out.timings.prefill));
            evaluated = out.usage.prompt_tokens - out.usage.cached_prompt_tokens;
        }
    }
    let total = median(totals);
    println!(
        "| engine job (the API's prompt_ms) | {} | {threads} | {evaluated} | | | | {total:.2} | {:.0} |\n",
        engine.n_ctx(),
        n as f64 / (total / 1e3)
    );
    Ok(())
}

fn print_phases(name: &str, n_ctx: u32, threads: u32, phases: &[PrefillPhases]) {
    let pick =
        |f: &dyn Fn(&PrefillPhases) -> Duration| median(phases.iter().map(|p| ms(f(p))).collect());
    let (submit, wait, sample) = (pick(&|p| p.submit), pick(&|p| p.wait), pick(&|p| p.sample));
    let total = pick(&|p| p.submit + p.wait + p.sample);
    let evaluated = phases.first().map_or(0, |p| p.evaluated);
    println!(
        "| {name} | {n_ctx} | {threads} | {evaluated} | {submit:.2} | {wait:.2} | {sample:.2} | {total:.2} | {:.0} |",
        evaluated as f64 / (total / 1e3)
    );
}

/// What decoding one batch of k tokens with logits for each costs after a 512-token
/// context, against k = 1: checking a draft of k - 1 guesses. Timed twice: repeated
/// (every batch the same size, so llama.cpp reuses its graph) and as drafting runs it,
/// between one-token steps, where each change of size builds a graph again: for the
/// batch, and for the two one-token steps after it (on CUDA the first runs without a
/// CUDA graph, the second captures it anew). A draft pays off when the tokens it gains
/// per check outweigh what the check costs beyond one-token steps.
fn batch_costs(model: &Model, args: &Args, threads: u32) -> Result<(), String> {
    let mut session = model
        .session(&session_params(args, threads))
        .map_err(|e| e.to_string())?;
    timed_prefill(
        &mut session,
        &synthetic_prompt(512.min(args.ctx as usize / 2), 0),
        true,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "One batch of k tokens, logits for each (ms, median of {} × 5):\n",
        args.runs
    );
    println!(
        "| k | repeated | × k = 1 | between one-token steps | the first one-token step after it | the second | tokens a check must gain to break even | largest logit difference from one at a time (rows whose best token differs) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let batch = |session: &mut Session<'_>, tokens: &[i32]| -> Result<f64, String> {
        Ok(ms(timed_batch(session, tokens).map_err(|e| e.to_string())?))
    };
    let single = [1999];
    let mut one = f64::NAN;
    for k in [1usize, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16] {
        let tokens: Vec<i32> = (0..k).map(|j| (2000 + 13 * j) as i32).collect();
        batch(&mut session, &tokens)?;
        let mut repeated = Vec::new();
        for _ in 0..args.runs * 5 {
            repeated.push(batch(&mut session, &tokens)?);
        }
        let (mut between, mut first, mut second) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs * 5 {
            // Back to steady one-token steps before the next batch.
            for _ in 0..3 {
                batch(&mut session, &single)?;
            }
            between.push(batch(&mut session, &tokens)?);
            first.push(batch(&mut session, &single)?);
            second.push(batch(&mut session, &single)?);
        }
        let (t, b) = (median(repeated), median(between));
        let (a1, a2) = (median(first), median(second));
        let (gap, flips) = batch_logit_gap(&mut session, &tokens).map_err(|e| e.to_string())?;
        if k == 1 {
            one = t;
        }
        // A check replaces one one-token step and slows the two after it.
        println!(
            "| {k} | {t:.3} | {:.2} | {b:.3} | {a1:.3} | {a2:.3} | {:.2} | {gap:.4} ({flips} of {k}) |",
            t / one,
            (b + a1 + a2 - 3.0 * one) / one
        );
    }
    println!();
    Ok(())
}

/// What picking one token from the logits costs the host, per sampler: the time
/// between two decodes that no device work hides.
fn sampling_costs(model: &Model, args: &Args, threads: u32) -> Result<(), String> {
    let mut session = model
        .session(&session_params(args, threads))
        .map_err(|e| e.to_string())?;
    timed_prefill(&mut session, &synthetic_prompt(64, 0), true).map_err(|e| e.to_string())?;
    let samplers = [
        ("greedy", SamplingParams::greedy()),
        (
            "greedy with a logit bias",
            SamplingParams {
                logit_bias: vec![(2, -100.0)],
                ..SamplingParams::greedy()
            },
        ),
        (
            "sampled (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05)",
            SamplingParams::default(),
        ),
        (
            "sampled, top-k off (temperature 1, top-p 0.95)",
            SamplingParams {
                temperature: 1.0,
                top_k: 0,
                min_p: 0.0,
                ..SamplingParams::default()
            },
        ),
        (
            "sampled with repeat penalty 1.1",
            SamplingParams {
                repeat_penalty: 1.1,
                ..SamplingParams::default()
            },
        ),
    ];
    println!(
        "Picking one token from the logits, on the host (µs, median of {} × 200):
",
        args.runs
    );
    println!("| sampler | µs per token |");
    println!("|---|---|");
    for (name, p) in samplers {
        let mut sampler = Sampler::new(model, &p).map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        for _ in 0..args.runs {
            let t = Instant::now();
            for _ in 0..200 {
                std::hint::black_box(session.sample(&mut sampler).map_err(|e| e.to_string())?);
            }
            times.push(t.elapsed().as_secs_f64() * 1e6 / 200.0);
        }
        println!("| {name} | {:.1} |", median(times));
    }
    println!();
    Ok(())
}

/// A 10-turn chat through the engine (each turn's prompt extends the last), compared
/// with evaluating each turn's whole prompt from an empty cache.
fn prefix_reuse(engine: &Engine, model: &Model, params: &SessionParams) -> Result<(), String> {
    // The same chat as scripts/bench/chat_ttft.py's.
    let questions: Vec<&str> = include_str!("../scripts/bench/chat_questions.txt")
        .lines()
        .collect();
    let mut cold = model.session(params).map_err(|e| e.to_string())?;
    let mut history = Vec::new();
    let (mut warm_total, mut cold_total) = (Duration::ZERO, Duration::ZERO);
    println!("\n10-turn chat, prefix reuse (each answer capped at 48 tokens):\n");
    println!(
        "| turn | prompt tokens | cached | template + tokens | prefill with reuse | prefill from empty cache | speedup |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (turn, q) in questions.iter().enumerate() {
        history.push(ChatMessage::new("user", *q));
        // What the request pays before it is queued: the template and the tokenizer
        // over the whole conversation, of which only the new turn is new.
        let t = Instant::now();
        let tokens = engine
            .chat_tokens(&history, None)
            .map_err(|e| e.to_string())?;
        let prep = t.elapsed();
        let job = sandbox_examples::job(
            Prompt::Chat {
                messages: history.clone(),
                tools: None,
            },
            SamplingParams::greedy(),
            48,
            false,
        );
        let out = sandbox_examples::complete(engine, job)?;
        cold.clear();
        let t = Instant::now();
        cold.prefill(&tokens, &mut || false)
            .map_err(|e| e.to_string())?;
        // (The engine's figure also includes sampling the first token: microseconds.)
        let cold_time = t.elapsed();
        let warm_time = out.timings.prefill;
        warm_total += warm_time;
        cold_total += cold_time;
        println!(
            "| {} | {} | {} | {:.2} ms | {:.1} ms | {:.1} ms | {:.1}× |",
            turn + 1,
            out.usage.prompt_tokens,
            out.usage.cached_prompt_tokens,
            prep.as_secs_f64() * 1e3,
            warm_time.as_secs_f64() * 1e3,
            cold_time.as_secs_f64() * 1e3,
            cold_time.as_secs_f64() / warm_time.as_secs_f64()
        );
        history.push(ChatMessage::new("assistant", out.text));
    }
    println!(
        "| all | | | | {:.1} ms | {:.1} ms | {:.1}× |",
        warm_total.as_secs_f64() * 1e3,
        cold_total.as_secs_f64() * 1e3,
        cold_total.as_secs_f64() / warm_total.as_secs_f64()
    );
    Ok(())
}
