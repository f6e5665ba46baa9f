//! Canonical operating-system names written to `Client.os` (never woothee's own spellings such as
//! `Mac OSX`, `iPhone` or `Windows UNKNOWN Ver`).
//!
//! The version is read from what the user agent states (`Windows NT 6.1` is Windows `7`,
//! `iPhone OS 17_4` is iOS `17.4`); woothee's names serve only as a mapped fallback.

use super::{Dt, Scan};
use openclick_events::v1::DeviceCategory;

/// Apple iPhone and iPod touch; iPad before iPadOS 13.
pub const IOS: &str = "iOS";
/// Apple iPad from version 13.
pub const IPADOS: &str = "iPadOS";
/// Apple macOS (Mac OS X, OS X).
pub const MACOS: &str = "macOS";
/// Microsoft Windows; the version is the marketing name (`10`, `8.1`, `7`, `XP`).
pub const WINDOWS: &str = "Windows";
/// Windows Phone / Windows Mobile.
pub const WINDOWS_PHONE: &str = "Windows Phone";
/// Google Android.
pub const ANDROID: &str = "Android";
/// Google ChromeOS.
pub const CHROMEOS: &str = "ChromeOS";
/// Any GNU/Linux distribution (Android and ChromeOS excluded).
pub const LINUX: &str = "Linux";
/// FreeBSD.
pub const FREEBSD: &str = "FreeBSD";
/// OpenBSD.
pub const OPENBSD: &str = "OpenBSD";
/// NetBSD.
pub const NETBSD: &str = "NetBSD";
/// A BSD woothee could not name.
pub const BSD: &str = "BSD";
/// BlackBerry OS and BlackBerry 10.
pub const BLACKBERRY: &str = "BlackBerry";
/// Symbian.
pub const SYMBIAN: &str = "Symbian";
/// Firefox OS.
pub const FIREFOX_OS: &str = "Firefox OS";
/// Classic Mac OS (before Mac OS X).
pub const MAC_OS_CLASSIC: &str = "Mac OS";

/// Every name above: `Client.os` is one of these or empty.
pub const ALL: &[&str] = &[
    IOS,
    IPADOS,
    MACOS,
    WINDOWS,
    WINDOWS_PHONE,
    ANDROID,
    CHROMEOS,
    LINUX,
    FREEBSD,
    OPENBSD,
    NETBSD,
    BSD,
    BLACKBERRY,
    SYMBIAN,
    FIREFOX_OS,
    MAC_OS_CLASSIC,
];

/// Marketing name of a Windows NT kernel version (`6.1` -> `7`); `None` when unknown.
pub(super) fn windows_nt_name(nt: &str) -> Option<&'static str> {
    Some(match nt {
        "10.0" | "6.4" => "10", // Windows 11 still sends 10.0
        "6.3" => "8.1",
        "6.2" => "8",
        "6.1" => "7",
        "6.0" => "Vista",
        "5.1" | "5.2" => "XP",
        "5.0" | "5.01" => "2000",
        "4.0" => "NT 4.0",
        _ => return None,
    })
}

/// Reads a dotted version (`17_4_1` or `10.15.7`; underscores become dots) right at the start of
/// `s`: digits, `.` and `_`, at most 16 bytes, trailing separators dropped.
pub(super) fn dotted_version(s: &str) -> String {
    let end = s
        .bytes()
        .take(16)
        .take_while(|b| b.is_ascii_digit() || *b == b'.' || *b == b'_')
        .count();
    s[..end].trim_end_matches(['.', '_']).replace('_', ".")
}

/// The dotted version right after the first occurrence of `token`, if `ua` contains it.
pub(super) fn version_after_token(ua: &str, token: &str) -> Option<String> {
    ua.find(token)
        .map(|i| dotted_version(&ua[i + token.len()..]))
}

