//! The configuration file (`--config FILE` / `OPENCLICK_CONFIG`), driven by the clap
//! definitions so that a flag added to [`crate::args`] is in the file for free.
//!
//! - Top-level keys: the global flags (`log`, `log-format`) and every long flag of `serve`
//!   (also read by `check-config`), by their long name in kebab-case (`admin-listen`).
//! - `[sign]`, `[tail]`, `[enrich]`, `[suppress]`: the flags of those subcommands. A flag of one
//!   of them that reads the same `OPENCLICK_*` variable as a `serve` flag also takes that
//!   top-level key (`tail` reads `topic` and `kafka-brokers`, `sign` reads `keys-file`), unless
//!   its table sets it: the file works like the environment.
//! - Repeatable flags take a TOML array (or one value); switches take `true` / `false`; numbers
//!   may be TOML numbers or strings.
//! - A key that is no such flag is an error naming it; so is a value the flag's own parser
//!   refuses (checked here, with the message naming the key).
//!
//! Precedence is flags > environment > file > built-in defaults: each file value becomes the
//! flag's default before clap parses, so clap's own order does the rest, and
//! `ArgMatches::value_source` still tells a file value (a "default" that the file set) from a
//! built-in one.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::args::{self, Cli};

/// Subcommands configured by the top-level keys.
const TOP_SUBCOMMANDS: [&str; 2] = ["serve", "check-config"];

/// Why the command line, environment or file could not be turned into a [`Cli`].
#[derive(Debug)]
pub enum ParseError {
    /// clap's own error: usage, a bad flag or environment value, or `--help` / `--version`.
    Clap(clap::Error),
    /// The configuration file, or a conflict clap does not see.
    Config(String),
}

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File,
    /// An `OPENCLICK_*` variable.
    Env,
    /// The command line.
    Flag,
}

impl Source {
    /// `default`, `file`, `env` or `flag`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
            Source::Flag => "flag",
        }
    }
}

/// One effective setting of a subcommand, as `check-config` prints it.
#[derive(Debug)]
pub struct Setting {
    /// The long flag (and file key).
    pub key: String,
    /// Its environment variable.
    pub env: Option<String>,
    /// The values, redacted when secret (none: unset).
    pub values: Vec<String>,
    /// Whether the flag repeats (printed as an array).
    pub many: bool,
    /// Where they came from.
    pub source: Source,
}

/// The parsed command line, with what is needed to say where each value came from.
#[derive(Debug)]
pub struct Parsed {
    /// The typed arguments.
    pub cli: Cli,
    matches: ArgMatches,
    /// `(subcommand path, arg id)` of every default the file set.
    from_file: BTreeSet<(String, String)>,
    /// The file read, if any.
    pub config_path: Option<PathBuf>,
}

