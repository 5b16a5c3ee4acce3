//! The engine on a real model (SmolLM2-135M-Instruct): queue order, one job at a time,
//! refusal, cancellation, limits, determinism and prefix reuse.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sandbox_core::{
    ChatMessage, Engine, EngineError, FinishReason, JobEvent, JobHandle, JobRequest, Limits,
    Prompt, SamplingParams,
};

fn greedy(prompt: &str, max_tokens: usize) -> JobRequest {
    JobRequest {
        prompt: Prompt::Chat {
            messages: vec![ChatMessage::new("user", prompt)],
            tools: None,
        },
        sampling: SamplingParams::greedy(),
        limits: Limits {
            max_tokens: Some(max_tokens),
            ..Limits::default()
        },
        logprobs: None,
    }
}

/// A job that keeps the engine busy until cancelled.
fn endless() -> JobRequest {
    let mut job = greedy("Count from one to one thousand.", 1500);
    job.limits.ignore_eos = true;
    job
}

/// Waits until the job has produced `n` tokens.
fn wait_tokens(handle: &mut JobHandle, n: usize) {
    let mut seen = 0;
    while seen < n {
        match handle.next_event_blocking() {
            Some(JobEvent::Token { .. }) => seen += 1,
            Some(JobEvent::Failed { error }) => panic!("job failed: {error}"),
            Some(JobEvent::Done { .. }) | None => panic!("job ended after {seen} tokens"),
            Some(_) => {}
        }
    }
}

fn wait_idle(engine: &Engine, within: Duration) -> Duration {
    let t = Instant::now();
    while engine.queue_status().running.is_some() {
        assert!(t.elapsed() < within, "engine still busy after {within:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    t.elapsed()
}

#[test]
fn answers_a_question_for_real() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let out = engine
        .submit(greedy(
            "What is the capital of France? Answer in one word.",
            16,
        ))
        .unwrap()
        .wait()
        .unwrap();
    assert!(out.text.contains("Paris"), "answer: {:?}", out.text);
    assert_eq!(out.finish_reason, FinishReason::EndOfGeneration);
    assert!(out.usage.prompt_tokens > 10 && out.usage.completion_tokens > 0);
    assert!(out.timings.prefill > Duration::ZERO && out.timings.decode > Duration::ZERO);
}

#[test]
fn greedy_generation_is_deterministic() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let a = engine
        .submit(greedy("Write a haiku about rust.", 40))
        .unwrap()
        .wait()
        .unwrap();
    // Something else in between, so the second run starts from a different cache.
    engine
        .submit(greedy("Name three colours.", 10))
        .unwrap()
        .wait()
        .unwrap();
    let b = engine
        .submit(greedy("Write a haiku about rust.", 40))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.text, b.text);
    assert!(a.tokens.len() > 5);
    // A fresh engine (empty cache) gives the same answer too.
    let fresh = common::engine(common::smollm2(), 2048, 4);
    let c = fresh
        .submit(greedy("Write a haiku about rust.", 40))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(a.tokens, c.tokens);
}

#[test]
fn seeded_sampling_repeats_and_seeds_differ() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let sampled = |seed| {
        let mut job = greedy("Tell me a short story about a cat.", 30);
        job.sampling = SamplingParams {
            temperature: 1.2,
            seed: Some(seed),
            ..SamplingParams::default()
        };
        engine.submit(job).unwrap().wait().unwrap().tokens
    };
    assert_eq!(sampled(7), sampled(7));
    assert_ne!(sampled(7), sampled(8));
}

#[test]
fn stop_strings_end_generation_even_across_tokens() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let full = engine
        .submit(greedy("Explain what a CPU does in three sentences.", 60))
        .unwrap()
        .wait()
        .unwrap();
    // A stop string that starts inside one token and ends in a later one.
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() > 40, "answer too short: {:?}", full.text);
    let start = chars.len() / 2;
    let stop: String = chars[start..start + 7].iter().collect();
    let before: String = full.text[..full.text.find(&stop).unwrap()].to_string();

    let mut job = greedy("Explain what a CPU does in three sentences.", 60);
    job.limits.stop = vec!["a string that never appears".into(), stop.clone()];
    let mut handle = engine.submit(job).unwrap();
    let mut streamed = String::new();
    let mut finish = None;
    while let Some(ev) = handle.next_event_blocking() {
        match ev {
            JobEvent::Token { text, .. } | JobEvent::Tail { text } => streamed.push_str(&text),
            JobEvent::Done { finish_reason, .. } => finish = Some(finish_reason),
            JobEvent::Failed { error } => panic!("{error}"),
            _ => {}
        }
    }
    assert_eq!(finish, Some(FinishReason::StopString));
    assert_eq!(streamed, before, "stop {stop:?}");
    assert!(!streamed.contains(&stop));
}