/// Canonical OS name and version from what the user agent states; woothee's answer (mapped to
/// the canonical names) only when no token below is present. Called on a cache miss only.
///
/// The version is the one the agent writes: `Windows NT 6.1` is Windows `7` (NT versions mapped
/// by [`windows_nt_name`]; an unknown one is kept as `NT x.y`), `iPhone OS 17_4` is iOS `17.4`,
/// `Mac OS X 10_15_7` is macOS `10.15.7` (Safari has frozen that string since macOS 11, so it
/// is what the agent says, not necessarily the truth). Darwin kernel versions of CFNetwork agents
/// are not mapped to OS versions: the version is left empty.
pub(super) fn os_of(
    ua: &str,
    scan: &Scan,
    w_os: &str,
    w_os_version: &str,
    device: DeviceCategory,
) -> (&'static str, String) {
    let has = |t: Dt| scan.has(t);
    if has(Dt::WindowsPhone) {
        let v = version_after_token(ua, "Windows Phone OS ")
            .or_else(|| version_after_token(ua, "Windows Phone "))
            .unwrap_or_default();
        return (WINDOWS_PHONE, v);
    }
    // Apple mobile before macOS: their agents say "like Mac OS X".
    if has(Dt::IPad) || has(Dt::ProdIpad) {
        let v = version_after_token(ua, "CPU OS ")
            .or_else(|| version_after_token(ua, "iPhone OS "))
            .unwrap_or_default();
        let major: u32 = v
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        // iPadOS exists from 13; an iPad agent without a version is a current one.
        let name = if major == 0 || major >= 13 {
            IPADOS
        } else {
            IOS
        };
        return (name, v);
    }
    if has(Dt::IPhone) || has(Dt::IPod) || has(Dt::ProdIphone) || has(Dt::IosParen) {
        let v = version_after_token(ua, "iPhone OS ")
            .or_else(|| version_after_token(ua, "CPU OS "))
            .or_else(|| version_after_token(ua, "iOS "))
            .unwrap_or_default();
        return (IOS, v);
    }
    if has(Dt::Android) {
        let v = version_after_token(ua, "Android ")
            .or_else(|| version_after_token(ua, "Android/"))
            .unwrap_or_default();
        return (ANDROID, v);
    }
    if ua.contains("CrOS") {
        return (CHROMEOS, String::new());
    }
    if has(Dt::MacOsX) || has(Dt::Macintosh) || ua.contains("; OS X ") {
        // `Mac OS X 10_15_7`, `Mac OS X 10.9.2`, `Mac OS X Version 10.11.1`, `Mac OS X/10.11.6`,
        // `(Macintosh; OS X 14.2.1)`.
        let v = version_after_token(ua, "Mac OS X Version ")
            .or_else(|| version_after_token(ua, "Mac OS X/"))
            .or_else(|| version_after_token(ua, "Mac OS X "))
            .or_else(|| version_after_token(ua, "; OS X "))
            .unwrap_or_default();
        return (MACOS, v);
    }
    if has(Dt::Darwin) || has(Dt::AppleEws) {
        // CFNetwork agents: a desktop is a Mac (see `device_category`), anything else iOS.
        let name = if device == DeviceCategory::Desktop {
            MACOS
        } else {
            IOS
        };
        return (name, String::new());
    }
    if has(Dt::WindowsNt) {
        let nt = version_after_token(ua, "Windows NT ").unwrap_or_default();
        let v = match windows_nt_name(&nt) {
            Some(v) => v.to_owned(),
            None if nt.is_empty() => String::new(),
            None => format!("NT {nt}"),
        };
        return (WINDOWS, v);
    }
    if has(Dt::WindowsSlash) {
        // `Windows/10.0.17134` (a version) or `Windows/2009072715` (a build date: no version).
        let v = version_after_token(ua, "Windows/").unwrap_or_default();
        let major_minor: String = v.split('.').take(2).collect::<Vec<_>>().join(".");
        let v = windows_nt_name(&major_minor).unwrap_or("").to_owned();
        return (WINDOWS, v);
    }
    if has(Dt::WindowsNtDash) {
        return (WINDOWS, String::new());
    }
    for (token, name) in [
        ("FreeBSD", FREEBSD),
        ("OpenBSD", OPENBSD),
        ("NetBSD", NETBSD),
    ] {
        if let Some(i) = ua.find(token) {
            let rest = &ua[i + token.len()..];
            let v = rest
                .strip_prefix(['/', ' '])
                .map(dotted_version)
                .unwrap_or_default();
            return (name, v);
        }
    }
    if ua.contains("Linux") || ua.contains("linux") || has(Dt::X11) {
        return (LINUX, String::new());
    }
    woothee_os(w_os, w_os_version)
}

/// woothee's OS names mapped to the canonical ones; names that are not an OS (Japanese carriers,
/// `HTTP Library`, ...) map to nothing.
pub(super) fn woothee_os(name: &str, version: &str) -> (&'static str, String) {
    if let Some(v) = name.strip_prefix("Windows ") {
        return match v {
            "Phone OS" => (WINDOWS_PHONE, version.to_owned()),
            "UNKNOWN Ver" => (WINDOWS, String::new()),
            "CE" => (WINDOWS, "CE".to_owned()),
            _ => (WINDOWS, v.to_owned()),
        };
    }
    let canonical = match name {
        "Mac OSX" => MACOS,
        "Mac OS Classic" => MAC_OS_CLASSIC,
        "iPhone" | "iPod" | "iOS" => IOS,
        "iPad" => IPADOS,
        "Android" => ANDROID,
        "Linux" => LINUX,
        "ChromeOS" => CHROMEOS,
        "BSD" => BSD,
        "BlackBerry" | "BlackBerry 10" => BLACKBERRY,
        "SymbianOS" => SYMBIAN,
        "Firefox OS" => FIREFOX_OS,
        _ => return ("", String::new()),
    };
    (canonical, version.to_owned())
}
