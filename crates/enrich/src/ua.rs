//! User-agent classification: woothee for the browser, the rule tables for email clients, image
//! proxies and bots, the device category, and the OS with its version read from the agent's own
//! tokens under the canonical names of [`os`] (woothee's OS answer only as a mapped fallback).
//! The result depends on the user agent alone, so it is cached by the raw string: the OS work
//! runs on a cache miss only, and a hit clones the same strings as before.
//!
//! Cost of a cache miss: every token of the rule tables and of the device category is found by
//! **one** overlapping Aho-Corasick pass (a DFA, matched ASCII case-insensitively; tokens that
//! must match case-sensitively are confirmed on the matched bytes). woothee, most of the
//! remaining cost, is skipped when the agent is an image proxy or Apple's bare `Mozilla/5.0`,
//! whose browser and OS are not reported anyway.

use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use openclick_events::v1::{BotReason, Client, DeviceCategory, ImageProxy};

use crate::rules::{Cond, BOT_RULES, EMAIL_CLIENT_RULES, PROXY_RULES};

/// `Client.user_agent` keeps at most this many bytes of the raw header.
pub const MAX_UA_BYTES: usize = 512;

/// Only this many leading bytes of a user agent are classified (bounds the work an absurd header
/// can cause; no real user agent is longer).
pub const MAX_CLASSIFIED_UA_BYTES: usize = 2048;

/// User agents longer than this are classified but not cached (bounds the cache's memory).
pub const MAX_CACHED_UA_BYTES: usize = 1024;

/// Everything derived from the user agent alone.
#[derive(Debug, Clone, PartialEq)]
pub struct UaInfo {
    /// The `Client` message, ready to clone into an event.
    pub client: Client,
    /// Image proxy recognised from the user agent (`NONE` if none).
    pub proxy: ImageProxy,
    /// Bot reasons derived from the user agent, as a bit set indexed by `BotReason as i32`.
    pub bot_reasons: u32,
    /// The user agent is exactly `Mozilla/5.0` (how Apple's Mail Privacy Protection proxy
    /// identifies itself).
    pub bare_mozilla: bool,
}

impl UaInfo {
    /// Whether the user agent was classified as the Apple Mail client.
    pub fn is_apple_mail(&self) -> bool {
        self.client.email_client == "Apple Mail"
    }
}

pub(crate) fn reason_bit(r: BotReason) -> u32 {
    1u32 << (r as i32 as u32)
}

/// Truncates `s` to at most `max` bytes, on a char boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Case-sensitive tokens the device category looks for, found by the same automaton pass as the
/// rule tables (one scan of the user agent instead of a `contains` per token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Dt {
    IPad,
    ProdIpad,
    Kindle,
    Silk,
    TabletParen,
    Android,
    Mobile,
    AppleWebKit,
    IPhone,
    IPod,
    ProdIphone,
    WindowsPhone,
    IosParen,
    AppleEws,
    Darwin,
    X86_64,
    Arm64e,
    OfficeSlash,
    MsOfficeDash,
    MsOfficeWord,
    WindowsNt,
    WindowsNtDash,
    Macintosh,
    MacOsX,
    X11,
    WindowsSlash,
}

static DEVICE_TOKENS: &[(Dt, &str)] = &[
    (Dt::IPad, "iPad"),
    (Dt::ProdIpad, "prod.ipad"),
    (Dt::Kindle, "Kindle"),
    (Dt::Silk, "Silk/"),
    (Dt::TabletParen, "(Tablet;"),
    (Dt::Android, "Android"),
    (Dt::Mobile, "Mobile"),
    (Dt::AppleWebKit, "AppleWebKit"),
    (Dt::IPhone, "iPhone"),
    (Dt::IPod, "iPod"),
    (Dt::ProdIphone, "prod.iphone"),
    (Dt::WindowsPhone, "Windows Phone"),
    (Dt::IosParen, "(iOS;"),
    (Dt::AppleEws, "AppleExchangeWebServices/"),
    (Dt::Darwin, "Darwin/"),
    (Dt::X86_64, "x86_64"),
    (Dt::Arm64e, "arm64e)"),
    (Dt::OfficeSlash, "Microsoft Office/"),
    (Dt::MsOfficeDash, "ms-office"),
    (Dt::MsOfficeWord, "MSOffice"),
    (Dt::WindowsNt, "Windows NT"),
    (Dt::WindowsNtDash, "Windows-NT"),
    (Dt::Macintosh, "Macintosh"),
    (Dt::MacOsX, "Mac OS X"),
    (Dt::X11, "X11;"),
    (Dt::WindowsSlash, "Windows/"),
];

