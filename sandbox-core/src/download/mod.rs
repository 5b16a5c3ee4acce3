//! The model store: fetches a GGUF from the Hugging Face hub (or a mirror named by
//! `HF_ENDPOINT`) into the standard Hugging Face cache layout, once, in parallel ranged
//! chunks that resume after an interruption, verified against the hub's sha256 before
//! use; later starts find it in the cache without any network request.

mod error;
mod hub;
mod progress;
mod verify;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hf_hub::api::tokio::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use serde::{Deserialize, Serialize};

pub use error::DownloadError;
pub use progress::DownloadProgress;
use progress::Reporter;
pub use verify::sha256_file;

/// A GGUF file in a hub repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubModel {
    /// Repository id, e.g. `bartowski/Mistral-7B-Instruct-v0.3-GGUF`.
    pub repo: String,
    /// File in the repository.
    pub file: String,
    /// Branch, tag or commit.
    #[serde(default = "main_branch")]
    pub revision: String,
    /// Expected sha256; when set, the hub's must match it too.
    #[serde(default)]
    pub sha256: Option<String>,
}

fn main_branch() -> String {
    "main".into()
}

/// Where and how to download.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Hub URL (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// The hub cache directory (`HF_HUB_CACHE`, else `$HF_HOME/hub`).
    pub cache_dir: PathBuf,
    /// Access token (`HF_TOKEN`, else the token file `$HF_HOME/token`).
    pub token: Option<String>,
    /// Never touch the network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Parallel ranged requests.
    pub parallel: usize,
    /// Bytes per ranged request.
    pub chunk_bytes: usize,
    /// How long to keep retrying an unreachable hub.
    pub retry_for: Duration,
    /// Free space to leave on the disk besides the file.
    pub disk_margin: u64,
}

impl StoreConfig {
    /// Settings from the standard Hugging Face environment variables.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(var("HOME").unwrap_or_else(|| "/root".into())).join(".cache/huggingface")
        });
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
        });
        Self {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            cache_dir: var("HF_HUB_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join("hub")),
            token,
            offline: var("HF_HUB_OFFLINE")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes")),
            parallel: 8,
            chunk_bytes: 16 << 20,
            retry_for: Duration::from_secs(120),
            disk_margin: 512 << 20,
        }
    }
}

type FreeSpace = Arc<dyn Fn(&Path) -> io::Result<u64> + Send + Sync>;

/// What the hub says about a file before it is downloaded.
#[derive(Debug, Clone)]
struct Metadata {
    sha256: Option<String>,
    size: u64,
}

/// Fetches models into the cache.
#[derive(Clone)]
pub struct ModelStore {
    cfg: StoreConfig,
    free_space: FreeSpace,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelStore")
            .field("cfg", &self.cfg)
            .finish()
    }
}

enum Failure {
    Fatal(DownloadError),
    Retry(String),
}

impl ModelStore {
    /// A store with the real free-space probe.
    pub fn new(cfg: StoreConfig) -> Self {
        Self {
            cfg,
            free_space: Arc::new(|p: &Path| fs4::available_space(p)),
        }
    }

