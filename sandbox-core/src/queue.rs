//! The bounded FIFO in front of the engine thread. Submitters push, the engine thread
//! pops one job at a time, handles remove their job when cancelled or dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use llama_sys::{Sampler, TokenId};
use tokio::sync::mpsc::UnboundedSender;

use crate::EngineError;
use crate::job::{JobEvent, JobId, Limits};

/// Before any job has finished, assume this per job for wait estimates.
const INITIAL_JOB_ESTIMATE: Duration = Duration::from_secs(5);

/// How often the idle engine thread wakes up (to expire waiting jobs and to beat its
/// heartbeat).
pub(crate) const IDLE_WAKE: Duration = Duration::from_millis(250);

/// A job that passed validation: tokenized, limits resolved, its sampler built (once,
/// before it is queued, so a bad grammar or bias is refused at once).
#[derive(Debug)]
pub(crate) struct PreparedJob {
    pub tokens: Vec<TokenId>,
    pub sampler: Sampler,
    pub limits: Limits,
    pub max_tokens: usize,
    pub logprobs: Option<usize>,
    /// Drop the leading space of the first generated word (chat answers on
    /// SentencePiece models).
    pub strip_leading_space: bool,
}

/// A job waiting for (or holding) the engine.
#[derive(Debug)]
pub(crate) struct Pending {
    pub id: JobId,
    pub job: PreparedJob,
    pub submitted: Instant,
    pub events: UnboundedSender<JobEvent>,
    pub cancel: Arc<AtomicBool>,
}

impl Pending {
    pub fn send(&self, event: JobEvent) -> bool {
        self.events.send(event).is_ok()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.events.is_closed()
    }

    /// The error to fail with if the job has waited too long, else `None`.
    fn expired(&self, now: Instant) -> Option<EngineError> {
        let waited = now.saturating_duration_since(self.submitted);
        if let Some(limit) = self.job.limits.max_queue_wait
            && waited > limit
        {
            return Some(EngineError::QueueTimeout { waited, limit });
        }
        match self.job.limits.deadline {
            Some(d) if waited > d => Some(EngineError::DeadlineExceeded(d)),
            _ => None,
        }
    }
}

/// A snapshot of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStatus {
    /// Jobs waiting (not counting the running one).
    pub waiting: usize,
    /// The running job, if any.
    pub running: Option<JobId>,
    /// Most jobs that may wait.
    pub capacity: usize,
    /// Estimated time until a job submitted now would start.
    pub estimated_wait: Duration,
    /// Jobs finished since start.
    pub completed: u64,
}

#[derive(Debug)]
struct State {
    waiting: VecDeque<Pending>,
    running: Option<(JobId, Instant)>,
    running_cancel: Option<Arc<AtomicBool>>,
    next_id: JobId,
    /// No new jobs (a shutdown's grace period); the running one goes on.
    draining: bool,
    shutdown: bool,
    avg_job: Duration,
    completed: u64,
}

impl State {
    fn ahead_of(&self, index: usize) -> usize {
        index + usize::from(self.running.is_some())
    }

    fn estimate_wait(&self, ahead: usize) -> Duration {
        let running_left = self.running.map_or(Duration::ZERO, |(_, t)| {
            self.avg_job.saturating_sub(t.elapsed())
        });
        running_left
            + self.avg_job
                * u32::try_from(ahead.saturating_sub(usize::from(self.running.is_some())))
                    .unwrap_or(u32::MAX)
    }

    /// When a full queue has room again: as soon as the running job ends and the first
    /// waiting one starts (not when the whole queue has drained, which after start-up
    /// told clients 43 s for a queue that emptied in 4.6 s).
    fn until_a_place_frees(&self) -> Duration {
        self.estimate_wait(usize::from(self.running.is_some()))
            .max(Duration::from_secs(1))
    }

    fn announce_positions(&self) {
        for (i, p) in self.waiting.iter().enumerate() {
            p.send(JobEvent::Queued {
                position: self.ahead_of(i),
            });
        }
    }
}