/// What one automaton pattern stands for. Patterns are matched ASCII case-insensitively; the
/// case-sensitive uses are confirmed by comparing the matched bytes.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// Email-client / proxy token (index into `Engine::tokens`), case-sensitive.
    Exact(usize),
    /// Device token, case-sensitive.
    Device(Dt),
    /// Bot token (index into `BOT_RULES`), case-insensitive.
    Bot(usize),
}

/// Compiled form of the rule tables.
struct Engine {
    /// Every token of every table, deduplicated ASCII case-insensitively: one overlapping pass
    /// over the user agent finds them all.
    ac: AhoCorasick,
    /// Per pattern id: the table entries it stands for.
    uses: Vec<Vec<Use>>,
    /// Case-sensitive email-client conditions, version anchors and proxy tokens.
    tokens: Vec<&'static str>,
    /// Email rules with their tokens replaced by indexes into `tokens`.
    rules: Vec<CompiledRule>,
    proxies: Vec<(usize, ImageProxy)>,
}

enum CCond {
    Has(usize),
    Lacks(usize),
    StartsWith(&'static str),
    EndsWith(&'static str),
    LastWordStartsWith(&'static str),
}

struct CompiledRule {
    client: &'static str,
    when: Vec<CCond>,
    version_after: Vec<usize>,
}

fn build_engine() -> Engine {
    let mut tokens: Vec<&'static str> = Vec::new();
    let id = |t: &'static str, tokens: &mut Vec<&'static str>| -> usize {
        if let Some(i) = tokens.iter().position(|x| *x == t) {
            i
        } else {
            tokens.push(t);
            tokens.len() - 1
        }
    };
    let mut rules = Vec::with_capacity(EMAIL_CLIENT_RULES.len());
    for r in EMAIL_CLIENT_RULES {
        let when = r
            .when
            .iter()
            .map(|c| match *c {
                Cond::Has(t) => CCond::Has(id(t, &mut tokens)),
                Cond::Lacks(t) => CCond::Lacks(id(t, &mut tokens)),
                Cond::StartsWith(t) => CCond::StartsWith(t),
                Cond::EndsWith(t) => CCond::EndsWith(t),
                Cond::LastWordStartsWith(t) => CCond::LastWordStartsWith(t),
            })
            .collect();
        let version_after = r.version_after.iter().map(|t| id(t, &mut tokens)).collect();
        rules.push(CompiledRule {
            client: r.client,
            when,
            version_after,
        });
    }
    let proxies = PROXY_RULES
        .iter()
        .map(|p| (id(p.token, &mut tokens), p.proxy))
        .collect();

    // One pattern per distinct lower-cased token, with everything it stands for.
    let mut patterns: Vec<String> = Vec::new();
    let mut uses: Vec<Vec<Use>> = Vec::new();
    let mut add = |t: &str, u: Use| {
        let key = t.to_ascii_lowercase();
        match patterns.iter().position(|p| *p == key) {
            Some(i) => uses[i].push(u),
            None => {
                patterns.push(key);
                uses.push(vec![u]);
            }
        }
    };
    for (i, t) in tokens.iter().enumerate() {
        add(t, Use::Exact(i));
    }
    for &(d, t) in DEVICE_TOKENS {
        add(t, Use::Device(d));
    }
    for (i, b) in BOT_RULES.iter().enumerate() {
        add(b.token, Use::Bot(i));
    }
    // The tables are static, so building always or never succeeds, whatever the input: a unit
    // test builds it, so this `expect` cannot fire in a tested build.
    let ac = AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&patterns)
        .expect("token table compiles");
    Engine {
        ac,
        uses,
        tokens,
        rules,
        proxies,
    }
}

/// What one pass of the automaton found in a user agent.
struct Scan {
    /// Per entry of `Engine::tokens`: end of its first (case-sensitive) occurrence, or
    /// `usize::MAX`.
    pos: Vec<usize>,
    /// Bit set of the [`Dt`] tokens present.
    device: u32,
    /// Bit set of the bot reasons of the bot tokens present.
    bot_reasons: u32,
}

impl Scan {
    fn has(&self, t: Dt) -> bool {
        self.device & (1 << t as u32) != 0
    }
}

fn scan(e: &Engine, ua: &str) -> Scan {
    let mut s = Scan {
        pos: vec![usize::MAX; e.tokens.len()],
        device: 0,
        bot_reasons: 0,
    };
    let bytes = ua.as_bytes();
    for m in e.ac.find_overlapping_iter(ua) {
        let Some(uses) = e.uses.get(m.pattern().as_usize()) else {
            continue;
        };
        let found = bytes.get(m.start()..m.end()).unwrap_or_default();
        for &u in uses {
            match u {
                Use::Exact(i) => {
                    if e.tokens.get(i).is_some_and(|t| t.as_bytes() == found) {
                        if let Some(p) = s.pos.get_mut(i) {
                            *p = (*p).min(m.end());
                        }
                    }
                }
                Use::Device(d) => {
                    if DEVICE_TOKENS[d as usize].1.as_bytes() == found {
                        s.device |= 1 << d as u32;
                    }
                }
                Use::Bot(i) => {
                    if let Some(rule) = BOT_RULES.get(i) {
                        s.bot_reasons |= reason_bit(rule.reason);
                    }
                }
            }
        }
    }
    s
}

/// Device implied by a client that exists on one kind of device only, used when the user agent
/// itself says nothing (`The Bat! 9.2.1`, `K-9 Mail/5.600`).
pub static CLIENT_DEVICE: &[(&str, DeviceCategory)] = &[
    ("The Bat!", DeviceCategory::Desktop),
    ("eM Client", DeviceCategory::Desktop),
    ("Mailbird", DeviceCategory::Desktop),
    ("Lotus Notes", DeviceCategory::Desktop),
    ("Thunderbird", DeviceCategory::Desktop),
    ("Postbox", DeviceCategory::Desktop),
    ("Windows Mail", DeviceCategory::Desktop),
    ("Foxmail", DeviceCategory::Desktop),
    ("Mailspring", DeviceCategory::Desktop),
    // Desktop-only clients from the second rule group (terminal, GNOME/KDE, Windows, macOS).
    ("Alpine", DeviceCategory::Desktop),
    ("Balsa", DeviceCategory::Desktop),
    ("Barca", DeviceCategory::Desktop),
    ("Claws Mail", DeviceCategory::Desktop),
    ("Eudora", DeviceCategory::Desktop),
    ("Evolution", DeviceCategory::Desktop),
    ("Geary", DeviceCategory::Desktop),
    ("Gnus", DeviceCategory::Desktop),
    ("IncrediMail", DeviceCategory::Desktop),
    ("KMail", DeviceCategory::Desktop),
    ("Kontact", DeviceCategory::Desktop),
    ("MailBar", DeviceCategory::Desktop),
    ("MailMate", DeviceCategory::Desktop),
    ("Mutt", DeviceCategory::Desktop),
    ("Nylas Mail", DeviceCategory::Desktop),
    ("Pegasus Mail", DeviceCategory::Desktop),
    ("PocoMail", DeviceCategory::Desktop),
    ("Spicebird", DeviceCategory::Desktop),
    ("Sylpheed", DeviceCategory::Desktop),
    ("Trojitá", DeviceCategory::Desktop),
    ("Turnpike", DeviceCategory::Desktop),
    ("Wanderlust", DeviceCategory::Desktop),
    ("K-9 Mail", DeviceCategory::Mobile),
    ("AOSP Email", DeviceCategory::Mobile),
    ("AquaMail", DeviceCategory::Mobile),
    ("Daum Mail", DeviceCategory::Mobile),
    ("Nine", DeviceCategory::Mobile),
    ("R2Mail2", DeviceCategory::Mobile),
    ("FairEmail", DeviceCategory::Mobile),
    ("Samsung Email", DeviceCategory::Mobile),
];

static ENGINE: LazyLock<Engine> = LazyLock::new(build_engine);

/// Forces the rule tables to compile now rather than on the first hit.
pub fn warm_up() {
    LazyLock::force(&ENGINE);
}

/// Reads a version right after `pos`: it must start with a digit; then digits, letters, `.`,
/// `_`, `-`, at most 32 bytes.
fn version_at(ua: &str, pos: usize) -> Option<&str> {
    let rest = ua.get(pos..)?;
    let b = rest.as_bytes();
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    let mut end = 0;
    while end < b.len() && end < 32 {
        let c = b[end];
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-' {
            end += 1;
        } else {
            break;
        }
    }
    let v = rest[..end].trim_end_matches(['.', '-', '_']);
    (!v.is_empty()).then_some(v)
}

fn last_word(ua: &str) -> &str {
    ua.trim_end().rsplit(' ').next().unwrap_or("")
}

/// Result of running the email-client table over one user agent.
pub(crate) struct EmailMatch<'a> {
    /// Index of the matching rule in `EMAIL_CLIENT_RULES`.
    pub rule: usize,
    pub client: &'static str,
    pub version: Option<&'a str>,
}

