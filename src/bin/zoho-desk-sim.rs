//! `zoho-desk-sim`: the ZoHo Desk simulator (CONTRACT §8). See docs/simulator.md.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use zoho_desk_cdc::sim::config::{CostTable, DEFAULT_CLIQ_TEMPLATE};
use zoho_desk_cdc::sim::{
    DeletePayload, DeleteStyle, Edition, FailurePolicy, FieldsMode, Scale, Sim, SimConfig, serve_sim,
};

#[derive(Debug, Parser)]
#[command(
    name = "zoho-desk-sim",
    version,
    about = "A ZoHo Desk simulator: OAuth, REST API v1, webhooks and a control API, offline."
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "ZOHO_DESK_SIM_ADDR", default_value = "127.0.0.1:8900")]
    addr: String,
    /// Seed for every generated record, id and token.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The org id (numeric) the tokens belong to.
    #[arg(long, default_value_t = 60_000_000_001)]
    org_id: u64,
    /// Records per module, e.g. tickets=12000,contacts=3000 (ticket_threads / ticket_comments: most per ticket).
    #[arg(long, default_value = "")]
    scale: String,
    /// free | standard | professional | enterprise: default credits, concurrency and webhook allowance.
    #[arg(long, default_value = "enterprise")]
    edition: String,
    #[arg(long, env = "ZOHO_DESK_SIM_CLIENT_ID", default_value = "1000.SIMCLIENT000000000000000000000")]
    client_id: String,
    #[arg(
        long,
        env = "ZOHO_DESK_SIM_CLIENT_SECRET",
        default_value = "simsecret0000000000000000000000000000000000"
    )]
    client_secret: String,
    /// Base of `from` on list endpoints: 1 (HTML docs: from=1 is the first record) or 0 (OAS).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    list_from_base: u8,
    /// Optional API calls per minute per org (not a documented Desk limit; off by default).
    #[arg(long)]
    requests_per_minute: Option<u32>,
    /// Concurrent API calls (default per edition: 5/10/15/25).
    #[arg(long)]
    concurrency: Option<u32>,
    /// Daily API credits (default per edition: 5000/50000/75000/100000).
    #[arg(long)]
    daily_credits: Option<u64>,
    /// Length in seconds of the credit "day", counted from start (0 or absent: reset at UTC midnight).
    #[arg(long)]
    daily_reset_s: Option<u64>,
    #[arg(long, default_value_t = 1)]
    cost_detail: u64,
    /// Cost of a list or search page with from <= 2000.
    #[arg(long, default_value_t = 3)]
    cost_list: u64,
    /// Cost of a list or search page with from > 2000.
    #[arg(long, default_value_t = 5)]
    cost_list_deep: u64,
    #[arg(long, default_value_t = 50)]
    cost_count: u64,
    #[arg(long, default_value_t = 1)]
    cost_write: u64,
    /// Cost of metadata calls (fields, organizations, webhook list).
    #[arg(long, default_value_t = 1)]
    cost_metadata: u64,
    /// Server time added to every API call.
    #[arg(long, default_value_t = 0)]
    api_latency_ms: u64,
    /// Access-token lifetime (`expires_in`).
    #[arg(long, default_value_t = 3600)]
    token_ttl_s: u64,
    /// Live access tokens per refresh token; the oldest is invalidated beyond it.
    #[arg(long, default_value_t = 10)]
    max_live_tokens: usize,
    /// Token requests allowed per window before "Access Denied".
    #[arg(long, default_value_t = 10)]
    token_requests_per_window: usize,
    #[arg(long, default_value_t = 600)]
    token_window_s: u64,
    /// Refresh tokens per client; the oldest is deleted beyond it.
    #[arg(long, default_value_t = 20)]
    max_refresh_tokens: usize,
    /// Default lifetime of grant codes from /_sim/grant-codes.
    #[arg(long, default_value_t = 180)]
    grant_code_ttl_s: u64,
    /// Accept `Authorization: Bearer` besides `Zoho-oauthtoken`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    accept_bearer: bool,
    /// Accept orgId as a query parameter (OAS) besides the header (HTML docs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    accept_org_id_query: bool,
    /// add: tickets list `fields=` adds to the default projection; only: id plus the named fields.
    #[arg(long, default_value = "add")]
    fields_mode: String,
    /// Seeded records are created in the two years before this instant.
    #[arg(long, default_value = "2026-01-01T00:00:00.000Z")]
    data_end: String,
    /// Delivery timeout (5 s per one WebhookDocument version, 10 s per another).
    #[arg(long, default_value_t = 5000)]
    webhook_timeout_ms: u64,
    /// Events within this window of the first go out in one POST.
    #[arg(long, default_value_t = 1000)]
    webhook_batch_ms: u64,
    #[arg(long, default_value_t = 100)]
    webhook_max_batch: usize,
    /// drop | retry:N — what happens to a delivery the subscriber did not take.
    #[arg(long, default_value = "drop")]
    webhook_failure: String,
    #[arg(long, default_value_t = 1000)]
    webhook_retry_delay_ms: u64,
    /// exp - iat of X-ZDesk-JWT.
    #[arg(long, default_value_t = 300)]
    webhook_jwt_ttl_s: i64,
    /// Status of a successful webhook create (OAS: 200).
    #[arg(long, default_value_t = 200)]
    webhook_create_status: u16,
    /// Status of a successful webhook delete (OAS: 200; maybe 204).
    #[arg(long, default_value_t = 200)]
    webhook_delete_status: u16,
    /// delete: *_Delete events; update: *_Update with isDeleted/isTrashed (TapData's form); both.
    #[arg(long, default_value = "delete")]
    delete_events: String,
    /// id: *_Delete payload is {"id"}; full: the record's last state.
    #[arg(long, default_value = "id")]
    delete_payload: String,
    /// POST workflow-rule "Send Cliq Notification" messages for ticket changes to this URL.
    #[arg(long)]
    cliq_url: Option<String>,
    /// Text of the Cliq message; ${ticketNumber} ${subject} ${status} ${id} ${event} are replaced.
    #[arg(long, default_value = DEFAULT_CLIQ_TEMPLATE)]
    cliq_template: String,
    /// A new ticket thread or comment also moves the ticket's modifiedTime.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    child_bumps_ticket: bool,
}

