//! Every `OPENCLICK_*` variable that the deployment files name (`deploy/compose.yaml`,
//! `deploy/Dockerfile`, `deploy/k8s/*`) is one the binary reads.
//!
//! The binary's list comes from the binary itself: `openclick ... --help` of every subcommand,
//! found by walking the `Commands:` sections, prints `[env: NAME=...]` for each flag (clap's
//! `env`). A variable that is misspelt, renamed or removed would be silently ignored by the
//! process it configures; this test fails instead.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::openclick;

/// `openclick <path> --help`.
fn help(path: &[String]) -> String {
    let out = openclick().args(path).arg("--help").output().unwrap();
    assert!(out.status.success(), "{path:?} --help: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Subcommand names of a help text's `Commands:` section (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect()
}

/// Every `OPENCLICK_[A-Z0-9_]+` in `text` (a bare `OPENCLICK_`, as in prose's `OPENCLICK_*`,
/// names no variable).
fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("OPENCLICK_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.len() > "OPENCLICK_".len() {
            found.insert(name);
        }
        rest = &rest[start + 1..];
    }
    found
}

/// The variables the binary reads, from the help of every (sub)command.
fn binary_variables() -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let mut queue: Vec<Vec<String>> = vec![vec![]];
    let mut visited = 0;
    while let Some(path) = queue.pop() {
        visited += 1;
        let h = help(&path);
        // clap prints `[env: NAME=value]` or `[env: NAME]`; a long help line may wrap after
        // `env:`, so any whitespace is allowed there.
        for (i, _) in h.match_indices("[env:") {
            let name: String = h[i + 5..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            vars.insert(name);
        }
        for sub in subcommands(&h) {
            let mut p = path.clone();
            p.push(sub);
            queue.push(p);
        }
    }
    assert!(
        visited > 5,
        "only {visited} help pages: is the Commands: parsing broken?"
    );
    vars
}

fn deploy_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut files = vec![root.join("compose.yaml"), root.join("Dockerfile")];
    let mut k8s: Vec<PathBuf> = std::fs::read_dir(root.join("k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    k8s.sort();
    files.extend(k8s);
    files
}

#[test]
fn the_help_walk_finds_the_variables_of_every_subcommand() {
    let vars = binary_variables();
    // One of each subcommand's own flags, as declared in src/args.rs.
    for v in [
        "OPENCLICK_LISTEN",     // serve, check-config
        "OPENCLICK_KEYS",       // serve, sign
        "OPENCLICK_BASE_URL",   // sign open|click
        "OPENCLICK_ADMIN_URL",  // suppress
        "OPENCLICK_GEOIP_CITY", // enrich
        "OPENCLICK_LOG",        // global
        "OPENCLICK_KAFKA_LINGER_MS",
    ] {
        assert!(vars.contains(v), "{v} missing from {vars:?}");
    }
    assert!(
        variables("x OPENCLICK_A_1 y OPENCLICK_B, ${OPENCLICK_C:?} OPENCLICK_*")
            == ["OPENCLICK_A_1", "OPENCLICK_B", "OPENCLICK_C"]
                .map(String::from)
                .into(),
        "the scanner"
    );
}

#[test]
fn every_variable_named_in_deploy_is_read_by_the_binary() {
    let known = binary_variables();
    let mut unknown = Vec::new();
    let mut named = 0;
    for file in deploy_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for v in variables(&text) {
            named += 1;
            if !known.contains(&v) {
                unknown.push(format!("{}: {v}", file.display()));
            }
        }
    }
    assert!(named >= 10, "only {named} variables found in deploy/");
    assert!(
        unknown.is_empty(),
        "deploy/ names variables the binary does not read: {unknown:#?}\nthe binary reads: {known:#?}"
    );
}
