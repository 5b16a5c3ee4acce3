//! One typed configuration: defaults, then a TOML file, then environment variables and
//! flags (clap reads both; a flag wins over its variable).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use sandbox_core::EngineConfig;
use sandbox_core::config_file::{self, FileError};
use sandbox_core::download::HubModel;
use serde::{Deserialize, Serialize};

/// Settings of `sandbox-api serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Accepted API keys.
    pub api_keys: Vec<String>,
    /// File with one API key per line (must be mode 0600).
    pub api_key_file: Option<PathBuf>,
    /// Serve without keys on a non-loopback address.
    pub allow_open: bool,
    /// Model id reported by the API (e.g. the Hugging Face repo id); default: the file
    /// name without `.gguf`.
    pub model_id: Option<String>,
    /// Reject requests whose `model` is not the served id (404 `model_not_found`).
    pub strict_model_ids: bool,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Seconds a shutdown waits for running requests before cancelling them.
    pub shutdown_grace_seconds: u64,
    /// The model to download from the Hugging Face hub when `engine.model_path` is
    /// not set.
    pub hub: HubModel,
    /// The engine.
    pub engine: EngineConfig,
}

/// The default model: bartowski's GGUF conversion of mistralai/Mistral-7B-Instruct-v0.3
/// (llama.cpp's own quantizer, with an importance matrix; every usual quant in one repo).
pub const DEFAULT_HUB_REPO: &str = "bartowski/Mistral-7B-Instruct-v0.3-GGUF";
/// The default quantization (about 4.4 GB).
pub const DEFAULT_QUANT: &str = "Q4_K_M";
const DEFAULT_FILE_STEM: &str = "Mistral-7B-Instruct-v0.3";
const DEFAULT_MODEL_ID: &str = "mistralai/Mistral-7B-Instruct-v0.3";

fn default_hub() -> HubModel {
    HubModel {
        repo: DEFAULT_HUB_REPO.into(),
        file: format!("{DEFAULT_FILE_STEM}-{DEFAULT_QUANT}.gguf"),
        revision: "main".into(),
        sha256: None,
    }
}

/// Where the served model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A GGUF file on disk.
    Local(PathBuf),
    /// A file on the hub, fetched into the cache.
    Hub(HubModel),
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_keys: Vec::new(),
            api_key_file: None,
            allow_open: false,
            model_id: None,
            strict_model_ids: false,
            max_body_bytes: 4 << 20,
            shutdown_grace_seconds: 10,
            hub: default_hub(),
            engine: EngineConfig::default(),
        }
    }
}

/// Flags of `serve` (each also readable from the environment variable it names). They
/// serialize to the configuration file's shape, so each one overrides exactly the file
/// key it is named after ([`config_file::load_layered`]).
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in the README; flags and variables override it).
    #[arg(long, env = "SANDBOX_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SANDBOX_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Model id reported by /v1/models [default: file name without .gguf].
    #[arg(long, env = "SANDBOX_MODEL_ID")]
    pub model_id: Option<String>,
    /// An accepted API key (repeatable; the variable takes a comma-separated list).
    /// Added to the file's keys, not replacing them.
    #[arg(
        long = "api-key",
        env = "SANDBOX_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(skip)]
    pub api_keys: Vec<String>,
    /// File with one API key per line; must not be readable by others (chmod 600).
    #[arg(long, env = "SANDBOX_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Allow serving without any API key on a non-loopback address.
    #[arg(long, env = "SANDBOX_ALLOW_OPEN")]
    #[serde(skip_serializing_if = "config_file::is_false")]
    pub allow_open: bool,
    /// Answer 404 model_not_found when a request names another model.
    #[arg(long, env = "SANDBOX_STRICT_MODEL_IDS")]
    #[serde(skip_serializing_if = "config_file::is_false")]
    pub strict_model_ids: bool,
    /// Quantization of the default Mistral repository: Q4_K_M, Q5_K_M, Q6_K or Q8_0
    /// (names `hub.file`; `--hf-file` wins over it).
    #[arg(long, env = "SANDBOX_QUANT")]
    #[serde(skip)]
    pub quant: Option<String>,
    /// The `[hub]` keys.
    #[command(flatten)]
    pub hub: HubArgs,
    /// The `[engine]` keys.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Flags of the `[hub]` section.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct HubArgs {
    /// Hub repository to download the model from [default: bartowski/Mistral-7B-Instruct-v0.3-GGUF].
    #[arg(long = "hf-repo", env = "SANDBOX_HF_REPO")]
    pub repo: Option<String>,
    /// File in the hub repository [default: Mistral-7B-Instruct-v0.3-Q4_K_M.gguf].
    #[arg(long = "hf-file", env = "SANDBOX_HF_FILE")]
    pub file: Option<String>,
    /// Branch, tag or commit of the hub repository [default: main].
    #[arg(long = "hf-revision", env = "SANDBOX_HF_REVISION")]
    pub revision: Option<String>,
    /// Expected sha256 of the hub file (checked against the hub's and the download).
    #[arg(long = "hf-sha256", env = "SANDBOX_HF_SHA256")]
    pub sha256: Option<String>,
}

