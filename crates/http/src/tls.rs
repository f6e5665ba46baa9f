//! HTTPS: certificates from a directory, chosen by SNI, reloaded when their files change.
//!
//! # The directory
//!
//! [`CertStore::open`] reads a directory with **one subdirectory per certificate**, each
//! holding `tls.crt` (the PEM chain, end-entity certificate first) and `tls.key` (its PEM
//! private key: PKCS#8, PKCS#1 or SEC1): the layout of a mounted kubernetes.io/tls Secret, so
//! `/etc/openclick/tls/acme/` can be the mount of one Secret and `/etc/openclick/tls/globex/`
//! another. Entries whose name starts with `.` (the `..data` links of a projected volume) are
//! skipped; symbolic links are followed.
//!
//! # Which certificate a client gets
//!
//! - A certificate answers for the DNS names in its subject alternative names (the common
//!   name is not looked at, as browsers no longer do). A name `*.example.com` covers one label
//!   and only the leftmost (RFC 6125 6.4.3): `t.example.com`, not `example.com` nor
//!   `a.t.example.com`.
//! - The SNI name a client sends is looked up exactly first, then as a wildcard.
//! - Two certificates for the same name: the one whose subdirectory sorts first wins.
//! - **Default**: a client without SNI (or with a name no certificate covers) gets the
//!   certificate of the subdirectory that sorts first by name (byte order). Name it so
//!   (`0-default`, say) to choose it.
//!
//! # Reload
//!
//! [`CertStore::watch`] starts a thread (`openclick-tls-poll`) that looks at the files'
//! metadata (modification time, size, inode: a Secret update swaps a symlink) every few
//! seconds, and reloads a subdirectory whose files changed. A new pair that does not load
//! (unreadable, not PEM, key not matching the certificate, no DNS name) keeps the old
//! certificate of that subdirectory, is logged and counted
//! (`openclick_tls_reloads_total{result="error"}`), and is tried again when its files change
//! again. A subdirectory that disappears takes its certificate with it, unless it was the last.
//! Handshakes read the current set through an `ArcSwap`: no lock on the handshake path.
//!
//! At start ([`CertStore::open`]) nothing is forgiven: a missing directory, one without a
//! certificate, or any subdirectory that does not load is an error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

pub use tokio_rustls::TlsAcceptor;

/// The certificate chain's file name in a certificate's subdirectory.
pub const CERT_FILE: &str = "tls.crt";
/// The private key's file name in a certificate's subdirectory.
pub const KEY_FILE: &str = "tls.key";

/// What can go wrong loading certificates or building the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The directory cannot be listed.
    #[error("certificate directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory holds no certificate subdirectory.
    #[error("certificate directory {}: no subdirectory with {CERT_FILE} and {KEY_FILE}", dir.display())]
    Empty {
        /// The directory.
        dir: PathBuf,
    },
    /// A certificate subdirectory does not load.
    #[error("certificate {}: {message}", dir.display())]
    Cert {
        /// The subdirectory.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

impl TlsError {
    fn cert(dir: &Path, message: impl Into<String>) -> TlsError {
        TlsError::Cert {
            dir: dir.to_path_buf(),
            message: message.into(),
        }
    }
}

/// What a file looked like when it was last loaded: a change in any field means reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
    dev: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    // `metadata` follows symlinks: a Secret update repoints `..data`, so the target changes.
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (ino, dev) = {
        use std::os::unix::fs::MetadataExt;
        (m.ino(), m.dev())
    };
    #[cfg(not(unix))]
    let (ino, dev) = (0, 0);
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino,
        dev,
    })
}

/// The stamps of a subdirectory's two files.
type Fingerprint = [Option<Stamp>; 2];

fn fingerprint(dir: &Path) -> Fingerprint {
    [stamp(&dir.join(CERT_FILE)), stamp(&dir.join(KEY_FILE))]
}

/// One loaded certificate.
struct Entry {
    key: Arc<CertifiedKey>,
    /// SAN DNS names, lower case (wildcards as `*.example.com`).
    names: Vec<String>,
}

/// Loads one subdirectory: chain, key, the key matches the certificate, DNS names.
fn load_entry(dir: &Path, provider: &CryptoProvider) -> Result<Entry, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| TlsError::cert(dir, format!("{CERT_FILE}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::cert(dir, format!("{CERT_FILE}: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::cert(
            dir,
            format!("{CERT_FILE}: no PEM certificate"),
        ));
    };
    let names: Vec<String> = {
        let parsed = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| TlsError::cert(dir, format!("{CERT_FILE}: {e}")))?;
        parsed
            .valid_dns_names()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    };
    if names.is_empty() {
        return Err(TlsError::cert(
            dir,
            format!("{CERT_FILE}: no DNS name in the subject alternative names"),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| TlsError::cert(dir, format!("{KEY_FILE}: {e}")))?;
    let key = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| TlsError::cert(dir, format!("{KEY_FILE}: {e}")))?;
    Ok(Entry {
        key: Arc::new(key),
        names,
    })
}

