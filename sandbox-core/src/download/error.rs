use std::path::PathBuf;

/// Why a model could not be fetched, each with what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DownloadError {
    /// 401/403: private or gated repository.
    #[error(
        "access to {repo} was refused (HTTP {status}): the repository is private or gated. Accept its terms on huggingface.co if needed, then set HF_TOKEN (or put the token in $HF_HOME/token)"
    )]
    Unauthorized {
        /// Repository id.
        repo: String,
        /// 401 or 403.
        status: u16,
    },
    /// 404: repository, revision or file not found.
    #[error(
        "not found on the hub: {what} (check the repository, file name and revision in the configuration)"
    )]
    NotFound {
        /// What was not found.
        what: String,
    },
    /// The hub could not be reached within the retry budget.
    #[error(
        "cannot reach {endpoint} after retrying for {seconds}s: {reason}. Check the network, DNS and HF_ENDPOINT"
    )]
    Network {
        /// The endpoint.
        endpoint: String,
        /// How long we tried.
        seconds: u64,
        /// The last error.
        reason: String,
    },
    /// Not enough free disk space (before or during the download).
    #[error(
        "not enough disk space in {}: {needed} bytes needed (file plus margin), {available} available. Free space or point HF_HOME elsewhere; a partial download is kept and resumes",
        dir.display()
    )]
    DiskFull {
        /// The cache directory.
        dir: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The downloaded bytes do not match the hub's sha256, twice.
    #[error(
        "{file}: the download does not match the hub's sha256 ({expected}, got {actual}) even after a fresh retry"
    )]
    Corrupted {
        /// The file.
        file: String,
        /// Hub's sha256.
        expected: String,
        /// What we got.
        actual: String,
    },
    /// The file is not a GGUF model.
    #[error("{} is not a GGUF model file (it does not start with the GGUF magic bytes)", .0.display())]
    NotGguf(PathBuf),
    /// Offline mode and the model is not in the cache.
    #[error("HF_HUB_OFFLINE is set and {repo}/{file} at {revision} is not in the cache ({})", cache.display())]
    OfflineNotCached {
        /// Repository.
        repo: String,
        /// File.
        file: String,
        /// Revision.
        revision: String,
        /// Cache dir.
        cache: PathBuf,
    },
    /// The hub answered something unexpected.
    #[error("unexpected answer from the hub: {0}")]
    Protocol(String),
    /// A local file operation failed.
    #[error("file error: {0}")]
    Io(String),
}

impl DownloadError {
    /// A stable machine-readable name of the variant (`unauthorized`, `not_found`,
    /// `network`, `disk_full`, `corrupted`, `not_gguf`, `offline_not_cached`,
    /// `protocol`, `io`), so that scripts never match on the English message.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::NotFound { .. } => "not_found",
            Self::Network { .. } => "network",
            Self::DiskFull { .. } => "disk_full",
            Self::Corrupted { .. } => "corrupted",
            Self::NotGguf(_) => "not_gguf",
            Self::OfflineNotCached { .. } => "offline_not_cached",
            Self::Protocol(_) => "protocol",
            Self::Io(_) => "io",
        }
    }
}
