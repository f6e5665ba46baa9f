//! The traffic mix: which hits a run sends, pre-built as raw HTTP/1.1 requests.
//!
//! Each request in the pool has an index `i`; its token carries `message_id = lt-{run}-{i}`, so
//! every event on the topic names the request that caused it. The pool is built before the clock
//! starts (signing is not part of what is measured) and cycled when a run sends more requests
//! than the pool holds; the check then expects each index as often as it was answered.

use openclick_token::{Channel, Claims, Keyring, TokenKind};

/// What a request is and what it must cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Valid open token, contact not suppressed: one open event.
    OpenTracked,
    /// Valid open token of a suppressed contact: pixel, no event.
    OpenSuppressed,
    /// Tampered open token: pixel, no event.
    OpenInvalid,
    /// Valid click token: 302, one click event.
    ClickTracked,
    /// Valid click token of a suppressed contact: 302, no event.
    ClickSuppressed,
    /// Tampered click token: 404, no event.
    ClickInvalid,
}

impl Kind {
    /// Every kind, in `repr` order.
    pub const ALL: [Kind; 6] = [
        Kind::OpenTracked,
        Kind::OpenSuppressed,
        Kind::OpenInvalid,
        Kind::ClickTracked,
        Kind::ClickSuppressed,
        Kind::ClickInvalid,
    ];

    /// The status the edge must answer with.
    pub fn expected_status(self) -> u16 {
        match self {
            Kind::OpenTracked | Kind::OpenSuppressed | Kind::OpenInvalid => 200,
            Kind::ClickTracked | Kind::ClickSuppressed => 302,
            Kind::ClickInvalid => 404,
        }
    }

    /// Whether the hit must produce an event.
    pub fn tracked(self) -> bool {
        matches!(self, Kind::OpenTracked | Kind::ClickTracked)
    }

    /// Whether it is a click.
    pub fn is_click(self) -> bool {
        matches!(
            self,
            Kind::ClickTracked | Kind::ClickSuppressed | Kind::ClickInvalid
        )
    }

    /// Short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::OpenTracked => "open tracked",
            Kind::OpenSuppressed => "open suppressed",
            Kind::OpenInvalid => "open invalid token",
            Kind::ClickTracked => "click tracked",
            Kind::ClickSuppressed => "click suppressed",
            Kind::ClickInvalid => "click invalid token",
        }
    }
}