/// Lists the certificate subdirectories, sorted by name.
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, TlsError> {
    let read = std::fs::read_dir(dir).map_err(|source| TlsError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for e in read {
        let e = e.map_err(|source| TlsError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// The lookup the handshake reads: built from the entries in subdirectory order.
#[derive(Default)]
struct Index {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Index {
    fn build(entries: &BTreeMap<String, Entry>) -> Index {
        let mut ix = Index::default();
        for (dir, e) in entries {
            ix.default.get_or_insert_with(|| e.key.clone());
            for n in &e.names {
                let (map, key) = match n.strip_prefix("*.") {
                    Some(parent) => (&mut ix.wildcard, parent),
                    None => (&mut ix.exact, n.as_str()),
                };
                if map.contains_key(key) {
                    tracing::warn!(certificate = %dir, name = %n,
                        "name already served by a certificate whose subdirectory sorts first; ignored here");
                    continue;
                }
                map.insert(key.to_string(), e.key.clone());
            }
        }
        ix
    }

    fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let lower;
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                lower.as_str()
            } else {
                name
            };
            let name = name.trim_end_matches('.');
            if let Some(k) = self.exact.get(name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

/// The poller's view: what is loaded and what each subdirectory looked like when last tried.
struct State {
    entries: BTreeMap<String, Entry>,
    seen: HashMap<String, Fingerprint>,
}

/// Counters of a [`CertStore`].
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Certificates loaded and reloaded.
    pub loaded: AtomicU64,
    /// Reloads that failed (the old certificate stayed).
    pub errors: AtomicU64,
    /// Certificates being served now.
    pub certificates: AtomicU64,
}

/// What one [`CertStore::refresh`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Certificates (re)loaded.
    pub loaded: usize,
    /// Certificates removed.
    pub removed: usize,
    /// Changes that did not load (the old certificate stays).
    pub errors: usize,
}

/// The certificates of a directory, chosen by SNI. See the module docs.
pub struct CertStore {
    dir: PathBuf,
    provider: Arc<CryptoProvider>,
    index: ArcSwap<Index>,
    state: Mutex<State>,
    stats: TlsStats,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads every certificate subdirectory of `dir`; any failure is an error.
    pub fn open(dir: &Path) -> Result<Arc<CertStore>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut entries = BTreeMap::new();
        let mut seen = HashMap::new();
        for (name, path) in list(dir)? {
            let fp = fingerprint(&path);
            entries.insert(name.clone(), load_entry(&path, &provider)?);
            seen.insert(name, fp);
        }
        if entries.is_empty() {
            return Err(TlsError::Empty {
                dir: dir.to_path_buf(),
            });
        }
        let stats = TlsStats::default();
        stats.loaded.store(entries.len() as u64, Ordering::Relaxed);
        stats
            .certificates
            .store(entries.len() as u64, Ordering::Relaxed);
        Ok(Arc::new(CertStore {
            dir: dir.to_path_buf(),
            provider,
            index: ArcSwap::from_pointee(Index::build(&entries)),
            state: Mutex::new(State { entries, seen }),
            stats,
        }))
    }

    /// The certificates served, by subdirectory, with their DNS names; the first is the
    /// default.
    pub fn certificates(&self) -> Vec<(String, Vec<String>)> {
        self.state
            .lock()
            .entries
            .iter()
            .map(|(d, e)| (d.clone(), e.names.clone()))
            .collect()
    }

    /// Counters.
    pub fn stats(&self) -> &TlsStats {
        &self.stats
    }

    /// Looks at the directory once and reloads what changed (see the module docs, "Reload").
    /// Blocking file I/O: call it off the runtime ([`CertStore::watch`] does).
    pub fn refresh(&self) -> Refresh {
        let mut r = Refresh::default();
        let listed = match list(&self.dir) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "TLS certificates: cannot list the directory; keeping the loaded ones");
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                r.errors += 1;
                return r;
            }
        };
        let mut st = self.state.lock();
        let State { entries, seen } = &mut *st;
        for (name, path) in &listed {
            let fp = fingerprint(path);
            if seen.get(name) == Some(&fp) {
                continue;
            }
            seen.insert(name.clone(), fp);
            match load_entry(path, &self.provider) {
                Ok(e) => {
                    tracing::info!(certificate = %name, names = ?e.names, "TLS certificate loaded");
                    entries.insert(name.clone(), e);
                    self.stats.loaded.fetch_add(1, Ordering::Relaxed);
                    r.loaded += 1;
                }
                Err(e) => {
                    tracing::error!(certificate = %name, error = %e,
                        "TLS certificate did not load; still serving the previous one (if any)");
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    r.errors += 1;
                }
            }
        }
        let gone: Vec<String> = entries
            .keys()
            .filter(|k| !listed.iter().any(|(n, _)| n == *k))
            .cloned()
            .collect();
        for name in gone {
            if entries.len() == 1 {
                if seen.remove(&name).is_some() {
                    tracing::error!(certificate = %name,
                        "the last TLS certificate's subdirectory is gone; still serving it");
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    r.errors += 1;
                }
                continue;
            }
            tracing::info!(certificate = %name, "TLS certificate removed");
            entries.remove(&name);
            seen.remove(&name);
            r.removed += 1;
        }
        seen.retain(|k, _| listed.iter().any(|(n, _)| n == k));
        if r.loaded + r.removed > 0 {
            self.index.store(Arc::new(Index::build(entries)));
            self.stats
                .certificates
                .store(entries.len() as u64, Ordering::Relaxed);
        }
        r
    }

    /// Starts the thread that calls [`CertStore::refresh`] every `every`; it stops when the
    /// returned [`Watcher`] is dropped.
    pub fn watch(self: &Arc<Self>, every: Duration) -> std::io::Result<Watcher> {
        let (tx, rx) = mpsc::channel::<()>();
        let store = self.clone();
        let thread = std::thread::Builder::new()
            .name("openclick-tls-poll".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    store.refresh();
                }
            })?;
        Ok(Watcher {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The rustls configuration of a listener: certificates from this store by SNI, ALPN
    /// `h2` (when `http2`) and `http/1.1`, TLS 1.2 and 1.3, stateless session tickets.
    pub fn server_config(self: &Arc<Self>, http2: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let mut c = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        c.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        c.ticketer = rustls::crypto::ring::Ticketer::new()?;
        Ok(Arc::new(c))
    }

    /// A [`TlsAcceptor`] on [`CertStore::server_config`].
    pub fn acceptor(self: &Arc<Self>, http2: bool) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor::from(self.server_config(http2)?))
    }

    /// Emits `openclick_tls_certificates` and `openclick_tls_reloads_total{result}` through
    /// the `metrics` macros.
    pub fn export_metrics(&self) {
        use metrics::{counter, gauge};
        let s = &self.stats;
        gauge!("openclick_tls_certificates").set(s.certificates.load(Ordering::Relaxed) as f64);
        counter!("openclick_tls_reloads_total", "result" => "ok")
            .absolute(s.loaded.load(Ordering::Relaxed));
        counter!("openclick_tls_reloads_total", "result" => "error")
            .absolute(s.errors.load(Ordering::Relaxed));
    }
}

