//! The engine: one dedicated thread owns the model's inference session and runs the
//! queued jobs strictly one at a time, in submission order.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use llama_sys::{Model, ModelInfo, ModelParams, Sampler, SessionParams, TokenId};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::control_text::{self, ControlText, Fragment};
use crate::heartbeat::Heartbeat;
use crate::job::{Completion, FinishReason, JobEvent, JobId, JobRequest, Prompt};
use crate::queue::{PreparedJob, Queue, QueueStatus};
use crate::template::{ChatMessage, ChatTemplate};
use crate::{EngineConfig, EngineError, runner};

/// A running engine. Dropping it cancels waiting jobs, lets the running one stop at
/// its next token, and joins the thread.
#[derive(Debug)]
pub struct Engine {
    model: Arc<Model>,
    template: Option<ChatTemplate>,
    control: ControlText,
    queue: Arc<Queue>,
    heartbeat: Arc<Heartbeat>,
    n_ctx: u32,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// Loads the model and starts the engine thread. Blocks until the model is loaded
    /// and its context allocated.
    pub fn start(config: &EngineConfig) -> Result<Self, EngineError> {
        gpu_preflight(config)?;
        let model = Arc::new(Model::load(
            &config.model_path,
            &ModelParams {
                gpu_layers: config.gpu_layers,
                ..ModelParams::default()
            },
        )?);
        let info = model.info();
        let template = match &info.chat_template {
            Some(src) => {
                let text = |t: &Option<llama_sys::SpecialToken>| {
                    t.as_ref().map_or(String::new(), |t| t.text.clone())
                };
                Some(ChatTemplate::new(src, &text(&info.bos), &text(&info.eos))?)
            }
            None => None,
        };
        let n_ctx = if config.n_ctx == 0 {
            info.n_ctx_train
        } else {
            config.n_ctx
        };
        let params = SessionParams {
            n_ctx,
            n_batch: config.n_batch,
            n_threads: (config.n_threads > 0).then_some(config.n_threads),
        };
        let queue = Arc::new(Queue::new(config.queue_capacity));
        let heartbeat = Arc::new(Heartbeat::new());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let model = Arc::clone(&model);
            let queue = Arc::clone(&queue);
            let heartbeat = Arc::clone(&heartbeat);
            std::thread::Builder::new()
                .name("sandbox-engine".into())
                .spawn(move || engine_thread(&model, &params, &queue, &heartbeat, &ready_tx))
                .map_err(|e| {
                    EngineError::InvalidRequest(format!("cannot spawn the engine thread: {e}"))
                })?
        };
        let n_ctx = match ready_rx.recv() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e.into());
            }
            Err(_) => {
                let _ = thread.join();
                return Err(EngineError::Stopped);
            }
        };
        Ok(Self {
            control: ControlText::new(&model.info().special_tokens),
            model,
            template,
            queue,
            heartbeat,
            n_ctx,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Time since the engine thread last showed progress. The thread beats on every
    /// turn of its loop: while idle it wakes at least every 250 ms, while running a
    /// job before every prefill batch and every generated token. An age well past
    /// those means the thread is stuck (in llama.cpp, or gone after a panic, or after
    /// [`Engine::shutdown`]); a watchdog compares it with its period, which must
    /// therefore exceed the longest single prefill batch or token on the hardware.
    pub fn heartbeat_age(&self) -> Duration {
        self.heartbeat.age()
    }

    /// The served model's metadata.
    pub fn model_info(&self) -> &ModelInfo {
        self.model.info()
    }

    /// The model file being served.
    pub fn model_path(&self) -> &std::path::Path {
        self.model.path()
    }

    /// Context window in tokens.
    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// Queue length, running job and estimated wait, right now.
    pub fn queue_status(&self) -> QueueStatus {
        self.queue.status()
    }

    /// Renders a chat with the model's template (the exact prompt text the model sees).
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<String, EngineError> {
        self.render_chat_with_cue(messages, tools, true)
    }

    fn render_chat_with_cue(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        cue: bool,
    ) -> Result<String, EngineError> {
        let template = self.template.as_ref().ok_or_else(|| {
            EngineError::InvalidRequest(
                "this model has no chat template; send a text prompt instead".into(),
            )
        })?;
        template.render_with_cue(messages, tools, cue)
    }

    /// Tokenizes plain text the way a text prompt is tokenized.
    pub fn tokenize(&self, text: &str, add_bos: bool) -> Result<Vec<TokenId>, EngineError> {
        Ok(self.model.tokenize(text, add_bos)?)
    }

    /// A rendered prompt tokenized the way llama.cpp parses a whole prompt, where any
    /// control-token text becomes a control token ([`Engine::chat_tokens`] does so only
    /// for the template's own text). For comparisons and diagnostics.
    pub fn tokenize_prompt_text(&self, text: &str) -> Result<Vec<TokenId>, EngineError> {
        Ok(self.model.tokenize_prompt(text)?)
    }

    /// The prompt tokens a chat becomes.
    pub fn chat_tokens(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<Vec<TokenId>, EngineError> {
        let (text, protected) = self.rendered(messages, tools, true)?;
        self.prompt_tokens(&text, &protected)
    }

    /// The prompt tokens of a chat whose final assistant message the model goes on
    /// with ([`Prompt::Continue`]).
    pub fn continuation_tokens(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<Vec<TokenId>, EngineError> {
        let (text, protected) = self.open_final_turn(messages, tools)?;
        self.prompt_tokens(&text, &protected)
    }

    /// The rendered chat and the byte ranges of message contents that spell control
    /// tokens, which must stay text (control_text.rs).
    fn rendered(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        cue: bool,
    ) -> Result<(String, Vec<Range<usize>>), EngineError> {
        Ok(match self.control.guard(messages, tools)? {
            None => (self.render_chat_with_cue(messages, tools, cue)?, Vec::new()),
            Some(guarded) => control_text::assemble(
                &self.render_chat_with_cue(&guarded, tools, cue)?,
                messages,
            ),
        })
    }

    /// The chat rendered up to the end of its final assistant message's text. Whatever
    /// a template writes after a turn (`</s>`, `<|im_end|>`, a new cue) differs from one
    /// to the next, so the chat is rendered with a mark in place of that text and cut
    /// at the mark; the text (trailing white space dropped, which the model writes as
    /// the start of its next word) goes back in, always tokenized as text.
    fn open_final_turn(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<(String, Vec<Range<usize>>), EngineError> {
        const MARK: &str = "\u{F8FE}continue-here\u{F8FE}";
        let Some(last) = messages.last().filter(|m| m.role == "assistant") else {
            return Err(EngineError::InvalidRequest(
                "to continue a message, the last message must be the assistant's".into(),
            ));
        };
        let content = last.content.as_deref().unwrap_or_default().trim_end();
        let mut marked = messages.to_vec();
        if let Some(m) = marked.last_mut() {
            m.content = Some(MARK.into());
        }
        let (mut text, mut protected) = self.rendered(&marked, tools, false)?;
        let at = text.rfind(MARK).ok_or_else(|| {
            EngineError::Template(
                "this chat template does not show the assistant's last message, so it cannot be continued".into(),
            )
        })?;
        text.truncate(at);
        protected.retain(|r| r.end <= at);
        let start = text.len();
        text.push_str(content);
        protected.push(start..text.len());
        Ok((text, protected))
    }

    fn prompt_tokens(&self, text: &str, protected: &[Range<usize>]) -> Result<Vec<TokenId>, EngineError> {
        let mut tokens = Vec::with_capacity(text.len() / 3 + 2);
        for fragment in self.control.fragments(text, protected) {
            match fragment {
                Fragment::Control(id) => tokens.push(id),
                Fragment::Text(t) => tokens.extend(self.model.tokenize_fragment(t)?),
            }
        }
        let info = self.model.info();
        if let Some(bos) = info.bos.as_ref().filter(|_| info.add_bos)
            && tokens.first() != Some(&bos.id)
        {
            tokens.insert(0, bos.id);
        }
        Ok(tokens)
    }

    /// The text of one token as the model would print it (control tokens included),
    /// lossily decoded when the token is part of a multi-byte character.
    pub fn token_text(&self, token: TokenId) -> String {
        self.model
            .token_bytes(token, true)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The raw bytes of one token (for logprob `bytes` fields).
    pub fn token_bytes(&self, token: TokenId) -> Vec<u8> {
        self.model.token_bytes(token, true).unwrap_or_default()
    }

    /// Decodes tokens to text.
    pub fn detokenize(&self, tokens: &[TokenId]) -> Result<String, EngineError> {
        Ok(self.model.detokenize(tokens)?)
    }

    /// Validates a job and queues it. Refused at once (nothing queued) when the
    /// prompt does not fit, the template or grammar is invalid, or the queue is full.
    pub fn submit(&self, request: JobRequest) -> Result<JobHandle, EngineError> {
        let job = self.prepare(request)?;
        let (tx, rx) = unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let id = self.queue.push(job, tx, Arc::clone(&cancel))?;
        Ok(JobHandle {
            id,
            events: rx,
            cancel,
            queue: Arc::clone(&self.queue),
        })
    }

    fn prepare(&self, request: JobRequest) -> Result<PreparedJob, EngineError> {
        let info = self.model.info();
        let (tokens, is_chat) = match &request.prompt {
            Prompt::Text(text) => (self.model.tokenize(text, true)?, false),
            Prompt::Tokens(tokens) => {
                for &t in tokens {
                    self.model.check_token(t)?;
                }
                (tokens.clone(), false)
            }
            Prompt::Chat { messages, tools } => {
                (self.chat_tokens(messages, tools.as_deref())?, true)
            }
            Prompt::Continue { messages, tools } => {
                (self.continuation_tokens(messages, tools.as_deref())?, false)
            }
        };
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt is empty".into()));
        }
        let n_ctx = self.n_ctx as usize;
        let room = n_ctx.saturating_sub(tokens.len());
        let max_tokens = match request.limits.max_tokens {
            Some(0) => {
                return Err(EngineError::InvalidRequest(
                    "max_tokens must be at least 1".into(),
                ));
            }
            Some(n) if tokens.len() + n > n_ctx => {
                return Err(EngineError::ContextOverflow {
                    prompt_tokens: tokens.len(),
                    max_tokens: n,
                    n_ctx: self.n_ctx,
                });
            }
            Some(n) => n,
            None if room == 0 => {
                return Err(EngineError::ContextOverflow {
                    prompt_tokens: tokens.len(),
                    max_tokens: 1,
                    n_ctx: self.n_ctx,
                });
            }
            None => room,
        };
        // Build the sampler once here so a bad grammar or bias is refused before queueing.
        Sampler::new(&self.model, &request.sampling)?;
        Ok(PreparedJob {
            tokens,
            sampling: request.sampling,
            max_tokens,
            limits: request.limits,
            logprobs: request.logprobs,
            strip_leading_space: is_chat && info.add_space_prefix,
        })
    }

    /// Starts a shutdown's grace period: no new jobs, waiting jobs fail with
    /// [`EngineError::Stopped`], the running one goes on.
    pub fn drain(&self) {
        self.queue.drain();
    }

    /// Whether a job is running.
    pub fn is_busy(&self) -> bool {
        self.queue.status().running.is_some()
    }

    /// Stops the engine: waiting jobs fail with [`EngineError::Stopped`], the running
    /// one fails with it at its next token or prefill batch, and the thread is joined.
    /// Idempotent; later submissions fail with [`EngineError::Stopped`].
    pub fn shutdown(&self) {
        self.queue.shutdown();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// On a GPU build with offloading, checks that the model and its KV cache fit into
/// the GPU with the most free memory, and logs what was found.
fn gpu_preflight(config: &EngineConfig) -> Result<(), EngineError> {
    if config.gpu_layers == Some(0) {
        return Ok(());
    }
    let Some(device) = llama_sys::gpu_devices()
        .into_iter()
        .max_by_key(|d| d.memory_free)
    else {
        return Ok(()); // a CPU build, or no usable GPU: nothing to check
    };
    let versions = crate::NvidiaVersions::of_this_process();
    let shape = llama_sys::GgufShape::read(&config.model_path)?;
    let n_ctx = if config.n_ctx == 0 {
        32768
    } else {
        config.n_ctx
    };
    match crate::gpu::check_fit(&device, &shape, n_ctx) {
        Ok(need) => {
            tracing::info!(
                gpu = %device.description,
                device = %device.name,
                driver = versions.driver.as_deref().unwrap_or("unknown"),
                cuda_runtime = versions.cuda_runtime.as_deref().unwrap_or("unknown"),
                cublas = versions.cublas.as_deref().unwrap_or("unknown"),
                free_bytes = device.memory_free,
                total_bytes = device.memory_total,
                need_bytes = need.total(),
                layers = shape.n_layer,
                "GPU preflight passed; offloading all layers"
            );
            Ok(())
        }
        Err(message) => {
            tracing::error!(gpu = %device.description, nvidia = %versions, %message, "GPU preflight failed");
            Err(EngineError::Resources(message))
        }
    }
}

fn engine_thread(
    model: &Model,
    params: &SessionParams,
    queue: &Queue,
    heartbeat: &Heartbeat,
    ready: &mpsc::Sender<Result<u32, llama_sys::LlamaError>>,
) {
    let beat = || heartbeat.beat();
    let mut session = match model.session(params) {
        Ok(s) => {
            beat();
            let _ = ready.send(Ok(s.n_ctx()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while let Some(pending) = queue.pop(&beat) {
        let span = tracing::debug_span!("job", id = pending.id);
        let _enter = span.enter();
        let last = match runner::run(&mut session, model, &pending, &|| queue.expire(), &beat) {
            // Cut off by a shutdown, not by its client: tell the client so.
            Some(JobEvent::Done {
                finish_reason: FinishReason::Cancelled,
                ..
            }) if queue.is_shut_down() => Some(JobEvent::Failed {
                error: EngineError::Stopped,
            }),
            other => other,
        };
        queue.finish(pending.id);
        if let Some(event) = last {
            pending.send(event);
        }
    }
}

/// The caller's side of a job: its events, its position, and its cancellation.
/// Dropping the handle cancels the job (a client that went away frees the engine).
#[derive(Debug)]
pub struct JobHandle {
    id: JobId,
    events: UnboundedReceiver<JobEvent>,
    cancel: Arc<AtomicBool>,
    queue: Arc<Queue>,
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

impl FinishReason {
    /// OpenAI's name for it (`stop`, `length`), as APIs report it.
    pub fn openai_name(self) -> &'static str {
        match self {
            Self::EndOfGeneration | Self::StopString | Self::Cancelled => "stop",
            Self::Length | Self::ContextFull | Self::Deadline => "length",
        }
    }
}
