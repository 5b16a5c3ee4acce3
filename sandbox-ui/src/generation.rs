//! Answers being written. Each runs as its own task, independent of the browser that
//! asked: closing the tab does not lose the answer, a reloaded page re-attaches, and
//! Stop (from any tab) ends it. Every piece of text is on disk before any browser
//! sees it, so a crash keeps at least what was shown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::api_client::{ApiClient, ChatRequest, Upstream};
use crate::store::{Message, MessageStatus, Store};

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
        /// complete, stopped or failed.
        status: MessageStatus,
        /// Why it failed.
        error: Option<String>,
    },
}

#[derive(Debug, Default)]
struct Shared {
    content: String,
    queued: Option<usize>,
    watchers: Vec<mpsc::UnboundedSender<UiEvent>>,
}

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
            _ => {}
        }
        s.watchers.retain(|w| w.send(ev.clone()).is_ok());
    }

    /// Events from now on, starting with what was written so far.
    pub fn watch(&self) -> mpsc::UnboundedReceiver<UiEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = self.lock();
        let _ = tx.send(UiEvent::Snapshot {
            content: s.content.clone(),
        });
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
    pub fn reserve(&self, conversation: u64) -> Option<Arc<Generation>> {
        let mut live = self.lock();
        if live.contains_key(&conversation) {
            return None;
        }
        let g = Arc::new(Generation {
            shared: Mutex::new(Shared::default()),
            stop: watch::channel(false).0,
        });
        live.insert(conversation, g.clone());
        Some(g)
    }

    /// Gives back a reservation that did not start an answer.
    pub fn release(&self, conversation: u64) {
        self.lock().remove(&conversation);
    }

    /// Writes `answer` (an empty stored message) from the model, then releases the
    /// conversation.
    pub async fn run(
        self: Arc<Self>,
        g: Arc<Generation>,
        store: Store,
        api: ApiClient,
        request: ChatRequest,
        mut answer: Message,
    ) {
        let (status, error) = write_answer(&g, &store, &api, &request, &mut answer).await;
        answer.status = status;
        answer.error.clone_from(&error);
        if let Err(e) = blocking_update(&store, &answer).await {
            tracing::error!(error = %e, "cannot store the end of an answer");
        }
        tracing::info!(conversation = answer.conversation, status = ?status, chars = answer.content.len(), "answer finished");
        // Remove before telling the watchers, so that a browser acting on `done`
        // (regenerate, send) finds the conversation free.
        self.lock().remove(&answer.conversation);
        g.emit(UiEvent::Done { status, error });
    }
}

async fn write_answer(
    g: &Generation,
    store: &Store,
    api: &ApiClient,
    request: &ChatRequest,
    answer: &mut Message,
) -> (MessageStatus, Option<String>) {
    let mut stop = g.stop.subscribe();
    let stream = tokio::select! {
        s = api.chat(request) => s,
        _ = stop.wait_for(|s| *s) => return (MessageStatus::Stopped, None),
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => return (MessageStatus::Failed, Some(e.to_string())),
    };
    loop {
        let next = tokio::select! {
            ev = stream.next() => ev,
            // Dropping the stream closes the connection: sandbox-api frees the slot.
            _ = stop.wait_for(|s| *s) => return (MessageStatus::Stopped, None),
        };
        match next {
            None => return (MessageStatus::Complete, None),
            Some(Err(e)) => return (MessageStatus::Failed, Some(e.to_string())),
            Some(Ok(Upstream::Queued(position))) => g.emit(UiEvent::Queued { position }),
            Some(Ok(Upstream::Finish(reason))) => {
                if reason == "length" {
                    tracing::debug!("answer cut at max_tokens");
                }
            }
            Some(Ok(Upstream::Delta(text))) => {
                let text = text + &stream.ready_text();
                answer.content.push_str(&text);
                if let Err(e) = blocking_update(store, answer).await {
                    return (MessageStatus::Failed, Some(e));
                }
                g.emit(UiEvent::Delta { text });
            }
        }
    }
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
