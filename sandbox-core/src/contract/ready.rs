//! `GET /ready`: 200 with [`Ready::Ready`] once the model answers, else 503 with what
//! it is doing (and `Retry-After` from [`super::retry`]).

use serde::{Deserialize, Serialize};

/// The `/ready` body, tagged by `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Ready {
    /// Serving.
    Ready {
        /// The served model's id (what `/v1/models` lists).
        model: String,
        /// The queue right now.
        queue: Option<QueueInfo>,
        /// What is served and on what: for the chat's status panel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<ServingDetails>,
    },
    /// The model file is being fetched.
    Downloading(Download),
    /// The model is being loaded into memory.
    Loading {
        /// Always absent today; kept so that every non-ready body has the field.
        progress: Option<f64>,
        /// What is being loaded, in words.
        message: String,
    },
    /// It will not become ready without intervention.
    Error {
        /// Always absent; see [`Ready::Loading`].
        progress: Option<f64>,
        /// What failed, for programs.
        error_kind: ModelErrorKind,
        /// What failed and what to do, in words (for an administrator).
        message: String,
    },
}

/// How far a download is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Download {
    /// Fraction done (0..=1), when the size is known.
    pub progress: Option<f64>,
    /// Bytes on disk so far.
    pub downloaded_bytes: u64,
    /// Total size, when known.
    pub total_bytes: Option<u64>,
    /// What is fetched, the rate and time left, in words.
    pub message: String,
}

/// The queue of a ready model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// Requests waiting behind the running one.
    pub waiting: usize,
    /// Whether one is running.
    pub running: bool,
    /// Most requests that may wait.
    pub capacity: usize,
    /// Estimated wait of a request sent now.
    pub estimated_wait_seconds: f64,
}

/// The served model and the machine, as the administrator's status panel shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingDetails {
    /// The GGUF file's name.
    pub file: String,
    /// Its quantization (`Q4_K_M`, …), when the file says.
    pub quantization: Option<String>,
    /// Parameter count.
    pub parameters: u64,
    /// Size of the weights in bytes.
    pub size_bytes: u64,
    /// The context window in tokens.
    pub context_tokens: u32,
    /// How tools reach the model (`mistral`, `hermes`, `llama3`, `generic`).
    pub tool_format: String,
    /// The GPUs llama.cpp uses, with their memory now (none on a CPU build).
    pub gpus: Vec<GpuMemory>,
    /// The last answers, oldest first (at most [`RECENT_ANSWERS`]).
    pub recent_answers: Vec<RecentAnswer>,
}

/// How many answers [`ServingDetails::recent_answers`] keeps.
pub const RECENT_ANSWERS: usize = 10;

/// One GPU's memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuMemory {
    /// e.g. `NVIDIA RTX 4000 Ada Generation`.
    pub name: String,
    /// Total bytes.
    pub total_bytes: u64,
    /// Free bytes.
    pub free_bytes: u64,
}

/// The numbers of one finished answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecentAnswer {
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Decode speed.
    pub tokens_per_second: f64,
    /// From the start of the job to its first token, in milliseconds.
    pub time_to_first_token_ms: f64,
    /// Time in the queue, in milliseconds.
    pub queue_ms: f64,
}

/// Why the model is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelErrorKind {
    /// The model file could not be fetched (network, disk, checksum, access).
    DownloadFailed,
    /// The file is there but llama.cpp could not load it.
    LoadFailed,
    /// The machine cannot hold the model as configured (GPU memory).
    NotEnoughMemory,
    /// The server itself could not start loading.
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The wire shape, as clients outside Rust (the deploy scripts, load balancers,
    /// the tests' fakes) read it.
    #[test]
    fn the_wire_shape_is_stable() {
        let ready = Ready::Ready {
            model: "m".into(),
            queue: Some(QueueInfo {
                waiting: 1,
                running: true,
                capacity: 32,
                estimated_wait_seconds: 2.5,
            }),
            details: None,
        };
        assert_eq!(
            serde_json::to_value(&ready).unwrap_or_default(),
            json!({"status": "ready", "model": "m", "queue": {"waiting": 1, "running": true,
                   "capacity": 32, "estimated_wait_seconds": 2.5}})
        );
        let failed = Ready::Error {
            progress: None,
            error_kind: ModelErrorKind::NotEnoughMemory,
            message: "x".into(),
        };
        let v = serde_json::to_value(&failed).unwrap_or_default();
        assert_eq!(
            v,
            json!({"status": "error", "progress": null, "error_kind": "not_enough_memory", "message": "x"})
        );
        assert_eq!(serde_json::from_value::<Ready>(v).ok(), Some(failed));
    }
}
