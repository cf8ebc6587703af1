//! Processes: fork for single-threaded callers, pidfds, and start times that tell a
//! process from a later one that reused its pid.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::ForkResult;

use crate::{LinuxError, Result};

/// Run `child` in a forked copy of this process and return the child's pid. The child
/// ends with `child`'s return value as exit code, without running exit handlers that
/// belong to the parent.
///
/// Refuses to fork a multi-threaded process: the child would hold copies of locks that
/// other threads owned (allocator, stdio), so anything but exec could deadlock. The shim
/// is single-threaded by design; the agent never calls this.
pub fn fork_child(child: impl FnOnce() -> i32) -> Result<u32> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(LinuxError::Precondition(format!(
            "fork from a process with {threads} threads"
        )));
    }
    // SAFETY: the process is single-threaded (checked above), so the child starts with
    // consistent allocator and library state.
    match unsafe { nix::unistd::fork() }.map_err(|e| LinuxError::sys("fork", e))? {
        ForkResult::Parent { child } => u32::try_from(child.as_raw())
            .map_err(|_| LinuxError::Invalid(format!("fork returned pid {child}"))),
        ForkResult::Child => {
            let code = child();
            // SAFETY: `_exit` ends the process immediately; it is async-signal-safe and skips
            // atexit handlers and stdio flushes that would repeat the parent's.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Give every signal its default disposition and unblock them all, as a process about to
/// exec a container should: ignored signals stay ignored across exec (Rust programs
/// ignore SIGPIPE), which would make `yes | head` in a container spin.
pub fn reset_signals() -> Result<()> {
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code, so no async-signal-safety
        // requirement applies; the call only changes this process's signal table.
        let previous = unsafe { libc::signal(signal as libc::c_int, libc::SIG_DFL) };
        if previous == libc::SIG_ERR {
            return Err(LinuxError::sys(format!("reset {signal}"), Errno::last()));
        }
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(|e| LinuxError::sys("unblock signals", e))
}

/// The number of threads of the calling process.
pub fn thread_count() -> Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| LinuxError::io("read /proc/self/status", e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| LinuxError::Invalid("no Threads: line in /proc/self/status".into()))
}

/// A pidfd for `pid` (Linux 5.3+): it stays bound to that process even after the pid is
/// reused, polls readable when the process exits, and works for non-children.
pub fn pidfd_open(pid: u32) -> Result<OwnedFd> {
    let raw_pid =
        libc::pid_t::try_from(pid).map_err(|_| LinuxError::Invalid(format!("pid {pid}")))?;
    // SAFETY: plain syscall with integer arguments; on success it returns a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
    if fd < 0 {
        return Err(LinuxError::sys(format!("pidfd_open {pid}"), Errno::last()));
    }
    let fd =
        i32::try_from(fd).map_err(|_| LinuxError::Invalid(format!("pidfd_open returned {fd}")))?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send `signal` through a pidfd: never reaches a process that merely reused the pid.
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: Signal) -> Result<()> {
    // SAFETY: the fd is a valid pidfd for the lifetime of the borrow; info is NULL as the
    // man page allows.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(LinuxError::sys(
            format!("pidfd_send_signal {signal}"),
            Errno::last(),
        ));
    }
    Ok(())
}

/// Resolve when the process behind `pidfd` has exited (a pidfd polls readable then, and
/// stays readable). Needs a tokio runtime with I/O enabled.
pub async fn exited(pidfd: OwnedFd) -> Result<()> {
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the descriptor stays open and
    // refers to the same pidfd until the AsyncFd is dropped at the end of this function.
    let watched = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| LinuxError::io("watch pidfd", e.into()))?;
    let _ready = watched
        .readable()
        .await
        .map_err(|e| LinuxError::io("wait on pidfd", e))?;
    Ok(())
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`), or
/// `None` when no such process exists.
pub fn start_time(pid: u32) -> Result<Option<u64>> {
    let path = format!("/proc/{pid}/stat");
    let stat = match std::fs::read_to_string(&path) {
        Ok(stat) => stat,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LinuxError::io(format!("read {path}"), e)),
    };
    parse_start_time(&stat)
        .map(Some)
        .ok_or_else(|| LinuxError::Invalid(format!("unparsable {path}: {stat:?}")))
}

/// Field 22 counted after the command name, which may itself hold spaces and parentheses,
/// so parsing starts after the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    // after_comm starts with field 3 (state); starttime is field 22.
    after_comm.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// A pidfd for the process `pid` if it is still the one that started at `start_time`;
/// `None` when it has exited (and been reaped) or the pid now names another process.
/// The pidfd is opened before the check, so the answer cannot go stale afterwards.
pub fn open_if_same(pid: u32, expected_start_time: u64) -> Result<Option<OwnedFd>> {
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(LinuxError::Sys {
            source: Errno::ESRCH,
            ..
        }) => return Ok(None),
        Err(e) => return Err(e),
    };
    match start_time(pid)? {
        Some(actual) if actual == expected_start_time => Ok(Some(pidfd)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat =
            "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn own_start_time_is_stable_and_pidfd_matches() {
        let me = std::process::id();
        let first = start_time(me).unwrap().unwrap();
        assert_eq!(start_time(me).unwrap(), Some(first));
        assert!(open_if_same(me, first).unwrap().is_some());
        assert!(open_if_same(me, first + 1).unwrap().is_none());
    }

    #[test]
    fn exited_process_is_reported_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = start_time(pid).unwrap();
        child.wait().unwrap();
        assert_eq!(start_time(pid).unwrap(), None);
        if let Some(started) = started {
            assert!(open_if_same(pid, started).unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn pidfd_resolves_when_the_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let pidfd = pidfd_open(child.id()).unwrap();
        let began = std::time::Instant::now();
        tokio::time::timeout(std::time::Duration::from_secs(10), exited(pidfd))
            .await
            .unwrap()
            .unwrap();
        assert!(began.elapsed() >= std::time::Duration::from_millis(150));
        child.wait().unwrap();
    }

    #[test]
    fn fork_is_refused_with_threads() {
        // The test harness runs tests on worker threads, so this process has several.
        let err = fork_child(|| 0).unwrap_err();
        assert!(matches!(err, LinuxError::Precondition(_)), "{err}");
    }
}
