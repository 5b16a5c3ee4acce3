//! Speculative decoding by prompt lookup against plain decoding, on the same model and
//! the same greedy jobs: tokens/s of each, the speedup, how many guessed tokens were
//! kept, and whether the outputs are identical. They are, except where two tokens tie
//! within floating-point noise: a batch's logits differ from one token's in the last
//! bits, so a tie can fall either way (the column then names the first token that
//! differs; `sandbox-core/tests/speculation.rs` checks that such a token is a tie).
//! Tasks: two that repeat their prompt (editing a code file, summarising with quotes)
//! and two free chats. Prints a Markdown table.
//!
//! On a CPU a batch of k tokens costs nearly k times one token, so the speedup seen
//! here is not what a GPU sees. The table therefore also projects each task's speedup
//! onto GPUs from what its guesses did (tokens, guessed, kept, checks) and what one
//! batch of k tokens costs there (`--gpu-costs`; the default is the H200 table that
//! `examples/bench` printed for Mistral-7B Q4_K_M, and the RTX 4000 Ada one derived
//! from it).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sandbox_core::{ChatMessage, Completion, Engine, Prompt, SamplingParams};

/// Compare decoding with and without prompt-lookup drafts (default model: SmolLM2).
#[derive(Parser)]
struct Args {
    /// GGUF model file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Most tokens guessed per step when drafting (the GPU default).
    #[arg(long, default_value_t = sandbox_core::GPU_DRAFT_TOKENS)]
    draft_tokens: u32,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Repetitions per figure (the median is shown).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Context window.
    #[arg(long, default_value_t = 4096)]
    ctx: u32,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// GPU batch costs to project onto, as NAME:k=ms,k=ms,… (one flag per GPU).
    #[arg(long = "gpu-costs", default_values_t = DEFAULT_COSTS.map(String::from))]
    gpu_costs: Vec<String>,
}

/// One batch of k tokens with logits for each, ms, repeated at one size (a job keeps
/// one width for stretches, so its checks pay no graph rebuild but at a change of
/// width, a few times an answer, left out here). H200: measured by `examples/bench`
/// (`scripts/bench/gpu phases`) on the Mistral-7B-shaped Q4_K_M, 2026-12-02, CUDA op
/// fusion off, with llama-sys/patches' per-shape CUDA graphs. RTX 4000 Ada: one token
/// at the 85 % of its 360 GB/s ceiling that batch-1 decoding reaches on such cards
/// (4.37 GB / 306 GB/s = 14.3 ms), each further token of a batch 2.5 times the H200's
/// extra time (its FP32 rate is 26.7 TFLOP/s against 67): assumptions, not
/// measurements.
const DEFAULT_COSTS: [&str; 2] = [
    "H200:1=3.812,2=4.182,3=4.731,4=5.471,5=6.092,6=6.735,7=7.330,8=7.987,9=7.692,12=7.778,16=7.874",
    "RTX 4000 Ada:1=14.30,2=15.23,3=16.60,4=18.45,5=20.00,6=21.61,7=23.09,8=24.74,9=24.00,12=24.21,16=24.45",
];

/// A GPU's batch costs: ms for a batch of k tokens, between the measured k linearly,
/// past the last one flat (the batched kernels' cost barely grows there).
struct Costs {
    name: String,
    points: Vec<(f64, f64)>,
}

impl Costs {
    fn parse(spec: &str) -> Result<Self, String> {
        let bad = || format!("--gpu-costs {spec:?}: want NAME:k=ms,k=ms,… with k = 1 first");
        let (name, table) = spec.split_once(':').ok_or_else(bad)?;
        let points = table
            .split(',')
            .map(|kv| {
                let (k, ms) = kv.split_once('=')?;
                Some((k.trim().parse().ok()?, ms.trim().parse().ok()?))
            })
            .collect::<Option<Vec<(f64, f64)>>>()
            .ok_or_else(bad)?;
        if points.first().is_none_or(|p| p.0 != 1.0) || points.windows(2).any(|w| w[0].0 >= w[1].0)
        {
            return Err(bad());
        }
        Ok(Self {
            name: name.to_owned(),
            points,
        })
    }

    fn ms(&self, k: f64) -> f64 {
        let (first, last) = (self.points[0], self.points[self.points.len() - 1]);
        if k <= first.0 {
            return first.1;
        }
        if k >= last.0 {
            return last.1;
        }
        let i = self
            .points
            .iter()
            .position(|p| p.0 >= k)
            .unwrap_or(0)
            .max(1);
        let ((k0, t0), (k1, t1)) = (self.points[i - 1], self.points[i]);
        t0 + (t1 - t0) * (k - k0) / (k1 - k0)
    }

    /// Plain decoding's time over drafting's for an answer whose guessing went as
    /// `u` says: every step decodes one batch; a step that checks guesses decodes them
    /// with its token (their mean number stands for each check's).
    fn speedup(&self, u: &sandbox_core::Usage) -> f64 {
        let n = u.completion_tokens as f64;
        let checks = u.draft_checks as f64;
        let plain_steps = (n - u.accepted_draft_tokens as f64 - checks).max(0.0);
        let per_check = if checks > 0.0 {
            u.draft_tokens as f64 / checks
        } else {
            0.0
        };
        let drafting = plain_steps * self.ms(1.0) + checks * self.ms(per_check + 1.0);
        n * self.ms(1.0) / drafting
    }
}

