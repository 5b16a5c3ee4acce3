//! Turns one job's engine events into what a choice shows: content pieces (with their
//! log-probabilities) and a finish, detecting tool calls on the way.

use std::collections::VecDeque;

use std::sync::Arc;

use sandbox_core::contract::openai::ToolCall;
use sandbox_core::tools::{CallStream, Reading};
use sandbox_core::{
    EngineError, FinishReason, JobEvent, JobHandle, Service, Timings, TokenLogprob, Usage,
};

use super::tools;
use crate::error::ApiError;
use crate::state::off_io;

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

/// Reads a job's events as a choice.
#[derive(Debug)]
pub struct ChoiceReader {
    handle: JobHandle,
    calls: CallStream,
    logprobs: Vec<TokenLogprob>,
    ready: VecDeque<ChoiceEvent>,
    done: bool,
}

impl ChoiceReader {
    pub fn new(handle: JobHandle, reading: Reading) -> Self {
        Self {
            handle,
            calls: CallStream::new(reading),
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
        reading: Reading,
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
        Ok(Self::new(handle, reading))
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
                    let cut_off =
                        matches!(finish_reason, FinishReason::Length | FinishReason::Deadline);
                    let ending = self.calls.finish(cut_off);
                    if !ending.text.is_empty() {
                        self.push_content(ending.text);
                    }
                    let reason = match &ending.calls {
                        Some(_) if !cut_off => "tool_calls",
                        _ => finish_reason_name(finish_reason),
                    };
                    self.ready.push_back(ChoiceEvent::Finish {
                        finish_reason: reason,
                        tool_calls: ending.calls.map(tools::wire_calls),
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
        let shown = self.calls.push(&text);
        if !shown.is_empty() {
            self.push_content(shown);
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
