//! The UI's client of sandbox-api: the model's state from `/ready`, and streamed chat
//! completions (OpenAI SSE) read as queue positions, text and an end. Dropping a
//! [`ChatStream`] closes its connection, which makes sandbox-api drop the job at once.

use std::collections::VecDeque;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::AUTHORIZATION;
use sandbox_core::contract::openai::{
    ChatCompletionRequest, ErrorBody, QUEUE_POSITION_HEADER, StreamEvent, Timings,
};
use sandbox_core::contract::ready::Ready;
use sandbox_core::contract::sse;

pub use crate::model_status::ModelStatus;

/// Why a chat request did not stream.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    /// No connection.
    #[error(
        "the model server at {url} is not answering ({reason}); it restarts by itself, try again in a few seconds"
    )]
    Unreachable {
        /// The API base URL.
        url: String,
        /// The transport's words.
        reason: String,
    },
    /// The API refused the request.
    #[error("{message}")]
    Refused {
        /// The API's error message.
        message: String,
    },
    /// The model is not ready.
    #[error("{0}")]
    NotReady(String),
    /// The stream broke off.
    #[error("the model server stopped answering mid-answer: {0}")]
    Broken(String),
}

/// What a streamed answer brings.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// Waiting behind this many requests.
    Queued(usize),
    /// More text.
    Delta(String),
    /// The end, with OpenAI's finish reason and where the time went (when the API
    /// says: sandbox-api does).
    Finish(String, Option<Timings>),
}

/// Totals since sandbox-api started, from its Prometheus text.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Generations finished.
    pub answers: u64,
    /// Prompt tokens processed.
    pub prompt_tokens: u64,
    /// Prompt tokens reused from the cache.
    pub cached_prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

impl Totals {
    /// Reads the counters it needs; missing ones stay 0.
    pub fn parse(text: &str) -> Self {
        let value = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .map_or(0, |v| v as u64)
        };
        Self {
            answers: value("sandbox_generation_seconds_count"),
            prompt_tokens: value("sandbox_prompt_tokens_total"),
            cached_prompt_tokens: value("sandbox_cached_prompt_tokens_total"),
            completion_tokens: value("sandbox_completion_tokens_total"),
        }
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
    quick: reqwest::Client,
}

impl ApiClient {
    /// A client of the API at `base` (no `/v1`).
    pub fn new(base: &str, key: Option<String>) -> Result<Self, reqwest::Error> {
        Ok(Self {
            base: base.to_owned(),
            key,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .build()?,
            quick: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?,
        })
    }

    /// For the administrator's status panel: `/ready` with the serving details (the
    /// key asks for them) and the totals of `/metrics`; `None` for what did not answer.
    pub async fn serving(&self) -> (Option<Ready>, Option<Totals>) {
        let authorized = |r: reqwest::RequestBuilder| match &self.key {
            Some(k) => r.header(AUTHORIZATION, format!("Bearer {k}")),
            // An open server gives the details to any caller who asks with a header.
            None => r.header(AUTHORIZATION, "Bearer -"),
        };
        let ready = authorized(self.quick.get(format!("{}/ready", self.base)))
            .send()
            .await
            .ok();
        let ready = match ready {
            Some(r) => r.json::<Ready>().await.ok(),
            None => None,
        };
        let metrics = authorized(self.quick.get(format!("{}/metrics", self.base)))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        let totals = match metrics {
            Some(r) => r.text().await.ok().map(|t| Totals::parse(&t)),
            None => None,
        };
        (ready, totals)
    }

    /// The model's state (never fails: an unreachable API is a state).
    pub async fn status(&self) -> ModelStatus {
        let url = format!("{}/ready", self.base);
        let body: Ready = match self.quick.get(&url).send().await {
            Ok(resp) => match resp.json().await {
                Ok(v) => v,
                Err(e) => {
                    return ModelStatus::Unreachable {
                        message: format!("{url} answered something that is not sandbox-api: {e}"),
                    };
                }
            },
            Err(e) => {
                return ModelStatus::Unreachable {
                    message: format!(
                        "The model server ({}) is not answering: {}. It restarts by itself; if this lasts, see /etc/motd or `journalctl -u sandbox-api`.",
                        self.base,
                        transport_reason(&e)
                    ),
                };
            }
        };
        match body {
            Ready::Ready { model, queue, .. } => ModelStatus::Ready {
                model,
                waiting: queue.map_or(0, |q| q.waiting as u64),
                running: queue.is_some_and(|q| q.running),
            },
            Ready::Downloading(d) => ModelStatus::Downloading {
                progress: d.progress,
                message: d.message,
            },
            Ready::Loading { message, .. } => ModelStatus::Loading { message },
            Ready::Error {
                error_kind,
                message,
                ..
            } => ModelStatus::Error {
                kind: error_kind,
                message,
            },
        }
    }

    /// The served model's id, or why the model cannot answer now (in the user's words).
    pub async fn ready_model(&self) -> Result<String, ApiClientError> {
        match self.status().await {
            ModelStatus::Ready { model, .. } => Ok(model),
            unreachable @ ModelStatus::Unreachable { .. } => Err(ApiClientError::NotReady(
                unreachable.headline().unwrap_or_default().to_owned(),
            )),
            ModelStatus::Downloading { progress, message } => {
                let pct = progress.map_or(String::new(), |p| format!(" ({:.0} %)", p * 100.0));
                Err(ApiClientError::NotReady(format!(
                    "The model is still downloading{pct}; send again when it is ready. {message}"
                )))
            }
            ModelStatus::Loading { .. } => Err(ApiClientError::NotReady(
                "The model is loading; send again in a few seconds.".into(),
            )),
            failed @ ModelStatus::Error { .. } => Err(ApiClientError::NotReady(
                failed.headline().unwrap_or_default().to_owned(),
            )),
        }
    }

