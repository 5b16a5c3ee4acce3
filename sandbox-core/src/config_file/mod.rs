//! What both servers' configuration loaders share, so that a file means the same to
//! each: one layering of defaults, a TOML file and flags ([`load_layered`]), key files
//! that must be private and hold one key per line, and the log set-up.

pub mod testing;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::Table;

/// Why a configuration or key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
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

/// The one way both servers build their configuration, in three layers, each over the
/// one before: `T`'s defaults, the TOML file at `file` (if any), then `overrides` (the
/// flags, which clap has already put over their environment variables). `overrides`
/// serializes to the file's shape, leaving out what was not given (`None`, a `false`
/// switch), so a flag means exactly what its file key means. Tables merge key by key,
/// so a file may set one key of a section. Unknown file keys are an error.
pub fn load_layered<T>(file: Option<&Path>, overrides: &impl Serialize) -> Result<T, FileError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let layer = |value: Result<Table, toml::ser::Error>, what: &str| {
        value.map_err(|e| FileError::Parse {
            path: PathBuf::from(what),
            message: e.to_string(),
        })
    };
    let mut merged = layer(Table::try_from(T::default()), "(defaults)")?;
    if let Some(path) = file {
        merge(&mut merged, read_table(path)?);
    }
    merge(&mut merged, layer(Table::try_from(overrides), "(flags)")?);
    merged
        .try_into()
        .map_err(|e: toml::de::Error| FileError::Parse {
            path: file.map_or_else(|| PathBuf::from("(flags)"), Path::to_path_buf),
            message: e.to_string(),
        })
}

fn read_table(path: &Path) -> Result<Table, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| FileError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `over`'s keys into `base`: sub-tables merge, anything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The configuration as TOML, for `config` subcommands: what the process would run
/// with. The caller blanks secrets first.
pub fn to_toml(config: &impl Serialize) -> String {
    toml::to_string(config).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
}

/// For `skip_serializing_if` on a switch: a flag that was not given says nothing.
pub fn is_false(b: &bool) -> bool {
    !b
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

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        port: u16,
        name: String,
        section: Section,
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        a: u32,
        b: u32,
    }

    impl Default for Demo {
        fn default() -> Self {
            Self {
                port: 1,
                name: "default".into(),
                section: Section { a: 1, b: 1 },
            }
        }
    }

    impl Default for Section {
        fn default() -> Self {
            Demo::default().section
        }
    }

    #[derive(Default, Serialize)]
    struct Flags {
        port: Option<u16>,
        section: SectionFlags,
    }

    #[derive(Default, Serialize)]
    struct SectionFlags {
        b: Option<u32>,
    }

    #[test]
    fn defaults_then_the_file_then_the_flags_key_by_key() {
        let dir = std::env::temp_dir().join(format!("config-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let file = dir.join("c.toml");
        let none = Flags::default();
        assert_eq!(
            load_layered::<Demo>(None, &none).ok(),
            Some(Demo::default())
        );
        std::fs::write(&file, "port = 9\n[section]\na = 5\nb = 5\n").unwrap_or_default();
        let from_file = load_layered::<Demo>(Some(&file), &none).ok();
        assert_eq!(
            from_file.as_ref().map(|d| (d.port, d.section.a)),
            Some((9, 5))
        );
        assert_eq!(from_file.map(|d| d.name), Some("default".into()));
        let flags = Flags {
            port: Some(7),
            section: SectionFlags { b: Some(8) },
        };
        let d = load_layered::<Demo>(Some(&file), &flags).ok();
        assert_eq!(
            d.map(|d| (d.port, d.section.a, d.section.b)),
            Some((7, 5, 8))
        );
        std::fs::write(&file, "prot = 9\n").unwrap_or_default();
        let err = load_layered::<Demo>(Some(&file), &none)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot") && err.contains("c.toml"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn private_key_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("config-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();

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
