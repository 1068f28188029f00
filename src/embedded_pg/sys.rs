//! The only `unsafe` in Tally: a handful of libc calls that std does not
//! wrap (effective uid, the passwd database, signals to a pid). Each call is
//! wrapped in a safe function here so that every other file keeps
//! `unsafe_code = "deny"`.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A signal the embedded server is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Fast shutdown: abort transactions, flush, exit.
    Interrupt,
    /// Immediate shutdown: exit now, WAL replay on the next start.
    Quit,
    /// Cannot be caught: what an OOM killer or `kill -9` does.
    Kill,
    /// A polite stop request.
    Terminate,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Interrupt => libc::SIGINT,
            Signal::Quit => libc::SIGQUIT,
            Signal::Kill => libc::SIGKILL,
            Signal::Terminate => libc::SIGTERM,
        }
    }
}

/// The effective user id of this process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory
    // of ours.
    unsafe { libc::geteuid() }
}

/// Sends `sig` to `pid`; a pid of 0 or one that does not fit a pid_t is
/// ignored (0 and negative pids would signal whole process groups).
pub fn kill(pid: u32, sig: Signal) -> bool {
    let Some(pid) = i32::try_from(pid).ok().filter(|p| *p > 0) else {
        return false;
    };
    // SAFETY: kill only reads its two integer arguments; pid > 0 is checked
    // above so it addresses exactly one process, never a group.
    unsafe { libc::kill(pid, sig.raw()) == 0 }
}

/// Whether a process with this pid exists (a zombie counts).
pub fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().filter(|p| *p > 0) else {
        return false;
    };
    // SAFETY: signal 0 performs only the existence and permission checks;
    // pid > 0 is checked above.
    let rc = unsafe { libc::kill(pid, 0) };
    // EPERM: alive but owned by another user (e.g. postgres, seen by non-root).
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A passwd entry: (uid, gid, home directory).
pub type PasswdEntry = (u32, u32, PathBuf);

/// Looks a user up by name with the reentrant getpwnam_r.
pub fn user_by_name(name: &str) -> Option<PasswdEntry> {
    let cname = CString::new(name).ok()?;
    lookup_passwd(|pwd, buf, result| {
        // SAFETY: `cname` is a valid NUL-terminated string; `pwd`, `buf`
        // (with its true length) and `result` are live, exclusively borrowed
        // for the call, and getpwnam_r writes only within them.
        unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                result,
            )
        }
    })
}

/// Looks a user up by uid with the reentrant getpwuid_r.
pub fn user_by_uid(uid: u32) -> Option<PasswdEntry> {
    lookup_passwd(|pwd, buf, result| {
        // SAFETY: as in `user_by_name`: every pointer is to a live, exclusively
        // borrowed buffer whose length is passed alongside it.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
}

/// Runs a getpw*_r call, growing the string buffer on ERANGE, and copies the
/// entry out before the buffer it points into is dropped.
fn lookup_passwd(
    call: impl Fn(&mut libc::passwd, &mut [u8], &mut *mut libc::passwd) -> libc::c_int,
) -> Option<PasswdEntry> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: libc::passwd is a plain C struct of integers and raw
        // pointers, for which all-zero bytes is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, &mut buf, &mut result);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        let home = if pwd.pw_dir.is_null() {
            PathBuf::new()
        } else {
            // SAFETY: on success pw_dir points to a NUL-terminated string
            // inside `buf`, which is alive until the end of this function;
            // the bytes are copied out before that.
            let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
            PathBuf::from(OsStr::from_bytes(dir.to_bytes()))
        };
        return Some((pwd.pw_uid, pwd.pw_gid, home));
    }
}