/// Parses `argv` (the program name first), reading the configuration file named by `--config`
/// or by the `OPENCLICK_CONFIG` value `env` returns. clap reads the other variables itself.
pub fn parse<I, T>(argv: I, env: impl Fn(&str) -> Option<OsString>) -> Result<Parsed, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let config_path = config_path(&argv, env);
    let mut cmd = Cli::command();
    let mut from_file = BTreeSet::new();
    if let Some(path) = &config_path {
        let table = read_file(path)?;
        let plan = plan(&cmd, &table)
            .map_err(|e| ParseError::Config(format!("config file {}: {e}", path.display())))?;
        cmd = apply(cmd, &plan, &mut from_file);
    }
    let matches = cmd.try_get_matches_from(argv).map_err(ParseError::Clap)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(ParseError::Clap)?;
    let parsed_sources = |path: &str, id: &str| {
        let m = sub_matches(&matches, path)?;
        source_of(m, id, from_file.contains(&(path.to_owned(), id.to_owned())))
    };
    let name = matches.subcommand_name().unwrap_or_default().to_owned();
    let pick = |secret: &str, file: &str| -> Result<Option<bool>, ParseError> {
        let (Some(a), Some(b)) = (parsed_sources(&name, secret), parsed_sources(&name, file))
        else {
            return Ok(None);
        };
        if a == b {
            return Err(ParseError::Config(format!(
                "--{} and --{} are both set (both by {}); set one",
                secret.replace('_', "-"),
                file.replace('_', "-"),
                a.as_str()
            )));
        }
        Ok(Some(a > b))
    };
    // Keep the value of each secret/file pair from the stronger source.
    match &mut cli.command {
        args::Command::Serve(a) | args::Command::CheckConfig(a) => {
            match pick("keys", "keys_file")? {
                Some(true) => a.keys.keys_file = None,
                Some(false) => a.keys.keys = None,
                None => {}
            }
            match pick("admin_token", "admin_token_file")? {
                Some(true) => a.admin_token_file = None,
                Some(false) => a.admin_token = None,
                None => {}
            }
        }
        args::Command::Suppress(a) => match pick("admin_token", "admin_token_file")? {
            Some(true) => a.admin_token_file = None,
            Some(false) => a.admin_token = None,
            None => {}
        },
        args::Command::Sign(s) => {
            let (path, keys) = match &mut s.kind {
                Some(args::SignKind::Open(c)) => ("sign open", &mut c.keys),
                Some(args::SignKind::Click { common, .. }) => ("sign click", &mut common.keys),
                Some(args::SignKind::Unsubscribe(u)) => ("sign unsubscribe", &mut u.keys),
                None => ("sign", &mut s.keys),
            };
            if let (Some(a), Some(b)) = (
                parsed_sources(path, "keys"),
                parsed_sources(path, "keys_file"),
            ) {
                if a == b {
                    return Err(ParseError::Config(format!(
                        "--keys and --keys-file are both set (both by {}); set one",
                        a.as_str()
                    )));
                }
                if a > b {
                    keys.keys_file = None;
                } else {
                    keys.keys = None;
                }
            }
        }
        _ => {}
    }
    Ok(Parsed {
        cli,
        matches,
        from_file,
        config_path,
    })
}

impl Parsed {
    /// Every setting of the subcommand that ran (`check-config`: the serve configuration), in
    /// definition order, secrets redacted.
    pub fn settings(&self) -> Vec<Setting> {
        let Some((name, m)) = self.matches.subcommand() else {
            return Vec::new();
        };
        let cmd = Cli::command();
        let Some(sc) = cmd.find_subcommand(name) else {
            return Vec::new();
        };
        let args = cmd
            .get_arguments()
            .filter(|a| a.is_global_set())
            .chain(sc.get_arguments());
        let mut out = Vec::new();
        for a in args {
            let (Some(long), id) = (a.get_long(), a.get_id().as_str()) else {
                continue;
            };
            if matches!(a.get_action(), ArgAction::Help | ArgAction::Version) {
                continue;
            }
            let from_file = self.from_file.contains(&(name.to_owned(), id.to_owned()));
            let values = match m.try_get_raw(id).ok().flatten() {
                Some(raw) => raw.map(|v| display_value(a, v)).collect(),
                None => Vec::new(),
            };
            let source = source_of(m, id, from_file).unwrap_or(Source::Default);
            out.push(Setting {
                key: long.to_owned(),
                env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                values,
                many: matches!(a.get_action(), ArgAction::Append),
                source,
            });
        }
        out
    }

    /// The long names of the secret flags (`--keys`, `--admin-token`) given on the command
    /// line, where every local user can read them.
    pub fn secrets_in_argv(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmd = Cli::command();
        let mut m = &self.matches;
        loop {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.is_hide_env_values_set()
                    && m.try_get_raw(id).ok().flatten().is_some()
                    && m.value_source(id) == Some(ValueSource::CommandLine)
                {
                    out.extend(a.get_long().map(str::to_owned));
                }
            }
            let Some((name, sub)) = m.subcommand() else {
                break;
            };
            let Some(sc) = cmd.find_subcommand(name).cloned() else {
                break;
            };
            cmd = sc;
            m = sub;
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Secrets are redacted; Kafka properties print through [`openclick_kafka::KafkaProperty`]'s
/// `Display`, which redacts secret values.
fn display_value(a: &Arg, v: &OsStr) -> String {
    // Kafka properties first: their variable hides its values from `--help` (any of them may be
    // a password), but each one's `Display` redacts only what is secret.
    if a.get_id() == "kafka_properties" {
        return match v
            .to_string_lossy()
            .parse::<openclick_kafka::KafkaProperty>()
        {
            Ok(p) => p.to_string(),
            Err(_) => "<unparsable>".to_owned(),
        };
    }
    if a.is_hide_env_values_set() {
        return "<redacted>".to_owned();
    }
    v.to_string_lossy().into_owned()
}

/// The matches of the subcommand at `path` (names joined by spaces; "" is the root).
fn sub_matches<'m>(m: &'m ArgMatches, path: &str) -> Option<&'m ArgMatches> {
    let mut m = m;
    for name in path.split(' ').filter(|n| !n.is_empty()) {
        match m.subcommand() {
            Some((n, sub)) if n == name => m = sub,
            _ => return None,
        }
    }
    Some(m)
}

