//! The caller's side of a job.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::EngineError;
use crate::job::{Completion, JobEvent, JobId};
use crate::queue::Queue;

/// The caller's side of a job: its events, its position, and its cancellation.
/// Dropping the handle cancels the job (a client that went away frees the engine).
#[derive(Debug)]
pub struct JobHandle {
    pub(super) id: JobId,
    pub(super) events: UnboundedReceiver<JobEvent>,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) queue: Arc<Queue>,
}

impl JobHandle {
    /// The job's id (ids grow in submission order).
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Jobs ahead of this one, or `None` once it has started (or ended).
    pub fn position(&self) -> Option<usize> {
        self.queue.position(self.id)
    }

    /// Cancels the job: a waiting job never starts, a running one stops within one
    /// token. Events already produced can still be read.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.queue.remove(self.id);
    }

    /// The next event; `None` after `Done`/`Failed`.
    pub async fn next_event(&mut self) -> Option<JobEvent> {
        self.events.recv().await
    }

    /// The next event, blocking the current thread (not for use inside an async
    /// runtime).
    pub fn next_event_blocking(&mut self) -> Option<JobEvent> {
        self.events.blocking_recv()
    }

    /// Waits for the job to end and gathers its output (blocking).
    pub fn wait(mut self) -> Result<Completion, EngineError> {
        let mut text = String::new();
        let mut tokens = Vec::new();
        let mut logprobs = Vec::new();
        while let Some(event) = self.next_event_blocking() {
            match event {
                JobEvent::Queued { .. } | JobEvent::Started { .. } => {}
                JobEvent::Token {
                    id,
                    text: t,
                    logprob,
                } => {
                    tokens.push(id);
                    text.push_str(&t);
                    logprobs.extend(logprob);
                }
                JobEvent::Tail { text: t } => text.push_str(&t),
                JobEvent::Done {
                    finish_reason,
                    usage,
                    timings,
                } => {
                    return Ok(Completion {
                        text,
                        tokens,
                        logprobs,
                        finish_reason,
                        usage,
                        timings,
                    });
                }
                JobEvent::Failed { error } => return Err(error),
            }
        }
        Err(EngineError::Stopped)
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}
