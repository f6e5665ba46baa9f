//! The `openclick` binary.
//!
//! - `openclick serve`: the edge, on embedded defaults (an in-process Kafka-protocol broker)
//!   unless `--kafka-brokers` names a real cluster.
//! - `openclick sign open|click`: mint a signed tracking URL.
//! - `openclick tail`: print events from the topic as proto3 JSON lines.
//! - `openclick enrich`: classify a hit (or a stream of user agents) the way the edge would.
//! - `openclick suppress add|remove|check|import`: suppressions, through the admin API.
//! - `openclick rewrite`: track an HTML email (click URLs, open pixel) for one recipient or
//!   a recipients CSV.
//! - `openclick check-config`: validate the configuration and exit.
//!
//! Every flag can also come from an `OPENCLICK_*` environment variable.

mod args;
mod enrich_cmd;
mod priority;
mod rewrite_cmd;
mod serve;
mod sign;
mod suppress_cmd;
mod tail;

use clap::Parser;

/// mimalloc instead of the system allocator: the hot path allocates a dozen small strings per
/// event (protobuf fields) and librdkafka a message per produce; see BENCHMARKS.md for the
/// measured effect.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    let result = match cli.command {
        args::Command::Serve(a) => serve::serve(a),
        args::Command::Sign(a) => sign::sign(a),
        args::Command::Tail(a) => tail::tail(a),
        args::Command::Enrich(a) => enrich_cmd::enrich(a),
        args::Command::CheckConfig(a) => serve::check_config(a),
        args::Command::Suppress(a) => suppress_cmd::suppress(a),
        args::Command::Rewrite(a) => rewrite_cmd::rewrite(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}