/// Where `id`'s value came from, if it has one.
fn source_of(m: &ArgMatches, id: &str, from_file: bool) -> Option<Source> {
    m.try_get_raw(id).ok().flatten()?;
    Some(match m.value_source(id)? {
        ValueSource::CommandLine => Source::Flag,
        ValueSource::EnvVariable => Source::Env,
        ValueSource::DefaultValue if from_file => Source::File,
        _ => Source::Default,
    })
}

/// `--config FILE`, `--config=FILE` (before any `--`), else `OPENCLICK_CONFIG`.
fn config_path(argv: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(rest) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(PathBuf::from(rest));
        }
    }
    env("OPENCLICK_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn read_file(path: &Path) -> Result<toml::Table, ParseError> {
    let err = |e: String| ParseError::Config(format!("config file {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    // The error's message and line only: its rendering quotes the line, which may hold a
    // secret.
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => err(format!("line {l}: {}", e.message().trim_end())),
            None => err(e.message().trim_end().to_owned()),
        }
    })
}

/// What the file sets: values by long name, at the top and per subcommand table.
#[derive(Debug, Default)]
struct Plan {
    top: BTreeMap<String, Vec<String>>,
    tables: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// `OPENCLICK_*` variable of a top-level key -> that key.
    env_to_top: BTreeMap<String, String>,
}

/// The flags a file may set on `cmd` (and its nested subcommands), by long name.
fn settable(cmd: &Command, out: &mut BTreeMap<String, Arg>) {
    for a in cmd.get_arguments() {
        if a.is_positional()
            || a.is_required_set()
            || a.get_id() == "config"
            || matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
        {
            continue;
        }
        if let Some(long) = a.get_long() {
            out.entry(long.to_owned()).or_insert_with(|| a.clone());
        }
    }
    for sc in cmd.get_subcommands() {
        settable(sc, out);
    }
}

fn top_level_args(root: &Command) -> BTreeMap<String, Arg> {
    let mut top = BTreeMap::new();
    for a in root.get_arguments().filter(|a| a.is_global_set()) {
        if a.get_id() == "config" {
            continue;
        }
        if let Some(long) = a.get_long() {
            top.insert(long.to_owned(), a.clone());
        }
    }
    if let Some(serve) = root.find_subcommand("serve") {
        settable(serve, &mut top);
    }
    top
}

/// Table names: subcommands with flags of their own, besides the top-level ones.
fn table_args(root: &Command) -> BTreeMap<String, BTreeMap<String, Arg>> {
    root.get_subcommands()
        .filter(|sc| !TOP_SUBCOMMANDS.contains(&sc.get_name()))
        .map(|sc| {
            let mut m = BTreeMap::new();
            settable(sc, &mut m);
            (sc.get_name().to_owned(), m)
        })
        .filter(|(_, m)| !m.is_empty())
        .collect()
}