/// The engine reports a token while the device decodes it; when that report ends the
/// answer (a stop string), the token must leave the cache again, as it never enters it
/// in plain decoding. A prompt that extends the answer shows what was cached.
#[test]
fn the_token_that_completes_a_stop_string_is_not_cached() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let tokens = |prompt: Vec<i32>, stop: Option<&str>, max_tokens: usize| {
        let mut job = greedy("", max_tokens);
        job.prompt = Prompt::Tokens(prompt);
        job.limits.stop = stop.into_iter().map(str::to_owned).collect();
        engine.submit(job).unwrap().wait().unwrap()
    };
    // Some natural text as ready-made tokens.
    let prompt = engine
        .submit(greedy("Explain what a CPU does in three sentences.", 30))
        .unwrap()
        .wait()
        .unwrap()
        .tokens;
    let full = tokens(prompt.clone(), None, 40);
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() > 30, "answer too short: {:?}", full.text);
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 5].iter().collect();
    let stopped = tokens(prompt.clone(), Some(&stop), 40);
    assert_eq!(
        stopped.finish_reason,
        FinishReason::StopString,
        "stop {stop:?}"
    );
    let reported = stopped.tokens.len();
    assert!(reported < full.tokens.len());

    let mut extended = prompt.clone();
    extended.extend_from_slice(&stopped.tokens);
    extended.push(stopped.tokens[0]);
    let follow = tokens(extended, None, 1);
    assert_eq!(
        follow.usage.cached_prompt_tokens,
        prompt.len() + reported - 1,
        "the cache holds the prompt and every reported token but the last"
    );
}

#[test]
fn context_overflow_is_a_typed_error_with_both_numbers() {
    let engine = common::engine(common::smollm2(), 256, 4);
    let long = "word ".repeat(200);
    let err = engine.submit(greedy(&long, 100)).unwrap_err();
    match &err {
        EngineError::ContextOverflow {
            prompt_tokens,
            max_tokens,
            n_ctx,
        } => {
            assert!(*prompt_tokens > 200);
            assert_eq!((*max_tokens, *n_ctx), (100, 256));
            let msg = err.to_string();
            assert!(
                msg.contains(&prompt_tokens.to_string()) && msg.contains("256"),
                "{msg}"
            );
        }
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    // Nothing was queued and the engine still works.
    assert_eq!(engine.queue_status().waiting, 0);
    engine.submit(greedy("Hi", 4)).unwrap().wait().unwrap();
}

#[test]
fn full_queue_is_refused_immediately_with_retry_after() {
    let engine = common::engine(common::smollm2(), 2048, 2);
    let mut running = engine.submit(endless()).unwrap();
    wait_tokens(&mut running, 1);
    let _a = engine.submit(greedy("a", 4)).unwrap();
    let _b = engine.submit(greedy("b", 4)).unwrap();
    let t = Instant::now();
    let err = engine.submit(greedy("c", 4)).unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "refusal took {:?}",
        t.elapsed()
    );
    match err {
        EngineError::QueueFull {
            capacity,
            retry_after,
        } => {
            assert_eq!(capacity, 2);
            assert!(retry_after >= Duration::from_secs(1));
        }
        other => panic!("expected QueueFull, got {other:?}"),
    }
    let status = engine.queue_status();
    assert_eq!((status.waiting, status.running), (2, Some(running.id())));
}

#[test]
fn fifo_and_one_at_a_time_under_concurrent_submitters() {
    let engine = Arc::new(common::engine(common::smollm2(), 2048, 64));
    let submitters = 12;
    let barrier = Arc::new(Barrier::new(submitters));
    let threads: Vec<_> = (0..submitters)
        .map(|i| {
            let engine = Arc::clone(&engine);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut job = greedy(&format!("Say the number {i}."), 6);
                job.limits.ignore_eos = true;
                let handle = engine.submit(job).unwrap();
                let id = handle.id();
                (id, handle.wait().unwrap())
            })
        })
        .collect();
    let mut runs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    runs.sort_by_key(|(id, _)| *id);
    for pair in runs.windows(2) {
        let (ida, a) = &pair[0];
        let (idb, b) = &pair[1];
        assert!(
            b.timings.started_at >= a.timings.finished_at,
            "job {idb} started before job {ida} finished"
        );
        assert!(b.timings.queue_wait > Duration::ZERO);
    }
    assert!(runs.iter().all(|(_, r)| r.usage.completion_tokens == 6));
    assert_eq!(engine.queue_status().completed, submitters as u64);
}

