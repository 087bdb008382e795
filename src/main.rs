//! The `zoho-desk-cdc` command line. Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use zoho_desk_cdc::config::{Settings, SnapshotMode};

mod allocator;

#[derive(Parser)]
#[command(name = "zoho-desk-cdc", version, about = "Streams a ZoHo Desk organization into Apache Kafka.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge: snapshot, then stream webhooks, until SIGTERM / Ctrl-C.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Overrides every source's `snapshot_mode`.
        #[arg(long, value_enum)]
        snapshot_mode: Option<SnapshotMode>,
    },
    /// Exchange a self-client grant code for a refresh token and write the credentials file.
    Auth {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        source: String,
        #[arg(long)]
        code: String,
    },
    /// Check config, token, Desk, Kafka and the registry: one line each.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Manage the Desk webhook subscription of a source.
    Webhooks {
        #[arg(value_parser = ["register", "list", "delete"])]
        action: String,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        source: String,
    },
    /// Show per-source, per-module progress from a running bridge's admin server.
    Status {
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        admin: String,
    },
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    let cli = Cli::parse();
    init_tracing();
    let settings = |path: &PathBuf| match Settings::load(path) {
        Ok(s) => Ok(s),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    };
    let result = match cli.command {
        Command::Run { config, snapshot_mode } => match settings(&config) {
            Ok(s) => runtime().and_then(|rt| rt.block_on(run(s, snapshot_mode))),
            Err(code) => return code,
        },
        Command::Auth { config, source, code } => match settings(&config) {
            Ok(s) => runtime().and_then(|rt| rt.block_on(auth(s, source, code))),
            Err(code) => return code,
        },
        Command::Check { config } => match settings(&config) {
            Ok(s) => runtime().and_then(|rt| rt.block_on(check(s))),
            Err(code) => return code,
        },
        Command::Webhooks { action, config, source } => match settings(&config) {
            Ok(s) => runtime().and_then(|rt| rt.block_on(webhooks(s, action, source))),
            Err(code) => return code,
        },
        Command::Status { admin } => runtime().and_then(|rt| rt.block_on(status(admin))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(u8::try_from(exit_code(&e)).unwrap_or(1))
        }
    }
}

/// 2 when the configuration or a missing set-up step is at fault anywhere in the error's chain (a config
/// error may arrive wrapped in context or in another error), else 1.
fn exit_code(e: &anyhow::Error) -> i32 {
    use zoho_desk_cdc::{app::AppError, config::ConfigError, kafka::ClientError, zoho::error::ZohoError};
    e.chain()
        .find_map(|cause| {
            if cause.is::<ConfigError>() {
                Some(2)
            } else if let Some(z) = cause.downcast_ref::<ZohoError>() {
                Some(z.exit_code())
            } else if let Some(a) = cause.downcast_ref::<AppError>() {
                Some(a.exit_code())
            } else {
                cause.downcast_ref::<ClientError>().map(ClientError::exit_code)
            }
        })
        .unwrap_or(1)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

async fn run(settings: Settings, snapshot_mode: Option<SnapshotMode>) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    zoho_desk_cdc::shutdown::cancel_on_signal(shutdown.clone());
    zoho_desk_cdc::app::run(settings, snapshot_mode, shutdown).await?;
    Ok(())
}

async fn auth(settings: Settings, source: String, code: String) -> anyhow::Result<()> {
    let outcome = zoho_desk_cdc::zoho::auth::exchange_grant_code(&settings, &source, &code).await?;
    print!("{}", outcome.message());
    Ok(())
}

/// `register` needs the service URL to answer Desk's validation GET, so run it while the bridge runs.
async fn webhooks(settings: Settings, action: String, source: String) -> anyhow::Result<()> {
    use zoho_desk_cdc::zoho::{auth, client::ClientOptions, registry::DeskRegistry, subscription};
    let src = settings.source(&source)?.clone();
    let client = DeskRegistry::new(ClientOptions::default()).client(&src)?;
    match action.as_str() {
        "register" => {
            let secret = auth::webhook_secret(&src)?.ok_or_else(|| {
                anyhow::anyhow!("source {source} has no webhook secret: run `zoho-desk-cdc auth` first")
            })?;
            let url = zoho_desk_cdc::secret::Secret::new(auth::service_url(
                &settings.http.public_url,
                &source,
                &secret,
            ));
            let reg = subscription::register(&client, &url, &subscription::default_name(&source)).await?;
            println!(
                "{:?}: webhook {} -> {}",
                reg.action,
                reg.subscription.id,
                reg.subscription.redacted_url()
            );
        }
        "list" => {
            for s in subscription::list(&client).await? {
                println!(
                    "{}\t{}\t{}\t{} event types\t{}",
                    s.id,
                    if s.ours { "ours" } else { "other" },
                    if s.enabled { "enabled" } else { "disabled" },
                    s.event_types.len(),
                    s.redacted_url()
                );
            }
        }
        _ => {
            let removed = subscription::delete(&client).await?;
            println!("deleted {} subscription(s) of source {source}: {}", removed.len(), removed.join(", "));
        }
    }
    Ok(())
}

/// Renders a running bridge's `/status` as a table.
async fn status(admin: String) -> anyhow::Result<()> {
    let url = format!("{}/status", admin.trim_end_matches('/'));
    let doc: serde_json::Value = reqwest::get(&url)
        .await
        .with_context(|| format!("cannot reach the admin server at {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} did not answer JSON"))?;
    print!("{}", zoho_desk_cdc::pipeline::progress::render_table(&doc));
    Ok(())
}

/// One line per check; exit 1 when any fails.
async fn check(settings: Settings) -> anyhow::Result<()> {
    use zoho_desk_cdc::zoho::client::ClientOptions;
    use zoho_desk_cdc::zoho::registry::DeskRegistry;
    println!("config: ok ({} source(s))", settings.sources.len());
    let mut failed = 0;
    let desks = DeskRegistry::new(ClientOptions::default());
    for source in &settings.sources {
        for line in zoho_desk_cdc::zoho::auth::check_lines(&desks, source).await {
            failed += usize::from(line.outcome == zoho_desk_cdc::zoho::auth::CheckOutcome::Failed);
            println!("{}", line.text);
        }
    }
    match zoho_desk_cdc::kafka::ping(&settings.kafka).await {
        Ok(n) => println!("kafka: ok ({} broker(s) at {})", n, settings.kafka.bootstrap_servers),
        Err(e) => {
            failed += 1;
            println!("kafka: FAILED ({}): {e}", settings.kafka.bootstrap_servers);
        }
    }
    let registry =
        zoho_desk_cdc::avro::registry::RegistryClient::discover(&settings.schema_registry.url).await?;
    match registry.ping().await {
        Ok(()) => println!("registry: ok ({})", registry.base()),
        Err(e) => {
            failed += 1;
            println!("registry: FAILED: {e}");
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// JSON lines for machines, readable text on a terminal; `RUST_LOG` filters (default `info`).
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}
