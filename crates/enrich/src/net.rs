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

/// A set of networks, built from any list of [`IpNet`]s (overlaps and duplicates allowed), fit
/// for lists of hundreds of thousands of prefixes such as the iCloud Private Relay egress list.
///
/// # Layout, and why
/// On the 2-vCPU machines this runs on, a dependent load costs 25-50 ns while the data
/// touched stays under ~2 MiB and about 200 ns beyond 3 MiB (`BENCHMARKS.md`, "egress lookup").
/// A lookup over 300k prefixes cannot keep its index hot, so what counts is how many bytes the
/// whole set takes: the structure is built to be small first.
///
/// * Overlapping and adjacent networks are merged into disjoint inclusive ranges, then cut at
///   block boundaries (/16 for IPv4; /32 for IPv6, whose keys are the upper 64 bits of the
///   address, see below) so that a range is stored as two offsets inside its block: 4 bytes
///   for IPv4 (two `u16`), 8 for IPv6 (two `u32`), where plain `(start, end)` pairs took 8 and
///   16. A range that would need more than [`MAX_PIECES`] pieces (a /7 or wider, a /24 of
///   IPv6) stays whole in a short sorted list of its own.
/// * The blocks present are a short sorted list (tens to thousands of entries, always hot).
///   Each block has a radix table over its offsets: `2^r` buckets (the top `r` bits of the
///   offset), `r` chosen so a bucket holds about [`BUCKET`] ranges, each entry the index of the
///   bucket's first range. A lookup reads two adjacent entries (one load), then searches that
///   bucket's few pairs (one or two cache lines) and the range just before them, which may run
///   into the bucket. So a lookup makes two loads likely to miss, where a binary search makes
///   one per level: sampling every 16th start into a searched array (the previous layout)
///   still took ten dependent steps before its group, 133-148 ns at 300k prefixes.
/// * Searches are branch-free counts (`select_unpredictable`), since a random address would
///   mispredict half of a binary search's branches.
///
/// IPv6 networks of /64 or shorter (all of Apple's) are kept as 64-bit keys (their upper half);
/// longer ones go to a 128-bit sorted list of their own. `benches/enrich.rs`
/// (`egress_lookup_*`) measures it at 300k prefixes.
///
/// Hand-written because the benchmark says it pays: `egress_lookup_300000` against
/// `egress_lookup_300000_baseline_sorted_pairs` (one `partition_point` over merged
/// `(start, end)` pairs) in the same run, figures in `BENCHMARKS.md`; a static B-tree over the
/// pairs took 160-190 ns.
#[derive(Debug, Clone, Default)]
pub struct NetSet {
    v4: Blocks<u32>,
    v6_narrow: Blocks<u64>,
    v6_wide: Sorted<u128>,
}

/// Ranges per radix bucket inside a block, on average.
const BUCKET: usize = 8;

/// A range cut into more pieces than this stays whole in [`Blocks::whole`].
const MAX_PIECES: u64 = 256;

/// A key cut into a block (its high bits) and an offset in the block (its low bits).
trait Key: Copy + Ord + fmt::Debug + Default {
    /// The offset inside a block.
    type Low: Copy + Ord + fmt::Debug + Default + Into<u64>;
    /// Bits of an offset.
    const LOW_BITS: u32;
    /// The last offset of a block (all ones).
    const MAX_LOW: Self::Low;
    /// Splits a key into its block and its offset.
    fn split(self) -> (Self, Self::Low);
    /// The block after `self`, a block number (never the largest key).
    fn inc(self) -> Self;
    /// `self + 1`, unless `self` is the largest key.
    fn succ(self) -> Option<Self>;
    /// Blocks spanned from `self` to `end`, saturated.
    fn blocks_to(self, end: Self) -> u64;
}

impl Key for u32 {
    type Low = u16;
    const LOW_BITS: u32 = 16;
    const MAX_LOW: u16 = u16::MAX;
    #[inline]
    fn split(self) -> (u32, u16) {
        // The low 16 bits, by construction.
        (self >> 16, self as u16)
    }
    fn inc(self) -> u32 {
        self + 1
    }
    fn succ(self) -> Option<u32> {
        self.checked_add(1)
    }
    fn blocks_to(self, end: u32) -> u64 {
        u64::from((end >> 16) - (self >> 16)) + 1
    }
}