fn match_email<'a>(e: &Engine, ua: &'a str, pos: &[usize]) -> Option<EmailMatch<'a>> {
    let has = |i: usize| pos[i] != usize::MAX;
    for (ri, r) in e.rules.iter().enumerate() {
        let ok = r.when.iter().all(|c| match *c {
            CCond::Has(i) => has(i),
            CCond::Lacks(i) => !has(i),
            CCond::StartsWith(t) => ua.starts_with(t),
            CCond::EndsWith(t) => ua.trim_end().ends_with(t),
            CCond::LastWordStartsWith(t) => last_word(ua).starts_with(t),
        });
        if ok {
            let version = r
                .version_after
                .iter()
                .filter(|&&i| has(i))
                .find_map(|&i| version_at(ua, pos[i]));
            return Some(EmailMatch {
                rule: ri,
                client: r.client,
                version,
            });
        }
    }
    None
}

/// The email-client rule that matches `ua`, if any: `(rule index, client, version)`.
/// Exposed for tests of the rule ordering.
pub fn email_client(ua: &str) -> Option<(usize, &'static str, Option<String>)> {
    let e = &*ENGINE;
    let scan = scan(e, ua);
    match_email(e, ua, &scan.pos).map(|m| (m.rule, m.client, m.version.map(str::to_owned)))
}

