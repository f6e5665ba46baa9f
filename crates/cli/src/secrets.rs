//! Secrets read from files (`--keys-file`, `--admin-token-file`), so that they stay out of
//! `/proc/PID/cmdline` and the environment, and rotate without a restart (`serve` re-reads
//! them on SIGHUP). Errors name the file, never its content.

use std::path::Path;

use anyhow::{bail, Context, Result};
use openclick_token::KeyStore;

/// The `--keys` spec a keys file holds: one or more `ID:SECRET` entries per line (commas
/// between entries on a line), blank lines and `#` comment lines ignored; the first entry
/// signs.
pub fn keys_spec(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads and parses a keys file: global `ID:SECRET` and tenants' `TENANT/ID:SECRET` entries.
pub fn read_keys_file(path: &Path) -> Result<KeyStore> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --keys-file {}", path.display()))?;
    warn_if_readable_by_others(path, "--keys-file");
    KeyStore::from_spec(&keys_spec(&text))
        .with_context(|| format!("--keys-file {}", path.display()))
}

/// Reads the sending API's tokens file (`TENANT:TOKEN` lines).
pub fn read_sending_tokens(path: &Path) -> Result<openclick_sending::TenantTokens> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --sending-tokens-file {}", path.display()))?;
    warn_if_readable_by_others(path, "--sending-tokens-file");
    openclick_sending::TenantTokens::parse(&text)
        .with_context(|| format!("--sending-tokens-file {}", path.display()))
}

/// Reads an admin token file: its content without surrounding whitespace, not empty.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --admin-token-file {}", path.display()))?;
    warn_if_readable_by_others(path, "--admin-token-file");
    let token = text.trim();
    if token.is_empty() {
        bail!("--admin-token-file {} is empty", path.display());
    }
    if token.lines().count() > 1 {
        bail!(
            "--admin-token-file {} holds more than one line",
            path.display()
        );
    }
    Ok(token.to_owned())
}

fn warn_if_readable_by_others(path: &Path, flag: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o004 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "{flag}: the file is readable by every user of this machine (chmod o-r)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_file_holds_one_key_per_line_with_comments() {
        let text = "# rotated 2024-06\n k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8 \n\n\
                    k1:AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n";
        let k = openclick_token::Keyring::from_spec(&keys_spec(text)).unwrap();
        assert_eq!(k.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
        // The --keys format (comma-separated on one line) is a valid file too.
        let one = "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8,k1:AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n";
        assert_eq!(
            openclick_token::Keyring::from_spec(&keys_spec(one))
                .unwrap()
                .to_spec(),
            k.to_spec()
        );
    }

    #[test]
    fn a_token_file_is_trimmed_and_must_hold_one_token() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t");
        std::fs::write(&p, "  s3cret-token\n").unwrap();
        assert_eq!(read_token_file(&p).unwrap(), "s3cret-token");
        for bad in ["", "\n \n", "a\nb\n"] {
            std::fs::write(&p, bad).unwrap();
            let e = format!("{:#}", read_token_file(&p).unwrap_err());
            assert!(!e.contains("a\nb"), "{e}");
        }
    }
}