#[test]
fn queue_positions_are_reported_and_move_up() {
    let engine = common::engine(common::smollm2(), 2048, 8);
    let mut running = engine.submit(endless()).unwrap();
    wait_tokens(&mut running, 1);
    let mut second = engine.submit(greedy("x", 2)).unwrap();
    let mut third = engine.submit(greedy("y", 2)).unwrap();
    assert!(matches!(
        second.next_event_blocking(),
        Some(JobEvent::Queued { position: 1 })
    ));
    assert!(matches!(
        third.next_event_blocking(),
        Some(JobEvent::Queued { position: 2 })
    ));
    assert_eq!((second.position(), third.position()), (Some(1), Some(2)));
    drop(second); // cancel-by-drop of a queued job: third moves up
    assert!(matches!(
        third.next_event_blocking(),
        Some(JobEvent::Queued { position: 1 })
    ));
    assert_eq!(third.position(), Some(1));
    assert!(engine.queue_status().estimated_wait > Duration::ZERO);
}

#[test]
fn dropping_a_running_job_frees_the_engine_within_a_token() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let mut running = engine.submit(endless()).unwrap();
    wait_tokens(&mut running, 3);
    let t = Instant::now();
    let next = engine.submit(greedy("Hi", 2)).unwrap();
    drop(running);
    let out = next.wait().unwrap();
    // One token takes a few ms here; waiting for the endless job would take many seconds.
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        out.timings.queue_wait < Duration::from_secs(1),
        "queue wait {:?}",
        out.timings.queue_wait
    );
    wait_idle(&engine, Duration::from_secs(1));
}

#[test]
fn explicit_cancel_of_running_job_reports_cancelled() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let mut running = engine.submit(endless()).unwrap();
    wait_tokens(&mut running, 2);
    running.cancel();
    let mut finish = None;
    let mut later_tokens = 0;
    while let Some(ev) = running.next_event_blocking() {
        match ev {
            JobEvent::Token { .. } => later_tokens += 1,
            JobEvent::Done {
                finish_reason,
                usage,
                ..
            } => {
                finish = Some(finish_reason);
                assert!(usage.completion_tokens < 40);
            }
            _ => {}
        }
    }
    assert_eq!(finish, Some(FinishReason::Cancelled));
    assert!(later_tokens <= 1, "{later_tokens} tokens after cancel");
}

#[test]
fn cancelled_queued_job_never_starts() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let mut running = engine.submit(endless()).unwrap();
    wait_tokens(&mut running, 1);
    let mut queued = engine.submit(greedy("never", 4)).unwrap();
    assert!(matches!(
        queued.next_event_blocking(),
        Some(JobEvent::Queued { .. })
    ));
    queued.cancel();
    assert!(matches!(
        queued.next_event_blocking(),
        Some(JobEvent::Failed {
            error: EngineError::Cancelled
        })
    ));
    assert!(queued.next_event_blocking().is_none());
    drop(running);
    wait_idle(&engine, Duration::from_secs(2));
    engine.submit(greedy("after", 2)).unwrap().wait().unwrap();
    // The endless job and the last one ran; the cancelled one did not.
    assert_eq!(engine.queue_status().completed, 2);
}

#[test]
fn queue_wait_limit_and_deadline() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let mut running = engine.submit(endless()).unwrap();
    wait_tokens(&mut running, 1);
    let mut impatient = greedy("x", 2);
    impatient.limits.max_queue_wait = Some(Duration::from_millis(100));
    let t = Instant::now();
    let err = engine.submit(impatient).unwrap().wait().unwrap_err();
    assert!(matches!(err, EngineError::QueueTimeout { .. }), "{err:?}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "expired after {:?}",
        t.elapsed()
    );
    drop(running);

    let mut bounded = endless();
    bounded.limits.deadline = Some(Duration::from_millis(300));
    let out = engine.submit(bounded).unwrap().wait().unwrap();
    assert_eq!(out.finish_reason, FinishReason::Deadline);
    assert!(out.usage.completion_tokens > 0);
}

#[test]
fn next_chat_turn_reuses_the_cached_prefix() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let mut messages = vec![ChatMessage::new(
        "user",
        "Give me a fun fact about octopuses.",
    )];
    let job = |messages: &Vec<ChatMessage>| JobRequest {
        prompt: Prompt::Chat {
            messages: messages.clone(),
            tools: None,
        },
        ..greedy("", 24)
    };
    let first = engine.submit(job(&messages)).unwrap().wait().unwrap();
    assert_eq!(first.usage.cached_prompt_tokens, 0);
    messages.push(ChatMessage::new("assistant", first.text.clone()));
    messages.push(ChatMessage::new("user", "And one about squids?"));
    let second = engine.submit(job(&messages)).unwrap().wait().unwrap();
    assert!(
        second.usage.cached_prompt_tokens >= first.usage.prompt_tokens,
        "cached {} of {} (first prompt {})",
        second.usage.cached_prompt_tokens,
        second.usage.prompt_tokens,
        first.usage.prompt_tokens
    );
}