fn plan(root: &Command, table: &toml::Table) -> Result<Plan, String> {
    let top_args = top_level_args(root);
    let tables = table_args(root);
    let mut plan = Plan::default();
    for (key, value) in table {
        if let (Some(allowed), toml::Value::Table(t)) = (tables.get(key), value) {
            let mut set = BTreeMap::new();
            for (k, v) in t {
                let arg = allowed
                    .get(k)
                    .ok_or_else(|| unknown(&format!("[{key}] {k}"), k, allowed))?;
                set.insert(k.clone(), values(&format!("[{key}] {k}"), v, arg)?);
            }
            plan.tables.insert(key.clone(), set);
            continue;
        }
        let arg = top_args.get(key).ok_or_else(|| {
            let mut e = unknown(key, key, &top_args);
            if !tables.contains_key(key) {
                e.push_str(&format!(
                    " (tables: {})",
                    tables
                        .keys()
                        .map(|t| format!("[{t}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            e
        })?;
        plan.top.insert(key.clone(), values(key, value, arg)?);
        if let Some(env) = arg.get_env() {
            plan.env_to_top
                .insert(env.to_string_lossy().into_owned(), key.clone());
        }
    }
    Ok(plan)
}

fn unknown(shown: &str, key: &str, known: &BTreeMap<String, Arg>) -> String {
    let mut e = format!("unknown key `{shown}`");
    let kebab = key.replace('_', "-");
    if kebab != key && known.contains_key(&kebab) {
        e.push_str(&format!(" (keys are kebab-case: `{kebab}`)"));
    } else if !known.contains_key(key) && !known.is_empty() {
        e.push_str(": not a flag that can be set in the file");
    }
    e
}

/// The string values of one key, each checked by the flag's own value parser.
fn values(key: &str, v: &toml::Value, arg: &Arg) -> Result<Vec<String>, String> {
    let scalar = |v: &toml::Value| -> Result<String, String> {
        Ok(match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(_) | toml::Value::Table(_) => {
                return Err(format!("key `{key}`: expected a single value"))
            }
        })
    };
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match v {
            toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
            _ => Err(format!("key `{key}`: expected true or false")),
        },
        ArgAction::Append => {
            let vals = match v {
                toml::Value::Array(a) => a.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
                v => vec![scalar(v)?],
            };
            for s in &vals {
                check_value(key, arg, s)?;
            }
            Ok(vals)
        }
        _ => {
            if matches!(v, toml::Value::Array(_)) {
                return Err(format!("key `{key}`: takes one value, not an array"));
            }
            let s = scalar(v)?;
            check_value(key, arg, &s)?;
            Ok(vec![s])
        }
    }
}

/// Runs `value` through `arg`'s value parser (clap does not expose it directly: a one-flag
/// command with the same parser does), so a bad value is refused naming its key.
fn check_value(key: &str, arg: &Arg, value: &str) -> Result<(), String> {
    let mut probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Set)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    if let Some(d) = arg.get_value_delimiter() {
        probe = probe.value_delimiter(d);
    }
    let r = Command::new("openclick-config")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={value}")]);
    let Err(e) = r else { return Ok(()) };
    let reason = match std::error::Error::source(&e) {
        Some(s) => s.to_string(),
        None => match e.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(v)) => format!("possible values: {}", v.join(", ")),
            _ => e.kind().to_string(),
        },
    };
    if arg.is_hide_env_values_set() {
        Err(format!("key `{key}`: invalid value: {reason}"))
    } else {
        Err(format!("key `{key}`: invalid value {value:?}: {reason}"))
    }
}

/// Makes every file value the default of its flag, recording which.
fn apply(mut root: Command, plan: &Plan, from_file: &mut BTreeSet<(String, String)>) -> Command {
    let globals: Vec<(String, String)> = root
        .get_arguments()
        .filter(|a| a.is_global_set())
        .filter_map(|a| Some((a.get_long()?.to_owned(), a.get_id().to_string())))
        .collect();
    for (long, id) in globals {
        if let Some(v) = plan.top.get(&long) {
            root = root.mut_arg(&id, |a| a.default_values(v.clone()));
            // Globals are propagated into every subcommand's matches.
            for sc in root.get_subcommands() {
                from_file.insert((sc.get_name().to_owned(), id.clone()));
            }
            from_file.insert((String::new(), id.clone()));
        }
    }
    let names: Vec<String> = root
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let table = (!TOP_SUBCOMMANDS.contains(&name.as_str()))
            .then(|| plan.tables.get(&name))
            .flatten();
        let top = TOP_SUBCOMMANDS.contains(&name.as_str());
        root = root.mut_subcommand(&name, |sc| {
            apply_sub(sc, name.clone(), top, table, plan, from_file)
        });
    }
    root
}

