//! The engine: one dedicated thread owns the model's inference session and runs the
//! queued jobs strictly one at a time, in submission order.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use llama_sys::{Model, ModelInfo, ModelParams, SessionParams};
use tokio::sync::mpsc::unbounded_channel;

use crate::config::GPU_DRAFT_TOKENS;
use crate::control_text::ControlText;
use crate::heartbeat::Heartbeat;
use crate::job::{FinishReason, JobEvent, JobRequest};
use crate::queue::{Queue, QueueStatus};
use crate::template::ChatTemplate;
use crate::tools::ToolFormat;
use crate::draft::Drafter;
use crate::{EngineConfig, EngineError, runner};

mod fragment_cache;
mod handle;
mod prompt;

pub use handle::JobHandle;

/// A running engine. Dropping it cancels waiting jobs, lets the running one stop at
/// its next token, and joins the thread.
#[derive(Debug)]
pub struct Engine {
    model: Arc<Model>,
    template: Option<ChatTemplate>,
    tool_format: ToolFormat,
    control: ControlText,
    fragments: fragment_cache::FragmentCache,
    queue: Arc<Queue>,
    heartbeat: Arc<Heartbeat>,
    n_ctx: u32,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Applies the settings of `config` that hold for the whole process (llama.cpp's
/// CUDA op fusion). Call first in `main`, before any thread starts: it refuses later.
pub fn apply_process_settings(config: &EngineConfig) -> Result<(), EngineError> {
    llama_sys::set_cuda_op_fusion(config.cuda_op_fusion)?;
    tracing::info!(
        cuda_op_fusion = llama_sys::cuda_op_fusion(),
        "process settings"
    );
    Ok(())
}

impl Engine {
    /// Loads the model and starts the engine thread. Blocks until the model is loaded
    /// and its context allocated.
    pub fn start(config: &EngineConfig) -> Result<Self, EngineError> {
        crate::gpu::preflight(config)?;
        let model = Arc::new(Model::load(
            &config.model_path,
            &ModelParams {
                gpu_layers: config.gpu_layers,
                ..ModelParams::default()
            },
        )?);
        let info = model.info();
        let source = match &config.chat_template_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                EngineError::InvalidRequest(format!(
                    "cannot read the chat template file {}: {e}",
                    path.display()
                ))
            })?),
            None => info.chat_template.clone(),
        };
        let template = match &source {
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
        // A guess is checked in one batch with the token before it.
        let draft_tokens = config
            .draft_tokens
            .unwrap_or(if model.on_gpu() { GPU_DRAFT_TOKENS } else { 0 })
            .min(config.n_batch.saturating_sub(1));
        // A rejected guess is cut from the cache, which recurrent models cannot do.
        let drafter = model
            .can_drop_cache_tail()
            .then(|| Drafter::new(draft_tokens as usize))
            .flatten();
        let queue = Arc::new(Queue::new(config.queue_capacity));
        let heartbeat = Arc::new(Heartbeat::new());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let model = Arc::clone(&model);
            let queue = Arc::clone(&queue);
            let heartbeat = Arc::clone(&heartbeat);
            std::thread::Builder::new()
                .name("sandbox-engine".into())
                .spawn(move || {
                    engine_thread(&model, &params, drafter, &queue, &heartbeat, &ready_tx)
                })
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
            fragments: fragment_cache::FragmentCache::default(),
            tool_format: ToolFormat::detect(model.info(), source.as_deref(), template.as_ref()),
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

    /// How this model reads tools and writes calls.
    pub fn tool_format(&self) -> &ToolFormat {
        &self.tool_format
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

fn engine_thread(
    model: &Model,
    params: &SessionParams,
    mut drafter: Option<Drafter>,
    queue: &Queue,
    heartbeat: &Heartbeat,
    ready: &mpsc::Sender<Result<u32, llama_sys::LlamaError>>,
) {
    let beat = || heartbeat.beat();
    let mut session = match model.session(params) {
        Ok(mut s) => {
            // On a GPU the first batches of a new context are slow (kernels load,
            // buffers grow): pay that now rather than in the first user's answer.
            if model.on_gpu() {
                let started = std::time::Instant::now();
                match s.warm_up() {
                    Ok(()) => tracing::info!(ms = started.elapsed().as_millis() as u64, "engine warmed up"),
                    Err(e) => tracing::warn!(error = %e, "engine warm-up failed"),
                }
            }
            beat();
            let _ = ready.send(Ok(s.n_ctx()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while let Some(mut pending) = queue.pop(&beat) {
        let span = tracing::debug_span!("job", id = pending.id);
        let _enter = span.enter();
        let last = match runner::run(
            &mut session,
            model,
            &mut pending,
            drafter.as_mut(),
            &|| queue.expire(),
            &beat,
        ) {
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