fn usage(msg: String) -> ExitCode {
    eprintln!("zoho-desk-sim: {msg}");
    ExitCode::from(2)
}

fn build_config(cli: Cli) -> Result<(SimConfig, String), String> {
    let mut scale = Scale::standard();
    scale.apply(&cli.scale).map_err(|e| format!("--scale: {e}"))?;
    let edition = Edition::parse(&cli.edition).ok_or_else(|| {
        format!("--edition: '{}' is not free|standard|professional|enterprise", cli.edition)
    })?;
    let webhook_failure = FailurePolicy::parse(&cli.webhook_failure)
        .ok_or_else(|| format!("--webhook-failure: '{}' is not drop or retry:N", cli.webhook_failure))?;
    let delete_style = DeleteStyle::parse(&cli.delete_events)
        .ok_or_else(|| format!("--delete-events: '{}' is not delete|update|both", cli.delete_events))?;
    let delete_payload = match cli.delete_payload.as_str() {
        "id" => DeletePayload::Id,
        "full" => DeletePayload::Full,
        other => return Err(format!("--delete-payload: '{other}' is not id|full")),
    };
    let fields_mode = match cli.fields_mode.as_str() {
        "add" => FieldsMode::Add,
        "only" => FieldsMode::Only,
        other => return Err(format!("--fields-mode: '{other}' is not add|only")),
    };
    let data_end_ms = chrono::DateTime::parse_from_rfc3339(&cli.data_end)
        .map_err(|e| format!("--data-end: '{}' is not an RFC 3339 time: {e}", cli.data_end))?
        .timestamp_millis();
    if !matches!(cli.webhook_create_status, 200 | 201) {
        return Err("--webhook-create-status: must be 200 or 201".to_owned());
    }
    if !matches!(cli.webhook_delete_status, 200 | 204) {
        return Err("--webhook-delete-status: must be 200 or 204".to_owned());
    }
    if cli.token_ttl_s == 0 {
        return Err("--token-ttl-s: must be at least 1".to_owned());
    }
    if cli.max_live_tokens == 0 || cli.max_refresh_tokens == 0 || cli.webhook_max_batch == 0 {
        return Err(
            "--max-live-tokens, --max-refresh-tokens and --webhook-max-batch must be at least 1".to_owned()
        );
    }
    if cli.concurrency == Some(0) {
        return Err("--concurrency: must be at least 1".to_owned());
    }
    let cfg = SimConfig {
        seed: cli.seed,
        org_id: cli.org_id,
        scale,
        edition,
        client_id: cli.client_id,
        client_secret: cli.client_secret,
        list_from_base: cli.list_from_base,
        requests_per_minute: cli.requests_per_minute,
        concurrency: cli.concurrency,
        daily_credits: cli.daily_credits,
        daily_reset: cli.daily_reset_s.filter(|s| *s > 0).map(Duration::from_secs),
        costs: CostTable {
            detail: cli.cost_detail,
            list: cli.cost_list,
            list_deep: cli.cost_list_deep,
            count: cli.cost_count,
            write: cli.cost_write,
            metadata: cli.cost_metadata,
        },
        api_latency: Duration::from_millis(cli.api_latency_ms),
        token_ttl: Duration::from_secs(cli.token_ttl_s),
        max_live_tokens: cli.max_live_tokens,
        token_requests_per_window: cli.token_requests_per_window,
        token_window: Duration::from_secs(cli.token_window_s),
        max_refresh_tokens: cli.max_refresh_tokens,
        grant_code_ttl: Duration::from_secs(cli.grant_code_ttl_s),
        accept_bearer: cli.accept_bearer,
        accept_org_id_query: cli.accept_org_id_query,
        fields_mode,
        data_end_ms,
        webhook_timeout: Duration::from_millis(cli.webhook_timeout_ms),
        webhook_batch_window: Duration::from_millis(cli.webhook_batch_ms),
        webhook_max_batch: cli.webhook_max_batch,
        webhook_failure,
        webhook_retry_delay: Duration::from_millis(cli.webhook_retry_delay_ms),
        webhook_jwt_ttl_s: cli.webhook_jwt_ttl_s,
        webhook_create_status: cli.webhook_create_status,
        webhook_delete_status: cli.webhook_delete_status,
        delete_style,
        delete_payload,
        cliq_url: cli.cliq_url,
        cliq_template: cli.cliq_template,
        child_bumps_ticket: cli.child_bumps_ticket,
        ..SimConfig::default()
    };
    Ok((cfg, cli.addr))
}

async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("stopping");
    token.cancel();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (cfg, addr) = match build_config(cli) {
        Ok(x) => x,
        Err(msg) => return usage(msg),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zoho-desk-sim: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let token = CancellationToken::new();
        tokio::spawn(shutdown_signal(token.clone()));
        let org = cfg.org_id;
        let sim = Sim::new(cfg, token.clone())?;
        println!("zoho-desk-sim listening on http://{local} (org {org})");
        serve_sim(sim, listener, token).await?;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zoho-desk-sim: {e:#}");
            ExitCode::from(1)
        }
    }
}
