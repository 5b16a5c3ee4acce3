//! For the binaries' tests: checks that each setting's layers win in the documented
//! order — default, then the file key, then the environment variable, then the flag —
//! by running the binary's `config` subcommand, which prints what it would run with.

use std::path::Path;
use std::process::Command;

/// One documented setting and a value for each layer.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The file key, dotted for a section (`engine.n_ctx`).
    pub key: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// Its flag, with its value if it takes one.
    pub flag: &'static [&'static str],
    /// The value written in the file (TOML).
    pub file: &'static str,
    /// The variable's value.
    pub env_value: &'static str,
    /// What `config` must print for the key (TOML; empty: the key is absent; `*`: any
    /// value, for a default that depends on the machine) with nothing set, with the file, with the file and the variable, and with all three.
    pub expect: [&'static str; 4],
}

/// Runs `binary config` with only `envs` in its environment (and `--config file`
/// when given); the printed configuration.
pub fn shown(
    binary: &Path,
    file: Option<&Path>,
    envs: &[(&str, &str)],
    args: &[&str],
) -> Result<toml::Table, String> {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg("config");
    if let Some(home) = std::env::var_os("HOME") {
        command.env("HOME", home);
    }
    if let Some(f) = file {
        command.arg("--config").arg(f);
    }
    let out = command
        .envs(envs.iter().copied())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "config {args:?} with {envs:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    toml::from_str(&String::from_utf8_lossy(&out.stdout)).map_err(|e| e.to_string())
}

fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn parse(literal: &str) -> Option<toml::Value> {
    if literal.is_empty() {
        return None;
    }
    toml::from_str::<toml::Table>(&format!("v = {literal}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
}

/// A layer's name, and what it adds: the file, variables, flags.
type Layer<'a> = (
    &'a str,
    Option<&'a Path>,
    &'a [(&'a str, &'a str)],
    &'a [&'a str],
);

/// Every layer of every setting, in a fresh temporary folder that also holds three
/// private key files, `k1` to `k3` (for the key-file settings); the failures, in
/// words.
pub fn check_all_layers(binary: &Path, settings: &[Setting]) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let name = binary.file_name().map(|n| n.to_string_lossy().into_owned());
    let dir = std::env::temp_dir().join(format!(
        "{}-layers-{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let made = std::fs::create_dir_all(&dir).and_then(|()| {
        ["k1", "k2", "k3"].iter().try_for_each(|k| {
            let path = dir.join(k);
            std::fs::write(&path, format!("key-{k}\n"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        })
    });
    let failures = match made {
        Ok(()) => check_layers(binary, &dir, settings),
        Err(e) => vec![format!("cannot prepare {}: {e}", dir.display())],
    };
    let _ = std::fs::remove_dir_all(&dir);
    failures
}

/// Every layer of every setting, in `dir` (for the files); the failures, in words.
/// `{dir}` in any value stands for `dir`. A setting without a variable (`env: ""`) is
/// a file-only key: its last two layers add nothing.
pub fn check_layers(binary: &Path, dir: &Path, settings: &[Setting]) -> Vec<String> {
    let at = |v: &str| v.replace("{dir}", &dir.to_string_lossy());
    let mut failures = Vec::new();
    for (i, s) in settings.iter().enumerate() {
        let file = dir.join(format!("layer-{i}.toml"));
        if let Err(e) = std::fs::write(&file, format!("{} = {}\n", s.key, at(s.file))) {
            failures.push(format!("{}: cannot write {}: {e}", s.key, file.display()));
            continue;
        }
        let (env_value, flag): (String, Vec<String>) =
            (at(s.env_value), s.flag.iter().map(|f| at(f)).collect());
        let env: Vec<(&str, &str)> = if s.env.is_empty() {
            Vec::new()
        } else {
            vec![(s.env, env_value.as_str())]
        };
        let flag: Vec<&str> = flag.iter().map(String::as_str).collect();
        let layers: [Layer; 4] = [
            ("default", None, &[], &[]),
            ("file", Some(&file), &[], &[]),
            ("variable", Some(&file), &env, &[]),
            ("flag", Some(&file), &env, &flag),
        ];
        for ((layer, f, envs, args), expect) in layers.into_iter().zip(s.expect) {
            let expect = at(expect);
            let expect = expect.as_str();
            match shown(binary, f, envs, args) {
                Err(e) => failures.push(format!("{} ({layer}): {e}", s.key)),
                Ok(table) => {
                    let got = lookup(&table, s.key);
                    if expect != "*" && got != parse(expect).as_ref() {
                        failures.push(format!(
                            "{} ({layer}): expected {expect:?}, got {:?}",
                            s.key,
                            got.map(ToString::to_string)
                        ));
                    }
                }
            }
        }
    }
    failures
}
