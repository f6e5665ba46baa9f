//! Addresses: normalisation, anonymisation policy, range sets and the default Apple ranges and
//! hosting ASNs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::EnrichError;

/// What `Network.ip` keeps of the client address. Geo is always looked up from the full address
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpPolicy {
    /// The full address.
    Keep,
    /// The network prefix only, host bits zeroed (`203.0.113.0` for /24).
    Truncate {
        /// Prefix length kept for IPv4 (0..=32).
        v4_prefix: u8,
        /// Prefix length kept for IPv6 (0..=128).
        v6_prefix: u8,
    },
    /// Nothing: `Network.ip` is empty.
    Drop,
}

impl Default for IpPolicy {
    /// `truncate:24:48`.
    fn default() -> Self {
        IpPolicy::Truncate {
            v4_prefix: 24,
            v6_prefix: 48,
        }
    }
}

impl FromStr for IpPolicy {
    type Err = EnrichError;

    /// `keep`, `drop`, `truncate` (= `truncate:24:48`), `truncate:V4`, `truncate:V4:V6`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EnrichError::InvalidIpPolicy(s.to_owned());
        let t = s.trim().to_ascii_lowercase();
        let mut parts = t.split(':');
        match parts.next() {
            Some("keep") if parts.next().is_none() => Ok(IpPolicy::Keep),
            Some("drop") if parts.next().is_none() => Ok(IpPolicy::Drop),
            Some("truncate") => {
                let v4 = match parts.next() {
                    None => 24,
                    Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
                };
                let v6 = match parts.next() {
                    None => 48,
                    Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
                };
                if parts.next().is_some() || v4 > 32 || v6 > 128 {
                    return Err(bad());
                }
                Ok(IpPolicy::Truncate {
                    v4_prefix: v4,
                    v6_prefix: v6,
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for IpPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpPolicy::Keep => f.write_str("keep"),
            IpPolicy::Drop => f.write_str("drop"),
            IpPolicy::Truncate {
                v4_prefix,
                v6_prefix,
            } => write!(f, "truncate:{v4_prefix}:{v6_prefix}"),
        }
    }
}

impl IpPolicy {
    /// Applies the policy to an (already normalised) address.
    pub fn apply(&self, ip: IpAddr) -> Option<IpAddr> {
        match *self {
            IpPolicy::Keep => Some(ip),
            IpPolicy::Drop => None,
            IpPolicy::Truncate {
                v4_prefix,
                v6_prefix,
            } => Some(match ip {
                IpAddr::V4(a) => {
                    let p = u32::from(v4_prefix.min(32));
                    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                    IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
                }
                IpAddr::V6(a) => {
                    let p = u32::from(v6_prefix.min(128));
                    let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                    IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
                }
            }),
        }
    }

    /// The policy applied and formatted for `Network.ip` (empty for `Drop`).
    pub fn render(&self, ip: IpAddr) -> String {
        match self.apply(ip) {
            Some(IpAddr::V4(a)) => render_v4(a),
            Some(a) => a.to_string(),
            None => String::new(),
        }
    }
}

/// Dotted-quad text of an IPv4 address, without the formatting machinery (the hot path renders
/// one per hit); same text as `Ipv4Addr`'s `Display`.
fn render_v4(a: Ipv4Addr) -> String {
    let mut out = String::with_capacity(15);
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
    out
}

/// `::ffff:a.b.c.d` becomes `a.b.c.d`; every other address is returned as is.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// A set of networks with `O(log n)` membership, built from any list of [`IpNet`]s (overlaps
/// and duplicates allowed), fit for lists of hundreds of thousands of prefixes such as the
/// iCloud Private Relay egress list.
///
/// Layout: overlapping and adjacent networks are merged into disjoint `(start, end)` ranges,
/// sorted, under a static B-tree of every [`FANOUT`]th start (a small root level searched by a
/// branch-free binary search, then one block of [`FANOUT`] keys per level, counted branch-free):
/// a lookup touches one cache line per level instead of the ~18 scattered ones of a binary
/// search over 300k ranges. IPv6 networks of /64 or shorter (all of Apple's) are kept as 64-bit
/// keys (their upper half), halving the memory touched; longer ones go to a 128-bit set of
/// their own. `benches/enrich.rs` (`egress_lookup_*`) measures it at 300k prefixes.
#[derive(Debug, Clone, Default)]
pub struct NetSet {
    v4: Ranges<u32>,
    v6_narrow: Ranges<u64>,
    v6_wide: Ranges<u128>,
}

/// Keys per block at every level of the index.
const FANOUT: usize = 8;

/// The root level is searched by binary search once it is at most this long.
const ROOT_MAX: usize = 256;

/// Disjoint sorted inclusive ranges under a static B-tree of their starts.
#[derive(Debug, Clone, Default)]
struct Ranges<T> {
    ranges: Vec<(T, T)>,
    /// `levels[0][j]` is `ranges[j * FANOUT].0`; `levels[k + 1][j]` is `levels[k][j * FANOUT]`.
    /// The last level is at most `ROOT_MAX` long. Empty when `ranges` fits one block.
    levels: Vec<Vec<T>>,
}

/// How many elements of sorted `v` are `<= x`, without data-dependent branches.
#[inline]
fn count_le<T: Copy + Ord>(v: &[T], x: T) -> usize {
    let mut len = v.len();
    if len == 0 {
        return 0;
    }
    let mut base = 0;
    while len > 1 {
        let half = len / 2;
        // A conditional move, not a branch: a random address would mispredict half the steps
        // (LLVM turns a plain `if`, even `half * bool`, into a branch here).
        base = std::hint::select_unpredictable(v[base + half] <= x, base + half, base);
        len -= half;
    }
    base + usize::from(v[base] <= x)
}

/// How many of (at most [`FANOUT`]) sorted keys are `<= x`: a branch-free count.
#[inline]
fn count_block<T: Copy + Ord>(v: &[T], x: T) -> usize {
    v.iter().map(|&k| usize::from(k <= x)).sum()
}

impl<T: Copy + Ord + From<u8> + std::ops::Add<Output = T>> Ranges<T> {
    fn new(mut v: Vec<(T, T)>) -> Self {
        v.sort_unstable();
        let mut ranges: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            if let Some(last) = ranges.last_mut() {
                // Adjacent or overlapping (guard the +1 against overflow at the top of the space).
                if s <= last.1 || (last.1 < e && s == last.1 + T::from(1u8)) {
                    if e > last.1 {
                        last.1 = e;
                    }
                    continue;
                }
            }
            ranges.push((s, e));
        }
        ranges.shrink_to_fit();
        let mut levels: Vec<Vec<T>> = Vec::new();
        if ranges.len() > FANOUT {
            levels.push(ranges.iter().step_by(FANOUT).map(|r| r.0).collect());
            while levels.last().map_or(0, Vec::len) > ROOT_MAX {
                let next = levels
                    .last()
                    .map(|l| l.iter().step_by(FANOUT).copied().collect())
                    .unwrap_or_default();
                levels.push(next);
            }
        }
        Ranges { ranges, levels }
    }

    #[inline]
    fn contains(&self, x: T) -> bool {
        // The block of `ranges` whose first start is the last one <= x.
        let (lo, hi) = match self.levels.split_last() {
            None => (0, self.ranges.len()),
            Some((root, below)) => {
                let b = count_le(root, x);
                if b == 0 {
                    return false;
                }
                let mut idx = b - 1;
                for level in below.iter().rev() {
                    let lo = idx * FANOUT;
                    let hi = (lo + FANOUT).min(level.len());
                    // `level[lo] <= x`: at least one key counts.
                    idx = lo + count_block(&level[lo..hi], x) - 1;
                }
                let lo = idx * FANOUT;
                (lo, (lo + FANOUT).min(self.ranges.len()))
            }
        };
        let block = &self.ranges[lo..hi];
        let k = block.iter().map(|r| usize::from(r.0 <= x)).sum::<usize>();
        k > 0 && block[k - 1].1 >= x
    }

    fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    fn len(&self) -> usize {
        self.ranges.len()
    }
}

impl NetSet {
    /// Builds the set.
    pub fn new<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut narrow = Vec::new();
        let mut wide = Vec::new();
        for n in nets {
            match n {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) if n.prefix_len() <= 64 => narrow.push((
                    (u128::from(n.network()) >> 64) as u64,
                    (u128::from(n.broadcast()) >> 64) as u64,
                )),
                IpNet::V6(n) => wide.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Self {
            v4: Ranges::new(v4),
            v6_narrow: Ranges::new(narrow),
            v6_wide: Ranges::new(wide),
        }
    }

