//! `openclick-loadtest`: drives an openclick edge with a realistic mix of signed open and click
//! URLs over HTTP/1.1 keep-alive connections, measures latency in an HDR histogram, then reads
//! the events topic and checks end to end that every tracked hit produced exactly one event
//! (received == sent - suppressed - invalid). Exits non-zero on loss.
//!
//! ```text
//! openclick-loadtest keygen > keys                  # a keys spec shared with `openclick serve --keys`
//! openclick-loadtest suppression --out supp.csv     # contacts s-0..s-999 of tenant lt
//! openclick serve --keys "$(cat keys)" --suppression-file supp.csv --trusted-proxies 127.0.0.1/32
//! openclick-loadtest run --keys "$(cat keys)" --xff --duration 10            # closed loop (max)
//! openclick-loadtest run --keys "$(cat keys)" --xff --rate 50000 --duration 10  # open loop
//! ```
//!
//! Without `--xff` (or when the edge does not trust 127.0.0.1 as a proxy) every hit's client
//! address is the loopback peer, and geo enrichment sees 127.0.0.1.
//!
//! Bounded by design: loopback targets only, at most 100 million requests and 600 seconds.

mod check;
mod http;
mod mix;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use openclick_token::{Key, Keyring};

use crate::mix::{Kind, MixConfig, Pool};

/// Load generator and end-to-end loss check for openclick.
#[derive(Debug, Parser)]
#[command(name = "openclick-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send load and check the events topic.
    Run(Box<RunArgs>),
    /// Write the suppression file the edge loads (`--suppression-file`).
    Suppression(SuppressionArgs),
    /// Print a fresh keys spec (`ID:BASE64URL_SECRET`) for `--keys` on both sides.
    Keygen,
    /// Print one valid signed open-pixel path (for wrk).
    Path(PathArgs),
}

#[derive(Debug, Args)]
struct SuppressionArgs {
    /// Output file (CSV `tenant,contact,reason`).
    #[arg(long)]
    out: PathBuf,
    /// Tenant id.
    #[arg(long, default_value = "lt")]
    tenant: String,
    /// Number of suppressed contacts (`s-0` ..).
    #[arg(long, default_value_t = 1000)]
    contacts: u32,
}

