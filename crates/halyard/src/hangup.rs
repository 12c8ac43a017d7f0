//! A SIGHUP ends a serving member as it always did (the signal's default action; ovsdb-server
//! exits on one too), after one line on stderr naming who sent it. A soak of the fault suite saw
//! a member end by a SIGHUP that neither Halyard nor the suite sends (tests/faults/README.md,
//! "Session 26"): the next one says where it came from.

use std::ffi::{c_int, c_void};

/// Installs the handler; at the start of `serve`.
pub fn log_sender_of_sighup() {
    // SAFETY: the handler only formats into a stack buffer and calls write(2) and raise(3), both
    // async-signal-safe; SA_RESETHAND restores the default action before it runs, so the raise
    // ends the process as an unhandled SIGHUP would.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sighup as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut()) != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot watch for SIGHUP (its sender will not be logged)"
            );
        }
    }
}

extern "C" fn on_sighup(_: c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let (pid, uid) = unsafe { ((*info).si_pid(), (*info).si_uid()) };
    let mut line = Line::default();
    line.put(b"halyard: SIGHUP from pid ");
    line.num(pid as i64);
    line.put(b" (uid ");
    line.num(i64::from(uid));
    line.put(b"; pid 0 is the kernel); exiting\n");
    // SAFETY: write(2) of a stack buffer and raise(3): async-signal-safe.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
        libc::raise(libc::SIGHUP);
    }
}

/// A line built without allocating (in a signal handler).
struct Line {
    buf: [u8; 128],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl Line {
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn num(&mut self, n: i64) {
        if n < 0 {
            self.put(b"-");
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.put(&digits[at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_built_without_allocating() {
        let mut line = Line::default();
        line.put(b"pid ");
        line.num(0);
        line.put(b" ");
        line.num(4_194_304);
        line.put(b" ");
        line.num(-1);
        assert_eq!(&line.buf[..line.len], b"pid 0 4194304 -1");
        let mut full = Line::default();
        full.put(&[b'x'; 200]);
        assert_eq!(full.len, 128, "a long line is cut, not overflowed");
    }
}