impl Key for u64 {
    type Low = u32;
    const LOW_BITS: u32 = 32;
    const MAX_LOW: u32 = u32::MAX;
    #[inline]
    fn split(self) -> (u64, u32) {
        // The low 32 bits, by construction.
        (self >> 32, self as u32)
    }
    fn inc(self) -> u64 {
        self + 1
    }
    fn succ(self) -> Option<u64> {
        self.checked_add(1)
    }
    fn blocks_to(self, end: u64) -> u64 {
        (end >> 32) - (self >> 32) + 1
    }
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

/// Merges overlapping and adjacent inclusive ranges (after sorting them).
fn merge<T: Copy + Ord>(mut v: Vec<(T, T)>, succ: impl Fn(T) -> Option<T>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        if let Some(last) = out.last_mut() {
            // Overlapping, or adjacent (no successor at the top of the space).
            if s <= last.1 || succ(last.1) == Some(s) {
                if e > last.1 {
                    last.1 = e;
                }
                continue;
            }
        }
        out.push((s, e));
    }
    out.shrink_to_fit();
    out
}

/// Disjoint sorted inclusive ranges, searched by one branch-free count: for the few ranges that
/// do not fit [`Blocks`].
#[derive(Debug, Clone, Default)]
struct Sorted<T> {
    starts: Vec<T>,
    ends: Vec<T>,
}

impl<T: Copy + Ord> Sorted<T> {
    fn new(merged: Vec<(T, T)>) -> Self {
        let (starts, ends) = merged.into_iter().unzip();
        Sorted { starts, ends }
    }

    #[inline]
    fn contains(&self, x: T) -> bool {
        let k = count_le(&self.starts, x);
        k > 0 && self.ends[k - 1] >= x
    }

    fn bytes(&self) -> usize {
        (self.starts.capacity() + self.ends.capacity()) * std::mem::size_of::<T>()
    }
}

/// Disjoint ranges cut at block boundaries, stored as offsets in their blocks.
#[derive(Debug, Clone, Default)]
struct Blocks<K: Key> {
    /// The blocks holding ranges, sorted.
    ids: Vec<K>,
    /// Per block: where its ranges and its radix table start, and its radix shift.
    meta: Vec<Meta>,
    /// Per block, `2^r + 1` indices into `pairs`: entry `j` is the first range of the block
    /// whose start is at or after bucket `j`'s first offset (`j << shift`); the last entry is
    /// the block's end.
    radix: Vec<u32>,
    /// `(start, end)` offsets in the block, inclusive.
    pairs: Vec<(K::Low, K::Low)>,
    /// Ranges too wide to cut.
    whole: Sorted<K>,
    /// Ranges before cutting.
    merged: usize,
}

/// One block's place in [`Blocks`].
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    /// Its first range in `pairs`.
    first: u32,
    /// Its radix table in `radix`.
    radix_at: u32,
    /// An offset's bucket is `offset >> shift`.
    shift: u32,
}