/// The SNI resolver rustls calls during the handshake.
#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.index.load().resolve(hello.server_name())
    }
}

/// The reload thread; dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A distinct certificate (the index compares them by pointer).
    fn key(_: u8) -> Arc<CertifiedKey> {
        let k = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.test".into()])
            .unwrap()
            .self_signed(&k)
            .unwrap();
        let der = PrivateKeyDer::try_from(k.serialize_der()).unwrap();
        Arc::new(
            CertifiedKey::from_der(
                vec![cert.der().clone()],
                der,
                &rustls::crypto::ring::default_provider(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn wildcards_cover_one_leftmost_label_and_exact_names_win() {
        let (d, a, b, c) = (key(0), key(1), key(2), key(3));
        let mut entries = BTreeMap::new();
        for (dir, k, names) in [
            ("0-default", &d, vec!["default.test"]),
            ("a", &a, vec!["*.example.com"]),
            ("b", &b, vec!["t.example.com", "*.example.com"]),
            ("c", &c, vec!["example.com"]),
        ] {
            let names = names.into_iter().map(String::from).collect();
            entries.insert(
                dir.to_string(),
                Entry {
                    key: k.clone(),
                    names,
                },
            );
        }
        let ix = Index::build(&entries);
        let got = |n: Option<&str>| ix.resolve(n).unwrap();
        // exact beats the wildcard, even from a later subdirectory; case and a final dot
        // do not matter
        assert!(Arc::ptr_eq(&got(Some("t.example.com")), &b));
        assert!(Arc::ptr_eq(&got(Some("T.Example.COM.")), &b));
        // one label under the wildcard: the wildcard of the first subdirectory that has it
        assert!(Arc::ptr_eq(&got(Some("x.example.com")), &a));
        // the wildcard covers neither the parent nor two labels
        assert!(Arc::ptr_eq(&got(Some("example.com")), &c));
        assert!(Arc::ptr_eq(&got(Some("a.x.example.com")), &d));
        // no SNI, or a name nobody covers: the first subdirectory
        assert!(Arc::ptr_eq(&got(Some("other.test")), &d));
        assert!(Arc::ptr_eq(&got(None), &d));
        assert!(Arc::ptr_eq(&got(Some("default.test")), &d));
    }
}