/// User agents weighted roughly by the share of opens each kind of reader produces (Apple Mail
/// with Mail Privacy Protection and Gmail's image proxy dominate; security scanners fetch every
/// link and pixel in a share of business mail).
pub const USER_AGENTS: &[(u32, &str)] = &[
    // Apple Mail / MPP prefetch (fetched from Apple's relay ranges, no real reader)
    (30, "Mozilla/5.0"),
    (8, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"),
    (5, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"),
    // Gmail image proxy
    (25, "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"),
    // Yahoo / AOL image proxy
    (3, "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"),
    // Outlook desktop and Outlook on the web / mobile
    (8, "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)"),
    (4, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"),
    (2, "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"),
    (2, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    (2, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"),
    (1, "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"),
    // Security scanners and link checkers
    (3, "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.101 Safari/537.36 Barracuda"),
    (2, "python-requests/2.31.0"),
    (2, "Go-http-client/1.1"),
    (1, "Mozilla/5.0 (compatible; proofpoint-urldefense/1.0)"),
    (1, "curl/8.5.0"),
];

/// Client addresses across countries, IPv4 and IPv6 (only sent when the edge trusts the loader
/// as a proxy: `--xff` here, `--trusted-proxies 127.0.0.1/32` on `openclick serve`).
pub const IPV4: &[&str] = &[
    "81.2.69.142",  // GB
    "46.114.23.17", // DE
    "90.84.14.200", // FR
    "73.162.1.9",   // US
    "17.58.63.12",  // Apple (MPP relay)
    "66.249.84.33", // Google (image proxy)
    "177.43.21.8",  // BR
    "49.36.12.77",  // IN
    "126.45.2.201", // JP
    "1.128.4.5",    // AU
    "196.25.1.10",  // ZA
    "187.190.8.44", // MX
];

/// IPv6 client addresses.
pub const IPV6: &[&str] = &[
    "2a02:908:1a2:3b40::17",  // DE
    "2a01:cb00:8a1:2c00::5",  // FR
    "2600:1700:6c1:3f80::2",  // US
    "2001:4860:4801:32::1b",  // Google
    "2a01:4b00:8f3:7700::9",  // GB
    "2400:4051:a2e0:1100::3", // JP
    "2804:14c:65a1:4000::a",  // BR
];

/// How the mix is drawn.
#[derive(Clone, Debug)]
pub struct MixConfig {
    /// Share of opens (the rest are clicks).
    pub open_share: f64,
    /// Share of hits from suppressed contacts.
    pub suppressed_share: f64,
    /// Share of hits with a tampered token.
    pub invalid_share: f64,
    /// Share of IPv6 clients (with `xff`).
    pub ipv6_share: f64,
    /// Send `X-Forwarded-For`.
    pub xff: bool,
    /// Tenant id of every token.
    pub tenant: String,
    /// Suppressed contacts are `s-0 .. s-{suppressed_pool}` (see `suppression`).
    pub suppressed_pool: u32,
    /// `Host` header.
    pub host: String,
    /// Seed of the draw.
    pub seed: u64,
}

/// The pre-built requests of a run.
pub struct Pool {
    bytes: Vec<u8>,
    ends: Vec<u32>,
    kinds: Vec<Kind>,
}

impl Pool {
    /// Number of distinct requests.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// The raw bytes of request `i`.
    #[inline]
    pub fn request(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// What request `i` is.
    #[inline]
    pub fn kind(&self, i: usize) -> Kind {
        self.kinds[i]
    }

    /// Request `i`'s message id.
    pub fn message_id(run: &str, i: usize) -> String {
        format!("lt-{run}-{i}")
    }
}

/// splitmix64: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn weighted<'a>(rng: &mut Rng, table: &[(u32, &'a str)]) -> &'a str {
    let total: u32 = table.iter().map(|(w, _)| w).sum();
    let mut r = rng.below(total as u64) as u32;
    for (w, v) in table {
        if r < *w {
            return v;
        }
        r -= w;
    }
    table[0].1
}

/// Replaces one character of the token's signature part with another base64url character: the
/// token still routes, but no longer verifies.
fn tamper(token: &str, rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut b = token.as_bytes().to_vec();
    let n = b.len();
    let at = n - 1 - (rng.below(8.min(n as u64 - 1)) as usize);
    let old = b[at];
    let mut new = ALPHABET[rng.below(64) as usize];
    if new == old {
        new = if old == b'A' { b'B' } else { b'A' };
    }
    b[at] = new;
    String::from_utf8(b).expect("base64url is ascii")
}

/// Builds `n` requests for run `run`.
pub fn build(keyring: &Keyring, run: &str, n: usize, cfg: &MixConfig) -> anyhow::Result<Pool> {
    let mut rng = Rng::new(cfg.seed);
    let now = openclick_common::now_ms();
    let mut pool = Pool {
        bytes: Vec::with_capacity(n * 420),
        ends: Vec::with_capacity(n),
        kinds: Vec::with_capacity(n),
    };
    for i in 0..n {
        let click = rng.unit() >= cfg.open_share;
        let r = rng.unit();
        let (suppressed, invalid) = if r < cfg.invalid_share {
            (false, true)
        } else if r < cfg.invalid_share + cfg.suppressed_share {
            (true, false)
        } else {
            (false, false)
        };
        let kind = match (click, suppressed, invalid) {
            (false, false, false) => Kind::OpenTracked,
            (false, true, _) => Kind::OpenSuppressed,
            (false, false, true) => Kind::OpenInvalid,
            (true, false, false) => Kind::ClickTracked,
            (true, true, _) => Kind::ClickSuppressed,
            (true, false, true) => Kind::ClickInvalid,
        };
        let contact_id = if suppressed {
            format!("s-{}", rng.below(cfg.suppressed_pool.max(1) as u64))
        } else {
            format!("c-{}", rng.below(5_000_000))
        };
        let link = rng.below(6);
        let claims = Claims {
            kind: if click {
                TokenKind::Click
            } else {
                TokenKind::Open
            },
            tenant_id: cfg.tenant.clone(),
            campaign_id: format!("spring-{}", i % 16),
            message_id: Pool::message_id(run, i),
            contact_id,
            channel: Channel::Email,
            // Sent between a minute and a week ago: never "too fast".
            issued_at_ms: now - 60_000 - rng.below(7 * 86_400_000) as i64,
            link_id: if click {
                format!("link-{link}")
            } else {
                String::new()
            },
            url: if click {
                format!(
                    "https://shop.example.com/p/{}?utm_source=email&utm_campaign=spring&l={link}",
                    i % 997
                )
            } else {
                String::new()
            },
            honeypot: false,
            list_id: String::new(),
            undo: false,
        };
        let mut token = keyring.sign(&claims)?;
        if invalid {
            token = tamper(&token, &mut rng);
            anyhow::ensure!(keyring.verify(&token).is_err(), "tampered token verified");
        }
        let ua = weighted(&mut rng, USER_AGENTS);
        let b = &mut pool.bytes;
        b.extend_from_slice(b"GET ");
        b.extend_from_slice(if click { b"/c/" } else { b"/o/" });
        b.extend_from_slice(token.as_bytes());
        if !click {
            b.extend_from_slice(b".gif");
        }
        b.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        b.extend_from_slice(cfg.host.as_bytes());
        b.extend_from_slice(b"\r\nUser-Agent: ");
        b.extend_from_slice(ua.as_bytes());
        b.extend_from_slice(if click {
            b"\r\nAccept: text/html,*/*;q=0.8".as_slice()
        } else {
            b"\r\nAccept: image/avif,image/webp,image/*,*/*;q=0.8".as_slice()
        });
        if cfg.xff {
            let ip = if rng.unit() < cfg.ipv6_share {
                IPV6[rng.below(IPV6.len() as u64) as usize]
            } else {
                IPV4[rng.below(IPV4.len() as u64) as usize]
            };
            b.extend_from_slice(b"\r\nX-Forwarded-For: ");
            b.extend_from_slice(ip.as_bytes());
        }
        b.extend_from_slice(b"\r\n\r\n");
        pool.ends.push(u32::try_from(b.len())?);
        pool.kinds.push(kind);
    }
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openclick_token::Key;

    fn cfg() -> MixConfig {
        MixConfig {
            open_share: 0.7,
            suppressed_share: 0.05,
            invalid_share: 0.03,
            ipv6_share: 0.3,
            xff: true,
            tenant: "lt".into(),
            suppressed_pool: 100,
            host: "127.0.0.1:8080".into(),
            seed: 7,
        }
    }

    #[test]
    fn mix_shares_and_tokens() {
        let kr = Keyring::new(Key::new("k1", &[7u8; 32]).unwrap(), vec![]).unwrap();
        let pool = build(&kr, "r1", 4000, &cfg()).unwrap();
        assert_eq!(pool.len(), 4000);
        let mut counts = [0usize; 6];
        for i in 0..pool.len() {
            counts[pool.kind(i) as usize] += 1;
            let req = std::str::from_utf8(pool.request(i)).unwrap();
            assert!(req.starts_with("GET /"), "{req}");
            assert!(req.ends_with("\r\n\r\n"));
            let path = req.split(' ').nth(1).unwrap();
            let token = path[3..].trim_end_matches(".gif");
            let ok = kr.verify(token).is_ok();
            let k = pool.kind(i);
            assert_eq!(
                ok,
                !matches!(k, Kind::OpenInvalid | Kind::ClickInvalid),
                "{k:?}"
            );
        }
        let opens = counts[0] + counts[1] + counts[2];
        assert!((2600..3000).contains(&opens), "{counts:?}");
        let invalid = counts[2] + counts[5];
        assert!((60..200).contains(&invalid), "{counts:?}");
        let suppressed = counts[1] + counts[4];
        assert!((120..300).contains(&suppressed), "{counts:?}");
    }
}
