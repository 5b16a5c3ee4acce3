//! The model store: fetches a GGUF from the Hugging Face hub (or a mirror named by
//! `HF_ENDPOINT`) into the standard Hugging Face cache layout, once, in parallel ranged
//! chunks that resume after an interruption, verified against the hub's sha256 before
//! use; later starts find it in the cache without any network request.

mod error;
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

    /// Runs `op`, retrying failures that may pass (network) with backoff for up to
    /// `retry_for`.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, DownloadError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(reason)) => {
                    if started.elapsed() + delay > self.cfg.retry_for {
                        return Err(DownloadError::Network {
                            endpoint: self.cfg.endpoint.clone(),
                            seconds: started.elapsed().as_secs(),
                            reason,
                        });
                    }
                    tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "hub request failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn metadata(&self, m: &HubModel) -> Result<Metadata, Failure> {
        let url = format!(
            "{}/{}/resolve/{}/{}",
            self.cfg.endpoint, m.repo, m.revision, m.file
        );
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure::Fatal(DownloadError::Protocol(e.to_string())))?;
        let mut req = client.get(&url).header(reqwest::header::RANGE, "bytes=0-0");
        if let Some(t) = &self.cfg.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let status = resp.status().as_u16();
        let header = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim_matches('"').to_owned())
        };
        match status {
            401 | 403 => {
                return Err(Failure::Fatal(DownloadError::Unauthorized {
                    repo: m.repo.clone(),
                    status,
                }));
            }
            404 => {
                let what = match header("x-error-code").as_deref() {
                    Some("RepoNotFound") => format!("repository {}", m.repo),
                    Some("RevisionNotFound") => format!("revision {} of {}", m.revision, m.repo),
                    _ => format!("file {} in {} at revision {}", m.file, m.repo, m.revision),
                };
                return Err(Failure::Fatal(DownloadError::NotFound { what }));
            }
            429 | 500..=599 => return Err(Failure::Retry(format!("HTTP {status} from {url}"))),
            200..=399 => {}
            _ => {
                return Err(Failure::Fatal(DownloadError::Protocol(format!(
                    "HTTP {status} from {url}"
                ))));
            }
        }
        let sha256 = header("x-linked-etag").filter(|e| verify::is_sha256(e));
        let size = header("x-linked-size")
            .and_then(|s| s.parse().ok())
            .or_else(|| header("content-range").and_then(|r| r.rsplit('/').next()?.parse().ok()))
            .ok_or_else(|| {
                Failure::Fatal(DownloadError::Protocol(format!(
                    "no file size in the answer for {url}"
                )))
            })?;
        Ok(Metadata { sha256, size })
    }

    async fn download(
        &self,
        m: &HubModel,
        reporter: Reporter,
        size: u64,
    ) -> Result<PathBuf, Failure> {
        let api = ApiBuilder::from_cache(Cache::new(self.cfg.cache_dir.clone()))
            .with_endpoint(self.cfg.endpoint.clone())
            .with_token(self.cfg.token.clone())
            .with_progress(false)
            .with_max_files(self.cfg.parallel.max(1))
            .with_chunk_size(Some(self.cfg.chunk_bytes.max(1 << 20)))
            .build()
            .map_err(|e| Failure::Fatal(DownloadError::Protocol(e.to_string())))?;
        api.repo(Self::repo(m))
            .download_with_progress(&m.file, reporter)
            .await
            .map_err(|e| self.classify(m, e, size))
    }

    fn classify(&self, m: &HubModel, e: ApiError, size: u64) -> Failure {
        match e {
            ApiError::TooManyRetries(inner) => self.classify(m, *inner, size),
            ApiError::RequestError(r) => match r.status().map(|s| s.as_u16()) {
                Some(s @ (401 | 403)) => Failure::Fatal(DownloadError::Unauthorized {
                    repo: m.repo.clone(),
                    status: s,
                }),
                Some(404) => Failure::Fatal(DownloadError::NotFound {
                    what: format!("file {} in {} at revision {}", m.file, m.repo, m.revision),
                }),
                _ => Failure::Retry(r.to_string()),
            },
            ApiError::IoError(io)
                if io.raw_os_error() == Some(28) || io.kind() == io::ErrorKind::StorageFull =>
            {
                let available = (self.free_space)(&self.cfg.cache_dir).unwrap_or(0);
                Failure::Fatal(DownloadError::DiskFull {
                    dir: self.cfg.cache_dir.clone(),
                    needed: size + self.cfg.disk_margin,
                    available,
                })
            }
            ApiError::IoError(io) => Failure::Fatal(DownloadError::Io(io.to_string())),
            other => Failure::Retry(other.to_string()),
        }
    }
}