    /// Replaces the free-space probe (tests simulate a small disk with it).
    pub fn with_free_space_probe(
        mut self,
        probe: impl Fn(&Path) -> io::Result<u64> + Send + Sync + 'static,
    ) -> Self {
        self.free_space = Arc::new(probe);
        self
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    fn repo(m: &HubModel) -> Repo {
        Repo::with_revision(m.repo.clone(), RepoType::Model, m.revision.clone())
    }

    fn marker(&self, sha: &str) -> PathBuf {
        self.cfg.cache_dir.join(".ai-sandbox-verified").join(sha)
    }

    /// The cached file if it was downloaded and verified before; touches no network.
    pub fn cached(&self, m: &HubModel) -> Option<PathBuf> {
        let path = Cache::new(self.cfg.cache_dir.clone())
            .repo(Self::repo(m))
            .get(&m.file)?;
        let blob = std::fs::canonicalize(&path).ok()?;
        let sha = blob.file_name()?.to_str()?.to_owned();
        if m.sha256.as_ref().is_some_and(|want| *want != sha) {
            return None;
        }
        self.marker(&sha).is_file().then_some(path)
    }

    /// Blocking [`ModelStore::fetch`] on a runtime of its own.
    pub fn fetch_blocking(
        &self,
        m: &HubModel,
        progress: impl FnMut(&DownloadProgress) + Send + 'static,
    ) -> Result<PathBuf, DownloadError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| DownloadError::Io(format!("cannot start the download runtime: {e}")))?;
        rt.block_on(self.fetch(m, progress))
    }

    /// Returns the local path of `m`, downloading and verifying it first if needed.
    pub async fn fetch(
        &self,
        m: &HubModel,
        progress: impl FnMut(&DownloadProgress) + Send + 'static,
    ) -> Result<PathBuf, DownloadError> {
        if let Some(p) = self.cached(m) {
            return Ok(p);
        }
        if self.cfg.offline {
            return Err(DownloadError::OfflineNotCached {
                repo: m.repo.clone(),
                file: m.file.clone(),
                revision: m.revision.clone(),
                cache: self.cfg.cache_dir.clone(),
            });
        }
        std::fs::create_dir_all(&self.cfg.cache_dir).map_err(|e| {
            DownloadError::Io(format!(
                "cannot create {}: {e}",
                self.cfg.cache_dir.display()
            ))
        })?;
        let meta = self.retrying(|| self.metadata(m)).await?;
        if let (Some(want), Some(got)) = (&m.sha256, &meta.sha256)
            && want != got
        {
            return Err(DownloadError::Protocol(format!(
                "the hub's sha256 of {} is {got}, not the configured {want}",
                m.file
            )));
        }
        self.check_space(&meta)?;
        let reporter = Reporter::new(Duration::from_millis(250), Box::new(progress));
        for attempt in 0..2 {
            let path = self
                .retrying(|| self.download(m, reporter.clone(), meta.size))
                .await?;
            let hash_path = path.clone();
            let actual = tokio::task::spawn_blocking(move || sha256_file(&hash_path))
                .await
                .map_err(|e| DownloadError::Io(e.to_string()))?
                .map_err(|e| DownloadError::Io(format!("cannot read {}: {e}", path.display())))?;
            let expected = meta.sha256.clone().unwrap_or_else(|| actual.clone());
            if actual != expected {
                tracing::warn!(file = %m.file, %expected, %actual, attempt, "checksum mismatch; deleting the file");
                self.remove(&path);
                if attempt == 1 {
                    return Err(DownloadError::Corrupted {
                        file: m.file.clone(),
                        expected,
                        actual,
                    });
                }
                continue;
            }
            if !verify::is_gguf(&path).map_err(|e| DownloadError::Io(e.to_string()))? {
                return Err(DownloadError::NotGguf(path));
            }
            let marker = self.marker(&actual);
            if let Some(dir) = marker.parent() {
                std::fs::create_dir_all(dir).map_err(|e| DownloadError::Io(e.to_string()))?;
            }
            std::fs::write(&marker, format!("{}\n", m.file))
                .map_err(|e| DownloadError::Io(e.to_string()))?;
            tracing::info!(repo = %m.repo, file = %m.file, sha256 = %actual, "model downloaded and verified");
            return Ok(path);
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Deletes a downloaded file: the snapshot link and the blob it points to.
    fn remove(&self, path: &Path) {
        if let Ok(blob) = std::fs::canonicalize(path) {
            let _ = std::fs::remove_file(blob);
        }
        let _ = std::fs::remove_file(path);
    }

    fn check_space(&self, meta: &Metadata) -> Result<(), DownloadError> {
        let available =
            (self.free_space)(&self.cfg.cache_dir).map_err(|e| DownloadError::Io(e.to_string()))?;
        let needed = meta.size + self.cfg.disk_margin;
        if available < needed {
            return Err(DownloadError::DiskFull {
                dir: self.cfg.cache_dir.clone(),
                needed,
                available,
            });
        }
        Ok(())
    }
}
