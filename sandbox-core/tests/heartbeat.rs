//! The engine thread's heartbeat (what a watchdog reads): fresh while idle, fresh
//! through a long prefill and generation, stale once the thread has stopped.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sandbox_core::{
    ChatMessage, Engine, EngineConfig, JobEvent, JobRequest, Limits, Prompt, SamplingParams,
};

/// Fresh means younger than this: the idle thread wakes every 250 ms; the rest is
/// slack for a loaded two-core CI machine. Watchdog periods are seconds.
const FRESH: Duration = Duration::from_millis(1000);

/// The oldest heartbeat seen over `window`, sampled every 10 ms.
fn oldest_heartbeat(engine: &Engine, window: Duration) -> Duration {
    let end = Instant::now() + window;
    let mut oldest = Duration::ZERO;
    while Instant::now() < end {
        oldest = oldest.max(engine.heartbeat_age());
        std::thread::sleep(Duration::from_millis(10));
    }
    oldest
}

#[test]
fn an_idle_engine_keeps_beating() {
    let engine = common::engine(common::smollm2(), 512, 2);
    let oldest = oldest_heartbeat(&engine, Duration::from_secs(2));
    assert!(
        oldest < FRESH,
        "an idle engine's heartbeat reached {oldest:?}"
    );
}

#[test]
fn a_busy_engine_beats_per_prefill_batch_and_token() {
    // Small batches and a long prompt: the prefill alone is many batches.
    let engine = Engine::start(&EngineConfig {
        model_path: common::smollm2(),
        n_ctx: 1024,
        n_batch: 32,
        n_threads: 1,
        queue_capacity: 2,
        ..EngineConfig::default()
    })
    .expect("engine starts");
    let prompt = "Tell me about the sea and the ships on it. ".repeat(25);
    let mut job = engine
        .submit(JobRequest {
            prompt: Prompt::Chat {
                messages: vec![ChatMessage::new("user", &prompt)],
                tools: None,
            },
            sampling: SamplingParams::greedy(),
            limits: Limits {
                max_tokens: Some(600),
                ignore_eos: true,
                ..Limits::default()
            },
            logprobs: None,
        })
        .expect("submitted");
    // Sample the heartbeat from submission through the prefill until TOKENS tokens.
    const TOKENS: usize = 100;
    let done = AtomicBool::new(false);
    let t0 = Instant::now();
    let (oldest, first_token) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut oldest = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                oldest = oldest.max(engine.heartbeat_age());
                std::thread::sleep(Duration::from_millis(5));
            }
            oldest
        });
        let mut tokens = 0;
        let mut first_token = None;
        while tokens < TOKENS {
            match job.next_event_blocking() {
                Some(JobEvent::Token { .. }) => {
                    first_token.get_or_insert_with(|| t0.elapsed());
                    tokens += 1;
                }
                Some(JobEvent::Failed { error }) => panic!("job failed: {error}"),
                Some(JobEvent::Done { .. }) | None => panic!("the job ended after {tokens}"),
                Some(_) => {}
            }
        }
        done.store(true, Ordering::Relaxed);
        (sampler.join().expect("sampler thread"), first_token)
    });
    eprintln!(
        "prefill (to the first token) {first_token:?}, {TOKENS} tokens in {:?}, oldest heartbeat {oldest:?}",
        t0.elapsed()
    );
    assert!(
        oldest < FRESH,
        "a busy engine's heartbeat reached {oldest:?}"
    );
    job.cancel();
}

#[test]
fn a_stopped_engine_goes_stale() {
    let engine = common::engine(common::smollm2(), 512, 2);
    assert!(engine.heartbeat_age() < FRESH);
    engine.shutdown();
    std::thread::sleep(Duration::from_millis(1200));
    let age = engine.heartbeat_age();
    assert!(
        age >= Duration::from_millis(1100),
        "the heartbeat of a stopped engine is only {age:?} old"
    );
}
