//! Kernel receive timestamps (`SO_TIMESTAMPNS`): when an answer's bytes reached this
//! client's socket, as opposed to when this thread got round to reading them.
//!
//! A client that also sends shares its CPU between sending and reading, so at a higher
//! rate it reads later: part of what it measures is its own queue, and that part grows
//! with the rate it offers. The kernel stamps each arriving packet before the client is
//! involved (on loopback, in the sender's transmit path), so latency up to that stamp
//! leaves the client's own reading delay out. The stamp is `CLOCK_REALTIME`; it is
//! turned into the caller's monotonic clock by its age at the moment of reading, which
//! is microseconds, so the clock's slewing cannot skew it noticeably (a step between an
//! arrival and its read can; the caller drops stamps that land before the request).
//!
//! The kernel turns stamping on a moment after the first socket asks for it (from a
//! work queue), so the first reads of a run may come without a stamp. TCP reports the
//! stamp of the newest bytes a read consumed: answers that arrived together in one
//! read share it, an upper bound for the earlier ones.

use std::io;
use std::os::fd::RawFd;

/// Asks the kernel to stamp what arrives on `fd`.
pub fn enable(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Room for one `SCM_TIMESTAMPNS` control message (a `timespec`), with alignment.
#[repr(C, align(8))]
struct Control([u8; 64]);

/// Reads into `buf` like `read(2)`, also returning the kernel's receive stamp of the
/// newest data read (`CLOCK_REALTIME` nanoseconds), if the socket is stamped.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = Control([0; 64]);
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: `msg` points at a live buffer and control area of the sizes given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        // Not room for every control message: the stamp may be the one cut off.
        return Ok((n as usize, None));
    }
    // SAFETY: the CMSG_* walk stays inside `msg_controllen` as the kernel filled it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

/// `CLOCK_REALTIME` now, nanoseconds: the clock the stamps are on.
pub fn realtime_ns() -> u64 {
    crate::stats::clock_ns(libc::CLOCK_REALTIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn a_stamp_is_when_the_bytes_arrived_not_when_they_were_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        enable(client.as_raw_fd()).unwrap();
        // Stamping may come on a moment after the first socket asks: wait for it.
        let mut buf = [0u8; 16];
        let on_by = realtime_ns() + 2_000_000_000;
        loop {
            server.write_all(b".").unwrap();
            std::thread::sleep(Duration::from_millis(1));
            if recv(client.as_raw_fd(), &mut buf).unwrap().1.is_some() {
                break;
            }
            assert!(realtime_ns() < on_by, "the kernel never stamped a read");
        }
        let before = realtime_ns();
        server.write_all(b"answer").unwrap();
        let after_send = realtime_ns();
        // Read well after arrival: the stamp must not move with the read.
        std::thread::sleep(Duration::from_millis(20));
        let (n, stamp) = recv(client.as_raw_fd(), &mut buf).unwrap();
        let read_at = realtime_ns();
        assert_eq!(&buf[..n], b"answer");
        let stamp = stamp.expect("a stamped socket yields a stamp");
        assert!(
            before <= stamp && stamp <= after_send,
            "{before} {stamp} {after_send}"
        );
        assert!(read_at - stamp >= 20_000_000);
    }

    #[test]
    fn an_unstamped_socket_reads_without_a_stamp() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let mut buf = [0u8; 4];
        assert_eq!(recv(client.as_raw_fd(), &mut buf).unwrap(), (1, None));
        let e = recv(client.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
