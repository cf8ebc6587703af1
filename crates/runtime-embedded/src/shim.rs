//! The shim: a small synchronous process, one per container, that outlives the agent.
//!
//! ```text
//! agent ──spawn──▶ shim (setsid, joins pod net/ipc/uts, creates the container cgroup,
//!                  │      unshare(CLONE_NEWPID))
//!                  ├─fork─▶ init (pid 1 of the new pid namespace): waits for "go",
//!                  │        own mount namespace, overlay root, /proc /dev /sys,
//!                  │        pivot_root, env, cwd, user, exec entrypoint+cmd
//!                  ├─ moves init into the cgroup, sends "go", waits for the exec (a
//!                  │  close-on-exec pipe), writes running.json, answers "ok" on stdout
//!                  └─ waitpid(init) → exit.json (code, signal, OOM), cgroup removed
//! ```
//!
//! It never starts an async runtime: it must stay a few hundred KB of memory per container.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid};
use podium_linux::cgroup::{Cgroup, Hierarchy};
use podium_linux::mounts::{self, RootfsSpec};
use podium_linux::namespace::{self, NamespaceKind};
use podium_linux::process;
use podium_runtime::ExitStatus;

use crate::error::{EmbeddedError, Result};
use crate::state::{
    CONTAINER_FILE, ContainerRecord, EXIT_FILE, RUNNING_FILE, RunningRecord, read_json,
    write_json_atomic,
};

/// What the shim answers on stdout once the container runs.
pub(crate) const HANDSHAKE_OK: &str = "ok";
/// Prefix of the shim's answer when it could not start the container.
pub(crate) const HANDSHAKE_ERROR: &str = "error: ";

/// Exit code of an init that could not set up the container (as `docker run` uses 125).
const SETUP_FAILED: i32 = 125;
/// Exit codes of a failed exec, as a shell reports them.
const NOT_EXECUTABLE: i32 = 126;
const NOT_FOUND: i32 = 127;

/// Entry point of the shim: the podium binary calls this when started as
/// `podium shim <container-state-dir>` (pass the arguments after `shim`), before any
/// tokio runtime exists, and exits with the returned code.
pub fn shim_main(args: &[String]) -> i32 {
    let [dir] = args else {
        eprintln!("usage: shim <container-state-dir>");
        return 2;
    };
    let dir = Path::new(dir);
    // Leave the agent's session so that signals to its process group (a terminal's ^C,
    // a service manager stopping it) do not reach containers. Fails only for a group
    // leader, which the agent's child is not.
    let _ = nix::unistd::setsid();
    let started = match start_container(dir) {
        Ok(started) => started,
        Err(error) => {
            answer_agent(&format!("{HANDSHAKE_ERROR}{error}"));
            eprintln!("podium shim: {error}");
            return 1;
        }
    };
    answer_agent(HANDSHAKE_OK);
    detach_stdout();
    // From here the shim blocks in waitpid for the container's lifetime: the code that
    // set the container up need not stay resident in every shim.
    podium_linux::memory::release_program_text();
    match supervise(dir, started) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("podium shim: {error}");
            1
        }
    }
}

/// The running container as the shim holds it.
struct Started {
    init_pid: u32,
    cgroup: Box<dyn Cgroup>,
}

