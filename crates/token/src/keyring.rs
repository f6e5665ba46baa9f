//! Keys, keyrings, signing and verification.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::b64;
use crate::codec::{self, MAC_CONTEXT, MIN_BODY_LEN, TAG_LEN, VERSION};
use crate::{
    validate_destination, Claims, ClaimsRef, TokenError, TokenKind, MAX_ID_LEN, MAX_KEY_ID_LEN,
    MAX_TOKEN_LEN, MAX_URL_LEN,
};

type HmacSha256 = Hmac<Sha256>;

/// Decoded tokens up to this many bytes are decoded on the stack (covers every open token and
/// click tokens with URLs up to roughly 600 bytes); longer ones use a heap buffer.
const STACK_DECODE_LEN: usize = 768;

fn is_key_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn key_id_ok(id: &[u8]) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len()) && id.iter().all(|&b| is_key_id_byte(b))
}

/// One HMAC-SHA256 key under an id. `Debug` shows the id only, never the secret.
#[derive(Clone)]
pub struct Key {
    id: String,
    secret: Vec<u8>,
    /// HMAC state already keyed and fed [`MAC_CONTEXT`]; cloned per sign/verify.
    mac: HmacSha256,
}

impl Key {
    /// Shortest accepted secret, in bytes.
    pub const MIN_SECRET_LEN: usize = 32;
    /// Longest accepted secret, in bytes.
    pub const MAX_SECRET_LEN: usize = 1024;

    /// A key from its id (1..=16 characters of `[A-Za-z0-9_-]`) and secret (32..=1024 bytes).
    pub fn new(id: &str, secret: &[u8]) -> Result<Key, TokenError> {
        if !key_id_ok(id.as_bytes()) {
            return Err(TokenError::InvalidKey(
                "key id must be 1 to 16 characters of [A-Za-z0-9_-]".to_owned(),
            ));
        }
        if secret.len() < Self::MIN_SECRET_LEN || secret.len() > Self::MAX_SECRET_LEN {
            return Err(TokenError::InvalidKey(format!(
                "key {id:?}: secret is {} bytes, must be {} to {} bytes",
                secret.len(),
                Self::MIN_SECRET_LEN,
                Self::MAX_SECRET_LEN
            )));
        }
        let mut mac = HmacSha256::new_from_slice(secret)
            .map_err(|_| TokenError::InvalidKey(format!("key {id:?}: unusable secret")))?;
        mac.update(MAC_CONTEXT);
        Ok(Key {
            id: id.to_owned(),
            secret: secret.to_vec(),
            mac,
        })
    }

    /// A key with a fresh random 32-byte secret (thread-local CSPRNG seeded from the OS).
    pub fn generate(id: &str) -> Result<Key, TokenError> {
        let secret: [u8; 32] = rand::random();
        Key::new(id, &secret)
    }

    /// The key id, as written into tokens.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends the truncated tag of `buf` (the whole payload so far) to `buf`.
    pub(crate) fn append_tag(&self, buf: &mut Vec<u8>) {
        let mut mac = self.mac.clone();
        mac.update(buf);
        let tag = mac.finalize().into_bytes();
        buf.extend_from_slice(&tag[..TAG_LEN]);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A successfully verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<'k> {
    /// The signed claims.
    pub claims: Claims,
    /// The id of the key whose tag matched (for audits of rotation).
    pub key_id: &'k str,
}

/// A verified token, borrowed: what [`KeyStore::verify_then`] hands its closure. The claims
/// borrow the decoded token, which lives on the stack for the closure's duration.
#[derive(Clone, Copy, Debug)]
pub struct VerifiedRef<'k, 'd> {
    /// The signed claims.
    pub claims: ClaimsRef<'d>,
    /// The id of the key whose tag matched.
    pub key_id: &'k str,
}

impl<'k> VerifiedRef<'k, '_> {
    /// The owned form, claims copied out of the decoded token.
    pub fn to_owned(&self) -> Verified<'k> {
        Verified {
            claims: self.claims.to_owned(),
            key_id: self.key_id,
        }
    }
}

