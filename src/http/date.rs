//! The `Date` header value (RFC 9110 §5.6.7 IMF-fixdate), formatted once per second per
//! shard instead of once per response, and read from the clock by the shard's tick
//! (every few milliseconds) instead of by every response.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-shard cache of the current IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub struct DateCache {
    second: Cell<u64>,
    text: Cell<[u8; 29]>,
}

impl Default for DateCache {
    fn default() -> Self {
        let cache = DateCache {
            second: Cell::new(u64::MAX),
            text: Cell::new([0; 29]),
        };
        cache.refresh();
        cache
    }
}

impl DateCache {
    /// The value as of the last [`DateCache::refresh`].
    pub fn get(&self) -> [u8; 29] {
        self.text.get()
    }

    /// Reads the clock, reformatting only when the second has changed. RFC 9110 asks for
    /// the best available approximation; a tick late is well within it.
    pub fn refresh(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now != self.second.get() {
            self.second.set(now);
            self.text.set(format_imf(now));
        }
    }
}

/// IMF-fixdate of a Unix time in seconds.
pub fn format_imf(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = [0u8; 29];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    two(&mut out[5..7], d as u64);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    out[11] = b' ';
    let y = y as u64;
    two(&mut out[12..14], y / 100);
    two(&mut out[14..16], y % 100);
    out[16] = b' ';
    two(&mut out[17..19], rem / 3600);
    out[19] = b':';
    two(&mut out[20..22], rem % 3600 / 60);
    out[22] = b':';
    two(&mut out[23..25], rem % 60);
    out[25..29].copy_from_slice(b" GMT");
    out
}

fn two(out: &mut [u8], v: u64) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Howard Hinnant's days-to-civil algorithm: (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(&format_imf(784111777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format_imf(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format_imf(1_709_251_199), b"Thu, 29 Feb 2024 23:59:59 GMT");
    }

    #[test]
    fn a_new_cache_holds_the_current_date() {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let got = DateCache::default().get();
        // The second may turn between the two clock reads.
        assert!(
            got == format_imf(secs) || got == format_imf(secs + 1),
            "{got:?}"
        );
    }
}