fn known(s: &str) -> &str {
    if s == woothee::woothee::VALUE_UNKNOWN {
        ""
    } else {
        s
    }
}

fn device_category(ua: &str, scan: &Scan, woothee_category: &str, bot: bool) -> DeviceCategory {
    use DeviceCategory as D;
    if bot || woothee_category == "crawler" {
        return D::Bot;
    }
    let has = |t: Dt| scan.has(t);
    if has(Dt::IPad)
        || has(Dt::ProdIpad)
        || has(Dt::Kindle)
        || has(Dt::Silk)
        || has(Dt::TabletParen)
    {
        return D::Tablet;
    }
    if has(Dt::Android) {
        // Browsers and web views on Android tablets omit "Mobile"; native apps' own user agents
        // rarely say either way, and phones dominate, so they count as mobile.
        if has(Dt::Mobile) || !has(Dt::AppleWebKit) {
            return D::Mobile;
        }
        return D::Tablet;
    }
    if has(Dt::IPhone)
        || has(Dt::IPod)
        || has(Dt::ProdIphone)
        || has(Dt::WindowsPhone)
        || has(Dt::IosParen)
    {
        return D::Mobile;
    }
    // Native macOS fetches (`Mail/3731 CFNetwork/... Darwin/...`, `... (x86_64)`) and Office
    // desktop apps, which woothee would otherwise call a smartphone or nothing.
    if ua.starts_with("Mail/")
        || has(Dt::AppleEws)
        || (has(Dt::Darwin) && (has(Dt::X86_64) || has(Dt::Arm64e)))
        || has(Dt::OfficeSlash)
        || has(Dt::MsOfficeDash)
        || has(Dt::MsOfficeWord)
    {
        return D::Desktop;
    }
    match woothee_category {
        "pc" => return D::Desktop,
        "smartphone" | "mobilephone" => return D::Mobile,
        _ => {}
    }
    if has(Dt::WindowsNt)
        || has(Dt::WindowsNtDash)
        || has(Dt::Macintosh)
        || has(Dt::MacOsX)
        || has(Dt::X11)
        || has(Dt::WindowsSlash)
        || (has(Dt::Darwin) && has(Dt::X86_64))
    {
        return D::Desktop;
    }
    D::Unknown
}

