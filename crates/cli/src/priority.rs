//! Background threads yield the CPU to the request path.
//!
//! A request is answered on a tokio worker; everything else the process runs (librdkafka's
//! broker and main threads, the producer's delivery-report poller, the sink's hand-off thread
//! (`openclick-handoff`), the deferred-opens thread (`openclick-opens`), the spool replay, the
//! suppression follower, the embedded broker) can wait a few milliseconds without anyone
//! noticing. On a box where those threads share cores with the workers, the scheduler otherwise
//! gives them equal turns, and a worker that is preempted for a slice leaves its queued
//! requests waiting: that is most of the latency tail. So `serve` lowers the priority (raises the
//! nice value, which needs no privilege) of every thread except the tokio workers, the main
//! thread (which accepts connections) and the admin listener's thread (health checks must not
//! wait behind a saturated worker). By default (`--background-policy idle`) they also run
//! under Linux's `SCHED_IDLE`: a request thread that wakes preempts them at once instead of
//! waiting for the end of their slice, which shortens the tail at moderate load (BENCHMARKS.md,
//! session 13). The suppression follower is the exception: it keeps the normal policy (still
//! reniced), so opt-outs reach a busy replica promptly.
//!
//! Threads come and go (librdkafka starts a thread per broker it connects to, a replaced
//! producer brings new ones), so a small watcher re-scans `/proc/self/task` every two seconds.
//! Linux only; elsewhere this does nothing.
//!
//! The trade-off: when the workers keep every core busy without pause, the background threads
//! get only what is left (at nice 19 about 1.5% of a core each against one busy worker, at
//! `SCHED_IDLE` about 0.3%). The deferred-opens and hand-off threads then fall behind, and a
//! request thread whose buffer is full processes it (opens) or hands it to the producer
//! (events) itself; the producer falls behind too, the librdkafka queue grows to its bound and
//! further events go to the spool; nothing is lost, delivery is later. `--background-nice 0`
//! turns all of this off.

use std::collections::HashSet;
use std::time::Duration;

/// Tokio names its worker (and blocking-pool) threads this by default.
const WORKER_PREFIX: &str = "tokio-rt-worker";
const RESCAN: Duration = Duration::from_secs(2);
/// The suppression follower's thread (`suppress-follower`, truncated to 15 bytes by the
/// kernel).
const FOLLOWER_PREFIX: &str = "suppress-follow";

/// Starts the watcher that renices background threads to `nice` (1..=19) and, with `idle`,
/// moves them to `SCHED_IDLE`; `nice` 0 does nothing.
pub fn lower_background_threads(nice: i32, idle: bool) {
    if nice <= 0 || !cfg!(target_os = "linux") {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("openclick-nice".into())
        .spawn(move || {
            let pid = std::process::id();
            let mut done = HashSet::new();
            loop {
                if let Err(e) = rescan(pid, nice, idle, &mut done) {
                    tracing::warn!(error = %e, "cannot lower background thread priority");
                    return;
                }
                std::thread::sleep(RESCAN);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the thread priority watcher");
    }
}

/// One pass over the process's threads. Returns an error only if `/proc/self/task` is
/// unreadable (then there is nothing to do on this system).
fn rescan(pid: u32, nice: i32, idle: bool, done: &mut HashSet<u32>) -> std::io::Result<()> {
    let mut alive = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        else {
            continue;
        };
        alive.insert(tid);
        if tid == pid || done.contains(&tid) {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) else {
            continue; // exited meanwhile
        };
        if comm.starts_with(WORKER_PREFIX)
            || comm.trim_end() == openclick_admin::server::THREAD_NAME
        {
            continue;
        }
        let Some(t) = rustix::process::Pid::from_raw(tid as i32) else {
            continue;
        };
        match rustix::process::setpriority_process(Some(t), nice) {
            Ok(()) => {
                tracing::debug!(
                    tid,
                    thread = comm.trim_end(),
                    nice,
                    "background thread reniced"
                );
            }
            Err(e) => tracing::debug!(tid, error = %e, "renice failed"),
        }
        // The suppression follower keeps the normal policy: opt-outs must reach a busy replica
        // promptly, and it needs little CPU.
        if idle && !comm.starts_with(FOLLOWER_PREFIX) {
            if let Err(e) = set_idle_policy(tid as i32) {
                tracing::debug!(tid, error = %e, "SCHED_IDLE failed");
            }
        }
        done.insert(tid);
    }
    // Forget exited threads: their ids may be reused by new ones.
    done.retain(|t| alive.contains(t));
    Ok(())
}

/// Moves one thread of this process to `SCHED_IDLE`. No privilege is needed to lower a
/// thread's policy. rustix has no `sched_setscheduler`, hence the binary's one `unsafe` call.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_idle_policy(tid: i32) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` on the stack for the whole call, which only
    // reads it; a thread that exited meanwhile makes the call fail with ESRCH, nothing else.
    let rc = unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_idle_policy(_tid: i32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of(tid: u32) -> i64 {
        // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value; the comm (field 2) is in
        // parentheses and may contain spaces, so count from the closing one.
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    /// Field 41 of the same line: the scheduling policy (0 SCHED_OTHER, 5 SCHED_IDLE).
    fn policy_of(tid: u32) -> i64 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(38).unwrap().parse().unwrap()
    }

    fn gettid() -> u32 {
        std::fs::read_link("/proc/thread-self")
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn renices_background_threads_but_not_workers() {
        let spawn = |name: &str| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let h = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    tx.send(gettid()).unwrap();
                    let _ = stop_rx.recv();
                })
                .unwrap();
            (rx.recv().unwrap(), stop_tx, h)
        };
        // Relative to the nice value the test runs at (`nice cargo test` starts above 0, and an
        // unprivileged process cannot lower it): new threads inherit it.
        let base = nice_of(gettid());
        let target = (base + 7).min(19) as i32;
        let (bg, stop_bg, h1) = spawn("rdk:broker1");
        let (follower, stop_f, h3) = spawn("suppress-follower");
        let (worker, stop_w, h2) = spawn("tokio-rt-worker");
        assert_eq!((nice_of(bg), nice_of(worker)), (base, base));
        let base_policy = policy_of(worker);
        let mut done = HashSet::new();
        rescan(std::process::id(), target, true, &mut done).unwrap();
        assert_eq!(nice_of(bg), i64::from(target));
        assert_eq!(policy_of(bg), i64::from(libc::SCHED_IDLE));
        assert_eq!(nice_of(worker), base, "workers keep their priority");
        assert_eq!(policy_of(worker), base_policy, "and their policy");
        assert_eq!(nice_of(follower), i64::from(target));
        assert_eq!(
            policy_of(follower),
            base_policy,
            "the follower is reniced, not idle"
        );
        assert!(done.contains(&bg) && !done.contains(&worker));
        drop((stop_bg, stop_w, stop_f));
        h1.join().unwrap();
        h2.join().unwrap();
        h3.join().unwrap();
        rescan(std::process::id(), target, true, &mut done).unwrap();
        assert!(!done.contains(&bg), "exited threads are forgotten");
    }
}