/// Flags of the `[engine]` section.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct EngineArgs {
    /// A local GGUF file to serve (instead of downloading one from the hub).
    #[arg(long = "model", env = "SANDBOX_MODEL", value_name = "GGUF")]
    pub model_path: Option<PathBuf>,
    /// Context window in tokens (0 = the model's trained length) [default: 8192].
    #[arg(long = "ctx", env = "SANDBOX_CTX", value_name = "TOKENS")]
    pub n_ctx: Option<u32>,
    /// CPU threads (0 = all cores).
    #[arg(long = "threads", env = "SANDBOX_THREADS", value_name = "N")]
    pub n_threads: Option<u32>,
    /// Layers to offload to the GPU [default: all on a CUDA build].
    #[arg(long, env = "SANDBOX_GPU_LAYERS")]
    pub gpu_layers: Option<u32>,
    /// Requests that may wait behind the running one before new ones get 429 [default: 32].
    #[arg(long, env = "SANDBOX_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// A Jinja chat template file to use instead of the model file's own.
    #[arg(long, env = "SANDBOX_CHAT_TEMPLATE_FILE", value_name = "JINJA")]
    pub chat_template_file: Option<PathBuf>,
    /// Speculative decoding by prompt lookup: most tokens guessed per step (0 = off)
    /// [default: 4 on a GPU, off on a CPU]. Each answer checks only as many guesses as
    /// pay by the clock; see docs/performance.md.
    #[arg(long, env = "SANDBOX_DRAFT_TOKENS", value_name = "N")]
    pub draft_tokens: Option<u32>,
    /// Let llama.cpp's CUDA backend fuse operations into single kernels (off: decoding
    /// was 3–7 % faster without on an H200).
    #[arg(long, env = "SANDBOX_CUDA_OP_FUSION")]
    #[serde(skip_serializing_if = "config_file::is_false")]
    pub cuda_op_fusion: bool,
}

/// The quantizations the default repository holds.
const QUANTS: [&str; 4] = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"];

impl ServeArgs {
    /// The flags as the layer over the file: `--quant` names the hub file unless
    /// `--hf-file` does.
    fn layer(&self) -> Result<Self, ConfigError> {
        let mut layer = self.clone();
        if let Some(q) = &self.quant {
            let q = q.to_ascii_uppercase();
            if !QUANTS.contains(&q.as_str()) {
                return Err(ConfigError::UnknownQuant(q));
            }
            if layer.hub.file.is_none() {
                layer.hub.file = Some(format!("{DEFAULT_FILE_STEM}-{q}.gguf"));
            }
        }
        Ok(layer)
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file or the key file.
    #[error(transparent)]
    File(#[from] FileError),
    /// An unknown quantization.
    #[error("unknown quantization {0:?}: use one of Q4_K_M, Q5_K_M, Q6_K, Q8_0")]
    UnknownQuant(String),
    /// Open and public without consent.
    #[error(
        "refusing to serve {0} without an API key: set --api-key/SANDBOX_API_KEYS or --api-key-file, or pass --allow-open to serve unauthenticated on purpose"
    )]
    OpenOnPublicAddress(SocketAddr),
}