pub mod os;

use os::os_of;

/// Classifies one user agent (no cache).
pub fn classify(raw: &str) -> UaInfo {
    let e = &*ENGINE;
    let ua = truncate_at_char_boundary(raw, MAX_CLASSIFIED_UA_BYTES);
    let scan = scan(e, ua);
    let pos = &scan.pos;

    let mut proxy = ImageProxy::None;
    for &(i, p) in &e.proxies {
        if pos.get(i).is_some_and(|&p| p != usize::MAX) {
            proxy = p;
            break;
        }
    }
    let bare_mozilla = ua.trim() == "Mozilla/5.0";
    let mut bot_reasons = scan.bot_reasons;

    // Behind a proxy, or from the bare agent of Apple's proxy, browser/OS/device are not
    // reported (see below) and woothee's crawler category is not used: skip its work.
    let w = if proxy != ImageProxy::None || bare_mozilla {
        None
    } else {
        woothee::parser::Parser::new().parse(ua)
    };
    let (mut browser, mut browser_version, w_os, w_os_version, category) = match &w {
        Some(w) => (
            known(w.name).to_owned(),
            known(w.version).to_owned(),
            known(w.os),
            known(&w.os_version),
            w.category,
        ),
        None => (String::new(), String::new(), "", "", ""),
    };
    let (mut os, mut os_version) = (String::new(), String::new());
    // woothee's crawler category counts as a known bot, unless a more precise reason exists or
    // the agent is an image proxy (a proxy fetches for a person).
    if category == "crawler" && bot_reasons == 0 && proxy == ImageProxy::None {
        bot_reasons |= reason_bit(BotReason::KnownBotUa);
    }

    let email = match_email(e, ua, pos);
    let mut device = device_category(ua, &scan, category, bot_reasons != 0);
    if device == DeviceCategory::Unknown {
        // Clients that exist on one kind of device only imply it.
        if let Some(m) = &email {
            if let Some((_, d)) = CLIENT_DEVICE.iter().find(|(c, _)| *c == m.client) {
                device = *d;
            }
        }
    }
    if proxy == ImageProxy::None && !bare_mozilla {
        // Also when woothee recognised nothing: native agents (`Outlook-iOS/...`,
        // `Claws Mail/3.17.5 (x86_64-pc-linux-gnu)`) still state their OS.
        let (name, version) = os_of(ua, &scan, w_os, w_os_version, device);
        os = name.to_owned();
        os_version = version;
    }
    if proxy != ImageProxy::None || bare_mozilla {
        // A proxy's user agent describes the proxy (Gmail's claims Firefox 11 on Windows XP), not
        // the reader's device: report nothing rather than something false.
        browser.clear();
        browser_version.clear();
        os.clear();
        os_version.clear();
        device = DeviceCategory::Unknown;
    }

    let client = Client {
        user_agent: truncate_at_char_boundary(raw, MAX_UA_BYTES).to_owned(),
        email_client: email.as_ref().map(|m| m.client).unwrap_or("").to_owned(),
        email_client_version: email
            .as_ref()
            .and_then(|m| m.version)
            .unwrap_or("")
            .to_owned(),
        browser,
        browser_version,
        os,
        os_version,
        device_category: device as i32,
    };
    UaInfo {
        client,
        proxy,
        bot_reasons,
        bare_mozilla,
    }
}

/// A bounded concurrent cache of [`classify`] results keyed by the raw user agent.
pub struct UaCache {
    cache: Option<quick_cache::sync::Cache<Box<str>, Arc<UaInfo>>>,
}

