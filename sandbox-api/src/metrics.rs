//! Prometheus text-format metrics, kept by hand: a few counters, two histograms and
//! gauges read from the engine at scrape time. `render` is one long function on
//! purpose: it is the exposition itself, one metric after another in the order a
//! scrape shows them, and reads best as that list.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use sandbox_core::contract::ready::{RECENT_ANSWERS, RecentAnswer};
use sandbox_core::{QueueStatus, Timings, Usage};

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.total += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.total);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.total);
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    queue_wait: Histogram,
    generation: Histogram,
    prompt_tokens: u64,
    cached_tokens: u64,
    completion_tokens: u64,
    last_tokens_per_second: f64,
    recent: std::collections::VecDeque<RecentAnswer>,
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16) {
        *self
            .lock()
            .requests
            .entry((route.to_owned(), status))
            .or_default() += 1;
    }

    /// Records a finished generation.
    pub fn job(&self, usage: &Usage, timings: &Timings) {
        let mut m = self.lock();
        m.queue_wait.observe(timings.queue_wait.as_secs_f64());
        m.generation
            .observe((timings.prefill + timings.decode).as_secs_f64());
        m.prompt_tokens += usage.prompt_tokens as u64;
        m.cached_tokens += usage.cached_prompt_tokens as u64;
        m.completion_tokens += usage.completion_tokens as u64;
        if usage.completion_tokens > 1 {
            m.last_tokens_per_second = timings.decode_tokens_per_second(usage);
        }
        if m.recent.len() == RECENT_ANSWERS {
            m.recent.pop_front();
        }
        m.recent.push_back(RecentAnswer {
            completion_tokens: usage.completion_tokens as u32,
            tokens_per_second: timings.decode_tokens_per_second(usage),
            time_to_first_token_ms: timings.prefill.as_secs_f64() * 1000.0,
            queue_ms: timings.queue_wait.as_secs_f64() * 1000.0,
        });
    }

    /// The last finished generations, oldest first.
    pub fn recent_answers(&self) -> Vec<RecentAnswer> {
        self.lock().recent.iter().copied().collect()
    }

    /// The text exposition.
    pub fn render(&self, queue: Option<QueueStatus>, ready: bool) -> String {
        let m = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP sandbox_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE sandbox_http_requests_total counter\n");
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "sandbox_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "sandbox_model_ready",
            "1 when the model is serving.",
            f64::from(u8::from(ready)),
        );
        let q = queue.unwrap_or(QueueStatus {
            waiting: 0,
            running: None,
            capacity: 0,
            estimated_wait: std::time::Duration::ZERO,
            completed: 0,
        });
        gauge(
            &mut out,
            "sandbox_queue_length",
            "Requests waiting for the engine.",
            q.waiting as f64,
        );
        gauge(
            &mut out,
            "sandbox_queue_running",
            "1 while a generation runs.",
            f64::from(u8::from(q.running.is_some())),
        );
        gauge(
            &mut out,
            "sandbox_queue_capacity",
            "Most requests that may wait.",
            q.capacity as f64,
        );
        gauge(
            &mut out,
            "sandbox_queue_estimated_wait_seconds",
            "Estimated wait for a request submitted now.",
            q.estimated_wait.as_secs_f64(),
        );
        m.queue_wait.render(
            &mut out,
            "sandbox_queue_wait_seconds",
            "Time requests waited in the queue.",
        );
        m.generation.render(
            &mut out,
            "sandbox_generation_seconds",
            "Time from start to end of a generation.",
        );
        counter(
            &mut out,
            "sandbox_prompt_tokens_total",
            "Prompt tokens processed.",
            m.prompt_tokens,
        );
        counter(
            &mut out,
            "sandbox_cached_prompt_tokens_total",
            "Prompt tokens reused from the cache.",
            m.cached_tokens,
        );
        counter(
            &mut out,
            "sandbox_completion_tokens_total",
            "Tokens generated.",
            m.completion_tokens,
        );
        gauge(
            &mut out,
            "sandbox_last_job_tokens_per_second",
            "Decode speed of the last generation.",
            m.last_tokens_per_second,
        );
        out
    }
}
