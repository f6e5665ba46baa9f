//! Network data files: Apple's iCloud Private Relay egress list and the security-gateway
//! networks. Parsers (strict about prefixes, lenient about blank lines and comments) and the
//! gateway lookup structure.
//!
//! # Apple's egress list
//!
//! `egress-ip-ranges.csv`, published by Apple (linked from "Prepare your network or web server
//! for iCloud Private Relay"; `https://mask-api.icloud.com/egress-ip-ranges.csv`): one
//! `prefix,country,region,city` line per egress prefix, IPv4 and IPv6, about 250k-300k lines.
//! Only the prefix is used. [`parse_egress`] reads it into a [`NetSet`](crate::NetSet).
//!
//! # Gateway networks
//!
//! `cidr_or_asn,provider,scope,source` lines ([`parse_gateways`]); the shipped defaults are
//! `data/gateways.csv` ([`default_gateways`]), every entry with the source it comes from.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use openclick_events::v1::BotReason;

use crate::HitKind;

/// A line of a data file that could not be parsed: its 1-based number and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The meaningful lines of a data file: a UTF-8 BOM, `\r`, blank lines and `#` comments are
/// skipped; each line is yielded with its 1-based number.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// Quotes at most 80 characters of a bad value for an error message.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    format!("{cut:?}")
}

/// Parses a network: CIDR (`a.b.c.d/n`, `x::/n`; host bits are cleared), or a bare address
/// (a /32 or /128).
fn parse_net(s: &str) -> Option<IpNet> {
    if s.contains('/') {
        IpNet::from_str(s).ok().map(|n| n.trunc())
    } else {
        IpAddr::from_str(s).ok().map(IpNet::from)
    }
}

/// Parses Apple's `egress-ip-ranges.csv` (`prefix,country,region,city` per line; only the
/// prefix is used). Blank lines and `#` comments are skipped; any other line whose first field
/// is not a network is an error naming the line.
pub fn parse_egress(text: &str) -> Result<Vec<IpNet>, LineError> {
    let mut out = Vec::new();
    for (line, l) in lines(text) {
        let prefix = l.split(',').next().unwrap_or("").trim();
        match parse_net(prefix) {
            Some(n) => out.push(n),
            None => {
                return Err(LineError {
                    line,
                    message: format!(
                        "{} is not an IPv4 or IPv6 prefix (expected prefix,country,region,city)",
                        shown(prefix)
                    ),
                })
            }
        }
    }
    Ok(out)
}

/// The security gateways with a `BotReason` of their own; any other provider name in the data
/// file is [`GatewayProvider::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GatewayProvider {
    /// Microsoft Exchange Online Protection / Defender for Office 365.
    Microsoft = 0,
    /// Mimecast.
    Mimecast = 1,
    /// Proofpoint.
    Proofpoint = 2,
    /// Barracuda.
    Barracuda = 3,
    /// Cisco Secure Email.
    Cisco = 4,
    /// Any other provider named in the file.
    Other = 5,
}

const PROVIDERS: [GatewayProvider; 6] = [
    GatewayProvider::Microsoft,
    GatewayProvider::Mimecast,
    GatewayProvider::Proofpoint,
    GatewayProvider::Barracuda,
    GatewayProvider::Cisco,
    GatewayProvider::Other,
];

impl GatewayProvider {
    /// From a provider name of the data file (case-insensitive); unknown names are `Other`.
    pub fn from_name(s: &str) -> GatewayProvider {
        match s.trim().to_ascii_lowercase().as_str() {
            "microsoft" => GatewayProvider::Microsoft,
            "mimecast" => GatewayProvider::Mimecast,
            "proofpoint" => GatewayProvider::Proofpoint,
            "barracuda" => GatewayProvider::Barracuda,
            "cisco" => GatewayProvider::Cisco,
            _ => GatewayProvider::Other,
        }
    }

    /// The `BotReason` a hit from this provider's networks gets.
    pub fn bot_reason(self) -> BotReason {
        match self {
            GatewayProvider::Microsoft => BotReason::GatewayMicrosoft,
            GatewayProvider::Mimecast => BotReason::GatewayMimecast,
            GatewayProvider::Proofpoint => BotReason::GatewayProofpoint,
            GatewayProvider::Barracuda => BotReason::GatewayBarracuda,
            GatewayProvider::Cisco => BotReason::GatewayCisco,
            GatewayProvider::Other => BotReason::GatewayOther,
        }
    }
}

