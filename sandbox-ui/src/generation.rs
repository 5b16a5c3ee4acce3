//! Answers being written. Each runs as its own task, independent of the browser that
//! asked: closing the tab does not lose the answer, a reloaded page re-attaches, and
//! Stop (from any tab) ends it. Every piece of text is on disk before any browser
//! sees it, so a crash keeps at least what was shown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use sandbox_core::contract::openai::ChatCompletionRequest;

use crate::api_client::{ApiClient, Upstream};
use crate::store::{AnswerDetails, Message, MessageStatus, Store};

/// What a browser watching an answer receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum UiEvent {
    /// The exchange is stored: its conversation and message numbers.
    Start {
        /// Conversation id (a string: JavaScript numbers lose digits past 2^53).
        conversation: String,
        /// Conversation title.
        title: String,
        /// The user's message (absent when regenerating).
        user_seq: Option<u64>,
        /// The answer's message.
        assistant_seq: u64,
        /// How many versions the answer has with this one (the one being written is
        /// the last).
        versions: usize,
    },
    /// The answer so far (first event for a browser that attaches late).
    Snapshot {
        /// Text written so far.
        content: String,
    },
    /// Waiting behind this many requests.
    Queued {
        /// Requests ahead.
        position: usize,
    },
    /// More text.
    Delta {
        /// The new text.
        text: String,
    },
    /// The end.
    Done {
        /// complete, truncated, stopped or failed.
        status: MessageStatus,
        /// Why it failed.
        error: Option<String>,
        /// How it was made, when the model finished it.
        details: Option<AnswerDetails>,
    },
}

#[derive(Debug, Default)]
struct Shared {
    content: String,
    queued: Option<usize>,
    done: Option<UiEvent>,
    watchers: Vec<mpsc::UnboundedSender<UiEvent>>,
}

/// Text is written to disk (and then shown) at most this often: one fsync per token
/// would cost a fast GPU stream more than it shows.
const WRITE_EVERY: Duration = Duration::from_millis(50);

/// One answer being written.
#[derive(Debug)]
pub struct Generation {
    shared: Mutex<Shared>,
    stop: watch::Sender<bool>,
}

impl Generation {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, ev: UiEvent) {
        let mut s = self.lock();
        match &ev {
            UiEvent::Delta { text } => {
                s.content.push_str(text);
                s.queued = None;
            }
            UiEvent::Queued { position } => s.queued = Some(*position),
            UiEvent::Done { .. } => s.done = Some(ev.clone()),
            _ => {}
        }
        s.watchers.retain(|w| w.send(ev.clone()).is_ok());
    }

    /// Events from now on, starting with what was written so far (and the end, for a
    /// watcher that comes after it).
    pub fn watch(&self) -> mpsc::UnboundedReceiver<UiEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = self.lock();
        let _ = tx.send(UiEvent::Snapshot {
            content: s.content.clone(),
        });
        if let Some(done) = &s.done {
            let _ = tx.send(done.clone());
            return rx;
        }
        if let Some(position) = s.queued {
            let _ = tx.send(UiEvent::Queued { position });
        }
        s.watchers.push(tx);
        rx
    }

    /// Asks the writer to stop; the answer is kept and marked stopped.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// The answers being written, by conversation (one at a time per conversation).
#[derive(Debug, Default)]
pub struct Generations {
    live: Mutex<HashMap<u64, Arc<Generation>>>,
}

impl Generations {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Generation>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer being written in `conversation`, if any.
    pub fn get(&self, conversation: u64) -> Option<Arc<Generation>> {
        self.lock().get(&conversation).cloned()
    }

    /// Reserves `conversation` for a new answer; `None` when one is being written.
    /// The reservation is given back when the returned guard is dropped without
    /// [`Reservation::run`] (an error, or a request dropped half-way).
    pub fn reserve(self: &Arc<Self>, conversation: u64) -> Option<Reservation> {
        let mut live = self.lock();
        if live.contains_key(&conversation) {
            return None;
        }
        let g = Arc::new(Generation {
            shared: Mutex::new(Shared::default()),
            stop: watch::channel(false).0,
        });
        live.insert(conversation, g.clone());
        Some(Reservation {
            owner: self.clone(),
            conversation,
            generation: g,
            armed: true,
        })
    }
}

/// A conversation reserved for an answer about to be written.
#[derive(Debug)]
pub struct Reservation {
    owner: Arc<Generations>,
    conversation: u64,
    generation: Arc<Generation>,
    armed: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            self.owner.lock().remove(&self.conversation);
        }
    }
}

impl Reservation {
    /// Marks the answer as continuing `text` (already stored), which watchers then
    /// see first.
    pub fn continues(&self, text: &str) {
        self.generation.lock().content = text.to_owned();
    }

    /// Follows the answer (see [`Generation::watch`]).
    pub fn watch(&self) -> mpsc::UnboundedReceiver<UiEvent> {
        self.generation.watch()
    }