#[derive(Debug, Args)]
struct PathArgs {
    /// Signing keys (as given to `openclick serve --keys`).
    #[arg(long, env = "OPENCLICK_KEYS", hide_env_values = true)]
    keys: String,
    /// Tenant id.
    #[arg(long, default_value = "lt")]
    tenant: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The edge's public listener (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    target: SocketAddr,
    /// The edge's admin listener, asked for `kafka_bootstrap_servers` in `/info`.
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin: SocketAddr,
    /// Kafka bootstrap servers (default: from the admin `/info`).
    #[arg(long)]
    brokers: Option<String>,
    /// Events topic.
    #[arg(long, default_value = "openclick.events.v1")]
    topic: String,
    /// Signing keys, the same spec `openclick serve --keys` uses.
    #[arg(long, env = "OPENCLICK_KEYS", hide_env_values = true)]
    keys: String,
    /// Concurrent keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop after this many requests (0: only the duration bounds the run).
    #[arg(long, short = 'n', default_value_t = 0)]
    requests: u64,
    /// Stop after this many seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Requests per second across all connections (open loop); 0: as fast as answered (closed
    /// loop).
    #[arg(long, short = 'r', default_value_t = 0)]
    rate: u64,
    /// Distinct pre-signed requests (cycled when the run sends more).
    #[arg(long, default_value_t = 200_000)]
    pool: usize,
    /// Share of opens (the rest are clicks).
    #[arg(long, default_value_t = 0.7)]
    open_share: f64,
    /// Share of hits from suppressed contacts.
    #[arg(long, default_value_t = 0.05)]
    suppressed_share: f64,
    /// Share of hits with a tampered token.
    #[arg(long, default_value_t = 0.03)]
    invalid_share: f64,
    /// Share of IPv6 client addresses (with --xff).
    #[arg(long, default_value_t = 0.3)]
    ipv6_share: f64,
    /// Send X-Forwarded-For with client addresses across countries. The edge believes it only
    /// with `--trusted-proxies 127.0.0.1/32`; otherwise the client address is the loopback peer.
    #[arg(long)]
    xff: bool,
    /// Tenant id of every token (the suppression file's tenant).
    #[arg(long, default_value = "lt")]
    tenant: String,
    /// Suppressed contacts are s-0 .. s-N (the `suppression --contacts` value).
    #[arg(long, default_value_t = 1000)]
    suppressed_pool: u32,
    /// Seed of the mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run id in message ids (default: derived from the clock).
    #[arg(long)]
    run_id: Option<String>,
    /// Skip the end-to-end check.
    #[arg(long)]
    no_check: bool,
    /// Seconds the check may take at most.
    #[arg(long, default_value_t = 120)]
    check_timeout: u64,
    /// Fail on duplicated events too (the producer is idempotent: there should be none).
    #[arg(long)]
    fail_on_duplicates: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(a) => {
            let code = run(*a)?;
            std::process::exit(code);
        }
        Command::Suppression(a) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&a.out).with_context(|| a.out.display().to_string())?,
            );
            writeln!(f, "tenant,contact,reason")?;
            for i in 0..a.contacts {
                writeln!(f, "{},s-{i},opt_out", a.tenant)?;
            }
            f.flush()?;
            eprintln!(
                "wrote {} suppressed contacts to {}",
                a.contacts,
                a.out.display()
            );
            Ok(())
        }
        Command::Keygen => {
            let kr = Keyring::new(Key::generate("lt1")?, vec![])?;
            println!("{}", kr.to_spec());
            Ok(())
        }
        Command::Path(a) => {
            let kr = Keyring::from_spec(&a.keys).context("--keys")?;
            let cfg = MixConfig {
                open_share: 1.0,
                suppressed_share: 0.0,
                invalid_share: 0.0,
                ipv6_share: 0.0,
                xff: false,
                tenant: a.tenant,
                suppressed_pool: 1,
                host: "x".into(),
                seed: 1,
            };
            let pool = mix::build(&kr, "wrk", 1, &cfg)?;
            let req = std::str::from_utf8(pool.request(0))?;
            let path = req.split(' ').nth(1).context("request line")?;
            println!("{path}");
            Ok(())
        }
    }
}

/// Per-connection results, merged at the end.
struct ConnStats {
    latency: Histogram<u64>,
    corrected: Histogram<u64>,
    by_kind: [u64; 6],
    wrong_status: u64,
    io_errors: u64,
    max_lag_ns: u64,
}

impl ConnStats {
    fn new() -> ConnStats {
        ConnStats {
            latency: Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("bounds"),
            corrected: Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("bounds"),
            by_kind: [0; 6],
            wrong_status: 0,
            io_errors: 0,
            max_lag_ns: 0,
        }
    }

    fn merge(&mut self, o: &ConnStats) {
        self.latency.add(&o.latency).expect("same bounds");
        self.corrected.add(&o.corrected).expect("same bounds");
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind) {
            *a += b;
        }
        self.wrong_status += o.wrong_status;
        self.io_errors += o.io_errors;
        self.max_lag_ns = self.max_lag_ns.max(o.max_lag_ns);
    }
}

struct Shared {
    pool: Pool,
    answered: Vec<AtomicU32>,
    next: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
    max_requests: u64,
    deadline: Instant,
}

/// How often the pacer looks at the schedule.
const PACER_TICK: Duration = Duration::from_micros(100);

