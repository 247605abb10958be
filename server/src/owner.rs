//! Who owns a run: an id for this process that another process on the same machine can check
//! for life, the heartbeat that says it is alive, and the rule that says an owner is gone. A
//! run is marked interrupted only when its owner is gone, never while another live process
//! (an `actiscope train` beside the server) writes it.

use std::time::Duration;

use actiscope_store::{Store, StoreError};

/// How often an owner says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// An owner silent for this long is gone, wherever it ran.
pub const STALE_AFTER_MS: i64 = 30_000;

/// This process, as it names itself in the runs it owns: `machine/pid/start`, where `machine`
/// is the host name and boot id and `start` the process's start time in clock ticks since
/// boot (so a recycled pid is never taken for the process that died).
pub fn this_process() -> String {
    let pid = std::process::id();
    let start = process_start(pid).unwrap_or_default();
    format!("{}/{pid}/{start}", machine())
}

/// The host name and boot id of this machine; `unknown` parts where `/proc` does not say.
fn machine() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().replace('/', "_"))
            .unwrap_or_else(|_| "unknown".to_owned())
    };
    format!(
        "{}:{}",
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/random/boot_id")
    )
}

/// Start time (clock ticks since boot) of process `pid`, `None` when it does not exist, is a
/// zombie, or `/proc` cannot say.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces: fields are counted after its `)`.
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // Field 22 of stat(5); `state` was field 3.
    fields.nth(18)?.parse().ok()
}

/// Whether the owner `owner`, last heard of at `heartbeat_unix_ms`, is gone as seen now: on
/// this machine, when its process no longer exists (at once); anywhere, when it has been
/// silent for [`STALE_AFTER_MS`]. Runs stored before owners were recorded have an empty owner
/// and no heartbeat, so they count as gone.
pub fn is_gone(owner: &str, heartbeat_unix_ms: i64, now_unix_ms: i64) -> bool {
    let mut parts = owner.rsplitn(3, '/');
    let (start, pid, owner_machine) = (parts.next(), parts.next(), parts.next());
    if let (Some(start), Some(pid), Some(owner_machine)) = (start, pid, owner_machine)
        && owner_machine == machine()
        && process_start(std::process::id()).is_some()
        && let Ok(pid) = pid.parse::<u32>()
    {
        return process_start(pid).map(|s| s.to_string()) != Some(start.to_owned());
    }
    now_unix_ms.saturating_sub(heartbeat_unix_ms) > STALE_AFTER_MS
}

/// Marks interrupted every run left running or queued by an owner that is gone (never one of
/// `this_owner`'s); returns the ids marked.
pub fn mark_orphans(store: &mut Store, this_owner: &str) -> Result<Vec<i64>, StoreError> {
    let now = store.clock_unix_ms()?;
    store.mark_orphans_interrupted(|owner, heartbeat_unix_ms| {
        owner != this_owner && is_gone(owner, heartbeat_unix_ms, now)
    })
}

/// Puts back in the queue every run a worker was training when it died (its process gone, or
/// silent for [`STALE_AFTER_MS`]), so the next worker resumes it; never `this_owner`'s.
pub fn requeue_orphans(store: &mut Store, this_owner: &str) -> Result<Vec<i64>, StoreError> {
    let now = store.clock_unix_ms()?;
    store.requeue_gone_workers(|owner, heartbeat_unix_ms| {
        owner != this_owner && is_gone(owner, heartbeat_unix_ms, now)
    })
}

/// A thread that says every [`HEARTBEAT_INTERVAL`] that `owner` is alive, on a connection of
/// its own, until dropped (used by `actiscope train`; a server's hub has its own).
pub struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts beating for `owner` in the file of `store`; an in-memory store, which no other
    /// process can see, needs none.
    pub fn start(store: &Store, owner: String) -> Result<Self, StoreError> {
        let Some(connection) = store.reopen() else {
            return Ok(Self {
                stop: None,
                thread: None,
            });
        };
        let connection = connection?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("actiscope-heartbeat".to_owned())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(HEARTBEAT_INTERVAL)
                {
                    // A busy store misses one beat; the next one comes soon enough.
                    let _ = connection.heartbeat(&owner);
                }
            })
            .ok();
        Ok(Self {
            stop: Some(stop),
            thread,
        })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_gone() {
        let me = this_process();
        let now = actiscope_store::now_unix_ms();
        // Alive however old its heartbeat: the process is there.
        assert!(!is_gone(&me, 0, now), "{me}");
        // A process that ran and was reaped.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let start = process_start(pid);
        child.wait().expect("wait");
        let dead = format!("{}/{pid}/{}", machine(), start.unwrap_or(1));
        assert!(is_gone(&dead, now, now), "{dead}");
        // Our pid with another start time: a recycled pid, so the owner is gone.
        let recycled = format!("{}/{}/1", machine(), std::process::id());
        assert!(is_gone(&recycled, now, now));
    }

    #[test]
    fn owners_elsewhere_are_gone_only_when_silent() {
        let now = 1_000_000;
        let elsewhere = "other-host:boot/42/7";
        assert!(!is_gone(elsewhere, now - 1_000, now));
        assert!(is_gone(elsewhere, now - STALE_AFTER_MS - 1, now));
        // Runs from before owners were recorded.
        assert!(is_gone("", 0, now));
    }
}
