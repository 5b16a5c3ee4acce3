//! `sandbox-api model pull`: fetch the configured model into the cache and exit, so
//! provisioning can download while other work runs.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use sandbox_core::download::{DownloadProgress, ModelStore, StoreConfig};

use crate::config::{ApiConfig, ModelSource};

pub fn run(cfg: &ApiConfig) -> ExitCode {
    let model = match cfg.source() {
        ModelSource::Local(p) => {
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
    let progress = move |p: &DownloadProgress| {
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
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            if tty {
                eprintln!();
            }
            tracing::error!(error = %e, "model pull failed");
            eprintln!("sandbox-api: {e}");
            ExitCode::FAILURE
        }
    }
}
