//! Talking to the hub: a file's metadata (size, sha256), the file itself, retries with
//! backoff for what may pass, and the hub's errors in the user's terms.

use super::*;

impl ModelStore {
    /// Runs `op`, retrying failures that may pass (network) with backoff for up to
    /// `retry_for`.
    pub(super) async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, DownloadError>
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

    pub(super) async fn metadata(&self, m: &HubModel) -> Result<Metadata, Failure> {
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

    pub(super) async fn download(
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