/// The queue shared by submitters, handles and the engine thread.
#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                running: None,
                running_cancel: None,
                next_id: 1,
                draining: false,
                shutdown: false,
                avg_job: INITIAL_JOB_ESTIMATE,
                completed: 0,
            }),
            wake: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue half-updated in a way
        // that matters more than stopping service, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a job, or refuses at once when the queue is full.
    pub fn push(
        &self,
        job: PreparedJob,
        events: UnboundedSender<JobEvent>,
        cancel: Arc<AtomicBool>,
    ) -> Result<JobId, EngineError> {
        let mut st = self.lock();
        if st.shutdown || st.draining {
            return Err(EngineError::Stopped);
        }
        if st.waiting.len() >= self.capacity {
            return Err(EngineError::QueueFull {
                capacity: self.capacity,
                retry_after: st.until_a_place_frees(),
            });
        }
        let id = st.next_id;
        st.next_id += 1;
        let pending = Pending {
            id,
            job,
            submitted: Instant::now(),
            events,
            cancel,
        };
        pending.send(JobEvent::Queued {
            position: st.ahead_of(st.waiting.len()),
        });
        st.waiting.push_back(pending);
        drop(st);
        self.wake.notify_all();
        Ok(id)
    }

    /// Blocks until a job is available and marks it running; `None` on shutdown.
    /// Jobs that expired while waiting are failed on the way. `beat` is called on
    /// every wake-up, at least every [`IDLE_WAKE`] while idle.
    pub fn pop(&self, beat: &dyn Fn()) -> Option<Pending> {
        let mut st = self.lock();
        loop {
            beat();
            if st.shutdown {
                return None;
            }
            Self::fail_expired(&mut st);
            if let Some(p) = st.waiting.pop_front() {
                st.running = Some((p.id, Instant::now()));
                st.running_cancel = Some(Arc::clone(&p.cancel));
                st.announce_positions();
                return Some(p);
            }
            // Wake up now and then to expire jobs and beat even when nothing else
            // happens.
            st = self
                .wake
                .wait_timeout(st, IDLE_WAKE)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Fails waiting jobs whose queue-wait limit or deadline has passed.
    pub fn expire(&self) {
        let mut st = self.lock();
        Self::fail_expired(&mut st);
    }

    fn fail_expired(st: &mut State) {
        let now = Instant::now();
        let before = st.waiting.len();
        st.waiting.retain(|p| match p.expired(now) {
            Some(error) => {
                p.send(JobEvent::Failed { error });
                false
            }
            None => true,
        });
        if st.waiting.len() != before {
            st.announce_positions();
        }
    }

    /// Marks the running job finished and learns how long jobs take.
    pub fn finish(&self, id: JobId) {
        let mut st = self.lock();
        if let Some((rid, started)) = st.running
            && rid == id
        {
            // The first real job replaces the guess; later ones move the average.
            st.avg_job = if st.completed == 0 {
                started.elapsed()
            } else {
                st.avg_job.mul_f64(0.7) + started.elapsed().mul_f64(0.3)
            };
            st.running = None;
            st.running_cancel = None;
            st.completed += 1;
        }
    }

    /// Removes a waiting job (cancelled before it started). Returns whether it was
    /// still waiting.
    pub fn remove(&self, id: JobId) -> bool {
        let mut st = self.lock();
        let Some(i) = st.waiting.iter().position(|p| p.id == id) else {
            return false;
        };
        if let Some(p) = st.waiting.remove(i) {
            p.send(JobEvent::Failed {
                error: EngineError::Cancelled,
            });
        }
        st.announce_positions();
        true
    }

    /// Jobs ahead of `id` (counting the running one); `None` when it is not waiting.
    pub fn position(&self, id: JobId) -> Option<usize> {
        let st = self.lock();
        st.waiting
            .iter()
            .position(|p| p.id == id)
            .map(|i| st.ahead_of(i))
    }

    pub fn status(&self) -> QueueStatus {
        let st = self.lock();
        let ahead = st.waiting.len() + usize::from(st.running.is_some());
        QueueStatus {
            waiting: st.waiting.len(),
            running: st.running.map(|(id, _)| id),
            capacity: self.capacity,
            estimated_wait: st.estimate_wait(ahead),
            completed: st.completed,
        }
    }

    /// Stops admitting jobs and fails every waiting one with [`EngineError::Stopped`]
    /// (their clients can retry elsewhere or later at once); the running job goes on.
    pub fn drain(&self) {
        let mut st = self.lock();
        st.draining = true;
        Self::fail_waiting(&mut st);
    }

    /// Stops accepting jobs, fails every waiting one and cancels the running one.
    pub fn shutdown(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        if let Some(cancel) = &st.running_cancel {
            cancel.store(true, Ordering::Relaxed);
        }
        Self::fail_waiting(&mut st);
        drop(st);
        self.wake.notify_all();
    }

    /// Whether [`Queue::shutdown`] was called: a job cancelled now was stopped by it,
    /// not by its client.
    pub fn is_shut_down(&self) -> bool {
        self.lock().shutdown
    }

    fn fail_waiting(st: &mut State) {
        for p in st.waiting.drain(..) {
            p.send(JobEvent::Failed {
                error: EngineError::Stopped,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_asks_to_retry_when_the_running_job_ends() {
        let q = Queue::new(8);
        {
            let mut st = q.lock();
            st.avg_job = Duration::from_secs(4);
            st.running = Some((1, Instant::now() - Duration::from_secs(1)));
        }
        let st = q.lock();
        let retry = st.until_a_place_frees();
        // About the 3 s the running job has left, not 3 s + 8 x 4 s.
        assert!(retry <= Duration::from_secs(3) && retry > Duration::from_millis(2500), "{retry:?}");
        assert!(st.estimate_wait(9) > Duration::from_secs(30));
    }

    fn job() -> PreparedJob {
        PreparedJob {
            tokens: vec![1],
            sampler: Sampler::greedy(),
            limits: Limits::default(),
            max_tokens: 1,
            logprobs: None,
            strip_leading_space: false,
        }
    }

    #[test]
    fn draining_fails_the_waiting_refuses_new_and_spares_the_running() {
        let q = Queue::new(8);
        let running = Arc::new(AtomicBool::new(false));
        q.lock().running = Some((1, Instant::now()));
        q.lock().running_cancel = Some(Arc::clone(&running));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        q.push(job(), tx, Arc::new(AtomicBool::new(false)))
            .expect("the queue has room");
        q.drain();
        let mut events = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            events.push(ev);
        }
        assert!(
            matches!(events.last(), Some(JobEvent::Failed { error: EngineError::Stopped })),
            "{events:?}"
        );
        assert_eq!(q.status().waiting, 0);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        assert!(matches!(
            q.push(job(), tx, Arc::new(AtomicBool::new(false))),
            Err(EngineError::Stopped)
        ));
        assert!(!running.load(Ordering::Relaxed) && !q.is_shut_down());
        q.shutdown();
        assert!(running.load(Ordering::Relaxed) && q.is_shut_down());
    }

    #[test]
    fn the_first_finished_job_replaces_the_initial_guess() {
        let q = Queue::new(8);
        q.lock().running = Some((1, Instant::now() - Duration::from_millis(200)));
        q.finish(1);
        let avg = q.lock().avg_job;
        assert!(avg >= Duration::from_millis(200) && avg < Duration::from_secs(1), "{avg:?}");
        q.lock().running = Some((2, Instant::now() - Duration::from_millis(1200)));
        q.finish(2);
        let avg = q.lock().avg_job;
        // Then a moving average: between the two.
        assert!(avg > Duration::from_millis(300) && avg < Duration::from_millis(1200), "{avg:?}");
    }
}
