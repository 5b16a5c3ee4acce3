//! Speculative decoding by prompt lookup changes how fast tokens come, not which: every
//! guessed position is sampled from its own logits with the job's own sampler, so the
//! same settings with drafting on and off give the same tokens, greedy or seeded, with
//! stop strings, length limits, grammars and log-probabilities, and a cancelled
//! drafting job leaves the cache as plain decoding would.
//!
//! One thing differs: logits computed for several tokens in one batch differ from
//! one-token logits in the last bits of floating point (other kernels, another
//! summation order; llama.cpp's own batched decoding does the same). Where two tokens
//! are that close the choice can flip. So the check is: identical, or else the first
//! difference falls on such a tie, which a test prompt here shows.

mod common;

use sandbox_core::{
    ChatMessage, Completion, Engine, EngineConfig, FinishReason, JobEvent, JobRequest, Limits,
    Prompt, SamplingParams,
};

fn engine(draft_tokens: u32) -> Engine {
    engine_drafting(Some(draft_tokens))
}

fn engine_drafting(draft_tokens: Option<u32>) -> Engine {
    Engine::start(&EngineConfig {
        model_path: common::smollm2(),
        n_ctx: 4096,
        n_threads: 1,
        queue_capacity: 4,
        draft_tokens,
        ..EngineConfig::default()
    })
    .expect("engine starts")
}

/// A text the answer copies: prompt lookup's best case.
const LETTER: &str = "Dear Ms. Alvarez,\n\nThank you for your order of twelve blue ceramic \
    mugs and three teapots. The mugs will ship on Monday from our warehouse in Porto, and \
    the teapots will follow on Thursday. Your tracking number is AB-4471-QX.\n\nKind \
    regards,\nThe Sandbox Pottery Team";

fn chat(text: &str, sampling: SamplingParams, max_tokens: usize) -> JobRequest {
    JobRequest {
        prompt: Prompt::Chat {
            messages: vec![ChatMessage::new("user", text)],
            tools: None,
        },
        sampling,
        limits: Limits {
            max_tokens: Some(max_tokens),
            ..Limits::default()
        },
        logprobs: None,
    }
}

fn run(engine: &Engine, job: JobRequest) -> Completion {
    engine.submit(job).expect("submit").wait().expect("runs")
}

/// Two log-probabilities closer than this are a floating-point tie: far above the
/// differences seen between batched and one-token logits (about 0.001), far below a
/// real preference.
const TIE: f32 = 0.05;

/// Where `b`'s tokens first differ from `a`'s, after checking that the difference is a
/// tie in `a`'s own distribution (both runs must carry log-probabilities).
fn first_difference(a: &Completion, b: &Completion) -> Option<usize> {
    let i = a.tokens.iter().zip(&b.tokens).position(|(x, y)| x != y)?;
    let top = &a.logprobs[i].top;
    let theirs = top
        .iter()
        .find(|(t, _)| *t == b.tokens[i])
        .map(|(_, lp)| *lp);
    let margin = theirs.map(|lp| top[0].1 - lp);
    assert!(
        margin.is_some_and(|m| m < TIE),
        "token {i} differs by more than a tie: {:?} vs {:?}",
        a.logprobs[i],
        b.logprobs.get(i)
    );
    Some(i)
}

