//! The `pgrpc` command: serve (default), migrate, token. Wires config, logging and
//! the server together; all logic lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use pgrpc::config::Config;
use pgrpc::http::server;
use pgrpc::ops::logging;

/// PostgreSQL functions on the web, PostgREST-style.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (default: ./config.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    dump_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Apply migrations and sql/ with the owner connection, then exit.
    Migrate,
    /// Print a token signed with the server's key (e.g. a first admin token).
    Token {
        /// The role claim.
        #[arg(long)]
        role: String,
        /// Extra claim: key=value (a string) or key:=json (a JSON value); repeatable.
        #[arg(long = "claim", value_name = "KEY=VALUE")]
        claims: Vec<String>,
        /// Lifetime: seconds, or with s/m/h/d (default: jwt.default_lifetime).
        #[arg(long)]
        ttl: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, required) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from("config.toml"), false),
    };
    let (config, raw) = match Config::load(&path, required, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgrpc: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.dump_config {
        print!("{}", raw.dump_masked());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Token { role, claims, ttl }) = &cli.command {
        return match pgrpc::cli::token::make_token(&config, role, claims, ttl.as_deref()) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pgrpc: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let log = logging::init(&config);
    let source = server::ConfigSource { path, required };
    let outcome = actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => server::serve(config, source, log).await,
            Command::Migrate => server::migrate_only(&config).await,
            Command::Token { .. } => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("pgrpc: {e}");
            ExitCode::FAILURE
        }
    }
}
