//! The served model's life cycle as front ends see it: downloading, loading, ready or
//! failed, with the engine available once ready. Loading happens on a background
//! thread so a server can answer (with "not ready yet") from its first second.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use serde::Serialize;

use crate::download::{DownloadProgress, HubModel, ModelStore};
use crate::{Engine, EngineConfig};

/// Where the model is on its way to serving.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ModelState {
    /// The model file is being fetched.
    Downloading {
        /// Fraction done (0..=1), when the size is known.
        progress: Option<f64>,
        /// Bytes on disk so far.
        downloaded_bytes: u64,
        /// Total size, when known.
        total_bytes: Option<u64>,
        /// Human-readable status (rate, ETA).
        message: String,
    },
    /// The model is being loaded into memory.
    Loading {
        /// Human-readable status.
        message: String,
    },
    /// Serving.
    Ready,
    /// It will not become ready without intervention.
    Error {
        /// What went wrong and what to do.
        message: String,
    },
}

impl ModelState {
    /// Short name: `downloading`, `loading`, `ready` or `error`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Downloading { .. } => "downloading",
            Self::Loading { .. } => "loading",
            Self::Ready => "ready",
            Self::Error { .. } => "error",
        }
    }
}

/// One served model: its state and, once loaded, its engine.
#[derive(Debug)]
pub struct Service {
    state: RwLock<ModelState>,
    engine: OnceLock<Engine>,
}

impl Service {
    /// A service that is still `Loading` and has no engine.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: RwLock::new(ModelState::Loading {
                message: "starting".into(),
            }),
            engine: OnceLock::new(),
        })
    }

    /// Loads the model of `config` on a background thread; the state moves to
    /// `Ready` or `Error`.
    pub fn load_in_background(self: &Arc<Self>, config: EngineConfig) {
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("sandbox-loader".into())
            .spawn(move || this.load(&config));
        if let Err(e) = spawned {
            self.set_state(ModelState::Error {
                message: format!("cannot start the loader thread: {e}"),
            });
        }
    }

    /// Fetches `model` through `store` (a cached, verified copy is used without any
    /// network request), publishing progress as `Downloading`, then loads it with
    /// `config`; all on a background thread.
    pub fn fetch_and_load_in_background(
        self: &Arc<Self>,
        store: ModelStore,
        model: HubModel,
        config: EngineConfig,
    ) {
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("sandbox-loader".into())
            .spawn(move || this.fetch_and_load(&store, &model, config));
        if let Err(e) = spawned {
            self.set_state(ModelState::Error {
                message: format!("cannot start the loader thread: {e}"),
            });
        }
    }

    fn fetch_and_load(
        self: &Arc<Self>,
        store: &ModelStore,
        model: &HubModel,
        mut config: EngineConfig,
    ) {
        let name = format!("{}/{}", model.repo, model.file);
        self.set_state(ModelState::Downloading {
            progress: None,
            downloaded_bytes: 0,
            total_bytes: None,
            message: format!("{name}: checking the cache"),
        });
        let this = Arc::clone(self);
        let label = name.clone();
        let mut last_log: Option<Instant> = None;
        let report = move |p: &DownloadProgress| {
            this.set_state(ModelState::Downloading {
                progress: Some(p.fraction()),
                downloaded_bytes: p.downloaded,
                total_bytes: Some(p.total),
                message: format!("{label}: {}", p.describe()),
            });
            if last_log.is_none_or(|t| t.elapsed().as_secs() >= 5) || p.downloaded == p.total {
                last_log = Some(Instant::now());
                tracing::info!(
                    model = %label,
                    downloaded = p.downloaded,
                    total = p.total,
                    mb_per_s = p.bytes_per_second / 1e6,
                    eta_s = p.eta.map(|e| e.as_secs()),
                    "downloading"
                );
            }
        };
        match store.fetch_blocking(model, report) {
            Ok(path) => {
                config.model_path = path;
                self.load(&config);
            }
            Err(e) => {
                tracing::error!(model = %name, error = %e, "model download failed");
                self.set_state(ModelState::Error {
                    message: format!("the model could not be downloaded: {e}"),
                });
            }
        }
    }

    /// Loads the model of `config` on the current thread.
    pub fn load(&self, config: &EngineConfig) {
        self.set_state(ModelState::Loading {
            message: format!("loading {}", config.model_path.display()),
        });
        let t = Instant::now();
        match Engine::start(config) {
            Ok(engine) => {
                tracing::info!(
                    model = %config.model_path.display(),
                    n_ctx = engine.n_ctx(),
                    load_ms = t.elapsed().as_millis() as u64,
                    "model ready"
                );
                // A second engine would be a bug; if it happens, keep the first.
                let _ = self.engine.set(engine);
                self.set_state(ModelState::Ready);
            }
            Err(e) => {
                tracing::error!(model = %config.model_path.display(), error = %e, "model failed to load");
                self.set_state(ModelState::Error {
                    message: format!("the model could not be loaded: {e}"),
                });
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> ModelState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the state (the downloader reports progress through this).
    pub fn set_state(&self, state: ModelState) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// The engine when ready, else the state that explains why not.
    pub fn engine(&self) -> Result<&Engine, ModelState> {
        match self.engine.get() {
            Some(e) => Ok(e),
            None => Err(self.state()),
        }
    }

    /// Stops the engine, if one runs (see [`Engine::shutdown`]).
    pub fn shutdown(&self) {
        if let Some(e) = self.engine.get() {
            e.shutdown();
        }
    }
}