/// Which hits a gateway entry flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayScope {
    /// Pixel fetches only.
    Opens,
    /// Link clicks only.
    Clicks,
    /// Both.
    Both,
}

impl GatewayScope {
    fn applies(self, kind: HitKind) -> bool {
        matches!(
            (self, kind),
            (GatewayScope::Both, _)
                | (GatewayScope::Opens, HitKind::Open)
                | (GatewayScope::Clicks, HitKind::Click)
        )
    }
}

/// What a gateway entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayTarget {
    /// An address range.
    Net(IpNet),
    /// An autonomous system (matched against the ASN database's answer).
    Asn(u32),
}

/// One line of a gateway data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEntry {
    /// The network or AS.
    pub target: GatewayTarget,
    /// Whose it is.
    pub provider: GatewayProvider,
    /// The provider's name as written in the file.
    pub provider_name: String,
    /// Which hits it flags.
    pub scope: GatewayScope,
    /// Where the entry comes from.
    pub source: String,
}

/// Parses a gateway data file: `cidr_or_asn,provider,scope,source` per line (`source` may
/// contain commas; it runs to the end of the line). A header line starting with `cidr_or_asn`,
/// blank lines and `#` comments are skipped. Every other line must have a valid network or
/// AS number (`AS64500` or `64500`), a provider name and a scope (`opens`, `clicks`, `both`).
pub fn parse_gateways(text: &str) -> Result<Vec<GatewayEntry>, LineError> {
    let mut out = Vec::new();
    for (line, l) in lines(text) {
        let err = |message: String| LineError { line, message };
        let mut f = l.splitn(4, ',').map(str::trim);
        let (target, provider, scope) = (f.next().unwrap_or(""), f.next(), f.next());
        if target.eq_ignore_ascii_case("cidr_or_asn") {
            continue;
        }
        let source = f.next().unwrap_or("").to_owned();
        let target = parse_target(target).ok_or_else(|| {
            err(format!(
                "{} is not a network (CIDR) or an AS number (AS64500)",
                shown(target)
            ))
        })?;
        let provider_name = provider.filter(|p| !p.is_empty()).ok_or_else(|| {
            err("no provider (expected cidr_or_asn,provider,scope,source)".into())
        })?;
        let scope = match scope.map(str::to_ascii_lowercase).as_deref() {
            Some("opens") => GatewayScope::Opens,
            Some("clicks") => GatewayScope::Clicks,
            Some("both") => GatewayScope::Both,
            other => {
                return Err(err(format!(
                    "scope {} is not opens, clicks or both",
                    shown(other.unwrap_or(""))
                )))
            }
        };
        out.push(GatewayEntry {
            target,
            provider: GatewayProvider::from_name(provider_name),
            provider_name: provider_name.to_owned(),
            scope,
            source,
        });
    }
    Ok(out)
}

fn parse_target(s: &str) -> Option<GatewayTarget> {
    let digits = s
        .strip_prefix("AS")
        .or_else(|| s.strip_prefix("as"))
        .unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits.parse().ok().map(GatewayTarget::Asn);
    }
    parse_net(s).map(GatewayTarget::Net)
}

/// The gateway list shipped in the repository (`crates/enrich/data/gateways.csv`).
pub const DEFAULT_GATEWAYS_CSV: &str = include_str!("../data/gateways.csv");

/// The shipped gateway entries, parsed.
pub fn default_gateways() -> Vec<GatewayEntry> {
    // Checked by a test: the shipped file parses.
    parse_gateways(DEFAULT_GATEWAYS_CSV).unwrap_or_default()
}

/// Bits of a gateway mask: bit `p` flags opens for provider `p`, bit `8 + p` clicks.
type Mask = u16;

fn mask_of(provider: GatewayProvider, scope: GatewayScope) -> Mask {
    let p = provider as u16;
    let mut m = 0;
    if scope.applies(HitKind::Open) {
        m |= 1 << p;
    }
    if scope.applies(HitKind::Click) {
        m |= 1 << (8 + p);
    }
    m
}

