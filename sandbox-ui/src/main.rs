//! `sandbox-ui`: the browser chat of AI Sandbox.
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sandbox_ui::config::{ServeArgs, StoreArgs, UiConfig};
use sandbox_ui::store::{MIN_PASSWORD, Store, StoreError, valid_user_name};

/// AI Sandbox chat UI: a browser chat with login and server-side history. Answers
/// come from sandbox-api (over HTTP, with its API key), so the chat and API clients
/// share one model and one queue.
///
/// Start sandbox-api first, create an account once (`sandbox-ui user set admin`),
/// then run `sandbox-ui` and open http://127.0.0.1:8081. Every option can also come
/// from the environment variable shown, or from a TOML file given with --config.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Manage login accounts (stop the server first: the database allows one process).
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Print the configuration these flags, variables and file give, as a TOML file
    /// would say it (the API key hidden), and exit.
    Config {
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(clap::Subcommand)]
enum UserCommand {
    /// Create an account, or set the password of an existing one. The password is read
    /// from --password-file, else from standard input (first line).
    Set {
        /// Login name.
        name: String,
        /// File whose first line is the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Make the account an administrator (manages accounts in the page, sees the
        /// server's status). The first account always is one.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn open(args: &StoreArgs) -> Result<Store, String> {
    let cfg = UiConfig::for_store(args).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", cfg.data_dir.display()))?;
    Store::open(&cfg.data_dir).map_err(|e| match e {
        StoreError::Db(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => format!(
            "the history database in {} is in use (is sandbox-ui running? stop it first, or change the password in the UI's settings page)",
            cfg.data_dir.display()
        ),
        e => format!("{} ({})", e, cfg.data_dir.display()),
    })
}

fn read_password(file: Option<&PathBuf>) -> Result<String, String> {
    let text = match file {
        Some(f) => {
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?
        }
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("Password (visible as you type; at least {MIN_PASSWORD} characters):");
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            line
        }
    };
    let pw = text.lines().next().unwrap_or_default().to_owned();
    if pw.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password needs at least {MIN_PASSWORD} characters"
        ));
    }
    Ok(pw)
}

fn user_command(action: &UserCommand) -> Result<(), String> {
    match action {
        UserCommand::Set {
            name,
            password_file,
            admin,
            store,
        } => {
            let name =
                valid_user_name(name).ok_or("the name needs 1 to 64 printable characters")?;
            let pw = read_password(password_file.as_ref())?;
            let s = open(store)?;
            match s.create_user(name, &pw) {
                Ok(_) => println!("created the account {name:?}"),
                Err(StoreError::UserExists(_)) => {
                    s.set_password(name, &pw).map_err(|e| e.to_string())?;
                    println!("changed the password of {name:?}");
                }
                Err(e) => return Err(e.to_string()),
            }
            if *admin {
                s.set_admin(name, true).map_err(|e| e.to_string())?;
                println!("{name:?} is an administrator");
            }
        }
        UserCommand::List { store } => {
            for user in open(store)?.users().map_err(|e| e.to_string())? {
                let role = if user.admin { "  (administrator)" } else { "" };
                println!("{}{role}", user.name);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    sandbox_core::config_file::init_logging("info");
    let cli = Cli::parse();
    if let Some(Command::User { action }) = &cli.command {
        return match user_command(action) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sandbox-ui: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let serve = match &cli.command {
        Some(Command::Config { args }) => args,
        _ => &cli.serve,
    };
    let cfg = match UiConfig::load(serve) {
        Ok(c) if matches!(cli.command, Some(Command::Config { .. })) => {
            print!("{}", c.shown());
            return ExitCode::SUCCESS;
        }
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("sandbox-ui: {e}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(sandbox_ui::server::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            eprintln!("sandbox-ui: {e}");
            ExitCode::FAILURE
        }
    }
}
