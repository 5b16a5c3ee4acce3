//! Server-sent events: a task drives the generation and feeds the response body; when
//! the client goes away the task notices at once and drops the job, which frees the
//! engine within one token.

use std::future::Future;

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::web::Bytes;
use futures_util::StreamExt;
use sandbox_core::contract::sse;
use serde::Serialize;
use tokio::sync::mpsc;

/// Sends SSE events to the client.
#[derive(Debug, Clone)]
pub struct SseSender(mpsc::Sender<Bytes>);

impl SseSender {
    /// Sends one `data:` event; false when the client is gone.
    pub async fn json(&self, value: &impl Serialize) -> bool {
        self.raw(sse::data(value)).await
    }

    /// Tells a waiting client its queue position as an SSE comment, which OpenAI
    /// clients skip and the UI shows ("2 requests ahead of you").
    pub async fn queue_position(&self, position: usize) -> bool {
        self.raw(sse::queue_position(position)).await
    }

    /// Sends the final `data: [DONE]`.
    pub async fn done(&self) -> bool {
        self.raw(sse::DONE.to_owned()).await
    }

    async fn raw(&self, s: String) -> bool {
        self.0.send(Bytes::from(s)).await.is_ok()
    }

    /// Ends the stream with an error object (OpenAI streams errors as data) and
    /// `[DONE]`.
    pub async fn fail(&self, error: &crate::error::ApiError) {
        let _ = self.json(&error.body()).await;
        let _ = self.done().await;
    }

    /// Resolves when the client has disconnected.
    pub async fn closed(&self) {
        self.0.closed().await;
    }
}

/// A streaming response whose events come from `produce`. `produce` runs as its own
/// task and is dropped as soon as the client disconnects.
pub fn respond<F, Fut>(mut builder: actix_web::HttpResponseBuilder, produce: F) -> HttpResponse
where
    F: FnOnce(SseSender) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let sender = SseSender(tx);
    let watcher = sender.clone();
    let work = produce(sender);
    actix_web::rt::spawn(async move {
        tokio::select! {
            () = work => {}
            () = watcher.closed() => {}
        }
    });
    let body = tokio_stream(rx).map(Ok::<_, actix_web::Error>);
    builder
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

fn tokio_stream(mut rx: mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
