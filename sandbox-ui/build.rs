//! Bundles the chat page's Markdown renderer (`web/`: markdown-it, DOMPurify,
//! highlight.js, KaTeX, pinned by `web/package-lock.json`) with esbuild into
//! `$OUT_DIR/markdown.js`, and gzips it and the page's own script and style sheet, for
//! `assets.rs` to embed. The npm packages are installed under `$OUT_DIR` (never into
//! the source tree), once per lockfile.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: [&str; 3] = ["package.json", "package-lock.json", "markdown.js"];

fn main() {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let work = out.join("web");
    fs::create_dir_all(&work)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", work.display())));
    for name in SOURCES {
        println!("cargo:rerun-if-changed=web/{name}");
        fs::copy(web.join(name), work.join(name))
            .unwrap_or_else(|e| fail(&format!("cannot copy web/{name}: {e}")));
    }
    install(&work);
    let bundle = out.join("markdown.js");
    run(
        Command::new(work.join("node_modules/.bin/esbuild"))
            .current_dir(&work)
            .args([
                "markdown.js",
                "--bundle",
                "--minify",
                "--format=iife",
                "--target=es2020",
            ])
            .args(["--legal-comments=eof", "--log-level=warning"])
            .arg(format!("--outfile={}", bundle.display())),
        "esbuild",
    );
    gzip(&bundle, &out.join("markdown.js.gz"));
    for name in ["app.js", "app.css"] {
        println!("cargo:rerun-if-changed=assets/{name}");
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("assets")
            .join(name);
        gzip(&source, &out.join(format!("{name}.gz")));
    }
}

fn gzip(from: &Path, to: &Path) {
    let bytes =
        fs::read(from).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", from.display())));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)
        .and_then(|()| gz.finish())
        .and_then(|packed| fs::write(to, packed))
        .unwrap_or_else(|e| fail(&format!("cannot gzip {}: {e}", from.display())));
}

/// `npm ci` unless `node_modules` already holds this lockfile's packages.
fn install(work: &Path) {
    let lock = fs::read(work.join("package-lock.json")).unwrap_or_default();
    let stamp = work.join("node_modules/.installed-lock");
    if fs::read(&stamp).is_ok_and(|s| s == lock) {
        return;
    }
    // No install scripts: esbuild's binary comes in its platform package.
    run(
        Command::new("npm").current_dir(work).args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]),
        "npm ci",
    );
    fs::write(&stamp, lock)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", stamp.display())));
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("{what} failed ({s})")),
        Err(e) => fail(&format!(
            "cannot run {what}: {e}. Building sandbox-ui needs Node.js and npm (scripts/install-deps installs them)"
        )),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("sandbox-ui build: {message}");
    std::process::exit(1)
}
