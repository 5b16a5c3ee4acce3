use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Download progress, as reported to the readiness state and the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownloadProgress {
    /// Bytes on disk.
    pub downloaded: u64,
    /// File size.
    pub total: u64,
    /// Recent transfer rate.
    pub bytes_per_second: f64,
    /// Estimated time left.
    pub eta: Option<Duration>,
}

impl DownloadProgress {
    /// Fraction done, 0..=1.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.downloaded as f64 / self.total as f64
        }
    }

    /// "43.0 % of 4.37 GB, 85.2 MB/s, about 30 s left".
    pub fn describe(&self) -> String {
        let eta = self
            .eta
            .map_or(String::new(), |e| format!(", about {} s left", e.as_secs()));
        format!(
            "{:.1} % of {:.2} GB, {:.1} MB/s{eta}",
            self.fraction() * 100.0,
            self.total as f64 / 1e9,
            self.bytes_per_second / 1e6
        )
    }
}

type Callback = Box<dyn FnMut(&DownloadProgress) + Send>;

struct State {
    total: u64,
    downloaded: u64,
    window_start: Instant,
    window_bytes: u64,
    rate: f64,
    last_report: Option<Instant>,
    callback: Callback,
}

/// Adapts hf-hub's progress calls to [`DownloadProgress`] reports, at most every
/// `every`.
#[derive(Clone)]
pub struct Reporter {
    state: Arc<Mutex<State>>,
    every: Duration,
}

impl Reporter {
    pub fn new(every: Duration, callback: Callback) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                total: 0,
                downloaded: 0,
                window_start: Instant::now(),
                window_bytes: 0,
                rate: 0.0,
                last_report: None,
                callback,
            })),
            every,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut st)
    }

    fn report(st: &mut State, force: bool, every: Duration) {
        let now = Instant::now();
        if !force
            && st
                .last_report
                .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        let window = now.duration_since(st.window_start);
        if window >= Duration::from_millis(500) {
            st.rate = st.window_bytes as f64 / window.as_secs_f64();
            st.window_start = now;
            st.window_bytes = 0;
        }
        st.last_report = Some(now);
        let left = st.total.saturating_sub(st.downloaded);
        let p = DownloadProgress {
            downloaded: st.downloaded,
            total: st.total,
            bytes_per_second: st.rate,
            eta: (st.rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / st.rate)),
        };
        (st.callback)(&p);
    }
}

impl hf_hub::api::tokio::Progress for Reporter {
    async fn init(&mut self, size: usize, _filename: &str) {
        let every = self.every;
        self.with(|st| {
            st.total = size as u64;
            Self::report(st, true, every);
        });
    }

    async fn update(&mut self, size: usize) {
        let every = self.every;
        self.with(|st| {
            st.downloaded += size as u64;
            st.window_bytes += size as u64;
            Self::report(st, false, every);
        });
    }

    async fn finish(&mut self) {
        let every = self.every;
        self.with(|st| {
            st.downloaded = st.total;
            Self::report(st, true, every);
        });
    }
}