/// The open-loop schedule: send slot `k` at `start + k / rate`.
///
/// A tokio timer only fires on millisecond ticks, so a per-connection `sleep_until` sends every
/// request due in a millisecond at once: at 40k req/s, bursts of 40 on each tick, whose queueing
/// then dominates the measured latency (p99 about 40x the service time). Real clients are not
/// synchronised to a millisecond clock. The pacer instead wakes on a `timerfd` every 100 us (a
/// readiness event on the loader's own runtime: no spinning, no cross-thread wake-up) and hands
/// the slots due by then round-robin to the connections over channels, so requests go out a
/// few at a time.
async fn pacer(
    sh: Arc<Shared>,
    rate: u64,
    senders: Vec<tokio::sync::mpsc::UnboundedSender<Instant>>,
) -> std::io::Result<()> {
    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: PACER_TICK.as_nanos() as _,
    };
    timerfd_settime(
        &fd,
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: tick,
            it_value: tick,
        },
    )?;
    #[allow(unsafe_code)]
    // SAFETY: `fd` is an `OwnedFd` that the `AsyncFd` takes over; nothing else holds, replaces
    // or closes it while it is registered.
    let timer = unsafe { tokio::io::unix::AsyncFd::register(fd)? };
    let start = Instant::now();
    let slot = Duration::from_secs_f64(1.0 / rate as f64);
    let mut k: u64 = 0;
    loop {
        let now = Instant::now();
        loop {
            let t = start + slot.mul_f64(k as f64);
            if t >= sh.deadline || sh.stop.load(Ordering::Relaxed) {
                // Dropping the senders ends the connections once they sent what is due.
                return Ok(());
            }
            if t > now {
                break;
            }
            // A connection that is gone (connect failure) just loses its slots.
            let _ = senders[(k % senders.len() as u64) as usize].send(t);
            k += 1;
        }
        let mut ready = timer.readable().await?;
        let mut expirations = [0u8; 8];
        match rustix::io::read(ready.get_inner(), &mut expirations) {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
            Err(e) => return Err(e.into()),
        }
    }
}

async fn connection(
    sh: Arc<Shared>,
    target: SocketAddr,
    mut schedule: Option<tokio::sync::mpsc::UnboundedReceiver<Instant>>,
) -> ConnStats {
    let mut st = ConnStats::new();
    let mut conn = match http::Conn::connect(target).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect {target}: {e}");
            st.io_errors += 1;
            return st;
        }
    };
    loop {
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let intended = match &mut schedule {
            Some(rx) => match rx.recv().await {
                Some(t) => Some(t),
                None => break,
            },
            None => None,
        };
        let n = sh.next.fetch_add(1, Ordering::Relaxed);
        if n >= sh.max_requests {
            break;
        }
        let i = (n % sh.pool.len() as u64) as usize;
        let kind = sh.pool.kind(i);
        let sent = Instant::now();
        match conn.roundtrip(sh.pool.request(i)).await {
            Ok(resp) => {
                let end = Instant::now();
                st.latency.saturating_record((end - sent).as_nanos() as u64);
                if let Some(t) = intended {
                    st.corrected.saturating_record((end - t).as_nanos() as u64);
                    st.max_lag_ns = st.max_lag_ns.max((sent - t).as_nanos() as u64);
                }
                sh.answered[i].fetch_add(1, Ordering::Relaxed);
                sh.done.fetch_add(1, Ordering::Relaxed);
                st.by_kind[kind as usize] += 1;
                if resp.status != kind.expected_status() {
                    st.wrong_status += 1;
                }
            }
            Err(e) => {
                st.io_errors += 1;
                if st.io_errors <= 3 {
                    eprintln!("request failed: {e}; reconnecting");
                }
                match http::Conn::connect(target).await {
                    Ok(c) => conn = c,
                    Err(_) => break,
                }
            }
        }
        if Instant::now() >= sh.deadline {
            break;
        }
    }
    st
}

/// `p50 .. max` of a latency histogram (nanoseconds), in microseconds.
fn quantiles(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.90)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    )
}