impl ApiConfig {
    /// Builds the configuration from defaults, the file (if any) and `args`, for
    /// serving (which refuses an open public address).
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let cfg = Self::load_unchecked(args)?;
        if cfg.api_keys.is_empty() && !cfg.listen.ip().is_loopback() && !cfg.allow_open {
            return Err(ConfigError::OpenOnPublicAddress(cfg.listen));
        }
        Ok(cfg)
    }

    /// Like [`ApiConfig::load`] without the serving checks (for `model pull`).
    pub fn load_unchecked(args: &ServeArgs) -> Result<Self, ConfigError> {
        let mut cfg: Self = config_file::load_layered(args.config.as_deref(), &args.layer()?)?;
        cfg.api_keys.extend(
            args.api_keys
                .iter()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty()),
        );
        if let Some(path) = cfg.api_key_file.clone() {
            cfg.api_keys.extend(config_file::read_keys(&path)?);
        }
        cfg.hub.sha256 = cfg.hub.sha256.map(|h| h.to_ascii_lowercase());
        Ok(cfg)
    }

    /// The configuration as a TOML file would say it, keys hidden (`sandbox-api config`).
    pub fn shown(&self) -> String {
        let n = self.api_keys.len();
        let hidden = Self {
            api_keys: (n > 0)
                .then(|| format!("({n} hidden)"))
                .into_iter()
                .collect(),
            ..self.clone()
        };
        config_file::to_toml(&hidden)
    }

    /// Where the model comes from: a local path wins over the hub.
    pub fn source(&self) -> ModelSource {
        if self.engine.model_path.as_os_str().is_empty() {
            ModelSource::Hub(self.hub.clone())
        } else {
            ModelSource::Local(self.engine.model_path.clone())
        }
    }

    /// The id `/v1/models` reports.
    pub fn served_model_id(&self) -> String {
        if let Some(id) = &self.model_id {
            return id.clone();
        }
        match self.source() {
            ModelSource::Local(p) => p
                .file_stem()
                .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned()),
            ModelSource::Hub(h) if h.repo == DEFAULT_HUB_REPO => DEFAULT_MODEL_ID.into(),
            ModelSource::Hub(h) => h.repo.trim_end_matches("-GGUF").to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(model: &str) -> ServeArgs {
        ServeArgs {
            engine: EngineArgs {
                model_path: Some(model.into()),
                ..EngineArgs::default()
            },
            ..ServeArgs::default()
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("sandbox-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("api.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\napi_keys = [\"k1\"]\n[engine]\nmodel_path = \"/m/a.gguf\"\nn_ctx = 1024\n",
        )
        .unwrap();
        let mut a = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        a.engine.n_ctx = Some(2048);
        let cfg = ApiConfig::load(&a).unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.engine.n_ctx, 2048);
        assert_eq!(cfg.api_keys, vec!["k1"]);
        assert_eq!(cfg.served_model_id(), "a");
    }

    #[test]
    fn unknown_file_keys_are_an_error() {
        let dir = std::env::temp_dir().join(format!("sandbox-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("api.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = ApiConfig::load(&ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn public_address_without_key_is_refused_unless_allowed() {
        let mut a = args("/m.gguf");
        a.listen = Some("0.0.0.0:8080".parse().unwrap());
        assert!(matches!(
            ApiConfig::load(&a),
            Err(ConfigError::OpenOnPublicAddress(_))
        ));
        a.allow_open = true;
        assert!(ApiConfig::load(&a).is_ok());
        let mut b = args("/m.gguf");
        b.listen = Some("0.0.0.0:8080".parse().unwrap());
        b.api_keys = vec!["secret".into()];
        assert!(ApiConfig::load(&b).is_ok());
    }

    #[test]
    fn key_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sandbox-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "# comment\nkey-a\n\nkey-b\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut a = args("/m.gguf");
        a.api_key_file = Some(file.clone());
        assert!(matches!(
            ApiConfig::load(&a),
            Err(ConfigError::File(FileError::NotPrivate { .. }))
        ));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            ApiConfig::load(&a).unwrap().api_keys,
            vec!["key-a", "key-b"]
        );
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn default_is_the_mistral_q4_k_m_from_the_hub_and_quant_is_one_setting() {
        let cfg = ApiConfig::load(&ServeArgs::default()).unwrap();
        assert_eq!(
            cfg.source(),
            ModelSource::Hub(HubModel {
                repo: "bartowski/Mistral-7B-Instruct-v0.3-GGUF".into(),
                file: "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf".into(),
                revision: "main".into(),
                sha256: None,
            })
        );
        assert_eq!(cfg.served_model_id(), "mistralai/Mistral-7B-Instruct-v0.3");
        let q8 = ApiConfig::load(&ServeArgs {
            quant: Some("q8_0".into()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert!(
            matches!(q8.source(), ModelSource::Hub(h) if h.file == "Mistral-7B-Instruct-v0.3-Q8_0.gguf")
        );
        assert!(
            ApiConfig::load(&ServeArgs {
                quant: Some("Q3".into()),
                ..ServeArgs::default()
            })
            .is_err()
        );
    }
}