#[test]
fn grammar_constrains_output_and_bad_grammar_is_refused() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let mut job = greedy("Is the sky blue? Answer yes or no.", 8);
    job.sampling.grammar = Some(r#"root ::= ("yes" | "no") "." "#.into());
    let out = engine.submit(job).unwrap().wait().unwrap();
    assert!(out.text == "yes." || out.text == "no.", "{:?}", out.text);

    let mut bad = greedy("x", 4);
    bad.sampling.grammar = Some("root ::= (".into());
    assert!(matches!(engine.submit(bad), Err(EngineError::Llama(_))));
}

#[test]
fn logprobs_describe_the_greedy_choice() {
    let engine = common::engine(common::smollm2(), 2048, 4);
    let mut job = greedy("Say hello.", 5);
    job.logprobs = Some(3);
    let out = engine.submit(job).unwrap().wait().unwrap();
    assert_eq!(out.logprobs.len(), out.tokens.len());
    for (lp, &tok) in out.logprobs.iter().zip(&out.tokens) {
        assert_eq!(lp.token, tok);
        assert_eq!(lp.top.len(), 3);
        assert_eq!(lp.top[0].0, tok, "greedy picks the most likely token");
        assert!(lp.logprob <= 0.0 && (lp.logprob - lp.top[0].1).abs() < 1e-5);
        assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}

#[test]
fn engine_greedy_matches_llama_cpps_greedy_sampler() {
    use sandbox_core::diagnostics::{Model, ModelParams, bare_greedy_decode};
    let engine = common::engine(common::smollm2(), 2048, 4);
    let prompt = engine
        .tokenize("The history of the printing press", true)
        .unwrap();
    let mut job = greedy("", 24);
    job.prompt = Prompt::Tokens(prompt.clone());
    job.limits.ignore_eos = true;
    let ours = engine.submit(job).unwrap().wait().unwrap().tokens;
    let model = Model::load(&common::smollm2(), &ModelParams::default()).unwrap();
    let mut session = model.session(&one_thread(2048)).unwrap();
    let bare = bare_greedy_decode(&mut session, &prompt, 24)
        .unwrap()
        .tokens;
    assert_eq!(
        ours, bare,
        "the arg-max fast path must pick what llama.cpp's greedy sampler picks"
    );
}

#[test]
fn a_warmed_up_session_starts_empty_and_answers_as_a_fresh_one() {
    use sandbox_core::diagnostics::{Model, ModelParams, bare_greedy_decode};
    // tiny-mistral: a 512-token warm-up batch takes milliseconds there.
    let model = Model::load(&common::tiny_mistral(), &ModelParams::default()).unwrap();
    let params = one_thread(1024);
    let prompt = model
        .tokenize("[INST] Name three colours. [/INST]", true)
        .unwrap();
    let mut fresh = model.session(&params).unwrap();
    let expected = bare_greedy_decode(&mut fresh, &prompt, 12).unwrap().tokens;

    let mut warmed = model.session(&params).unwrap();
    warmed.warm_up().unwrap();
    assert!(warmed.cached_tokens().is_empty());
    let outcome = warmed.prefill(&prompt, &mut || false).unwrap().unwrap();
    assert_eq!((outcome.cached, outcome.evaluated), (0, prompt.len()));
    assert_eq!(
        bare_greedy_decode(&mut warmed, &prompt, 12).unwrap().tokens,
        expected
    );
}

#[test]
fn a_batch_cut_away_whole_leaves_no_logits_to_sample() {
    use sandbox_core::diagnostics::{Model, ModelParams, timed_batch};
    let model = Model::load(&common::tiny_mistral(), &ModelParams::default()).unwrap();
    let mut session = model.session(&one_thread(256)).unwrap();
    let prompt = model.tokenize("[INST] Hi [/INST]", true).unwrap();
    session.prefill(&prompt, &mut || false).unwrap();
    assert!(session.logprobs(prompt[0], 0).is_ok());
    timed_batch(&mut session, &prompt[1..4]).unwrap();
    assert_eq!(session.cached_tokens(), &prompt[..]);
    assert!(
        session.logprobs(prompt[0], 0).is_err(),
        "stale logits were readable"
    );
}

/// A bare session's parameters: `n_ctx` tokens, one CPU thread.
fn one_thread(n_ctx: u32) -> sandbox_core::diagnostics::SessionParams {
    sandbox_core::diagnostics::SessionParams {
        n_ctx,
        n_threads: Some(1),
        ..Default::default()
    }
}
