//! Turns one job's engine events into what a choice shows: content pieces (with their
//! log-probabilities) and a finish, detecting tool calls on the way.

use std::collections::VecDeque;

use std::sync::Arc;

use sandbox_core::{
    EngineError, FinishReason, JobEvent, JobHandle, Service, Timings, TokenLogprob, Usage,
};

use sandbox_core::contract::openai::ToolCall;

use super::tools::{self, TOOL_CALLS};
use crate::error::ApiError;
use crate::state::off_io;

/// How the output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Plain text.
    Text,
    /// Text, unless it opens with `[TOOL_CALLS]`.
    MaybeToolCalls,
    /// Always a tool call (the prompt already ends with `[TOOL_CALLS]`).
    ToolCalls,
}

/// What a choice produced.
#[derive(Debug)]
pub enum ChoiceEvent {
    /// Still waiting in the queue behind `position` jobs (sent as it changes).
    Queued { position: usize },
    /// Visible text and the log-probabilities of the tokens behind it.
    Content {
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    /// The end.
    Finish {
        finish_reason: &'static str,
        tool_calls: Option<Vec<ToolCall>>,
        usage: Usage,
        timings: Timings,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Streaming,
    Deciding,
    Capturing,
}

/// Reads a job's events as a choice.
#[derive(Debug)]
pub struct ChoiceReader {
    handle: JobHandle,
    phase: Phase,
    buffer: String,
    logprobs: Vec<TokenLogprob>,
    ready: VecDeque<ChoiceEvent>,
    done: bool,
}

impl ChoiceReader {
    pub fn new(handle: JobHandle, kind: OutputKind) -> Self {
        let phase = match kind {
            OutputKind::Text => Phase::Streaming,
            OutputKind::MaybeToolCalls => Phase::Deciding,
            OutputKind::ToolCalls => Phase::Capturing,
        };
        Self {
            handle,
            phase,
            buffer: String::new(),
            logprobs: Vec::new(),
            ready: VecDeque::new(),
            done: false,
        }
    }

    /// The reader of choice `i`: the one already submitted for the first choice, else
    /// a new job (choices run one after another, each through the queue), prepared off
    /// the I/O threads as the first one was.
    pub async fn for_choice(
        first: &mut Option<ChoiceReader>,
        service: &Arc<Service>,
        job: &sandbox_core::JobRequest,
        i: u32,
        kind: OutputKind,
        request_id: &str,
    ) -> Result<Self, ApiError> {
        if let Some(r) = first.take() {
            return Ok(r);
        }
        let (service, job, rid) = (
            Arc::clone(service),
            super::convert::choice_job(job, i),
            request_id.to_owned(),
        );
        let handle = off_io(request_id, move || {
            let engine = service.engine().map_err(|s| ApiError::not_ready(&s))?;
            engine
                .submit(job)
                .map_err(|e| ApiError::from_engine(&e, &rid))
        })
        .await?;
        Ok(Self::new(handle, kind))
    }

    /// The job's queue position at the moment of asking.
    pub fn position(&self) -> Option<usize> {
        self.handle.position()
    }

    /// The next event; `None` after the finish.
    pub async fn next(&mut self) -> Option<Result<ChoiceEvent, EngineError>> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Some(Ok(ev));
            }
            if self.done {
                return None;
            }
            match self.handle.next_event().await {
                None => {
                    self.done = true;
                    return Some(Err(EngineError::Stopped));
                }
                Some(JobEvent::Queued { position }) => {
                    return Some(Ok(ChoiceEvent::Queued { position }));
                }
                Some(JobEvent::Started { .. }) => {}
                Some(JobEvent::Token { text, logprob, .. }) => {
                    self.logprobs.extend(logprob);
                    self.text(text);
                }
                Some(JobEvent::Tail { text }) => self.text(text),
                Some(JobEvent::Done {
                    finish_reason,
                    usage,
                    timings,
                }) => {
                    self.done = true;
                    let calls = match self.phase {
                        Phase::Capturing => tools::parse_calls(&self.buffer),
                        _ => None,
                    };
                    if calls.is_none() && !self.buffer.is_empty() {
                        // Not a well-formed call after all: show what the model wrote.
                        let text = std::mem::take(&mut self.buffer);
                        self.push_content(text);
                    }
                    let reason = if calls.is_some() {
                        "tool_calls"
                    } else {
                        finish_reason_name(finish_reason)
                    };
                    self.ready.push_back(ChoiceEvent::Finish {
                        finish_reason: reason,
                        tool_calls: calls,
                        usage,
                        timings,
                    });
                }
                Some(JobEvent::Failed { error }) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }

    fn text(&mut self, text: String) {
        match self.phase {
            Phase::Streaming => {
                if !text.is_empty() {
                    self.push_content(text);
                }
            }
            Phase::Capturing => self.buffer.push_str(&text),
            Phase::Deciding => {
                self.buffer.push_str(&text);
                if self.buffer.trim_start().starts_with(TOOL_CALLS) {
                    self.phase = Phase::Capturing;
                } else if !tools::may_start_call(&self.buffer) {
                    self.phase = Phase::Streaming;
                    let text = std::mem::take(&mut self.buffer);
                    self.push_content(text);
                }
            }
        }
    }

    fn push_content(&mut self, text: String) {
        let logprobs = std::mem::take(&mut self.logprobs);
        self.ready
            .push_back(ChoiceEvent::Content { text, logprobs });
    }
}
/// OpenAI's name for why a choice ended: `stop` when the model or a stop string ended
/// it (or its client, which never reads the name), `length` when a limit cut it off.
fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::EndOfGeneration | FinishReason::StopString | FinishReason::Cancelled => {
            "stop"
        }
        FinishReason::Length | FinishReason::Deadline => "length",
    }
}