    /// Starts `req` as a streamed chat completion (whatever its `stream` says).
    pub async fn chat(&self, req: &ChatCompletionRequest) -> Result<ChatStream, ApiClientError> {
        let mut body = req.clone();
        body.options.stream = true;
        let mut call = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&body);
        if let Some(key) = &self.key {
            call = call.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let resp = call.send().await.map_err(|e| ApiClientError::Unreachable {
            url: self.base.clone(),
            reason: transport_reason(&e),
        })?;
        let status = resp.status();
        if !status.is_success() {
            let message = match resp.json::<ErrorBody>().await {
                Ok(body) => body.error.message,
                Err(_) => format!("the model server answered {status}"),
            };
            return Err(ApiClientError::Refused { message });
        }
        let position = resp
            .headers()
            .get(QUEUE_POSITION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut stream = ChatStream {
            body: resp.bytes_stream().boxed(),
            decoder: sse::Decoder::default(),
            ready: VecDeque::new(),
            finished: false,
        };
        if position > 0 {
            stream.ready.push_back(Ok(Upstream::Queued(position)));
        }
        Ok(stream)
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or unreachable".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// A streamed answer.
pub struct ChatStream {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: sse::Decoder,
    ready: VecDeque<Result<Upstream, ApiClientError>>,
    finished: bool,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// The next event; `None` after the end.
    pub async fn next(&mut self) -> Option<Result<Upstream, ApiClientError>> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                if ev.is_err() {
                    self.finished = true;
                    self.ready.clear();
                }
                return Some(ev);
            }
            if self.finished {
                return None;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => {
                    for line in self.decoder.push(&chunk) {
                        self.line(line);
                    }
                }
                Some(Err(e)) => {
                    self.finished = true;
                    return Some(Err(ApiClientError::Broken(transport_reason(&e))));
                }
                None => {
                    self.finished = true;
                    return Some(Err(ApiClientError::Broken(
                        "the stream ended without [DONE]".into(),
                    )));
                }
            }
        }
    }

    fn line(&mut self, line: sse::Line) {
        let data = match line {
            sse::Line::QueuePosition(p) => return self.ready.push_back(Ok(Upstream::Queued(p))),
            sse::Line::Done => {
                self.finished = true;
                return;
            }
            sse::Line::Data(d) => d,
        };
        match serde_json::from_str::<StreamEvent>(&data) {
            Err(e) => {
                let e = ApiClientError::Broken(format!("unreadable event: {e}"));
                self.ready.push_back(Err(e));
            }
            Ok(StreamEvent::Error(body)) => self.ready.push_back(Err(ApiClientError::Refused {
                message: body.error.message,
            })),
            Ok(StreamEvent::Chunk(chunk)) => {
                let timings = chunk.timings;
                for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
                    if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                        self.ready.push_back(Ok(Upstream::Delta(text)));
                    }
                    if let Some(reason) = choice.finish_reason {
                        self.ready.push_back(Ok(Upstream::Finish(reason, timings)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_core::contract::openai::{ChatCompletionChunk, Delta, ErrorObject};

    fn stream_of(chunks: &[&str]) -> ChatStream {
        let chunks: Vec<reqwest::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from(c.to_string())))
            .collect();
        ChatStream {
            body: futures_util::stream::iter(chunks).boxed(),
            decoder: sse::Decoder::default(),
            ready: VecDeque::new(),
            finished: false,
        }
    }

    async fn collect(mut s: ChatStream) -> Vec<Result<Upstream, String>> {
        let mut out = Vec::new();
        while let Some(ev) = s.next().await {
            out.push(ev.map_err(|e| e.to_string()));
        }
        out
    }

    /// A chunk as sandbox-api writes it (the same type), as SSE.
    fn chunk(delta: Delta, finish: Option<&str>) -> String {
        sse::data(&ChatCompletionChunk::part(
            "chatcmpl-1",
            1,
            "m",
            0,
            delta,
            None,
            finish,
        ))
    }

    fn text(t: &str) -> Delta {
        Delta {
            content: Some(t.into()),
            ..Delta::default()
        }
    }

    #[tokio::test]
    async fn reads_queue_comments_deltas_split_across_chunks_and_the_end() {
        let role = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        };
        let written = [
            chunk(role, None),
            sse::queue_position(2),
            sse::queue_position(1),
            chunk(text("Hello"), None),
            chunk(Delta::default(), Some("length")),
            sse::DONE.to_owned(),
        ]
        .concat();
        // Cut in the middle of an event, as a network may.
        let (a, b) = written.split_at(written.find("Hel").unwrap_or(0) + 2);
        let events = collect(stream_of(&[a, b])).await;
        assert_eq!(
            events,
            vec![
                Ok(Upstream::Queued(2)),
                Ok(Upstream::Queued(1)),
                Ok(Upstream::Delta("Hello".into())),
                Ok(Upstream::Finish("length".into(), None)),
            ]
        );
    }

    #[tokio::test]
    async fn an_error_event_or_a_cut_stream_is_an_error() {
        let error = sse::data(&ErrorBody {
            error: ErrorObject {
                message: "context overflow".into(),
                kind: "invalid_request_error".into(),
                param: None,
                code: None,
            },
        });
        let written = [chunk(text("a"), None), error, sse::DONE.to_owned()].concat();
        let events = collect(stream_of(&[&written])).await;
        assert_eq!(events[0], Ok(Upstream::Delta("a".into())));
        assert_eq!(events[1], Err("context overflow".into()));
        assert_eq!(events.len(), 2);

        let events = collect(stream_of(&[&chunk(text("a"), None)])).await;
        assert!(events[1].as_ref().unwrap_err().contains("without [DONE]"));
    }
}