impl<K: Key> Blocks<K> {
    fn new(v: Vec<(K, K)>) -> Self {
        let merged = merge(v, K::succ);
        let mut set = Blocks {
            merged: merged.len(),
            ..Default::default()
        };
        let mut whole = Vec::new();
        for (s, e) in merged {
            if s.blocks_to(e) > MAX_PIECES {
                whole.push((s, e));
                continue;
            }
            let (mut hs, mut lo) = s.split();
            let (he, le) = e.split();
            loop {
                let last = hs == he;
                if set.ids.last() != Some(&hs) {
                    set.ids.push(hs);
                    set.meta.push(Meta {
                        first: set.pairs.len() as u32,
                        ..Meta::default()
                    });
                }
                set.pairs.push((lo, if last { le } else { K::MAX_LOW }));
                if last {
                    break;
                }
                hs = hs.inc();
                lo = K::Low::default();
            }
        }
        assert!(
            set.pairs.len() < u32::MAX as usize,
            "too many ranges for one set"
        );
        for b in 0..set.meta.len() {
            let a = set.meta[b].first as usize;
            let z = set
                .meta
                .get(b + 1)
                .map_or(set.pairs.len(), |m| m.first as usize);
            // 2^r buckets for about BUCKET ranges each.
            let r = (z - a)
                .div_ceil(BUCKET)
                .next_power_of_two()
                .trailing_zeros()
                .min(K::LOW_BITS);
            let shift = K::LOW_BITS - r;
            set.meta[b].radix_at = set.radix.len() as u32;
            set.meta[b].shift = shift;
            let mut i = a;
            for j in 0..(1u64 << r) {
                let bucket_start = j << shift;
                while i < z && set.pairs[i].0.into() < bucket_start {
                    i += 1;
                }
                set.radix.push(i as u32);
            }
            set.radix.push(z as u32);
        }
        set.whole = Sorted::new(whole);
        set.ids.shrink_to_fit();
        set.meta.shrink_to_fit();
        set.radix.shrink_to_fit();
        set.pairs.shrink_to_fit();
        set
    }

    /// Without a branch on the address: half the addresses a lookup sees are not in the set,
    /// at any of the steps below, and a mispredicted early return cost more than finishing.
    #[inline]
    fn contains(&self, x: K) -> bool {
        if !self.whole.starts.is_empty() && self.whole.contains(x) {
            return true;
        }
        if self.ids.is_empty() {
            return false;
        }
        let (high, low) = x.split();
        let b = count_le(&self.ids, high);
        let bi = b.saturating_sub(1);
        let in_block = (b > 0) & (self.ids[bi] == high);
        let m = self.meta[bi];
        // The bucket's ranges, and before them the one range that may run into the bucket.
        let at = m.radix_at as usize + (low.into() >> m.shift) as usize;
        let (lo, hi) = (self.radix[at] as usize, self.radix[at + 1] as usize);
        let c = count_le(&self.pairs[lo..hi], (low, K::MAX_LOW));
        // The last range starting at or before `low`, if it is in this block.
        let found = lo + c > m.first as usize;
        let p = if found { lo + c - 1 } else { 0 };
        in_block & found & (self.pairs[p].1 >= low)
    }

    fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.whole.starts.is_empty()
    }

    fn bytes(&self) -> usize {
        self.ids.capacity() * std::mem::size_of::<K>()
            + self.meta.capacity() * std::mem::size_of::<Meta>()
            + self.radix.capacity() * 4
            + self.pairs.capacity() * std::mem::size_of::<(K::Low, K::Low)>()
            + self.whole.bytes()
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
            v4: Blocks::new(v4),
            v6_narrow: Blocks::new(narrow),
            v6_wide: Sorted::new(merge(wide, |k: u128| k.checked_add(1))),
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
                    || (!self.v6_wide.starts.is_empty() && self.v6_wide.contains(a))
            }
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6_narrow.is_empty() && self.v6_wide.starts.is_empty()
    }

    /// Disjoint ranges held after merging overlapping and adjacent networks.
    pub fn ranges(&self) -> usize {
        self.v4.merged + self.v6_narrow.merged + self.v6_wide.starts.len()
    }

    /// Heap bytes the set holds: its ranges and their index.
    pub fn memory_bytes(&self) -> usize {
        self.v4.bytes() + self.v6_narrow.bytes() + self.v6_wide.bytes()
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

    /// Networks wider than a block are cut at block boundaries (or kept whole past
    /// `MAX_PIECES`); both answer at their edges.
    #[test]
    fn netset_cuts_wide_networks() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/14",
            "12.0.0.0/7",
            "2606:54c0::/29",
            "2a00::/12",
            "192.0.2.0/24",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let s = NetSet::new(&nets);
        assert_eq!(s.v4.whole.starts.len(), 1, "the /7 stays whole");
        assert_eq!(s.v6_narrow.whole.starts.len(), 1, "the /12 stays whole");
        assert_eq!(s.ranges(), 5);
        for (a, want) in [
            ("10.0.0.0", true),
            ("10.1.255.255", true),
            ("10.2.0.0", true),
            ("10.3.255.255", true),
            ("10.4.0.0", false),
            ("9.255.255.255", false),
            ("12.0.0.0", true),
            ("13.255.255.255", true),
            ("14.0.0.0", false),
            ("11.255.255.255", false),
            ("192.0.2.255", true),
            ("192.0.3.0", false),
            ("2606:54c0::", true),
            ("2606:54c3:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2606:54c7:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2606:54c8::", false),
            ("2606:54bf:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2a0f:ffff::1", true),
            ("2a10::", false),
        ] {
            assert_eq!(s.contains(ip(a)), want, "{a}");
        }
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

    /// Prefixes packed into a few blocks, as in Apple's egress list: nodes below nodes, buckets
    /// at the edges of nodes, addresses just outside each prefix and at the ends of the space.
    #[test]
    fn clustered_netset_matches_a_linear_scan() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut nets: Vec<IpNet> = Vec::new();
        for _ in 0..4_000 {
            let r = rnd();
            let (base, len) = [
                (0x681c_0000u32, 16u32),
                (0xace0_0000, 13),
                (0x0000_0000, 24),
            ][(r % 3) as usize];
            let plen = 26 + (r >> 8) as u32 % 7;
            let a = base | ((r >> 16) as u32 & (u32::MAX >> len));
            nets.push(
                IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), plen as u8)
                    .unwrap()
                    .trunc(),
            );
            let r = rnd();
            let a = (0x2a02_26f7u128 << 96) | (u128::from(r) << 32);
            let plen = if r % 50 == 0 { 45 } else { 64 };
            nets.push(
                IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), plen)
                    .unwrap()
                    .trunc(),
            );
        }
        nets.push("255.255.255.255/32".parse().unwrap());
        nets.push("ffff:ffff:ffff:ffff::/64".parse().unwrap());
        let s = NetSet::new(&nets);
        assert!(
            s.v4.radix.len() > 4 * s.v4.meta.len()
                && s.v6_narrow.radix.len() > 4 * s.v6_narrow.meta.len(),
            "radix buckets"
        );
        let mut probes: Vec<IpAddr> = Vec::new();
        for n in &nets {
            probes.push(n.network());
            probes.push(n.broadcast());
            match (n.network(), n.broadcast()) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    probes.push(IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_sub(1))));
                    probes.push(IpAddr::V4(Ipv4Addr::from(u32::from(b).wrapping_add(1))));
                }
                (IpAddr::V6(a), IpAddr::V6(b)) => {
                    probes.push(IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_sub(1))));
                    probes.push(IpAddr::V6(Ipv6Addr::from(u128::from(b).wrapping_add(1))));
                }
                _ => unreachable!(),
            }
        }
        for _ in 0..4_000 {
            let r = rnd();
            probes.push(IpAddr::V4(Ipv4Addr::from(
                0xace0_0000 | (r as u32 & 0x7_ffff),
            )));
            probes.push(IpAddr::V6(Ipv6Addr::from(
                (0x2a02_26f7u128 << 96) | (u128::from(r) << 16),
            )));
        }
        // The linear scan, over merged ranges of the same networks built independently.
        let mut v4: Vec<(u32, u32)> = Vec::new();
        let mut v6: Vec<(u128, u128)> = Vec::new();
        for n in &nets {
            match n {
                IpNet::V4(n) => v4.push((n.network().into(), n.broadcast().into())),
                IpNet::V6(n) => v6.push((n.network().into(), n.broadcast().into())),
            }
        }
        for p in probes {
            let want = match p {
                IpAddr::V4(a) => v4.iter().any(|&(s, e)| (s..=e).contains(&u32::from(a))),
                IpAddr::V6(a) => v6.iter().any(|&(s, e)| (s..=e).contains(&u128::from(a))),
            };
            assert_eq!(s.contains(p), want, "{p}");
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