impl UaCache {
    /// A cache holding up to `capacity` user agents; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
        }
    }

    /// Classifies `ua`, from the cache when possible (a hit does not allocate).
    pub fn get(&self, ua: &str) -> Arc<UaInfo> {
        let Some(cache) = &self.cache else {
            return Arc::new(classify(ua));
        };
        if ua.len() > MAX_CACHED_UA_BYTES {
            return Arc::new(classify(ua));
        }
        if let Some(v) = cache.get(ua) {
            return v;
        }
        let v = Arc::new(classify(ua));
        cache.insert(Box::from(ua), Arc::clone(&v));
        v
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered from the cache, and lookups that classified the user agent and cached
    /// it (too long user agents and a disabled cache count in neither).
    pub fn hits_misses(&self) -> (u64, u64) {
        self.cache
            .as_ref()
            .map_or((0, 0), |c| (c.hits(), c.misses()))
    }
}

#[cfg(test)]
mod tests {
    use super::os::woothee_os;
    use super::*;

    #[test]
    fn truncates_on_char_boundary() {
        let s = "é".repeat(300); // 600 bytes
        let t = truncate_at_char_boundary(&s, 511);
        assert_eq!(t.len(), 510);
        assert_eq!(truncate_at_char_boundary("abc", 512), "abc");
    }

    #[test]
    fn versions() {
        assert_eq!(version_at("X/1.2.3 y", 2), Some("1.2.3"));
        assert_eq!(version_at("X/abc", 2), None);
        assert_eq!(version_at("X/2.4.30.0/", 2), Some("2.4.30.0"));
        assert_eq!(version_at("X/", 2), None);
    }

