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
mod config;
mod enrich_cmd;
mod kafka_props;
mod priority;
mod rewrite_cmd;
mod secrets;
mod serve;
mod sign;
mod sign_batch;
mod suppress_cmd;
mod tail;
mod web_cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use args::LogFormat;

/// mimalloc for every allocation of the process: Rust's through this global allocator, and the
/// C code's (librdkafka, zlib) through the crate's `override` feature, which exports `malloc`
/// and `free` from the binary. The first was +13% when the hot path still built a dozen small
/// strings per event. The second matters because librdkafka allocates each message on the
/// hand-off thread and frees it on the delivery-report thread: glibc served those from its
/// arenas under a lock, mimalloc frees them to the owning page without one (-1.1 us a request in
/// the background threads at saturation, -1 us at half load; about 15 MB more resident when
/// idle and a peak up to about 70 MB higher under load, mimalloc keeping freed pages for its
/// 1 s purge delay).
/// BENCHMARKS.md ("End to end and hot path"; session 17).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `EX_USAGE` (sysexits.h): the command line, environment or configuration is wrong.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let parsed = match config::parse(std::env::args_os(), |k| std::env::var_os(k)) {
        Ok(p) => p,
        Err(config::ParseError::Clap(e)) => {
            let _ = e.print();
            // --help and --version exit 0; every other clap error is a usage error.
            return if e.exit_code() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EX_USAGE)
            };
        }
        Err(config::ParseError::Config(msg)) => {
            eprintln!("error: {msg}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let settings = parsed.settings();
    let secrets_in_argv = parsed.secrets_in_argv();
    let config_path = parsed.config_path.clone();
    let cli = parsed.cli;
    let format = if cli.log_json {
        LogFormat::Json
    } else {
        cli.log_format
    };
    init_tracing(&cli.log, format);
    for flag in secrets_in_argv {
        tracing::warn!(
            flag = %format!("--{flag}"),
            "a secret given on the command line is visible to every user of this machine \
             (ps, /proc/PID/cmdline); use --{flag}-file FILE"
        );
    }
    if let Some(p) = &config_path {
        tracing::debug!(file = %p.display(), "configuration file read");
    }
    let result = match cli.command {
        args::Command::Serve(a) => serve::serve(a),
        args::Command::Sign(a) => sign::sign(a),
        args::Command::Tail(a) => tail::tail(a),
        args::Command::Enrich(a) => enrich_cmd::enrich(a),
        args::Command::CheckConfig(a) => serve::check_config(a, &settings, config_path.as_deref()),
        args::Command::Suppress(a) => suppress_cmd::suppress(a),
        args::Command::Rewrite(a) => rewrite_cmd::rewrite(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<serve::BadConfig>().is_some() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs to stderr: JSON lines, or text coloured only when `auto` finds a terminal (and no
/// `NO_COLOR`). The filter was validated by the argument parser.
fn init_tracing(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.with_ansi(false).init(),
        LogFormat::Auto => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            b.with_ansi(colour).init()
        }
    }
}