fn start_container(dir: &Path) -> Result<Started> {
    let record: ContainerRecord = read_json(&dir.join(CONTAINER_FILE))?.ok_or_else(|| {
        EmbeddedError::NotFound(format!("{}", dir.join(CONTAINER_FILE).display()))
    })?;
    for (kind, path) in [
        (NamespaceKind::Net, &record.netns),
        (NamespaceKind::Ipc, &record.ipc_ns),
        (NamespaceKind::Uts, &record.uts_ns),
    ] {
        namespace::join(kind, path).map_err(|e| EmbeddedError::host("join pod namespace", e))?;
    }
    let hierarchy =
        Hierarchy::detect().map_err(|e| EmbeddedError::host("find cgroup hierarchy", e))?;
    let cgroup = hierarchy
        .cgroup(&record.cgroup)
        .map_err(|e| EmbeddedError::host("container cgroup", e))?;
    // A cgroup left by a shim that was killed holds nothing we want.
    cgroup
        .remove()
        .map_err(|e| EmbeddedError::host("remove stale container cgroup", e))?;
    cgroup
        .create()
        .map_err(|e| EmbeddedError::host("create container cgroup", e))?;
    let limits = &record.spec.resources;
    cgroup
        .set_memory_limit(limits.memory_bytes)
        .map_err(|e| EmbeddedError::host("set memory limit", e))?;
    cgroup
        .set_cpu_limit(limits.cpu_millis)
        .map_err(|e| EmbeddedError::host("set cpu limit", e))?;

    if let Some(parent) = record.log_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| EmbeddedError::io_at("create", parent, e))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&record.log_path)
        .map_err(|e| EmbeddedError::io_at("open log", &record.log_path, e))?;
    let (go_read, go_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| EmbeddedError::io("pipe", e.into()))?;
    // The init holds the write end until exec closes it (close-on-exec) or it exits, so EOF
    // on the read end means "the command runs, or never will": only then is start done.
    let (exec_read, exec_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| EmbeddedError::io("pipe", e.into()))?;

    // The shim stays in the host pid namespace; its next child is pid 1 of a new one.
    unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| EmbeddedError::io("unshare pid namespace", e.into()))?;
    let init_pid = process::fork_child(|| {
        let _held_until_exec = &exec_write;
        container_init(&record, &go_read, &log)
    })
    .map_err(|e| EmbeddedError::host("fork container init", e))?;
    drop(go_read);
    drop(exec_write);

    let released = cgroup
        .add_pid(init_pid)
        .map_err(|e| EmbeddedError::host("move init into its cgroup", e))
        .and_then(|()| {
            nix::unistd::write(&go_write, b"1")
                .map(drop)
                .map_err(|e| EmbeddedError::io("release init", e.into()))
        });
    if let Err(error) = released {
        // Closing the pipe without "go" makes the init exit before it runs anything.
        drop(go_write);
        let _ = waitpid(pid_of(init_pid), None);
        let _ = cgroup.remove();
        return Err(error);
    }
    drop(go_write);
    wait_for_eof(&exec_read)?;

    let running = RunningRecord {
        shim_pid: std::process::id(),
        shim_start_time: own_start_time()?,
        init_pid,
        init_start_time: process::start_time(init_pid)
            .map_err(|e| EmbeddedError::host("read init start time", e))?
            // Already exited and reaped cannot happen: only we reap it. Zero never matches
            // a live process, so stop() will simply find nothing to signal.
            .unwrap_or(0),
        started_at: jiff::Timestamp::now(),
    };
    write_json_atomic(&dir.join(RUNNING_FILE), &running)?;
    Ok(Started { init_pid, cgroup })
}

/// Block until every holder of the pipe's write end has closed it.
fn wait_for_eof(read_end: &OwnedFd) -> Result<()> {
    let mut buffer = [0u8; 64];
    loop {
        match nix::unistd::read(read_end, &mut buffer) {
            Ok(0) => return Ok(()),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(EmbeddedError::io(
                    "wait for the container to exec",
                    e.into(),
                ));
            }
        }
    }
}

fn own_start_time() -> Result<u64> {
    process::start_time(std::process::id())
        .map_err(|e| EmbeddedError::host("read own start time", e))?
        .ok_or_else(|| EmbeddedError::Shim("no /proc entry for the shim itself".into()))
}

/// Wait for the init, record how it ended, and clean up its cgroup. The record is written
/// last: once `exit.json` exists, nothing of the container is left running.
fn supervise(dir: &Path, started: Started) -> Result<()> {
    let status = loop {
        match waitpid(pid_of(started.init_pid), None) {
            Ok(WaitStatus::Exited(_, code)) => break (code, None),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                break (128 + signal as i32, Some(signal as i32));
            }
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(EmbeddedError::io("wait for container init", e.into())),
        }
    };
    let finished_at = jiff::Timestamp::now();
    let oom_killed = started
        .cgroup
        .oom_kill_count()
        .map(|n| n > 0)
        .unwrap_or_else(|e| {
            eprintln!("podium shim: read OOM count: {e}");
            false
        });
    if let Err(e) = started.cgroup.remove() {
        eprintln!("podium shim: remove container cgroup: {e}");
    }
    let exit = ExitStatus {
        code: status.0,
        signal: status.1,
        oom_killed,
        finished_at,
    };
    write_json_atomic(&dir.join(EXIT_FILE), &exit)
}