/// One signing key and any number of verify-only keys. Cheap to clone (shared, immutable).
#[derive(Clone)]
pub struct Keyring {
    /// `keys[0]` signs; all verify. Never empty, ids unique.
    keys: Arc<[Key]>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("signing", &self.signing_key_id())
            .field(
                "verify_only",
                &self.keys[1..].iter().map(Key::id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// A keyring that signs with `signing` and verifies with it and every key of `verify_only`.
    /// Key ids must be distinct.
    pub fn new(signing: Key, verify_only: Vec<Key>) -> Result<Keyring, TokenError> {
        let mut keys = Vec::with_capacity(1 + verify_only.len());
        keys.push(signing);
        keys.extend(verify_only);
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.id == k.id) {
                return Err(TokenError::InvalidKey(format!(
                    "duplicate key id {:?} in keyring",
                    k.id
                )));
            }
        }
        Ok(Keyring { keys: keys.into() })
    }

    /// The id of the key that signs.
    pub fn signing_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// All key ids, the signing key's first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(Key::id)
    }

    /// Signs `claims` with the signing key, after checking them: ids at most
    /// [`MAX_ID_LEN`] bytes, opens without `link_id`/`url`/`honeypot`, clicks with a destination
    /// that passes [`validate_destination`] (and at most [`MAX_URL_LEN`] bytes).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        check_claims(claims)?;
        Ok(self.seal(&self.keys[0], claims))
    }

    /// Encodes and tags without any validation. Tests use it to forge validly signed tokens
    /// that `sign` would refuse.
    pub(crate) fn seal(&self, key: &Key, claims: &Claims) -> String {
        let mut buf = Vec::with_capacity(2 + key.id.len() + codec::body_len_hint(claims) + TAG_LEN);
        buf.push(VERSION);
        buf.push(key.id.len() as u8);
        buf.extend_from_slice(key.id.as_bytes());
        codec::encode_body(&mut buf, claims);
        key.append_tag(&mut buf);
        URL_SAFE_NO_PAD.encode(&buf)
    }

    /// The signing key (tests forge raw payloads with it).
    #[cfg(test)]
    pub(crate) fn signing_key(&self) -> &Key {
        &self.keys[0]
    }

    /// Verifies `token` (the text between `/o/` and `.gif`, or after `/c/`) and returns its
    /// claims and the id of the key that verified it. Never panics; rejects tokens longer than
    /// [`MAX_TOKEN_LEN`] before decoding. A click's destination is validated again.
    pub fn verify<'k>(&'k self, token: &str) -> Result<Verified<'k>, TokenError> {
        self.verify_then(token, |v| v.to_owned())
    }

    /// [`Keyring::verify`] without an allocation: the verified claims, borrowed from the
    /// decoded token, go to `f`, whose result is returned.
    pub fn verify_then<'k, T>(
        &'k self,
        token: &str,
        f: impl FnOnce(VerifiedRef<'k, '_>) -> T,
    ) -> Result<T, TokenError> {
        with_decoded(token, |data| {
            let (kid, _) = split_header(data)?;
            self.verify_with(kid, data).map(f)
        })
    }

    /// The tag check and body decoding of `data` (a decoded token whose header
    /// [`split_header`] accepted, key id `kid`), with this keyring's key of that id.
    fn verify_with<'k, 'd>(
        &'k self,
        kid: &[u8],
        data: &'d [u8],
    ) -> Result<VerifiedRef<'k, 'd>, TokenError> {
        let (key, body) = self.authenticate(kid, data)?;
        let claims = codec::decode_body(body)?;
        if claims.kind == TokenKind::Click {
            validate_destination(claims.url)?;
        }
        Ok(VerifiedRef {
            claims,
            key_id: &key.id,
        })
    }

    /// The tag check alone: the key of id `kid` and the body of `data` (a decoded token whose
    /// header [`split_header`] accepted) when its tag is right. The body is not judged here.
    pub(crate) fn authenticate<'k, 'd>(
        &'k self,
        kid: &[u8],
        data: &'d [u8],
    ) -> Result<(&'k Key, &'d [u8]), TokenError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_bytes() == kid)
            .ok_or_else(|| unknown_key(kid))?;
        let signed_len = data.len() - TAG_LEN;
        let (signed, tag) = data.split_at(signed_len);
        let mut mac = key.mac.clone();
        mac.update(signed);
        // Constant-time comparison of the first TAG_LEN bytes.
        mac.verify_truncated_left(tag)
            .map_err(|_| TokenError::BadSignature)?;
        Ok((key, &signed[2 + kid.len()..]))
    }

    /// Header, `body` and tag under the signing key, base64url: a token of any kind whose body
    /// the caller encoded (the web hand-off token, `web.rs`).
    pub(crate) fn seal_body(&self, body: &[u8]) -> String {
        let key = &self.keys[0];
        let mut buf = Vec::with_capacity(2 + key.id.len() + body.len() + TAG_LEN);
        buf.push(VERSION);
        buf.push(key.id.len() as u8);
        buf.extend_from_slice(key.id.as_bytes());
        buf.extend_from_slice(body);
        key.append_tag(&mut buf);
        URL_SAFE_NO_PAD.encode(&buf)
    }

    /// Parses a keyring spec: comma-separated `KEY_ID:BASE64URL_SECRET` entries (padding
    /// optional, whitespace around entries ignored). The first entry signs, the rest verify.
    /// Tenant-scoped entries (`TENANT/KEY_ID:SECRET`) are refused: they belong in a
    /// [`KeyStore`]. Error messages never include a secret.
    pub fn from_spec(spec: &str) -> Result<Keyring, TokenError> {
        let mut keys = Vec::new();
        for (n, tenant, key) in parse_spec(spec)? {
            if tenant.is_some() {
                return Err(TokenError::InvalidSpec(format!(
                    "entry {n}: a tenant's key (TENANT/KEY_ID:SECRET) where a keyring of \
                     KEY_ID:SECRET entries is expected"
                )));
            }
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        let signing = keys.next().expect("parse_spec returns at least one entry");
        Keyring::new(signing, keys.collect())
    }

    /// The spec string [`Keyring::from_spec`] reads back: `"k2:SECRET,k1:SECRET"`, signing key
    /// first. It contains the secrets: treat it as one.
    pub fn to_spec(&self) -> String {
        let mut out = String::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&k.id);
            out.push(':');
            URL_SAFE_NO_PAD.encode_string(&k.secret, &mut out);
        }
        out
    }

    /// Development keyring file: one spec line. Loads it if `path` exists (returning
    /// `created == false`); otherwise generates a keyring with one random key `dev1`, writes it
    /// (mode 0600 on unix, parent directories created, atomically: a concurrent creator wins and
    /// its keys are loaded) and returns `created == true`. Not for production keys.
    pub fn load_or_create_dev(path: &Path) -> Result<(Keyring, bool), TokenError> {
        match fs::read_to_string(path) {
            Ok(s) => return Ok((Keyring::from_spec(&s)?, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let keyring = Keyring::new(Key::generate("dev1")?, Vec::new())?;
        let tmp = tmp_path(path);
        let _ = fs::remove_file(&tmp); // a stale leftover keeps its old mode otherwise
        write_private(&tmp, format!("{}\n", keyring.to_spec()).as_bytes())?;
        // hard_link fails if `path` appeared meanwhile, so a racing creator's file is kept.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok((keyring, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let s = fs::read_to_string(path)?;
                Ok((Keyring::from_spec(&s)?, false))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Decodes the base64url text of a token into a buffer (on the stack when it fits) and hands
/// the bytes to `f`. Tokens over [`MAX_TOKEN_LEN`] characters are refused before decoding.
fn with_decoded<T>(
    token: &str,
    f: impl FnOnce(&[u8]) -> Result<T, TokenError>,
) -> Result<T, TokenError> {
    let t = token.as_bytes();
    if t.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong {
            len: t.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let not_b64 = || TokenError::Malformed("not base64url");
    let len = b64::decoded_len(t.len()).ok_or_else(not_b64)?;
    if len <= STACK_DECODE_LEN {
        let mut buf = [0u8; STACK_DECODE_LEN];
        let n = b64::decode(t, &mut buf).ok_or_else(not_b64)?;
        f(buf.get(..n).unwrap_or_default())
    } else {
        let mut buf = vec![0u8; len];
        let n = b64::decode(t, &mut buf).ok_or_else(not_b64)?;
        f(buf.get(..n).unwrap_or_default())
    }
}

/// The checks on a decoded token before any key is used (docs/token-v1.md, verification steps
/// 3 to 6): version, key id length and bytes, room for the smallest body and the tag. Returns
/// the key id and the body (between the key id and the tag).
fn split_header(data: &[u8]) -> Result<(&[u8], &[u8]), TokenError> {
    let malformed = TokenError::Malformed;
    let (&version, rest) = data.split_first().ok_or_else(|| malformed("empty"))?;
    if version != VERSION {
        return Err(TokenError::UnsupportedVersion(version));
    }
    let (&kid_len, rest) = rest.split_first().ok_or_else(|| malformed("truncated"))?;
    let kid_len = usize::from(kid_len);
    if kid_len == 0 || kid_len > MAX_KEY_ID_LEN {
        return Err(malformed("bad key id length"));
    }
    if rest.len() < kid_len + MIN_BODY_LEN + TAG_LEN {
        return Err(malformed("truncated"));
    }
    let (kid, rest) = rest.split_at(kid_len);
    if !key_id_ok(kid) {
        return Err(malformed("bad key id"));
    }
    Ok((kid, &rest[..rest.len() - TAG_LEN]))
}

fn unknown_key(kid: &[u8]) -> TokenError {
    // Safe to quote: split_header checked the bytes are [A-Za-z0-9_-].
    TokenError::UnknownKey(String::from_utf8_lossy(kid).into_owned())
}

/// One entry of a key spec: its number (from 1), its tenant, its key.
type SpecEntry<'a> = (usize, Option<&'a str>, Key);

/// The entries of a key spec, numbered from 1, each with its tenant (`TENANT/KEY_ID:SECRET`)
/// or `None` (`KEY_ID:SECRET`). Never empty. Error messages never include a secret.
fn parse_spec(spec: &str) -> Result<Vec<SpecEntry<'_>>, TokenError> {
    if spec.trim().is_empty() {
        return Err(TokenError::InvalidSpec("empty".to_owned()));
    }
    let mut out = Vec::new();
    for (i, entry) in spec.split(',').enumerate() {
        let n = i + 1;
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(TokenError::InvalidSpec(format!("entry {n} is empty")));
        }
        let Some((name, secret)) = entry.split_once(':') else {
            return Err(TokenError::InvalidSpec(format!(
                "entry {n}: expected KEY_ID:BASE64URL_SECRET or TENANT/KEY_ID:BASE64URL_SECRET"
            )));
        };
        let (tenant, id) = match name.split_once('/') {
            Some((tenant, id)) => (Some(tenant.trim()), id.trim()),
            None => (None, name.trim()),
        };
        if let Some(t) = tenant {
            if t.is_empty() || t.len() > MAX_ID_LEN || t.chars().any(char::is_control) {
                return Err(TokenError::InvalidSpec(format!(
                    "entry {n}: the tenant id must be 1 to {MAX_ID_LEN} bytes without control \
                     characters"
                )));
            }
        }
        if !key_id_ok(id.as_bytes()) {
            return Err(TokenError::InvalidSpec(format!(
                "entry {n}: key id must be 1 to 16 characters of [A-Za-z0-9_-]"
            )));
        }
        let secret = URL_SAFE_NO_PAD
            .decode(secret.trim().trim_end_matches('='))
            .map_err(|_| {
                TokenError::InvalidSpec(format!(
                    "entry {n} (key {id:?}): secret is not valid base64url"
                ))
            })?;
        out.push((n, tenant, Key::new(id, &secret)?));
    }
    Ok(out)
}

/// Keys scoped to tenants, beside an optional global keyring (docs/token-v1.md, section 6):
/// a tenant with keys of its own signs and verifies only with them, so a sender holding one
/// tenant's secret can mint nothing for another tenant, and a key id means a different key in
/// each tenant; a tenant without keys of its own uses the global keyring, and with no global
/// keyring its tokens are refused (`unknown_key`). Cheap to clone (shared, immutable): replace
/// the whole store to rotate.
///
/// Written as a spec like a [`Keyring`]'s, whose entries may be scoped to a tenant:
/// `TENANT/KEY_ID:SECRET`. Per tenant, and for the unscoped entries, the first entry signs.
///
/// ```
/// use openclick_token::KeyStore;
/// // Two tenants, each with its own key "k1" (32-byte secrets in base64url).
/// let (a, b) = ("A".repeat(43), format!("{}A", "B".repeat(42)));
/// let store = KeyStore::from_spec(&format!("acme/k1:{a}, globex/k1:{b}"))?;
/// assert_eq!(store.keyring_for("acme").unwrap().signing_key_id(), "k1");
/// assert!(store.keyring_for("initech").is_none()); // no global keyring
/// # Ok::<(), openclick_token::TokenError>(())
/// ```
#[derive(Clone)]
pub struct KeyStore {
    global: Option<Keyring>,
    tenants: Arc<HashMap<Box<str>, Keyring>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("global", &self.global)
            .field("tenants", &self.tenants.len())
            .finish()
    }
}

impl From<Keyring> for KeyStore {
    fn from(keyring: Keyring) -> KeyStore {
        KeyStore::global(keyring)
    }
}

impl KeyStore {
    /// One keyring for every tenant (single-tenant use).
    pub fn global(keyring: Keyring) -> KeyStore {
        KeyStore {
            global: Some(keyring),
            tenants: Arc::default(),
        }
    }

    /// A global keyring (or none) and keyrings of tenants. At least one keyring.
    pub fn new(
        global: Option<Keyring>,
        tenants: impl IntoIterator<Item = (String, Keyring)>,
    ) -> Result<KeyStore, TokenError> {
        let mut map = HashMap::new();
        for (tenant, keyring) in tenants {
            if map.insert(tenant.into_boxed_str(), keyring).is_some() {
                return Err(TokenError::InvalidKey(
                    "a tenant is given two keyrings".to_owned(),
                ));
            }
        }
        if global.is_none() && map.is_empty() {
            return Err(TokenError::InvalidSpec("no keys".to_owned()));
        }
        Ok(KeyStore {
            global,
            tenants: Arc::new(map),
        })
    }

    /// Parses a spec of `KEY_ID:SECRET` (global) and `TENANT/KEY_ID:SECRET` entries, separated
    /// by commas. Within a tenant, and among the global entries, the first signs and ids must
    /// be distinct; the same id in two tenants names two different keys.
    pub fn from_spec(spec: &str) -> Result<KeyStore, TokenError> {
        let mut global: Vec<Key> = Vec::new();
        let mut tenants: Vec<(&str, Vec<Key>)> = Vec::new();
        for (_, tenant, key) in parse_spec(spec)? {
            match tenant {
                None => global.push(key),
                Some(t) => match tenants.iter_mut().find(|(name, _)| *name == t) {
                    Some((_, keys)) => keys.push(key),
                    None => tenants.push((t, vec![key])),
                },
            }
        }
        let ring = |keys: Vec<Key>| -> Result<Option<Keyring>, TokenError> {
            let mut keys = keys.into_iter();
            match keys.next() {
                Some(signing) => Keyring::new(signing, keys.collect()).map(Some),
                None => Ok(None),
            }
        };
        let global = ring(global)?;
        let mut scoped = Vec::with_capacity(tenants.len());
        for (t, keys) in tenants {
            let keyring = ring(keys)
                .map_err(|e| TokenError::InvalidSpec(format!("tenant {t:?}: {e}")))?
                .expect("a listed tenant has a key");
            scoped.push((t.to_owned(), keyring));
        }
        KeyStore::new(global, scoped)
    }

    /// The keyring that signs and verifies for `tenant_id`: its own, else the global one.
    pub fn keyring_for(&self, tenant_id: &str) -> Option<&Keyring> {
        self.tenants.get(tenant_id).or(self.global.as_ref())
    }

    /// The global keyring, if any.
    pub fn global_keyring(&self) -> Option<&Keyring> {
        self.global.as_ref()
    }

    /// How many tenants have keys of their own.
    pub fn tenant_count(&self) -> usize {
        self.tenants.len()
    }

    /// The tenants with keys of their own and their keyrings, in no particular order.
    pub fn tenants(&self) -> impl Iterator<Item = (&str, &Keyring)> {
        self.tenants.iter().map(|(t, k)| (&**t, k))
    }

    /// Signs `claims` with the signing key of the claims' tenant ([`KeyStore::keyring_for`]);
    /// [`TokenError::NoTenantKey`] when there is none.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        self.keyring_for(&claims.tenant_id)
            .ok_or(TokenError::NoTenantKey)?
            .sign(claims)
    }

    /// Verifies `token` with the keys of the tenant it names, as [`Keyring::verify`] does with
    /// one keyring. With tenant keys configured, the tenant id is read before the tag is
    /// checked (a body too broken to give one is `malformed`), and a key id the tenant's
    /// keyring lacks is `unknown_key` even if another tenant has a key of that id.
    pub fn verify<'k>(&'k self, token: &str) -> Result<Verified<'k>, TokenError> {
        self.verify_then(token, |v| v.to_owned())
    }

    /// [`KeyStore::verify`] without an allocation: the verified claims, borrowed from the
    /// decoded token (on the stack), go to `f`, whose result is returned. The hot path's form.
    pub fn verify_then<'k, T>(
        &'k self,
        token: &str,
        f: impl FnOnce(VerifiedRef<'k, '_>) -> T,
    ) -> Result<T, TokenError> {
        with_decoded(token, |data| {
            let (kid, keyring) = self.keyring_of(data)?;
            keyring.verify_with(kid, data).map(f)
        })
    }

    /// The key id and the keyring that must verify `data` (a decoded token): the header
    /// checks, then the keys of the tenant the body names (or the global keyring).
    fn keyring_of<'d>(&self, data: &'d [u8]) -> Result<(&'d [u8], &Keyring), TokenError> {
        let (kid, body) = split_header(data)?;
        let keyring = if self.tenants.is_empty() {
            self.global.as_ref()
        } else {
            self.keyring_for(codec::peek_tenant(body)?)
        };
        Ok((kid, keyring.ok_or_else(|| unknown_key(kid))?))
    }

    /// Decodes `token`, checks its header and tag with the keys of its tenant exactly as
    /// [`KeyStore::verify`] does, and hands the authenticated body and the key id to `f`
    /// (which judges the body: the web hand-off token, `web.rs`).
    pub(crate) fn open_body<T>(
        &self,
        token: &str,
        f: impl FnOnce(&[u8], &str) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        with_decoded(token, |data| {
            let (kid, keyring) = self.keyring_of(data)?;
            let (key, body) = keyring.authenticate(kid, data)?;
            f(body, key.id())
        })
    }
}