fn jobs() -> Vec<JobRequest> {
    let copy = format!("Repeat this letter exactly, word for word:\n\n{LETTER}");
    let edit = format!(
        "Rewrite this letter with the tracking number AB-9000-ZZ instead, changing nothing else:\n\n{LETTER}"
    );
    let seeded = SamplingParams {
        seed: Some(42),
        ..SamplingParams::default()
    };
    let mut stop = chat(&copy, SamplingParams::greedy(), 300);
    stop.limits.stop = vec!["Porto".into()];
    let mut grammar = chat(
        "Is the sky blue? Answer yes or no, then repeat the answer.",
        SamplingParams::greedy(),
        40,
    );
    grammar.sampling.grammar =
        Some(r#"root ::= ("yes" | "no") ". " ("yes" | "no") ". " ("yes" | "no") "." "#.into());
    let mut logprobs = chat(&copy, SamplingParams::greedy(), 60);
    logprobs.logprobs = Some(2);
    let code = "Rename the function total to sum_all in this file and print the whole file:\n\n\
        ```python\ndef total(orders):\n    result = 0\n    for order in orders:\n        \
        result += order.quantity * order.price\n    return result\n\n\ndef report(orders):\n    \
        print(\"Total:\", total(orders))\n```";
    vec![
        chat(&copy, SamplingParams::greedy(), 300),
        chat(&edit, SamplingParams::greedy(), 300),
        chat(code, SamplingParams::greedy(), 200),
        chat("Write a haiku about the sea.", SamplingParams::greedy(), 60),
        chat(&copy, seeded.clone(), 200),
        chat("Tell me a short story about a fox.", seeded, 80),
        chat(&copy, SamplingParams::greedy(), 17),
        stop,
        grammar,
        logprobs,
    ]
}

#[test]
fn drafting_changes_no_token() {
    let plain = engine(0);
    let drafting = engine(8);
    let (mut drafted, mut checks) = (0, 0);
    let mut accepted = 0;
    let mut ties = 0;
    for (i, job) in jobs().into_iter().enumerate() {
        let mut job = job;
        let wanted = job.logprobs;
        job.logprobs = Some(wanted.unwrap_or(2).max(2));
        let a = run(&plain, job.clone());
        let b = run(&drafting, job);
        if let Some(at) = first_difference(&a, &b) {
            eprintln!(
                "job {i}: a floating-point tie at token {at}, {:?}",
                a.logprobs[at].top
            );
            ties += 1;
            continue;
        }
        assert_eq!(a.tokens, b.tokens, "job {i}");
        assert_eq!(a.text, b.text, "job {i}");
        assert_eq!(a.finish_reason, b.finish_reason, "job {i}");
        assert_eq!(
            a.usage.completion_tokens, b.usage.completion_tokens,
            "job {i}"
        );
        assert_eq!(
            a.usage.cached_prompt_tokens, b.usage.cached_prompt_tokens,
            "job {i}: the cache holds the same"
        );
        assert_eq!(a.usage.draft_tokens, 0);
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert_eq!(x.token, y.token);
            assert!(
                (x.logprob - y.logprob).abs() < 1e-4,
                "job {i}: {x:?} vs {y:?}"
            );
        }
        assert!(b.usage.accepted_draft_tokens <= b.usage.draft_tokens);
        // Every check holds at least one guess, and at most the longest allowed.
        assert!(b.usage.draft_checks <= b.usage.draft_tokens, "job {i}");
        assert!(b.usage.draft_tokens <= 8 * b.usage.draft_checks, "job {i}");
        assert_eq!(
            b.usage.draft_checks > 0,
            b.usage.draft_tokens > 0,
            "job {i}"
        );
        drafted += b.usage.draft_tokens;
        checks += b.usage.draft_checks;
        accepted += b.usage.accepted_draft_tokens;
        match i {
            6 => assert_eq!(b.finish_reason, FinishReason::Length),
            7 => assert_eq!(b.finish_reason, FinishReason::StopString),
            _ => {}
        }
    }
    assert!(
        accepted > 50,
        "copying a letter is guessed well: {accepted} of {drafted}"
    );
    // Guesses that stand grow longer than the first one-token guess.
    assert!(
        drafted > 2 * checks,
        "{drafted} tokens guessed in {checks} checks"
    );
    assert!(
        ties <= 2,
        "{ties} of the jobs met a tie: the guessed positions are not sampled as plain ones"
    );
    eprintln!(
        "drafted {drafted} tokens, {accepted} accepted; {ties} jobs ended identical up to a tie"
    );
}

#[test]
fn a_cancelled_drafting_job_leaves_a_true_cache() {
    let plain = engine(0);
    let drafting = engine(8);
    let copy = format!("Repeat this letter exactly, word for word:\n\n{LETTER}");
    let mut long = chat(&copy, SamplingParams::greedy(), 400);
    long.limits.ignore_eos = true;
    let mut handle = drafting.submit(long).unwrap();
    let mut seen = 0;
    while seen < 30 {
        match handle.next_event_blocking() {
            Some(JobEvent::Token { .. }) => seen += 1,
            Some(JobEvent::Done { .. } | JobEvent::Failed { .. }) | None => panic!("ended early"),
            Some(_) => {}
        }
    }
    handle.cancel();
    drop(handle);
    // The same prompt again reuses what the cancelled job cached, and must match.
    let again = chat(&copy, SamplingParams::greedy(), 120);
    assert_eq!(
        run(&plain, again.clone()).tokens,
        run(&drafting, again).tokens
    );
}

#[test]
fn a_cpu_engine_does_not_draft_unless_told_to() {
    // A batch costs nearly a token per token on a CPU: the default is off there.
    let engine = engine_drafting(None);
    let copy = format!("Repeat this letter exactly, word for word:\n\n{LETTER}");
    let done = run(&engine, chat(&copy, SamplingParams::greedy(), 40));
    assert_eq!(done.usage.completion_tokens, 40);
    assert_eq!(done.usage.draft_tokens, 0);
    assert_eq!(done.usage.draft_checks, 0);
}