/// Disjoint, sorted segments with the OR of the masks of every range covering them.
fn segments(ranges: Vec<(u128, u128, Mask)>) -> Vec<(u128, u128, Mask)> {
    // Events: (position, is_start, mask); at one position removals come before additions.
    let mut ev: Vec<(u128, bool, Mask)> = Vec::with_capacity(ranges.len() * 2);
    for (s, e, m) in ranges {
        ev.push((s, true, m));
        if e != u128::MAX {
            ev.push((e + 1, false, m));
        }
    }
    ev.sort_unstable_by_key(|&(p, start, _)| (p, start));
    let mut counts = [0u32; 16];
    let mut out: Vec<(u128, u128, Mask)> = Vec::new();
    let mut i = 0;
    while i < ev.len() {
        let p = ev[i].0;
        while i < ev.len() && ev[i].0 == p {
            let (_, start, m) = ev[i];
            for (b, c) in counts.iter_mut().enumerate() {
                if m & (1 << b) != 0 {
                    if start {
                        *c += 1;
                    } else {
                        *c -= 1;
                    }
                }
            }
            i += 1;
        }
        let mask = counts
            .iter()
            .enumerate()
            .fold(0, |acc, (b, &c)| if c > 0 { acc | (1 << b) } else { acc });
        if mask == 0 {
            continue;
        }
        let end = if i < ev.len() { ev[i].0 - 1 } else { u128::MAX };
        match out.last_mut() {
            Some(last) if last.2 == mask && last.1.checked_add(1) == Some(p) => last.1 = end,
            _ => out.push((p, end, mask)),
        }
    }
    out
}

fn find<T: Copy + Ord>(starts: &[T], ends: &[T], masks: &[Mask], x: T) -> Mask {
    let i = starts.partition_point(|&s| s <= x);
    if i > 0 && ends[i - 1] >= x {
        masks[i - 1]
    } else {
        0
    }
}

/// Gateway networks and ASNs with their providers and scopes, for `O(log n)` lookups.
#[derive(Debug, Clone, Default)]
pub struct GatewaySet {
    v4_starts: Vec<u32>,
    v4_ends: Vec<u32>,
    v4_masks: Vec<Mask>,
    v6_starts: Vec<u128>,
    v6_ends: Vec<u128>,
    v6_masks: Vec<Mask>,
    asns: Vec<(u32, Mask)>,
    entries: usize,
}

impl GatewaySet {
    /// Builds the set (overlapping entries allowed: a hit gets every provider that covers it).
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a GatewayEntry>) -> GatewaySet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut asns: Vec<(u32, Mask)> = Vec::new();
        let mut n = 0;
        for e in entries {
            n += 1;
            let m = mask_of(e.provider, e.scope);
            match e.target {
                GatewayTarget::Net(IpNet::V4(net)) => v4.push((
                    u128::from(u32::from(net.network())),
                    u128::from(u32::from(net.broadcast())),
                    m,
                )),
                GatewayTarget::Net(IpNet::V6(net)) => {
                    v6.push((u128::from(net.network()), u128::from(net.broadcast()), m))
                }
                GatewayTarget::Asn(a) => asns.push((a, m)),
            }
        }
        asns.sort_unstable();
        asns.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 |= b.1;
                true
            } else {
                false
            }
        });
        let mut s = GatewaySet {
            asns,
            entries: n,
            ..Default::default()
        };
        for (a, b, m) in segments(v4) {
            // Built from IPv4 ranges: every bound fits a u32.
            s.v4_starts.push(a as u32);
            s.v4_ends.push(b as u32);
            s.v4_masks.push(m);
        }
        for (a, b, m) in segments(v6) {
            s.v6_starts.push(a);
            s.v6_ends.push(b);
            s.v6_masks.push(m);
        }
        s
    }

    /// Entries it was built from.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether it was built from no entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The providers whose networks (or ASNs; `asn` 0 = unknown) cover a hit of this kind, as
    /// a bit set over [`GatewayProvider`] (bit `p as u8`); 0 when none.
    pub fn lookup(&self, ip: IpAddr, asn: u32, kind: HitKind) -> u8 {
        let mut m = match ip {
            IpAddr::V4(a) => find(&self.v4_starts, &self.v4_ends, &self.v4_masks, u32::from(a)),
            IpAddr::V6(a) => find(
                &self.v6_starts,
                &self.v6_ends,
                &self.v6_masks,
                u128::from(a),
            ),
        };
        if asn != 0 && !self.asns.is_empty() {
            if let Ok(i) = self.asns.binary_search_by_key(&asn, |&(a, _)| a) {
                m |= self.asns[i].1;
            }
        }
        let bits = match kind {
            HitKind::Open => m & 0xff,
            HitKind::Click => m >> 8,
        };
        bits as u8
    }
}