fn check_claims(c: &Claims) -> Result<(), TokenError> {
    for (field, value) in [
        ("tenant_id", &c.tenant_id),
        ("campaign_id", &c.campaign_id),
        ("message_id", &c.message_id),
        ("contact_id", &c.contact_id),
        ("link_id", &c.link_id),
        ("list_id", &c.list_id),
    ] {
        if value.len() > MAX_ID_LEN {
            return Err(TokenError::FieldTooLong {
                field,
                len: value.len(),
                max: MAX_ID_LEN,
            });
        }
    }
    match c.kind {
        TokenKind::Open => {
            if !c.link_id.is_empty() || !c.url.is_empty() {
                return Err(TokenError::InvalidClaims(
                    "open tokens carry no link_id or url",
                ));
            }
            if c.honeypot {
                return Err(TokenError::InvalidClaims(
                    "honeypot is a click flag; open tokens carry no flags",
                ));
            }
            if !c.list_id.is_empty() || c.undo {
                return Err(TokenError::InvalidClaims(
                    "list_id and undo belong to unsubscribe tokens",
                ));
            }
        }
        TokenKind::Unsubscribe => {
            if !c.link_id.is_empty() || !c.url.is_empty() || c.honeypot {
                return Err(TokenError::InvalidClaims(
                    "unsubscribe tokens carry no link_id, url or honeypot",
                ));
            }
        }
        TokenKind::Click => {
            if !c.list_id.is_empty() || c.undo {
                return Err(TokenError::InvalidClaims(
                    "list_id and undo belong to unsubscribe tokens",
                ));
            }
            if c.url.len() > MAX_URL_LEN {
                return Err(TokenError::FieldTooLong {
                    field: "url",
                    len: c.url.len(),
                    max: MAX_URL_LEN,
                });
            }
            validate_destination(&c.url)?;
        }
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}