fn pid_of(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// One line to the agent, which waits for it in `start`.
fn answer_agent(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // The agent may have died meanwhile; the container state on disk still tells all.
    let _ = writeln!(stdout, "{}", line.replace('\n', " "));
    let _ = stdout.flush();
}

/// Point stdout at /dev/null so that nothing later blocks on, or dies of, the agent's pipe.
fn detach_stdout() {
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
}

/// The container's init, in the forked child. Returns only on failure, with the exit code;
/// the reason goes to the container log.
fn container_init(record: &ContainerRecord, go: &OwnedFd, log: &File) -> i32 {
    // Die with the shim: a container nobody supervises would run unaccounted.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        return SETUP_FAILED;
    }
    let mut byte = [0u8; 1];
    match nix::unistd::read(go, &mut byte) {
        Ok(1) if byte[0] == b'1' => {}
        _ => return SETUP_FAILED,
    }
    if nix::unistd::dup2_stdout(log.as_fd()).is_err()
        || nix::unistd::dup2_stderr(log.as_fd()).is_err()
    {
        return SETUP_FAILED;
    }
    if let Err(error) = enter_root(record) {
        eprintln!("podium: cannot set up container: {error}");
        return SETUP_FAILED;
    }
    exec_command(record)
}

fn enter_root(record: &ContainerRecord) -> Result<()> {
    let host = |context: &str| {
        let context = context.to_string();
        move |e| EmbeddedError::host(context, e)
    };
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| EmbeddedError::io("unshare mount namespace", e.into()))?;
    mounts::make_private().map_err(host("mounts"))?;
    let spec = RootfsSpec {
        layers: record.layers.clone(),
        upper: record.upper.clone(),
        work: record.work.clone(),
        target: record.rootfs.clone(),
        bind_files: record.bind_files.clone(),
    };
    mounts::prepare_rootfs(&spec).map_err(host("root filesystem"))?;
    mounts::pivot_into(&record.rootfs).map_err(host("pivot_root"))?;
    let working_dir = Path::new(&record.working_dir);
    std::fs::create_dir_all(working_dir)
        .map_err(|e| EmbeddedError::io_at("create working dir", working_dir, e))?;
    nix::unistd::chdir(working_dir)
        .map_err(|e| EmbeddedError::io(format!("chdir {}", record.working_dir), e.into()))?;
    if let Some(user) = record.user.as_deref().filter(|u| !u.is_empty()) {
        let (uid, gid) = resolve_user(
            user,
            &read_or_empty("/etc/passwd"),
            &read_or_empty("/etc/group"),
        )?;
        nix::unistd::setgroups(&[Gid::from_raw(gid)])
            .map_err(|e| EmbeddedError::io("setgroups", e.into()))?;
        nix::unistd::setgid(Gid::from_raw(gid))
            .map_err(|e| EmbeddedError::io("setgid", e.into()))?;
        nix::unistd::setuid(Uid::from_raw(uid))
            .map_err(|e| EmbeddedError::io("setuid", e.into()))?;
    }
    process::reset_signals().map_err(host("signals"))
}

