//! One generation path for every endpoint, as text-generation-inference and llama.cpp's
//! server have: a request's choices run one after another through the queue, each
//! read as [`ChoiceEvent`]s, into one of two sinks: `collect` (one response) or
//! `respond_streamed` (SSE chunks), chosen by [`Generation::respond`]. An endpoint
//! supplies only the mapping from choices to its wire format ([`Shape`]).

use std::sync::Arc;

use actix_web::{HttpResponse, HttpResponseBuilder};
use sandbox_core::contract::openai::{self, GenerationOptions, QUEUE_POSITION_HEADER, ToolCall};
use sandbox_core::{JobHandle, JobRequest, Timings, TokenLogprob, Usage};
use serde::Serialize;

use super::sse::{self, SseSender};
use crate::error::ApiError;
use crate::openai::choice::{ChoiceEvent, ChoiceReader};
use crate::openai::{convert, wire};
use crate::state::AppState;
use sandbox_core::tools::Reading;

/// A finished choice.
#[derive(Debug)]
pub struct Choice {
    /// Which choice.
    pub index: u32,
    /// Its text.
    pub text: String,
    /// Log-probabilities of its tokens, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    /// OpenAI's finish reason.
    pub finish_reason: &'static str,
    /// The calls, when the answer was tool calls.
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Its token counts.
    pub usage: Usage,
    /// Where its time went.
    pub timings: Timings,
}

/// What an endpoint makes of a generation: its response and its chunks.
pub trait Shape: 'static {
    /// The plain response.
    type Response: Serialize;
    /// One streamed event.
    type Chunk: Serialize;
    /// The plain response, from every choice and the total usage.
    fn response(&self, choices: Vec<Choice>, usage: &Usage) -> Self::Response;
    /// What opens choice `index` in a stream (chat: the role; completions: the echo).
    fn opening(&mut self, index: u32) -> Option<Self::Chunk>;
    /// More text of choice `index`.
    fn content(&mut self, index: u32, text: &str, logprobs: &[TokenLogprob]) -> Self::Chunk;
    /// The end of choice `index`: its tool calls (if any), then its finish reason and
    /// where its time went.
    fn finish(
        &mut self,
        index: u32,
        finish_reason: &str,
        tool_calls: Option<&[ToolCall]>,
        timings: openai::Timings,
    ) -> Vec<Self::Chunk>;
    /// The last chunk, with the total usage (`stream_options.include_usage`).
    fn usage(&self, usage: &Usage) -> Self::Chunk;
}

/// A request's choices, the first one already queued.
pub struct Generation {
    choices: Choices,
    first: ChoiceReader,
}

/// What every choice of a request needs.
struct Choices {
    state: Arc<AppState>,
    job: JobRequest,
    reading: Reading,
    n: u32,
    request_id: String,
}

impl Choices {
    /// Choice `i`'s reader: the first one's, else a newly queued job.
    async fn reader(
        &self,
        first: &mut Option<ChoiceReader>,
        i: u32,
    ) -> Result<ChoiceReader, ApiError> {
        ChoiceReader::for_choice(
            first,
            &self.state.service,
            &self.job,
            i,
            self.reading,
            &self.request_id,
        )
        .await
    }

    fn account(&self, total: &mut Usage, usage: &Usage, timings: &Timings, i: u32) {
        self.state.metrics.job(usage, timings);
        convert::add_usage(total, usage, i == 0);
    }
}

impl Generation {
    /// `n` choices of `job` read as `reading`; `first` is choice 0's queued job.
    pub fn new(
        state: Arc<AppState>,
        job: JobRequest,
        reading: Reading,
        n: u32,
        first: JobHandle,
        request_id: String,
    ) -> Self {
        let first = ChoiceReader::new(first, reading);
        Self {
            choices: Choices {
                state,
                job,
                reading,
                n,
                request_id,
            },
            first,
        }
    }