fn apply_sub(
    mut cmd: Command,
    path: String,
    top: bool,
    table: Option<&BTreeMap<String, Vec<String>>>,
    plan: &Plan,
    from_file: &mut BTreeSet<(String, String)>,
) -> Command {
    let mut sets = Vec::new();
    for a in cmd.get_arguments() {
        if a.is_positional() || a.is_required_set() || a.is_global_set() {
            continue;
        }
        let Some(long) = a.get_long() else { continue };
        let v = if top {
            plan.top.get(long)
        } else {
            table.and_then(|t| t.get(long)).or_else(|| {
                let env = a.get_env()?.to_str()?;
                plan.top.get(plan.env_to_top.get(env)?)
            })
        };
        if let Some(v) = v {
            sets.push((a.get_id().to_string(), v.clone()));
        }
    }
    for (id, v) in sets {
        cmd = cmd.mut_arg(&id, |a| a.default_values(v));
        from_file.insert((path.clone(), id));
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = format!("{path} {name}");
        cmd = cmd.mut_subcommand(&name, |sc| {
            apply_sub(sc, sub_path, top, table, plan, from_file)
        });
    }
    cmd
}

/// The reference of every key/flag/variable of `serve` and of the tables, as docs/config.md
/// holds it (a test compares the two).
#[cfg(test)]
pub fn reference() -> String {
    let root = Cli::command();
    let mut out = String::new();
    out.push_str("### Top level: global flags and `serve` (also read by `check-config`)\n\n");
    out.push_str(&ref_table(top_level_args(&root).values()));
    for (name, args) in table_args(&root) {
        out.push_str(&format!("\n### `[{name}]`: `openclick {name}`\n\n"));
        out.push_str(&ref_table(args.values()));
    }
    out
}