    /// Whether `ip` (normalised) is in the set.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6_narrow.contains((a >> 64) as u64)
                    || (!self.v6_wide.is_empty() && self.v6_wide.contains(a))
            }
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6_narrow.is_empty() && self.v6_wide.is_empty()
    }

    /// Disjoint ranges held after merging overlapping and adjacent networks.
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6_narrow.len() + self.v6_wide.len()
    }
}

/// Default Apple proxy ranges (see the crate doc, "Apple Mail Privacy Protection").
///
/// * `17.0.0.0/8`: Apple's own IPv4 block (ARIN, AS714), from which Mail Privacy Protection's
///   prefetches are observed.
/// * `2620:149::/32`, `2a01:b740::/32`, `2403:300::/32`: Apple's IPv6 allocations (AS714/AS6185).
///
/// Mail Privacy Protection fetches also leave through the iCloud Private Relay egress
/// partners; Apple publishes that list (`egress-ip-ranges.csv`, linked from Apple's "Prepare your
/// network or web server for iCloud Private Relay" support page, about 250k lines, changing
/// weekly). It is too large and volatile to hard-code: point
/// `EnrichConfig::apple_egress_ranges` (`--apple-egress-ranges`) at the file instead.
pub fn default_apple_ranges() -> Vec<IpNet> {
    [
        "17.0.0.0/8",
        "2620:149::/32",
        "2a01:b740::/32",
        "2403:300::/32",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Default ASNs of hosting, cloud and security providers, whose traffic is rarely a person
/// reading email.
pub fn default_hosting_asns() -> Vec<u32> {
    vec![
        16509,  // Amazon AWS
        14618,  // Amazon AWS (us-east-1)
        8987,   // Amazon (AWS Europe)
        396982, // Google Cloud
        19527,  // Google (cloud/crawlers)
        8075,   // Microsoft (Azure, Exchange Online, SafeLinks)
        14061,  // DigitalOcean
        16276,  // OVH
        24940,  // Hetzner
        213230, // Hetzner Cloud
        63949,  // Linode / Akamai Connected Cloud
        20473,  // Vultr (Choopa)
        12876,  // Scaleway
        31898,  // Oracle Cloud
        45102,  // Alibaba Cloud
        132203, // Tencent Cloud
        51167,  // Contabo
        9009,   // M247
        13335,  // Cloudflare
        30031,  // Barracuda Networks
        15830,  // Equinix
        26211,  // Proofpoint
        22843,  // Proofpoint (legacy)
        42427,  // Mimecast
        30148,  // Sucuri
        13916,  // Symantec / Broadcom
        19324,  // Dosarrest / security
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn policy_parse_and_display() {
        assert_eq!("keep".parse::<IpPolicy>().unwrap(), IpPolicy::Keep);
        assert_eq!("DROP".parse::<IpPolicy>().unwrap(), IpPolicy::Drop);
        assert_eq!("truncate".parse::<IpPolicy>().unwrap(), IpPolicy::default());
        assert_eq!(
            "truncate:16:32".parse::<IpPolicy>().unwrap(),
            IpPolicy::Truncate {
                v4_prefix: 16,
                v6_prefix: 32
            }
        );
        assert_eq!(
            "truncate:8".parse::<IpPolicy>().unwrap(),
            IpPolicy::Truncate {
                v4_prefix: 8,
                v6_prefix: 48
            }
        );
        for bad in [
            "",
            "truncate:33",
            "truncate:24:129",
            "truncate:a",
            "keep:1",
            "truncate:1:2:3",
            "mask",
        ] {
            assert!(bad.parse::<IpPolicy>().is_err(), "{bad}");
        }
        assert_eq!(IpPolicy::default().to_string(), "truncate:24:48");
        let p: IpPolicy = IpPolicy::default().to_string().parse().unwrap();
        assert_eq!(p, IpPolicy::default());
    }

    #[test]
    fn anonymisation() {
        let t = IpPolicy::default();
        assert_eq!(t.render(ip("203.0.113.77")), "203.0.113.0");
        assert_eq!(t.render(ip("2001:db8:abcd:1234::1")), "2001:db8:abcd::");
        assert_eq!(IpPolicy::Keep.render(ip("203.0.113.77")), "203.0.113.77");
        assert_eq!(IpPolicy::Drop.render(ip("203.0.113.77")), "");
        let z = IpPolicy::Truncate {
            v4_prefix: 0,
            v6_prefix: 0,
        };
        assert_eq!(z.render(ip("203.0.113.77")), "0.0.0.0");
        assert_eq!(z.render(ip("2001:db8::1")), "::");
        let full = IpPolicy::Truncate {
            v4_prefix: 32,
            v6_prefix: 128,
        };
        assert_eq!(full.render(ip("203.0.113.77")), "203.0.113.77");
        assert_eq!(full.render(ip("2001:db8::1")), "2001:db8::1");
    }

    #[test]
    fn mapped_addresses_normalise() {
        assert_eq!(normalize(ip("::ffff:81.2.69.142")), ip("81.2.69.142"));
        assert_eq!(normalize(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(normalize(ip("::1")), ip("::1"));
    }

    #[test]
    fn netset_membership() {
        let nets: Vec<IpNet> = [
            "17.0.0.0/8",
            "10.0.0.0/24",
            "10.0.1.0/24",
            "2620:149::/32",
            "0.0.0.0/32",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let s = NetSet::new(&nets);
        assert!(s.contains(ip("17.58.1.2")));
        assert!(s.contains(ip("10.0.1.255")));
        assert!(s.contains(ip("0.0.0.0")));
        assert!(!s.contains(ip("10.0.2.0")));
        assert!(!s.contains(ip("18.0.0.0")));
        assert!(s.contains(ip("2620:149:a::1")));
        assert!(!s.contains(ip("2620:14a::1")));
        let all: Vec<IpNet> = vec![
            "0.0.0.0/0".parse().unwrap(),
            "255.255.255.255/32".parse().unwrap(),
        ];
        assert!(NetSet::new(&all).contains(ip("255.255.255.255")));
        assert!(NetSet::new(&[]).is_empty());
        assert!(!NetSet::new(&[]).contains(ip("2001:db8::1")));
        // IPv6 beyond /64 (the 128-bit set) beside /64 and shorter (64-bit keys).
        let nets: Vec<IpNet> = [
            "2001:db8:0:1::/64",
            "2001:db8:0:2::10/124",
            "::/128",
            "ffff::/16",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let s = NetSet::new(&nets);
        assert!(s.contains(ip("2001:db8:0:1:ffff:ffff:ffff:ffff")));
        assert!(!s.contains(ip("2001:db8:0:0:ffff:ffff:ffff:ffff")));
        assert!(s.contains(ip("2001:db8:0:2::1f")));
        assert!(!s.contains(ip("2001:db8:0:2::20")));
        assert!(!s.contains(ip("2001:db8:0:2::f")));
        assert!(s.contains(ip("::")));
        assert!(!s.contains(ip("::1")));
        assert!(s.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert_eq!(s.ranges(), 4);
    }

    /// The index agrees with a linear scan, across block and level boundaries and sizes.
    #[test]
    fn netset_matches_a_linear_scan() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [1usize, 2, 7, 8, 9, 33, 200, 2100, 20_000] {
            let nets: Vec<IpNet> = (0..n)
                .map(|_| {
                    let r = rnd();
                    if r % 2 == 0 {
                        let a = Ipv4Addr::from((r >> 32) as u32 & 0x00ff_ffff);
                        IpNet::new(IpAddr::V4(a), 20 + (r % 13) as u8)
                            .unwrap()
                            .trunc()
                    } else {
                        let a = Ipv6Addr::from(u128::from(r >> 40) << 80);
                        IpNet::new(IpAddr::V6(a), 40 + (r % 60) as u8)
                            .unwrap()
                            .trunc()
                    }
                })
                .collect();
            let s = NetSet::new(&nets);
            for _ in 0..2000 {
                let r = rnd();
                let probe = if r % 2 == 0 {
                    IpAddr::V4(Ipv4Addr::from((r >> 32) as u32 & 0x00ff_ffff))
                } else {
                    IpAddr::V6(Ipv6Addr::from(
                        u128::from(r >> 40) << 80 | u128::from(r & 0xffff),
                    ))
                };
                let want = nets.iter().any(|n| n.contains(&probe));
                assert_eq!(s.contains(probe), want, "{n} nets, {probe}");
            }
            for n in &nets {
                assert!(s.contains(n.network()) && s.contains(n.broadcast()), "{n}");
            }
        }
    }

    #[test]
    fn render_v4_matches_display() {
        for n in [
            0u32,
            1,
            9,
            10,
            99,
            100,
            255,
            0x0a00_0001,
            0xc0a8_6465,
            0xffff_ffff,
            0x0102_0304,
        ] {
            let a = Ipv4Addr::from(n);
            assert_eq!(render_v4(a), a.to_string());
        }
        for o in 0..=255u8 {
            let a = Ipv4Addr::new(o, 255 - o, o / 2, o.wrapping_mul(7));
            assert_eq!(render_v4(a), a.to_string());
        }
    }
}
