//! A minimal edge-triggered epoll: each socket is registered once for reading and
//! writing, and waits take a nanosecond timeout (`epoll_pwait2`), because an open-loop
//! schedule with 10 µs between requests cannot live with `epoll_wait`'s milliseconds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub use libc::epoll_event as Event;

/// Event bits a caller tests.
pub const READABLE: u32 = (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32;
pub const WRITABLE: u32 = libc::EPOLLOUT as u32;

pub struct Epoll {
    fd: OwnedFd,
    /// False once the kernel said ENOSYS: fall back to `epoll_wait` (rounded up to ms).
    pwait2: bool,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd, pwait2: true })
    }

    /// Registers `fd` edge-triggered for input and output; closing `fd` unregisters it.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = Event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: `ev` outlives the call; the kernel copies it.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits at most `timeout_ns` for events; returns how many of `events` were filled.
    pub fn wait(&mut self, events: &mut [Event], timeout_ns: u64) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as libc::c_int;
        loop {
            let r = if self.pwait2 {
                let ts = libc::timespec {
                    tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
                    tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
                };
                // SAFETY: `events` has room for `max` entries and `ts` outlives the call; a
                // null sigmask means "keep the current one" (epoll_pwait2(2)).
                unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        self.fd.as_raw_fd(),
                        events.as_mut_ptr(),
                        max,
                        &ts as *const libc::timespec,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    ) as libc::c_int
                }
            } else {
                let ms = timeout_ns.div_ceil(1_000_000).min(i32::MAX as u64) as libc::c_int;
                // SAFETY: `events` has room for `max` entries.
                unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, ms) }
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => return Ok(0),
                Some(libc::ENOSYS) if self.pwait2 => self.pwait2 = false,
                _ => return Err(e),
            }
        }
    }
}