#[cfg(test)]
fn ref_table<'a>(args: impl Iterator<Item = &'a Arg>) -> String {
    let mut out =
        String::from("| key / flag | environment | default | meaning |\n|---|---|---|---|\n");
    for a in args {
        let long = a.get_long().unwrap_or_default();
        let env = a
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let default = match a.get_action() {
            ArgAction::SetTrue => "`false`".to_owned(),
            _ if a.get_default_values().is_empty() => String::new(),
            _ => format!(
                "`{}`",
                a.get_default_values()
                    .iter()
                    .map(|d| d.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let kind = match a.get_action() {
            ArgAction::SetTrue => " (switch: `true`/`false`)",
            ArgAction::Append => " (repeatable: an array)",
            _ => "",
        };
        let help = a
            .get_long_help()
            .or_else(|| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        out.push_str(&format!(
            "| `{long}`{kind} | {env} | {default} | {help} |\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let root = Cli::command();
        let e = plan(&root, &table("listne = \"127.0.0.1:1\"")).unwrap_err();
        assert!(e.contains("`listne`"), "{e}");
        let e = plan(&root, &table("admin_listen = \"127.0.0.1:1\"")).unwrap_err();
        assert!(e.contains("`admin-listen`"), "{e}");
        let e = plan(&root, &table("[tail]\nfrom-beginnin = true")).unwrap_err();
        assert!(e.contains("[tail] from-beginnin"), "{e}");
        // `config` cannot name another file.
        assert!(plan(&root, &table("config = \"x.toml\"")).is_err());
        // A subcommand-only flag is not a top-level key.
        assert!(plan(&root, &table("base-url = \"https://t.example\"")).is_err());
    }

    #[test]
    fn values_are_checked_by_the_flags_own_parsers() {
        let root = Cli::command();
        for bad in [
            "listen = \"nope\"",
            "workers = -1",
            "http2 = \"yes\"",
            "kafka-property = [\"linger.ms\"]",
            "spool-fsync = \"sometimes\"",
            "listen = [\"127.0.0.1:1\"]",
            "log-format = \"xml\"",
            "log = \"foo=notalevel\"",
        ] {
            let e = plan(&root, &table(bad)).unwrap_err();
            assert!(e.starts_with("key `"), "{bad}: {e}");
        }
        let p = plan(
            &root,
            &table("workers = 2\nhttp2 = true\nkafka-property = [\"linger.ms=5\", \"acks=all\"]"),
        )
        .unwrap();
        assert_eq!(p.top["workers"], ["2"]);
        assert_eq!(p.top["kafka-property"], ["linger.ms=5", "acks=all"]);
    }

    #[test]
    fn a_secret_value_is_not_echoed_in_the_error() {
        // The keys value is not checked by a parser, but the TOML error must not quote it.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:1\"\nkeys = k1:TOPSECRETVALUE\n").unwrap();
        let Err(ParseError::Config(e)) = read_file(&f) else {
            panic!("accepted")
        };
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("TOPSECRETVALUE"), "{e}");
    }

    #[test]
    fn tables_and_shared_variables_reach_other_subcommands() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "topic = \"top-topic\"\nkafka-brokers = \"k:9092\"\nidle-timeout-secs = 99\n\
             [tail]\ncount = 5\n[suppress]\nadmin-url = \"http://10.0.0.1:9090\"\n",
        )
        .unwrap();
        let cfg = f.to_str().unwrap();
        let p = parse(["openclick", "--config", cfg, "tail"], |_| None).unwrap();
        let args::Command::Tail(t) = p.cli.command else {
            panic!("not tail")
        };
        // Shared variables (OPENCLICK_TOPIC, OPENCLICK_KAFKA_BROKERS) carry over; serve's
        // idle-timeout-secs has no variable in common with tail's and does not.
        assert_eq!(t.topic, "top-topic");
        assert_eq!(t.brokers.as_deref(), Some("k:9092"));
        assert_eq!(t.count, Some(5));
        assert_eq!(t.idle_timeout_secs, None);
        // A flag still wins over the file.
        let p = parse(
            ["openclick", "--config", cfg, "tail", "--count", "7"],
            |_| None,
        )
        .unwrap();
        let args::Command::Tail(t) = p.cli.command else {
            panic!("not tail")
        };
        assert_eq!(t.count, Some(7));
        let p = parse(
            [
                "openclick",
                "--config",
                cfg,
                "suppress",
                "check",
                "acme",
                "c",
            ],
            |_| None,
        )
        .unwrap();
        let args::Command::Suppress(s) = p.cli.command else {
            panic!("not suppress")
        };
        assert_eq!(s.admin_url, "http://10.0.0.1:9090");
    }

    #[test]
    fn config_path_comes_from_the_flag_before_the_environment() {
        let argv = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let env = |_: &str| Some(OsString::from("env.toml"));
        assert_eq!(
            config_path(&argv(&["openclick", "serve", "--config", "a.toml"]), env),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&argv(&["openclick", "--config=b.toml", "serve"]), env),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(
            config_path(&argv(&["openclick", "serve"]), env),
            Some(PathBuf::from("env.toml"))
        );
        assert_eq!(config_path(&argv(&["openclick", "serve"]), |_| None), None);
    }

    /// docs/config.md holds the reference generated from the clap definitions, so it lists
    /// every flag of `serve` with its variable and default. `OPENCLICK_UPDATE_DOCS=1`
    /// rewrites it.
    #[test]
    fn docs_config_md_lists_every_flag() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (begin, end) = ("<!-- reference:begin -->\n", "<!-- reference:end -->");
        let (Some(b), Some(e)) = (doc.find(begin), doc.find(end)) else {
            panic!("docs/config.md has no reference markers");
        };
        let want = reference();
        let doc = if doc[b + begin.len()..e] == want {
            doc
        } else if std::env::var_os("OPENCLICK_UPDATE_DOCS").is_some() {
            let new = format!("{}{want}{}", &doc[..b + begin.len()], &doc[e..]);
            std::fs::write(path, &new).unwrap();
            new
        } else {
            panic!("docs/config.md is stale: rerun with OPENCLICK_UPDATE_DOCS=1");
        };
        // Independently of the generator: every long flag and variable of serve appears.
        let root = Cli::command();
        let serve = root.find_subcommand("serve").unwrap();
        for a in serve.get_arguments() {
            if let Some(long) = a.get_long() {
                if long == "help" {
                    continue;
                }
                assert!(doc.contains(&format!("`{long}`")), "--{long} missing");
            }
            if let Some(env) = a.get_env() {
                assert!(
                    doc.contains(&format!("`{}`", env.to_string_lossy())),
                    "{env:?} missing"
                );
            }
        }
    }
}
