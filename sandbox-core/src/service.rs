//! The served model's life cycle as front ends see it: downloading, loading, ready or
//! failed, with the engine available once ready. Loading happens on a background
//! thread so a server can answer (with "not ready yet") from its first second.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::contract::ready::{Download, ModelErrorKind, QueueInfo, Ready, ServingDetails};
use crate::contract::retry::Wait;
use crate::download::{DownloadProgress, HubModel, ModelStore};
use crate::{Engine, EngineConfig};

/// Where the model is on its way to serving.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ModelState {
    /// The model file is being fetched.
    Downloading(Download),
    /// The model is being loaded into memory.
    Loading {
        /// Human-readable status.
        message: String,
    },
    /// Serving.
    Ready,
    /// It will not become ready without intervention.
    Error {
        /// What went wrong, for programs.
        kind: ModelErrorKind,
        /// What went wrong and what to do.
        message: String,
    },
}

impl ModelState {
    /// The `/ready` body for this state; `model`, `queue` and `details` are what a
    /// ready one reports.
    pub fn ready_body(
        &self,
        model: &str,
        queue: Option<crate::QueueStatus>,
        details: Option<ServingDetails>,
    ) -> Ready {
        match self {
            Self::Ready => Ready::Ready {
                details,
                model: model.to_owned(),
                queue: queue.map(|q| QueueInfo {
                    waiting: q.waiting,
                    running: q.running.is_some(),
                    capacity: q.capacity,
                    estimated_wait_seconds: q.estimated_wait.as_secs_f64(),
                }),
            },
            Self::Downloading(d) => Ready::Downloading(d.clone()),
            Self::Loading { message } => Ready::Loading {
                progress: None,
                message: message.clone(),
            },
            Self::Error { kind, message } => Ready::Error {
                progress: None,
                error_kind: *kind,
                message: message.clone(),
            },
        }
    }

    /// When a client should ask again ([`crate::contract::retry`]).
    pub fn wait(&self) -> Wait {
        match self {
            Self::Downloading(_) => Wait::Downloading,
            Self::Loading { .. } => Wait::Loading,
            Self::Error { .. } => Wait::Failed,
            Self::Ready => Wait::Ready,
        }
    }

    /// One line for a service manager's status (`systemctl status`): `downloading
    /// 42 %` (whole percents, so it changes at most a hundred times), `downloading:
    /// MESSAGE` while the size is unknown, `loading: MESSAGE`, `ready` or `error:
    /// MESSAGE`.
    pub fn status_line(&self) -> String {
        match self {
            Self::Downloading(Download {
                progress: Some(p),
                total_bytes,
                ..
            }) => {
                let percent = (p.clamp(0.0, 1.0) * 100.0).floor();
                match total_bytes {
                    Some(t) => format!("downloading {percent:.0} % of {:.2} GB", *t as f64 / 1e9),
                    None => format!("downloading {percent:.0} %"),
                }
            }
            Self::Downloading(d) => format!("downloading: {}", d.message),
            Self::Loading { message } => match message.strip_prefix("loading ") {
                Some(what) => format!("loading: {what}"),
                None => format!("loading: {message}"),
            },
            Self::Ready => "ready".into(),
            Self::Error { message, .. } => format!("error: {message}"),
        }
    }
}

/// One served model: its state and, once loaded, its engine.
#[derive(Debug)]
pub struct Service {
    state: watch::Sender<ModelState>,
    engine: OnceLock<Engine>,
}