const CODE: &str = r#"def load_orders(path):
    orders = []
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) != 3:
                continue
            customer, item, quantity = fields
            orders.append({"customer": customer, "item": item, "quantity": int(quantity)})
    return orders


def total_by_customer(orders):
    totals = {}
    for order in orders:
        totals[order["customer"]] = totals.get(order["customer"], 0) + order["quantity"]
    return totals
"#;

const ARTICLE: &str = "The harbour council met on Tuesday to discuss the new ferry timetable. \
    \"We cannot run boats every twenty minutes in winter,\" said the council's chair, Ana \
    Ribeiro. Fishermen asked for the old pier to stay open: \"The pier is where our nets \
    dry,\" one of them said. The council agreed to keep the pier open until March and to \
    publish the winter timetable next week.";

fn tasks() -> Vec<(&'static str, String)> {
    vec![
        (
            "edit a code file",
            format!(
                "Rename the function total_by_customer to totals_per_customer in this file and print the whole file:\n\n```python\n{CODE}```"
            ),
        ),
        (
            "summarise with quotes",
            format!(
                "Summarise this article in three sentences, quoting the chair and the fishermen word for word:\n\n{ARTICLE}"
            ),
        ),
        (
            "free chat: a story",
            "Tell me a story about a lighthouse keeper and a storm.".into(),
        ),
        (
            "free chat: advice",
            "How do I start learning to play the piano as an adult?".into(),
        ),
    ]
}

fn main() -> ExitCode {
    sandbox_examples::run(run)
}

fn answer(
    engine: &Engine,
    text: &str,
    max_tokens: usize,
    logprobs: Option<usize>,
) -> Result<Completion, String> {
    let prompt = Prompt::Chat {
        messages: vec![ChatMessage::new("user", text)],
        tools: None,
    };
    let mut job = sandbox_examples::job(prompt, SamplingParams::greedy(), max_tokens, false);
    job.logprobs = logprobs;
    sandbox_examples::complete(engine, job)
}

/// Where plain and drafting answers part, with the plain run's two best
/// log-probabilities there (an untimed re-run), which tell a tie from a real difference.
/// The re-run decodes without overlapping the report (log-probabilities need the
/// logits first), so where it parts from the plain run itself, that is said instead.
fn parting(
    engine: &Engine,
    text: &str,
    max_tokens: usize,
    plain: &[sandbox_core::TokenId],
    i: usize,
) -> Result<String, String> {
    let rerun = answer(engine, text, max_tokens, Some(2))?;
    if let Some(j) = rerun.tokens.iter().zip(plain).position(|(a, b)| a != b)
        && j <= i
    {
        return Ok(format!(
            "from token {i} on; plain decoding with log-probabilities parts from it at {j}"
        ));
    }
    let top = rerun
        .logprobs
        .get(i)
        .map(|l| l.top.clone())
        .unwrap_or_default();
    Ok(match top.as_slice() {
        [(_, a), (_, b), ..] => format!("from token {i} on (best two: {a:.4} vs {b:.4})"),
        _ => format!("from token {i} on"),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(args: Args) -> Result<(), String> {
    let plain = sandbox_examples::start_engine_with(args.model.clone(), args.ctx, args.threads, 0)?;
    let drafting = sandbox_examples::start_engine_with(
        args.model.clone(),
        args.ctx,
        args.threads,
        args.draft_tokens,
    )?;
    println!(
        "model: {}, {} draft tokens, greedy, at most {} tokens, median of {} runs\n",
        plain.model_path().display(),
        args.draft_tokens,
        args.max_tokens,
        args.runs
    );
    let gpus = args
        .gpu_costs
        .iter()
        .map(|s| Costs::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let projected: String = gpus
        .iter()
        .map(|g| format!(" {} projected |", g.name))
        .collect();
    println!(
        "| task | tokens | plain tok/s | drafting tok/s | speedup | guesses kept | checks |{projected} identical |"
    );
    println!(
        "|---|---|---|---|---|---|---|{}---|",
        "---|".repeat(gpus.len())
    );
    for (name, text) in tasks() {
        let (mut a, mut b, mut differs, mut tokens) = (Vec::new(), Vec::new(), None, 0);
        let mut usage = sandbox_core::Usage::default();
        for _ in 0..args.runs {
            let x = answer(&plain, &text, args.max_tokens, None)?;
            let y = answer(&drafting, &text, args.max_tokens, None)?;
            if differs.is_none()
                && let Some(i) = x.tokens.iter().zip(&y.tokens).position(|(p, q)| p != q)
            {
                differs = Some(parting(&plain, &text, args.max_tokens, &x.tokens, i)?);
            }
            tokens = x.usage.completion_tokens;
            // Over the whole answer, time to first token included: what a reader waits.
            let rate = |c: &Completion| {
                c.usage.completion_tokens as f64
                    / (c.timings.prefill + c.timings.decode).as_secs_f64()
            };
            a.push(rate(&x));
            b.push(rate(&y));
            usage = y.usage;
        }
        let (a, b) = (median(a), median(b));
        let projected: String = gpus
            .iter()
            .map(|g| format!(" {:.2}× |", g.speedup(&usage)))
            .collect();
        println!(
            "| {name} | {tokens} | {a:.1} | {b:.1} | {:.2}× | {} of {} | {} |{projected} {} |",
            b / a,
            usage.accepted_draft_tokens,
            usage.draft_tokens,
            usage.draft_checks,
            differs.unwrap_or_else(|| "yes".to_owned())
        );
    }
    Ok(())
}
