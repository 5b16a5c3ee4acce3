//! What both servers' configuration loaders share, so that a file means the same to
//! each: a TOML file over the defaults (unknown keys refused), key files that must be
//! private and hold one key per line, and the log set-up.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration or key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's words (naming an unknown key, for instance).
        message: String,
    },
    /// A key file that others may read.
    #[error("the API key file {} is readable by other users (mode {mode:o}); run: chmod 600 {}", .path.display(), .path.display())]
    NotPrivate {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The configuration in `path` over `T`'s defaults, or the defaults without a file.
pub fn load_toml<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, FileError> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| FileError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The keys in a key file: one per line; blank lines and `#` comments are skipped.
/// The file must not be readable by group or others (mode 0600 or stricter).
pub fn read_keys(path: &Path) -> Result<Vec<String>, FileError> {
    use std::os::unix::fs::PermissionsExt;
    let read_err = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_err)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(FileError::NotPrivate {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Logs to standard error (the journal under systemd), filtered by `RUST_LOG` or
/// else `default` (an `EnvFilter` directive such as `info`).
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        port: u16,
    }

    #[test]
    fn a_file_over_the_defaults_and_private_key_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let file = dir.join("c.toml");
        assert_eq!(load_toml::<Demo>(None).ok(), Some(Demo::default()));
        std::fs::write(&file, "port = 9\n").unwrap_or_default();
        assert_eq!(load_toml::<Demo>(Some(&file)).ok(), Some(Demo { port: 9 }));
        std::fs::write(&file, "prot = 9\n").unwrap_or_default();
        let err = load_toml::<Demo>(Some(&file))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot"), "{err}");

        let keys = dir.join("keys");
        std::fs::write(&keys, "# comment\nkey-a\n\n  key-b \n").unwrap_or_default();
        let mode = |m| std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(m));
        mode(0o640).unwrap_or_default();
        let err = read_keys(&keys).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("mode 640") && err.contains("chmod 600"),
            "{err}"
        );
        mode(0o600).unwrap_or_default();
        assert_eq!(
            read_keys(&keys).ok(),
            Some(vec!["key-a".into(), "key-b".into()])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_equal_secrets_are_equal() {
        assert!(secrets_equal(b"sk-123", b"sk-123"));
        assert!(!secrets_equal(b"sk-123", b"sk-124"));
        assert!(!secrets_equal(b"sk-123", b"sk-1234"));
        assert!(!secrets_equal(b"", b"x"));
    }
}