/// The providers of a [`GatewaySet::lookup`] bit set, in [`GatewayProvider`] order.
pub fn providers(bits: u8) -> impl Iterator<Item = GatewayProvider> {
    PROVIDERS
        .into_iter()
        .filter(move |&p| bits & (1 << p as u8) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn egress_parser_reads_apples_format() {
        // Rows in the shape of Apple's file (prefix,country,region,city; sometimes a trailing
        // comma, empty region/city), with a BOM, CRLF, blank lines and a comment.
        let text = "\u{feff}172.224.226.0/27,GB,GB-EN,London,\r\n\
                    \r\n\
                    # comment\n\
                    2a02:26f7:b3c0:4000::/64,US,US-CA,Los Angeles,\n\
                    104.28.0.12/31,DE,,,\n\
                    146.75.146.7,FR,FR-IDF,Paris\n";
        let nets = parse_egress(text).unwrap();
        let want: Vec<IpNet> = [
            "172.224.226.0/27",
            "2a02:26f7:b3c0:4000::/64",
            "104.28.0.12/31",
            "146.75.146.7/32",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(nets, want);
        assert!(parse_egress("").unwrap().is_empty());
        // Host bits are cleared.
        assert_eq!(
            parse_egress("10.0.0.9/24,GB,,").unwrap(),
            vec!["10.0.0.0/24".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn egress_parser_refuses_bad_prefixes_with_the_line() {
        for (text, line, needle) in [
            (
                "172.224.226.0/27,GB,GB-EN,London\nnot-an-ip,GB,,\n",
                2,
                "not-an-ip",
            ),
            ("\n\n10.0.0.0/33,GB,,\n", 3, "10.0.0.0/33"),
            ("300.1.2.3/8,US,,\n", 1, "300.1.2.3/8"),
            (",US,,\n", 1, "\"\""),
            ("<html>\n", 1, "<html>"),
        ] {
            let e = parse_egress(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn gateway_parser() {
        let text = "cidr_or_asn,provider,scope,source\n\
                    # comment\n\
                    40.92.0.0/15,microsoft,clicks,https://example.test/a, with a comma\n\
                    AS64500,Mimecast,both,https://example.test/b\n\
                    64501,linkpreview-co,opens,\n\
                    2001:db8::/32,cisco,BOTH,https://example.test/c\n";
        let g = parse_gateways(text).unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(
            g[0].target,
            GatewayTarget::Net("40.92.0.0/15".parse().unwrap())
        );
        assert_eq!(g[0].provider, GatewayProvider::Microsoft);
        assert_eq!(g[0].scope, GatewayScope::Clicks);
        assert_eq!(g[0].source, "https://example.test/a, with a comma");
        assert_eq!(g[1].target, GatewayTarget::Asn(64500));
        assert_eq!(g[1].provider, GatewayProvider::Mimecast);
        assert_eq!(g[2].provider, GatewayProvider::Other);
        assert_eq!(g[2].provider_name, "linkpreview-co");
        assert_eq!(g[2].scope, GatewayScope::Opens);
        assert_eq!(g[3].scope, GatewayScope::Both);
        for (text, line, needle) in [
            ("10.0.0.0/8,acme\n", 1, "scope"),
            ("10.0.0.0/8,acme,sometimes,x\n", 1, "sometimes"),
            ("\nbogus,acme,both,x\n", 2, "bogus"),
            ("10.0.0.0/8,,both,x\n", 1, "provider"),
            ("AS,acme,both,x\n", 1, "AS"),
        ] {
            let e = parse_gateways(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn shipped_gateways_parse_and_cite_sources() {
        let g = parse_gateways(DEFAULT_GATEWAYS_CSV).unwrap();
        assert!(!g.is_empty());
        for e in &g {
            assert!(
                e.source.contains("https://"),
                "{e:?}: every shipped entry cites where it comes from"
            );
            // Outlook.com / OWA fetch images from Microsoft's networks for real readers.
            if e.provider == GatewayProvider::Microsoft {
                assert_eq!(e.scope, GatewayScope::Clicks, "{e:?}");
            }
        }
        assert_eq!(default_gateways(), g);
    }

    /// Every shipped row, through the lookup structure: the first and last address of its
    /// network carry its provider for exactly the kinds some row of that provider covering the
    /// address scopes (worked out here from the rows with `IpNet::contains`), and the provider
    /// named in the file maps to its own `BotReason` (a table written here, not `bot_reason`).
    #[test]
    fn every_shipped_row_flags_its_provider_for_its_scope() {
        let rows = parse_gateways(DEFAULT_GATEWAYS_CSV).unwrap();
        let set = GatewaySet::new(&rows);
        assert_eq!(set.len(), rows.len());
        let want_reason = |name: &str| match name {
            "microsoft" => BotReason::GatewayMicrosoft,
            "mimecast" => BotReason::GatewayMimecast,
            "proofpoint" => BotReason::GatewayProofpoint,
            "barracuda" => BotReason::GatewayBarracuda,
            "cisco" => BotReason::GatewayCisco,
            _ => BotReason::GatewayOther,
        };
        for row in &rows {
            assert!(
                row.source.starts_with("https://"),
                "{row:?}: the source starts with its URL"
            );
            assert_eq!(
                row.provider.bot_reason(),
                want_reason(&row.provider_name),
                "{row:?}"
            );
            let GatewayTarget::Net(net) = row.target else {
                continue; // ASN rows need the ASN database: lib.rs tests them through it.
            };
            for addr in [net.network(), net.broadcast()] {
                for kind in [HitKind::Open, HitKind::Click] {
                    let expected = rows.iter().any(|r| {
                        r.provider == row.provider
                            && matches!(r.target, GatewayTarget::Net(n) if n.contains(&addr))
                            && match kind {
                                HitKind::Open => r.scope != GatewayScope::Clicks,
                                HitKind::Click => r.scope != GatewayScope::Opens,
                            }
                    });
                    let got = providers(set.lookup(addr, 0, kind)).any(|p| p == row.provider);
                    assert_eq!(got, expected, "{row:?}: {addr} {kind:?}");
                }
            }
        }
    }

    #[test]
    fn gateway_lookup_by_scope_overlap_and_asn() {
        let g = parse_gateways(
            "10.0.0.0/8,microsoft,clicks,s\n\
             10.1.0.0/16,proofpoint,both,s\n\
             10.1.2.0/24,other-co,opens,s\n\
             2001:db8::/32,cisco,both,s\n\
             AS64500,mimecast,opens,s\n\
             255.255.255.255/32,barracuda,both,s\n",
        )
        .unwrap();
        let s = GatewaySet::new(&g);
        assert_eq!(s.len(), 6);
        let names = |b: u8| providers(b).collect::<Vec<_>>();
        use GatewayProvider::*;
        use HitKind::*;
        assert_eq!(names(s.lookup(ip("10.9.9.9"), 0, Click)), vec![Microsoft]);
        assert_eq!(s.lookup(ip("10.9.9.9"), 0, Open), 0);
        assert_eq!(
            names(s.lookup(ip("10.1.9.9"), 0, Click)),
            vec![Microsoft, Proofpoint]
        );
        assert_eq!(names(s.lookup(ip("10.1.9.9"), 0, Open)), vec![Proofpoint]);
        assert_eq!(
            names(s.lookup(ip("10.1.2.3"), 0, Open)),
            vec![Proofpoint, Other]
        );
        // Just after the nested ranges: back to the outer ones.
        assert_eq!(names(s.lookup(ip("10.1.3.0"), 0, Open)), vec![Proofpoint]);
        assert_eq!(names(s.lookup(ip("10.2.0.0"), 0, Click)), vec![Microsoft]);
        assert_eq!(s.lookup(ip("11.0.0.0"), 0, Click), 0);
        assert_eq!(s.lookup(ip("9.255.255.255"), 0, Click), 0);
        assert_eq!(names(s.lookup(ip("2001:db8::1"), 0, Open)), vec![Cisco]);
        assert_eq!(s.lookup(ip("2001:db9::1"), 0, Open), 0);
        assert_eq!(
            names(s.lookup(ip("192.0.2.1"), 64500, Open)),
            vec![Mimecast]
        );
        assert_eq!(s.lookup(ip("192.0.2.1"), 64500, Click), 0);
        assert_eq!(
            names(s.lookup(ip("10.1.2.3"), 64500, Open)),
            vec![Mimecast, Proofpoint, Other]
        );
        assert_eq!(
            names(s.lookup(ip("255.255.255.255"), 0, Click)),
            vec![Barracuda]
        );
        assert_eq!(GatewaySet::new(&[]).lookup(ip("10.0.0.1"), 1, Open), 0);
        assert!(GatewaySet::default().is_empty());
    }

    #[test]
    fn providers_map_to_their_bot_reasons() {
        assert_eq!(
            PROVIDERS.map(|p| p.bot_reason()),
            [
                BotReason::GatewayMicrosoft,
                BotReason::GatewayMimecast,
                BotReason::GatewayProofpoint,
                BotReason::GatewayBarracuda,
                BotReason::GatewayCisco,
                BotReason::GatewayOther,
            ]
        );
        assert_eq!(
            GatewayProvider::from_name(" MIMECAST "),
            GatewayProvider::Mimecast
        );
    }
}