    /// The response, with `x-queue-position` (jobs ahead at admission): streamed when
    /// the request's `options` ask for it (with a last usage chunk if they ask for
    /// that too), else collected.
    pub async fn respond(
        self,
        shape: impl Shape,
        options: &GenerationOptions,
    ) -> Result<HttpResponse, ApiError> {
        let mut builder = HttpResponse::Ok();
        let ahead = self.first.position().unwrap_or(0);
        builder.insert_header((QUEUE_POSITION_HEADER, ahead.to_string()));
        if options.stream {
            let usage = options
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage);
            Ok(self.respond_streamed(shape, builder, usage))
        } else {
            self.collect(&shape, builder).await
        }
    }

    /// Reads every choice to its end; the endpoint's response.
    async fn collect(
        self,
        shape: &impl Shape,
        mut builder: HttpResponseBuilder,
    ) -> Result<HttpResponse, ApiError> {
        let Self { choices: c, first } = self;
        let mut first = Some(first);
        let mut done = Vec::new();
        let mut usage = Usage::default();
        for i in 0..c.n {
            let mut reader = c.reader(&mut first, i).await?;
            let (mut text, mut logprobs) = (String::new(), Vec::new());
            while let Some(ev) = reader.next().await {
                match ev.map_err(|e| ApiError::from_engine(&e, &c.request_id))? {
                    ChoiceEvent::Queued { .. } => {}
                    ChoiceEvent::Content {
                        text: t,
                        logprobs: l,
                    } => {
                        text.push_str(&t);
                        logprobs.extend(l);
                    }
                    ChoiceEvent::Finish {
                        finish_reason,
                        tool_calls,
                        usage: u,
                        timings,
                    } => {
                        c.account(&mut usage, &u, &timings, i);
                        done.push(Choice {
                            index: i,
                            text,
                            logprobs,
                            finish_reason,
                            tool_calls,
                            usage: u,
                            timings,
                        });
                        break;
                    }
                }
            }
        }
        Ok(builder.json(shape.response(done, &usage)))
    }

    /// A streamed response: each choice's events as `shape`'s chunks, queue positions
    /// as comments, an error event if it fails, `[DONE]` at the end.
    fn respond_streamed(
        self,
        shape: impl Shape,
        builder: HttpResponseBuilder,
        include_usage: bool,
    ) -> HttpResponse {
        sse::respond(builder, move |tx| self.stream(tx, shape, include_usage))
    }

    async fn stream(self, tx: SseSender, mut shape: impl Shape, include_usage: bool) {
        let Self { choices: c, first } = self;
        let mut first = Some(first);
        let mut usage = Usage::default();
        for i in 0..c.n {
            let mut reader = match c.reader(&mut first, i).await {
                Ok(r) => r,
                Err(e) => return tx.fail(&e).await,
            };
            if let Some(open) = shape.opening(i)
                && !tx.json(&open).await
            {
                return;
            }
            while let Some(ev) = reader.next().await {
                let sent = match ev {
                    Err(e) => return tx.fail(&ApiError::from_engine(&e, &c.request_id)).await,
                    Ok(ChoiceEvent::Queued { position }) => tx.queue_position(position).await,
                    Ok(ChoiceEvent::Content { text, logprobs }) => {
                        tx.json(&shape.content(i, &text, &logprobs)).await
                    }
                    Ok(ChoiceEvent::Finish {
                        finish_reason,
                        tool_calls,
                        usage: u,
                        timings,
                    }) => {
                        c.account(&mut usage, &u, &timings, i);
                        let spent = wire::timings([(&u, &timings)]);
                        let mut sent = true;
                        for chunk in shape.finish(i, finish_reason, tool_calls.as_deref(), spent) {
                            sent = sent && tx.json(&chunk).await;
                        }
                        sent
                    }
                };
                if !sent {
                    return;
                }
            }
        }
        if include_usage && !tx.json(&shape.usage(&usage)).await {
            return;
        }
        let _ = tx.done().await;
    }
}
