//! `sandbox-api model pull`: fetch the configured model into the cache and exit, so
//! provisioning can download while other work runs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sandbox_core::download::{DownloadProgress, ModelStore, StoreConfig};
use serde_json::{Value, json};

use crate::config::{ApiConfig, ModelSource};

/// The progress file that provisioning reads for the motd: replaced through a rename so
/// a reader never sees half of it. Failing to write it is logged, never fatal.
struct ProgressFile {
    path: PathBuf,
    last: Option<Instant>,
}

impl ProgressFile {
    fn write(&mut self, mut value: Value, force: bool) {
        if !force && self.last.is_some_and(|t| t.elapsed().as_millis() < 1000) {
            return;
        }
        self.last = Some(Instant::now());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        value["updated"] = json!(now);
        let tmp = self.path.with_extension("json.part");
        let result = std::fs::write(&tmp, value.to_string() + "\n")
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot write the progress file");
        }
    }
}

fn progress_json(p: &DownloadProgress) -> Value {
    json!({
        "state": "downloading",
        "downloaded": p.downloaded,
        "total": p.total,
        "bytes_per_second": p.bytes_per_second,
        "eta_seconds": p.eta.map(|e| e.as_secs()),
    })
}

/// `sandbox-api model pull`: downloads (or finds in the cache) the configured model,
/// prints its path, and keeps `progress_file` up to date; the exit code says how it went.
pub fn run(cfg: &ApiConfig, progress_file: Option<&Path>) -> ExitCode {
    let mut file = progress_file.map(|p| ProgressFile {
        path: p.to_owned(),
        last: None,
    });
    let model = match cfg.source() {
        ModelSource::Local(p) => {
            if let Some(f) = file.as_mut() {
                f.write(json!({"state": "done", "path": p}), true);
            }
            eprintln!(
                "sandbox-api: the model is a local file ({}); nothing to pull",
                p.display()
            );
            return ExitCode::SUCCESS;
        }
        ModelSource::Hub(m) => m,
    };
    let store = ModelStore::new(StoreConfig::from_env());
    eprintln!(
        "pulling {}/{} at {} into {}",
        model.repo,
        model.file,
        model.revision,
        store.config().cache_dir.display()
    );
    let tty = std::io::stderr().is_terminal();
    let mut last_line: Option<Instant> = None;
    if let Some(f) = file.as_mut() {
        f.write(json!({"state": "starting"}), true);
    }
    let mut during = file.as_ref().map(|f| ProgressFile {
        path: f.path.clone(),
        last: None,
    });
    let progress = move |p: &DownloadProgress| {
        if let Some(f) = during.as_mut() {
            f.write(progress_json(p), false);
        }
        if tty {
            let width = 30;
            let done = (p.fraction() * width as f64) as usize;
            eprint!(
                "\r[{}{}] {}   ",
                "#".repeat(done),
                " ".repeat(width - done.min(width)),
                p.describe()
            );
            let _ = std::io::stderr().flush();
        } else if last_line.is_none_or(|t| t.elapsed().as_secs() >= 5) || p.downloaded == p.total {
            last_line = Some(Instant::now());
            eprintln!("{}", p.describe());
        }
    };
    match store.fetch_blocking(&model, progress) {
        Ok(path) => {
            if tty {
                eprintln!();
            }
            if let Some(f) = file.as_mut() {
                f.write(json!({"state": "done", "path": path}), true);
            }
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            if tty {
                eprintln!();
            }
            if let Some(f) = file.as_mut() {
                f.write(
                    json!({"state": "error", "error_kind": e.kind(), "message": e.to_string()}),
                    true,
                );
            }
            tracing::error!(error = %e, "model pull failed");
            eprintln!("sandbox-api: {e}");
            ExitCode::FAILURE
        }
    }
}