fn brokers_from_admin(rt: &tokio::runtime::Runtime, admin: SocketAddr) -> Result<String> {
    let (status, body) = rt
        .block_on(http::get_body(admin, "/info"))
        .with_context(|| format!("GET http://{admin}/info"))?;
    ensure!(status == 200, "GET http://{admin}/info: status {status}");
    let v: serde_json::Value = serde_json::from_slice(&body).context("/info JSON")?;
    v.get("kafka_bootstrap_servers")
        .and_then(|b| b.as_str())
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .context("/info has no kafka_bootstrap_servers")
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn run(a: RunArgs) -> Result<i32> {
    if !a.target.ip().is_loopback() || !a.admin.ip().is_loopback() {
        bail!("refusing a non-loopback target: this tool only loads a local edge");
    }
    ensure!(
        a.connections >= 1 && a.connections <= 4096,
        "--connections 1..=4096"
    );
    ensure!(a.requests <= 100_000_000, "--requests at most 100 million");
    ensure!(
        a.duration > 0.0 && a.duration <= 600.0,
        "--duration in (0, 600] seconds"
    );
    ensure!(a.pool >= 1 && a.pool <= 2_000_000, "--pool 1..=2000000");
    for (name, v) in [
        ("--open-share", a.open_share),
        ("--suppressed-share", a.suppressed_share),
        ("--invalid-share", a.invalid_share),
        ("--ipv6-share", a.ipv6_share),
    ] {
        ensure!((0.0..=1.0).contains(&v), "{name} must be within [0, 1]");
    }
    ensure!(
        a.suppressed_share + a.invalid_share <= 1.0,
        "--suppressed-share + --invalid-share > 1"
    );
    let keyring = Keyring::from_spec(&a.keys).context("--keys")?;
    let run_id = a
        .run_id
        .clone()
        .unwrap_or_else(|| format!("{:x}", openclick_common::now_ms()));
    let pool_n = if a.requests > 0 {
        a.pool.min(a.requests as usize)
    } else {
        a.pool
    };
    let mix_cfg = MixConfig {
        open_share: a.open_share,
        suppressed_share: a.suppressed_share,
        invalid_share: a.invalid_share,
        ipv6_share: a.ipv6_share,
        xff: a.xff,
        tenant: a.tenant.clone(),
        suppressed_pool: a.suppressed_pool,
        host: a.target.to_string(),
        seed: a.seed,
    };
    let t = Instant::now();
    let pool = mix::build(&keyring, &run_id, pool_n, &mix_cfg)?;
    eprintln!(
        "run {run_id}: {} distinct signed requests built in {:.2}s",
        pool.len(),
        t.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()?;

    let checker = if a.no_check {
        None
    } else {
        let brokers = match &a.brokers {
            Some(b) => b.clone(),
            None => brokers_from_admin(&rt, a.admin)?,
        };
        eprintln!("events: {} on {brokers}", a.topic);
        let kinds = (0..pool.len()).map(|i| pool.kind(i)).collect();
        Some(check::Checker::start(
            &brokers,
            &a.topic,
            &run_id,
            kinds,
            Duration::from_secs(2),
            Duration::from_secs(15),
            Duration::from_secs(a.check_timeout),
        )?)
    };

    let max_requests = if a.requests == 0 {
        u64::MAX
    } else {
        a.requests
    };
    let duration = Duration::from_secs_f64(a.duration);
    let answered = (0..pool.len()).map(|_| AtomicU32::new(0)).collect();
    let started = Instant::now();
    let sh = Arc::new(Shared {
        pool,
        answered,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        max_requests,
        deadline: started + duration,
    });

    let bar = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else if a.requests > 0 {
        indicatif::ProgressBar::new(a.requests)
    } else {
        indicatif::ProgressBar::new(duration.as_millis() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {percent:>3}% {msg}",
        )
        .expect("template"),
    );

    let total = rt.block_on(async {
        let mut tasks = Vec::with_capacity(a.connections);
        let mut senders = Vec::new();
        for _ in 0..a.connections {
            let schedule = (a.rate > 0).then(|| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                senders.push(tx);
                rx
            });
            tasks.push(tokio::spawn(connection(sh.clone(), a.target, schedule)));
        }
        let pacer = (a.rate > 0).then(|| tokio::spawn(pacer(sh.clone(), a.rate, senders)));
        let ticker = {
            let sh = sh.clone();
            let bar = bar.clone();
            let by_count = a.requests > 0;
            tokio::spawn(async move {
                let mut last = (Instant::now(), 0u64);
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let done = sh.done.load(Ordering::Relaxed);
                    let now = Instant::now();
                    let rps = (done - last.1) as f64 / (now - last.0).as_secs_f64();
                    last = (now, done);
                    bar.set_position(if by_count {
                        done
                    } else {
                        (now - started).as_millis() as u64
                    });
                    bar.set_message(format!("{done} answered, {rps:.0} req/s"));
                }
            })
        };
        let mut total = ConnStats::new();
        for t in tasks {
            if let Ok(s) = t.await {
                total.merge(&s);
            }
        }
        sh.stop.store(true, Ordering::Relaxed);
        if let Some(p) = pacer {
            if let Ok(Err(e)) = p.await {
                eprintln!("pacer failed: {e}");
            }
        }
        ticker.abort();
        total
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let answered_n: u64 = total.by_kind.iter().sum();
    let rps = answered_n as f64 / elapsed.as_secs_f64();
    let h = &total.latency;
    println!("== openclick-loadtest run {run_id}");
    println!(
        "mode: {}, {} connections, {} loader thread(s), {:.2}s",
        if a.rate > 0 {
            format!("open loop at {} req/s", a.rate)
        } else {
            "closed loop (max)".to_string()
        },
        a.connections,
        a.threads,
        elapsed.as_secs_f64()
    );
    println!(
        "answered: {answered_n} ({rps:.0} req/s), io errors: {}, wrong status: {}",
        total.io_errors, total.wrong_status
    );
    for k in Kind::ALL {
        println!("  {:<20} {}", k.label(), total.by_kind[k as usize]);
    }
    println!("latency (us): {}", quantiles(h));
    if a.rate > 0 {
        println!(
            "latency from schedule (us): {}  (max send lag {:.0} us)",
            quantiles(&total.corrected),
            us(total.max_lag_ns)
        );
    }
    let mut summary = serde_json::json!({
        "run": run_id,
        "rate": a.rate,
        "connections": a.connections,
        "answered": answered_n,
        "rps": rps.round(),
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "io_errors": total.io_errors,
        "wrong_status": total.wrong_status,
    });

    let mut code = 0;
    if total.wrong_status > 0 || total.io_errors > 0 {
        code = 2;
    }
    if let Some(checker) = checker {
        let sent = answered_n;
        let suppressed = total.by_kind[Kind::OpenSuppressed as usize]
            + total.by_kind[Kind::ClickSuppressed as usize];
        let invalid =
            total.by_kind[Kind::OpenInvalid as usize] + total.by_kind[Kind::ClickInvalid as usize];
        let answered: Vec<u32> = sh
            .answered
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let kinds: Vec<Kind> = (0..sh.pool.len()).map(|i| sh.pool.kind(i)).collect();
        let r = checker.finish(&answered, &kinds)?;
        println!(
            "end to end: sent {sent} - suppressed {suppressed} - invalid {invalid} = expected {}; received {} ({:.1}s after the load stopped)",
            r.expected,
            r.received,
            r.elapsed.as_secs_f64()
        );
        println!(
            "  lost {}  duplicated {}  unexpected (suppressed/invalid) {}  wrong type {}  undecodable {}  consume errors {}",
            r.lost, r.duplicated, r.unexpected, r.wrong_type, r.undecodable, r.consume_errors
        );
        summary["expected"] = r.expected.into();
        summary["received"] = r.received.into();
        summary["lost"] = r.lost.into();
        summary["duplicated"] = r.duplicated.into();
        summary["unexpected"] = r.unexpected.into();
        let bad = r.lost > 0
            || r.unexpected > 0
            || r.wrong_type > 0
            || (a.fail_on_duplicates && r.duplicated > 0);
        if bad {
            println!("END-TO-END CHECK FAILED");
            code = 1;
        } else {
            println!("END-TO-END CHECK OK: 0 lost");
        }
    }
    println!("SUMMARY {summary}");
    Ok(code)
}
