//! What the operator chooses for the spool: [`SpoolConfig`] and its [`FsyncPolicy`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::{
    SpoolError, DEFAULT_FSYNC_MS, DEFAULT_MAX_BYTES, DEFAULT_QUEUE_CAPACITY, DEFAULT_SEGMENT_BYTES,
};

/// Smallest accepted `segment_bytes`.
const MIN_SEGMENT_BYTES: u64 = 1024;

/// When the writer thread fsyncs. See the [module docs](super).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every write batch, before it becomes readable.
    Always,
    /// At most every this many milliseconds while there is unsynced data, and on segment roll.
    EveryMs(u64),
    /// Only on [`Spool::flush`](super::Spool::flush) and shutdown.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::EveryMs(DEFAULT_FSYNC_MS)
    }
}

impl FromStr for FsyncPolicy {
    type Err = SpoolError;

    /// Parses `always`, `never`, a duration (`200ms`, `2s`, anything `humantime` reads) or
    /// `every:N` (N milliseconds, or `every:` followed by a duration).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || SpoolError::InvalidFsyncPolicy(s.to_string());
        match t.as_str() {
            "always" => return Ok(FsyncPolicy::Always),
            "never" => return Ok(FsyncPolicy::Never),
            _ => {}
        }
        let every = match t.strip_prefix("every:") {
            Some(ms) if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) => {
                return ms.parse().map(FsyncPolicy::EveryMs).map_err(|_| bad());
            }
            Some(rest) => rest,
            None => t.as_str(),
        };
        let d = humantime::parse_duration(every).map_err(|_| bad())?;
        u64::try_from(d.as_millis())
            .map(FsyncPolicy::EveryMs)
            .map_err(|_| bad())
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::EveryMs(n) => write!(f, "{n}ms"),
        }
    }
}

/// Spool settings. `Default` gives everything but a sensible `dir` (it is `spool`, relative to
/// the working directory); use [`SpoolConfig::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool's own directory (created if missing).
    pub dir: PathBuf,
    /// A segment is rolled before it would grow past this. Default 16 MiB, at least 1 KiB.
    pub segment_bytes: u64,
    /// Bound on segment bytes plus queued bytes. Default 1 GiB.
    pub max_bytes: u64,
    /// When to fsync. Default every 200 ms.
    pub fsync: FsyncPolicy,
    /// Records the append channel holds. Default 8192.
    pub queue_capacity: usize,
}

impl SpoolConfig {
    /// Defaults, with `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig {
            dir: dir.into(),
            ..SpoolConfig::default()
        }
    }

    pub(super) fn validate(&self) -> Result<(), SpoolError> {
        if self.dir.as_os_str().is_empty() {
            return Err(SpoolError::Config("dir is empty".into()));
        }
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(SpoolError::Config(format!(
                "segment_bytes {} is below the minimum {MIN_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.max_bytes == 0 {
            return Err(SpoolError::Config("max_bytes is 0".into()));
        }
        if self.queue_capacity == 0 {
            return Err(SpoolError::Config("queue_capacity is 0".into()));
        }
        Ok(())
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("spool"),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_bytes: DEFAULT_MAX_BYTES,
            fsync: FsyncPolicy::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses() {
        assert_eq!(
            "always".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Always
        );
        assert_eq!(
            " Never ".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Never
        );
        assert_eq!(
            "200ms".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EveryMs(200)
        );
        assert_eq!(
            "every:50".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EveryMs(50)
        );
        assert_eq!(
            "every:50ms".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EveryMs(50)
        );
        assert_eq!(
            "2s".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EveryMs(2000)
        );
        for bad in [
            "",
            "sometimes",
            "ms",
            "-5ms",
            "every:",
            "99999999999999999999s",
        ] {
            let e = bad.parse::<FsyncPolicy>().unwrap_err();
            assert!(!e.is_retryable(), "{bad}");
        }
        for p in [
            FsyncPolicy::Always,
            FsyncPolicy::Never,
            FsyncPolicy::EveryMs(7),
        ] {
            assert_eq!(p.to_string().parse::<FsyncPolicy>().unwrap(), p);
        }
        assert_eq!(FsyncPolicy::default(), FsyncPolicy::EveryMs(200));
    }
}