fn read_or_empty(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `uid`, `uid:gid`, `name` or `name:group`, names looked up in the image's files.
fn resolve_user(user: &str, passwd: &str, group: &str) -> Result<(u32, u32)> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    // passwd: name:x:uid:gid:...
    let passwd_entry = |pred: &dyn Fn(&str, u32) -> bool| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let uid = fields.get(2)?.parse::<u32>().ok()?;
            let gid = fields.get(3)?.parse::<u32>().ok()?;
            pred(fields.first()?, uid).then_some((uid, gid))
        })
    };
    let (uid, primary_gid) = match user_part.parse::<u32>() {
        Ok(uid) => (
            uid,
            passwd_entry(&|_, id| id == uid).map_or(0, |(_, gid)| gid),
        ),
        Err(_) => passwd_entry(&|name, _| name == user_part).ok_or_else(|| {
            EmbeddedError::Invalid(format!("user {user_part:?} not in the image's /etc/passwd"))
        })?,
    };
    let gid = match group_part {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .lines()
                .find_map(|line| {
                    let fields: Vec<&str> = line.split(':').collect();
                    (*fields.first()? == g)
                        .then(|| fields.get(2)?.parse::<u32>().ok())
                        .flatten()
                })
                .ok_or_else(|| {
                    EmbeddedError::Invalid(format!("group {g:?} not in the image's /etc/group"))
                })?,
        },
    };
    Ok((uid, gid))
}

/// Exec the container command, searching `PATH` from the container's environment like
/// `execvpe`. Returns only on failure.
fn exec_command(record: &ContainerRecord) -> i32 {
    let Some(program) = record.argv.first() else {
        eprintln!("podium: no command to run");
        return SETUP_FAILED;
    };
    let path_var = record
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::DEFAULT_PATH);
    let Some(executable) = find_executable(program, path_var) else {
        eprintln!("podium: exec {program:?}: executable file not found in $PATH");
        return NOT_FOUND;
    };
    let to_cstrings = |items: &[String]| -> Option<Vec<std::ffi::CString>> {
        items
            .iter()
            .map(|s| std::ffi::CString::new(s.as_bytes()).ok())
            .collect()
    };
    let (Some(argv), Some(env), Ok(path)) = (
        to_cstrings(&record.argv),
        to_cstrings(&record.env),
        std::ffi::CString::new(executable.as_os_str().as_encoded_bytes()),
    ) else {
        eprintln!("podium: command or environment contains a NUL byte");
        return SETUP_FAILED;
    };
    let Err(error) = nix::unistd::execve(&path, &argv, &env);
    eprintln!("podium: exec {program:?}: {}", error.desc());
    match error {
        Errno::ENOENT | Errno::ENOTDIR => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    }
}

/// `program` itself when it contains a slash, else the first executable file of that name
/// in `path_var`.
fn find_executable(program: &str, path_var: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    path_var
        .split(':')
        .map(|dir| {
            if dir.is_empty() {
                Path::new(".")
            } else {
                Path::new(dir)
            }
        })
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\n";

    #[test]
    fn users_resolve_by_number_and_name() {
        assert_eq!(resolve_user("1000", PASSWD, GROUP).unwrap(), (1000, 0));
        assert_eq!(resolve_user("33", PASSWD, GROUP).unwrap(), (33, 33));
        assert_eq!(resolve_user("www-data", PASSWD, GROUP).unwrap(), (33, 33));
        assert_eq!(
            resolve_user("www-data:staff", PASSWD, GROUP).unwrap(),
            (33, 50)
        );
        assert_eq!(resolve_user("5:7", PASSWD, GROUP).unwrap(), (5, 7));
        assert!(resolve_user("nobody", PASSWD, GROUP).is_err());
        assert!(resolve_user("root:wheel", PASSWD, GROUP).is_err());
    }

    #[test]
    fn executables_are_found_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("tool"), "").unwrap();
        std::fs::write(bin.join("data"), "").unwrap();
        std::fs::set_permissions(
            bin.join("tool"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let path_var = format!("/nonexistent:{}", bin.display());
        assert_eq!(find_executable("tool", &path_var), Some(bin.join("tool")));
        assert_eq!(find_executable("data", &path_var), None);
        assert_eq!(find_executable("missing", &path_var), None);
        assert_eq!(
            find_executable("/abs/x", &path_var),
            Some(PathBuf::from("/abs/x"))
        );
    }

    #[test]
    fn wrong_arguments_are_a_usage_error() {
        assert_eq!(shim_main(&[]), 2);
    }
}
