//! `serve --web-settings FILE`: the per-tenant website-activity settings (hand-off on or off,
//! parameter name, site origins, lifetime, GPC / DNT; `openclick_edge::web`). There is no
//! replicated per-tenant state yet, so they come from a file, re-read on SIGHUP and within 5 s
//! of a change on disk; a file that fails to parse keeps the settings in force. Without the flag
//! the web routes answer 404 and clicks carry no hand-off.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use openclick_edge::web::{Web, WebSettings};

/// How often the file is checked for a change.
const POLL: Duration = Duration::from_secs(5);

/// Reads and parses the settings file. Errors name the file and the tenant, not its values.
pub fn read(path: &Path) -> Result<WebSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --web-settings {}", path.display()))?;
    WebSettings::from_toml(&text).with_context(|| format!("--web-settings {}", path.display()))
}

/// The settings of `--web-settings`, if given (read now: a bad file stops `serve` before a port
/// is bound).
pub fn load(path: Option<&Path>) -> Result<Option<Arc<Web>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let settings = read(path)?;
    tracing::info!(tenants = settings.len(), "web settings loaded");
    Ok(Some(Arc::new(Web::new(settings))))
}

fn reload(path: &Path, web: &Web, trigger: &'static str) {
    match read(path) {
        Ok(s) => {
            tracing::info!(trigger, tenants = s.len(), "web settings reloaded");
            web.store(s);
        }
        Err(err) => tracing::error!(
            trigger,
            error = format!("{err:#}"),
            "--web-settings not reloaded; keeping the settings in force"
        ),
    }
}

/// Re-reads the file on SIGHUP and when it changes on disk (checked every [`POLL`]). Call on
/// the runtime.
pub fn watch(path: PathBuf, web: Arc<Web>) {
    let (p, w) = (path.clone(), web.clone());
    tokio::spawn(async move {
        let stamp = |p: PathBuf| async move {
            tokio::task::spawn_blocking(move || crate::serve::file_stamp(&p))
                .await
                .ok()
                .flatten()
        };
        let mut last = stamp(p.clone()).await;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(p.clone()).await;
            if now != last {
                last = now;
                let (p, w) = (p.clone(), w.clone());
                let _ = tokio::task::spawn_blocking(move || reload(&p, &w, "file change")).await;
            }
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let (p, w) = (path.clone(), web.clone());
            let _ = tokio::task::spawn_blocking(move || reload(&p, &w, "SIGHUP")).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("web.toml");
        std::fs::write(&p, "[tenant.acme]\nhandoff = true\n").unwrap();
        let e = format!("{:#}", read(&p).unwrap_err());
        assert!(e.contains("web.toml") && e.contains("acme"), "{e}");
        std::fs::write(
            &p,
            "[tenant.acme]\nhandoff = true\norigins = [\"https://shop.example.com\"]\n",
        )
        .unwrap();
        assert!(read(&p).unwrap().tenant("acme").unwrap().handoff);
        assert!(load(None).unwrap().is_none());
    }
}