impl Service {
    /// A service that is still `Loading` and has no engine.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: watch::Sender::new(ModelState::Loading {
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
                kind: ModelErrorKind::Internal,
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
                kind: ModelErrorKind::Internal,
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
        self.set_state(ModelState::Downloading(Download {
            progress: None,
            downloaded_bytes: 0,
            total_bytes: None,
            message: format!("{name}: checking the cache"),
        }));
        let this = Arc::clone(self);
        let label = name.clone();
        let mut last_log: Option<Instant> = None;
        let report = move |p: &DownloadProgress| {
            this.set_state(ModelState::Downloading(Download {
                progress: Some(p.fraction()),
                downloaded_bytes: p.downloaded,
                total_bytes: Some(p.total),
                message: format!("{label}: {}", p.describe()),
            }));
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
                    kind: ModelErrorKind::DownloadFailed,
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
                    kind: if matches!(e, crate::EngineError::Resources(_)) {
                        ModelErrorKind::NotEnoughMemory
                    } else {
                        ModelErrorKind::LoadFailed
                    },
                    message: format!("the model could not be loaded: {e}"),
                });
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> ModelState {
        self.state.borrow().clone()
    }

    /// Replaces the state (the downloader reports progress through this).
    pub fn set_state(&self, state: ModelState) {
        self.state.send_replace(state);
    }

    /// Follows the state: the receiver sees the current state and is woken on every
    /// [`Service::set_state`] (download progress included).
    pub fn subscribe(&self) -> watch::Receiver<ModelState> {
        self.state.subscribe()
    }

    /// The engine thread's [`Engine::heartbeat_age`], or `None` while there is no
    /// engine (downloading, loading, or failed to load).
    pub fn heartbeat_age(&self) -> Option<Duration> {
        self.engine.get().map(Engine::heartbeat_age)
    }

    /// The engine when ready, else the state that explains why not.
    pub fn engine(&self) -> Result<&Engine, ModelState> {
        match self.engine.get() {
            Some(e) => Ok(e),
            None => Err(self.state()),
        }
    }

    /// Starts a shutdown's grace period, if an engine runs (see [`Engine::drain`]).
    pub fn drain(&self) {
        if let Some(e) = self.engine.get() {
            e.drain();
        }
    }

    /// Whether the engine is running a job.
    pub fn is_busy(&self) -> bool {
        self.engine.get().is_some_and(Engine::is_busy)
    }

    /// Stops the engine, if one runs (see [`Engine::shutdown`]).
    pub fn shutdown(&self) {
        if let Some(e) = self.engine.get() {
            e.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_name_the_state() {
        let downloading = |progress, total| {
            ModelState::Downloading(Download {
                progress,
                downloaded_bytes: 0,
                total_bytes: total,
                message: "org/repo/m.gguf: checking the cache".into(),
            })
        };
        assert_eq!(
            downloading(Some(0.4299), Some(4_370_000_000)).status_line(),
            "downloading 42 % of 4.37 GB"
        );
        assert_eq!(
            downloading(Some(1.0), None).status_line(),
            "downloading 100 %"
        );
        assert_eq!(
            downloading(None, None).status_line(),
            "downloading: org/repo/m.gguf: checking the cache"
        );
        assert_eq!(
            ModelState::Loading {
                message: "loading /m/a.gguf".into()
            }
            .status_line(),
            "loading: /m/a.gguf"
        );
        assert_eq!(
            ModelState::Loading {
                message: "starting".into()
            }
            .status_line(),
            "loading: starting"
        );
        assert_eq!(ModelState::Ready.status_line(), "ready");
        assert_eq!(
            ModelState::Error {
                kind: ModelErrorKind::LoadFailed,
                message: "no such file".into()
            }
            .status_line(),
            "error: no such file"
        );
    }

    #[test]
    fn subscribers_see_state_changes_and_no_engine_has_no_heartbeat() {
        let service = Service::new();
        let mut rx = service.subscribe();
        assert!(matches!(*rx.borrow_and_update(), ModelState::Loading { .. }));
        service.set_state(ModelState::Error {
            kind: ModelErrorKind::Internal,
            message: "x".into(),
        });
        assert!(rx.has_changed().unwrap_or(false));
        assert!(matches!(*rx.borrow_and_update(), ModelState::Error { .. }));
        assert!(matches!(service.state(), ModelState::Error { .. }));
        assert_eq!(service.heartbeat_age(), None);
    }
}