    /// Writes `answer` (an empty stored message) from the model on a task of its own,
    /// then releases the conversation.
    pub fn run(
        mut self,
        store: Store,
        api: ApiClient,
        request: ChatCompletionRequest,
        answer: Message,
    ) {
        self.armed = false;
        let (owner, g) = (self.owner.clone(), self.generation.clone());
        actix_web::rt::spawn(owner.write_and_release(g, store, api, request, answer));
    }
}

impl Generations {
    /// Writes the answer, stores how it ended, frees the conversation, then tells the
    /// watchers.
    async fn write_and_release(
        self: Arc<Self>,
        g: Arc<Generation>,
        store: Store,
        api: ApiClient,
        request: ChatCompletionRequest,
        mut answer: Message,
    ) {
        let (mut status, mut error, unshown) =
            write_answer(&g, &store, &api, &request, &mut answer).await;
        answer.status = status;
        answer.error.clone_from(&error);
        match blocking_update(&store, &answer).await {
            Ok(()) if !unshown.is_empty() => g.emit(UiEvent::Delta { text: unshown }),
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot store the end of an answer");
                status = MessageStatus::Failed;
                error = Some(e);
            }
        }
        tracing::info!(conversation = answer.conversation, status = ?status, chars = answer.content.len(), "answer finished");
        // Remove before telling the watchers, so that a browser acting on `done`
        // (regenerate, send) finds the conversation free.
        self.lock().remove(&answer.conversation);
        let details = answer.details.clone();
        g.emit(UiEvent::Done {
            status,
            error,
            details,
        });
    }
}

async fn write_answer(
    g: &Generation,
    store: &Store,
    api: &ApiClient,
    request: &ChatCompletionRequest,
    answer: &mut Message,
) -> (MessageStatus, Option<String>, String) {
    let mut stop = g.stop.subscribe();
    let stream = tokio::select! {
        s = api.chat(request) => s,
        _ = stop.wait_for(|s| *s) => return (MessageStatus::Stopped, None, String::new()),
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => return (MessageStatus::Failed, Some(e.to_string()), String::new()),
    };
    // Text received but not yet on disk, and when it must be written: the first piece
    // at once (time to first token), then at most every WRITE_EVERY.
    let mut pending = String::new();
    let mut last_write: Option<Instant> = None;
    let mut finish = None;
    let end = loop {
        let due = last_write
            .filter(|_| !pending.is_empty())
            .map(|t| t + WRITE_EVERY);
        let next = tokio::select! {
            ev = stream.next() => Some(ev),
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => None,
            // Dropping the stream closes the connection: sandbox-api frees the slot.
            _ = stop.wait_for(|s| *s) => break (MessageStatus::Stopped, None),
        };
        match next {
            None => {}
            // "length": max_tokens or the context window cut the answer off.
            Some(None) if finish.as_deref() == Some("length") => {
                break (MessageStatus::Truncated, None);
            }
            Some(None) => break (MessageStatus::Complete, None),
            Some(Some(Err(e))) => break (MessageStatus::Failed, Some(e.to_string())),
            Some(Some(Ok(Upstream::Queued(position)))) => g.emit(UiEvent::Queued { position }),
            Some(Some(Ok(Upstream::Finish(reason, timings)))) => {
                if let Some(t) = timings {
                    let made = AnswerDetails::new(&t, &reason);
                    // Only a continued answer has details before it ends.
                    answer.details = Some(match answer.details.take() {
                        Some(before) => before.continued_by(made),
                        None => made,
                    });
                }
                finish = Some(reason);
            }
            Some(Some(Ok(Upstream::Delta(text)))) => {
                pending.push_str(&text);
                if last_write.is_some_and(|t| t.elapsed() < WRITE_EVERY) {
                    continue;
                }
            }
        }
        if !pending.is_empty() {
            if let Err(e) = write_pending(g, store, answer, &mut pending).await {
                return (MessageStatus::Failed, Some(e), String::new());
            }
            last_write = Some(Instant::now());
        }
    };
    // What arrived last goes into the answer; `finish` stores it, then shows it.
    answer.content.push_str(&pending);
    (end.0, end.1, pending)
}

/// Stores the pending text, then shows it.
async fn write_pending(
    g: &Generation,
    store: &Store,
    answer: &mut Message,
    pending: &mut String,
) -> Result<(), String> {
    answer.content.push_str(pending);
    blocking_update(store, answer).await?;
    g.emit(UiEvent::Delta {
        text: std::mem::take(pending),
    });
    Ok(())
}

async fn blocking_update(store: &Store, m: &Message) -> Result<(), String> {
    let store = store.clone();
    let m = m.clone();
    match tokio::task::spawn_blocking(move || store.update_message(&m)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the history writer failed: {e}")),
    }
}