    #[test]
    fn rule_order_specific_before_generic() {
        // A Mailbird UA also carries Chrome/Safari: the Mailbird rule wins, not "no client".
        let ua = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36 Mailbird/2.4.30.0/";
        let (_, c, v) = email_client(ua).unwrap();
        assert_eq!((c, v.as_deref()), ("Mailbird", Some("2.4.30.0")));
        // The Gmail proxy rule precedes everything.
        let g = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
        assert_eq!(email_client(g).unwrap().0, 0);
        // An iOS app with its own token after Mobile/ is that app, not Apple Mail.
        let mm = "Mozilla/5.0 (iPhone; CPU iPhone OS 11_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15F79 MailMaster/6.5.3.1210";
        assert_eq!(email_client(mm).unwrap().1, "Mail Master");
        // Every rule index is reachable in table order: earlier Outlook rules before later ones.
        let ol = "Microsoft Office/16.0 (Microsoft Outlook 16.0.12329; Pro), Mozilla/4.0 (compatible; ms-office; MSOffice 16)";
        let (i, c, v) = email_client(ol).unwrap();
        assert_eq!((c, v.as_deref()), ("Outlook", Some("16.0.12329")));
        let ms = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)";
        let (j, _, v2) = email_client(ms).unwrap();
        assert!(i < j);
        assert_eq!(v2.as_deref(), Some("16"));
    }

    #[test]
    fn browser_is_not_an_email_client() {
        for ua in [
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ] {
            assert!(email_client(ua).is_none(), "{ua}");
        }
    }

    #[test]
    fn pim_lookalikes_are_not_email_clients() {
        let notion = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Notion/2.0.8 Chrome/76.0.3809.146 Electron/6.1.5 Safari/537.36";
        assert!(email_client(notion).is_none());
        let dav = "DAVdroid/1.6.2-ose (2017/06/23; dav4android; okhttp3) Android/7.0";
        assert!(email_client(dav).is_none());
    }

    #[test]
    fn one_pass_keeps_each_tables_case_rule() {
        // Email-client and device tokens are case-sensitive, bot tokens are not, although one
        // case-insensitive automaton finds them all.
        let mb = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36 mailbird/2.4.30.0/";
        assert!(email_client(mb).is_none());
        let lower_ipad = "Mozilla/5.0 (ipad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/604.1";
        assert_ne!(
            classify(lower_ipad).client.device_category,
            DeviceCategory::Tablet as i32
        );
        let ipad = lower_ipad.replace("ipad", "iPad");
        assert_eq!(
            classify(&ipad).client.device_category,
            DeviceCategory::Tablet as i32
        );
        assert_ne!(classify("CURL/8.0").bot_reasons, 0);
        // A token seen twice: the version follows its first occurrence.
        let twice = "Thunderbird/115.3.1 Thunderbird/102.0";
        assert_eq!(email_client(twice).unwrap().2.as_deref(), Some("115.3.1"));
    }

    #[test]
    fn proxies_skip_browser_and_os() {
        let g = classify("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)");
        assert_eq!(g.proxy, ImageProxy::Gmail);
        assert_eq!((g.client.browser.as_str(), g.client.os.as_str()), ("", ""));
        assert_eq!(g.client.device_category, DeviceCategory::Unknown as i32);
        assert_eq!(g.client.email_client, "Gmail");
    }

    #[test]
    fn os_names_are_canonical_with_the_stated_version() {
        let os = |ua: &str| {
            let c = classify(ua).client;
            (c.os, c.os_version)
        };
        let want = |name: &str, v: &str| (name.to_owned(), v.to_owned());
        let cases = [
            // Windows NT versions map to marketing names; an unknown one keeps `NT x.y`.
            ("Mozilla/5.0 (Windows NT 6.1; WOW64; rv:40.0) Gecko/20100101 Firefox/40.1", want("Windows", "7")),
            ("Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0 Safari/537.36", want("Windows", "8.1")),
            ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko/20100101 Firefox/11.0", want("Windows", "XP")),
            ("Mozilla/5.0 (Windows NT 6.9; Win64; x64) Gecko/20100101 Firefox/99.0", want("Windows", "NT 6.9")),
            // `Windows/` followed by a build date is no version.
            ("Postbox 1.0b14 (Windows/2009072715)", want("Windows", "")),
            // iPhone OS / CPU OS with underscores; iPad before 13 is iOS, from 13 iPadOS.
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", want("iOS", "17.4")),
            ("Mozilla/5.0 (iPad; CPU OS 16_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.1 Mobile/15E148 Safari/604.1", want("iPadOS", "16.1")),
            ("Mozilla/5.0 (iPad; CPU OS 12_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1 Mobile/15E148 Safari/604.1", want("iOS", "12.2")),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", want("macOS", "10.15.7")),
            ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", want("ChromeOS", "")),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", want("Android", "14")),
            ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", want("Linux", "")),
            ("Mozilla/5.0 (X11; FreeBSD amd64; rv:120.0) Gecko/20100101 Firefox/120.0", want("FreeBSD", "")),
            // CFNetwork: a desktop Mac (x86_64) or iOS; the Darwin version is not mapped.
            ("Mail/3273 CFNetwork/811.5.4 Darwin/16.6.0 (x86_64)", want("macOS", "")),
            ("Yahoo%20Mail/49268 CFNetwork/1121.2.2 Darwin/19.3.0", want("iOS", "")),
        ];
        for (ua, expected) in cases {
            assert_eq!(os(ua), expected, "{ua}");
        }
    }

    #[test]
    fn woothee_os_names_map_to_canonical_ones() {
        for (w, v, want) in [
            ("Windows UNKNOWN Ver", "", ("Windows", "")),
            ("Windows 10", "NT 10.0", ("Windows", "10")),
            ("Mac OSX", "10.15.7", ("macOS", "10.15.7")),
            ("iPhone", "17.3", ("iOS", "17.3")),
            ("iPad", "17.3", ("iPadOS", "17.3")),
            ("docomo", "", ("", "")),
        ] {
            let (name, version) = woothee_os(w, v);
            assert_eq!((name, version.as_str()), want, "{w}");
            assert!(name.is_empty() || os::ALL.contains(&name));
        }
    }

    #[test]
    fn cache_hits_return_same_value() {
        let c = UaCache::new(16);
        let a = c.get("curl/8.0");
        let b = c.get("curl/8.0");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(c.len(), 1);
        let nc = UaCache::new(0);
        assert_eq!(
            nc.get("curl/8.0").client.device_category,
            DeviceCategory::Bot as i32
        );
    }
}
