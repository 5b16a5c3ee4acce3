//! The UI's client of sandbox-api: the model's state from `/ready`, and streamed chat
//! completions (OpenAI SSE) read as queue positions, text and an end. Dropping a
//! [`ChatStream`] closes its connection, which makes sandbox-api drop the job at once.

use std::collections::VecDeque;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::AUTHORIZATION;
use serde::Serialize;
use serde_json::{Value, json};

/// What the model server is doing, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ModelStatus {
    /// Answering; `waiting` requests queue behind the running one.
    Ready {
        /// Served model id.
        model: String,
        /// Requests waiting.
        waiting: u64,
        /// Whether one is running.
        running: bool,
    },
    /// Fetching the model.
    Downloading {
        /// 0..1 when known.
        progress: Option<f64>,
        /// The server's words.
        message: String,
    },
    /// Loading the model into memory.
    Loading {
        /// The server's words.
        message: String,
    },
    /// The model could not be made ready.
    Error {
        /// The server's words (what failed and what to do).
        message: String,
    },
    /// sandbox-api does not answer.
    Unreachable {
        /// Why, in the user's terms.
        message: String,
    },
}

impl ModelStatus {
    /// Seconds after which the browser should ask again.
    pub fn retry_seconds(&self) -> u64 {
        match self {
            Self::Ready { .. } => 15,
            Self::Downloading { .. } | Self::Loading { .. } => 2,
            Self::Unreachable { .. } => 5,
            Self::Error { .. } => 30,
        }
    }
}

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
        /// HTTP status.
        status: u16,
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

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// A chat completion request.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// The served model's id (from [`ApiClient::ready_model`]).
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Answer length limit.
    pub max_tokens: Option<u32>,
    /// Go on with the last message (the assistant's, cut off) instead of answering.
    pub continue_final: bool,
}

/// What a streamed answer brings.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// Waiting behind this many requests.
    Queued(usize),
    /// More text.
    Delta(String),
    /// The end, with OpenAI's finish reason.
    Finish(String),
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

    /// The model's state (never fails: an unreachable API is a state).
    pub async fn status(&self) -> ModelStatus {
        let url = format!("{}/ready", self.base);
        let body: Value = match self.quick.get(&url).send().await {
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
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        match body["status"].as_str() {
            Some("ready") => ModelStatus::Ready {
                model: text("model"),
                waiting: body["queue"]["waiting"].as_u64().unwrap_or(0),
                running: body["queue"]["running"].as_bool().unwrap_or(false),
            },
            Some("downloading") => ModelStatus::Downloading {
                progress: body["progress"].as_f64(),
                message: text("message"),
            },
            Some("loading") => ModelStatus::Loading {
                message: text("message"),
            },
            Some("error") => ModelStatus::Error {
                message: text("message"),
            },
            _ => ModelStatus::Unreachable {
                message: format!("{url} answered something that is not sandbox-api"),
            },
        }
    }

    /// The served model's id, or why the model cannot answer now (in the user's words).
    pub async fn ready_model(&self) -> Result<String, ApiClientError> {
        match self.status().await {
            ModelStatus::Ready { model, .. } => Ok(model),
            ModelStatus::Unreachable { message } => Err(ApiClientError::NotReady(message)),
            ModelStatus::Downloading { progress, message } => {
                let pct = progress.map_or(String::new(), |p| format!(" ({:.0} %)", p * 100.0));
                Err(ApiClientError::NotReady(format!(
                    "The model is still downloading{pct}; send again when it is ready. {message}"
                )))
            }
            ModelStatus::Loading { .. } => Err(ApiClientError::NotReady(
                "The model is loading; send again in a few seconds.".into(),
            )),
            ModelStatus::Error { message } => Err(ApiClientError::NotReady(
                // sandbox-api's message usually says so itself.
                match message.strip_prefix("the model could not be loaded: ") {
                    Some(rest) => format!("The model could not be loaded: {rest}"),
                    None => format!("The model could not be loaded: {message}"),
                },
            )),
        }
    }

    /// Starts a streamed chat completion.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatStream, ApiClientError> {
        let model = &req.model;
        let mut body = json!({
            "model": model,
            "messages": req.messages,
            "stream": true,
        });
        if let Some(t) = req.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = req.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if req.continue_final {
            body["continue_final_message"] = json!(true);
        }
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
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().map_or_else(
                || format!("the model server answered {status}"),
                str::to_owned,
            );
            return Err(ApiClientError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        let position = resp
            .headers()
            .get("x-queue-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut stream = ChatStream {
            body: resp.bytes_stream().boxed(),
            buffer: Vec::new(),
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
    buffer: Vec<u8>,
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
                    self.buffer.extend_from_slice(&chunk);
                    self.parse();
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

    fn parse(&mut self) {
        while let Some(end) = find(&self.buffer, b"\n\n") {
            let event: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            for line in text.lines() {
                if let Some(pos) = line.strip_prefix(": queue-position ") {
                    if let Ok(p) = pos.trim().parse() {
                        self.ready.push_back(Ok(Upstream::Queued(p)));
                    }
                } else if let Some(data) = line.strip_prefix("data: ") {
                    self.data(data);
                }
            }
        }
    }

    fn data(&mut self, data: &str) {
        if data == "[DONE]" {
            self.finished = true;
            return;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                let e = ApiClientError::Broken(format!("unreadable event: {e}"));
                return self.ready.push_back(Err(e));
            }
        };
        if let Some(message) = v["error"]["message"].as_str() {
            return self.ready.push_back(Err(ApiClientError::Refused {
                status: 500,
                message: message.to_owned(),
            }));
        }
        let choice = &v["choices"][0];
        if let Some(text) = choice["delta"]["content"].as_str()
            && !text.is_empty()
        {
            self.ready.push_back(Ok(Upstream::Delta(text.to_owned())));
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.ready
                .push_back(Ok(Upstream::Finish(reason.to_owned())));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(chunks: &[&str]) -> ChatStream {
        let chunks: Vec<reqwest::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from(c.to_string())))
            .collect();
        ChatStream {
            body: futures_util::stream::iter(chunks).boxed(),
            buffer: Vec::new(),
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

    #[tokio::test]
    async fn reads_queue_comments_deltas_split_across_chunks_and_the_end() {
        let role = r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        let events = collect(stream_of(&[
            role,
            "\n\n: queue-position 2\n\n: queue-position 1\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hel",
            "lo\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ]))
        .await;
        assert_eq!(
            events,
            vec![
                Ok(Upstream::Queued(2)),
                Ok(Upstream::Queued(1)),
                Ok(Upstream::Delta("Hello".into())),
                Ok(Upstream::Finish("stop".into())),
            ]
        );
    }

    #[tokio::test]
    async fn an_error_event_or_a_cut_stream_is_an_error() {
        let events = collect(stream_of(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"context overflow\"}}\n\ndata: [DONE]\n\n",
        ]))
        .await;
        assert_eq!(events[0], Ok(Upstream::Delta("a".into())));
        assert_eq!(events[1], Err("context overflow".into()));
        assert_eq!(events.len(), 2);

        let events = collect(stream_of(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
        ]))
        .await;
        assert!(events[1].as_ref().unwrap_err().contains("without [DONE]"));
    }
}
