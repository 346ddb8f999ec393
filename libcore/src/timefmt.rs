//! Wall-clock times as the Berkeley DB tools print them: `ctime(3)`'s
//! layout (`Wed Nov 25 12:45:20 2026`) and `db_recover -t`'s
//! `CCYYMMDDhhmm.SS`, in the local time zone (`TZ`), as `localtime(3)`
//! gives it.

use std::os::raw::{c_char, c_int, c_long};

/// Broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
}

/// glibc's and musl's `struct tm` on Linux.
#[repr(C)]
struct Tm {
    tm_sec: c_int,
    tm_min: c_int,
    tm_hour: c_int,
    tm_mday: c_int,
    tm_mon: c_int,
    tm_year: c_int,
    tm_wday: c_int,
    tm_yday: c_int,
    tm_isdst: c_int,
    tm_gmtoff: c_long,
    tm_zone: *const c_char,
}

extern "C" {
    fn tzset();
    fn localtime_r(t: *const c_long, tm: *mut Tm) -> *mut Tm;
}

/// `secs` (unix time) in the local time zone (`TZ`), as `localtime(3)`
/// gives it; UTC when the C library cannot convert it.
pub fn local_time(secs: u64) -> LocalTime {
    let t = c_long::try_from(secs).unwrap_or(c_long::MAX);
    let mut tm = Tm {
        tm_sec: 0,
        tm_min: 0,
        tm_hour: 0,
        tm_mday: 0,
        tm_mon: 0,
        tm_year: 0,
        tm_wday: 0,
        tm_yday: 0,
        tm_isdst: 0,
        tm_gmtoff: 0,
        tm_zone: std::ptr::null(),
    };
    // SAFETY: both pointers are valid for the call; localtime_r writes only
    // into `tm` (std links the C library on every Unix target we build for).
    let ok = unsafe {
        tzset();
        !localtime_r(&t, &mut tm).is_null()
    };
    if !ok {
        return utc(secs);
    }
    let u = |v: c_int| u32::try_from(v).unwrap_or(0);
    LocalTime {
        year: tm.tm_year + 1900,
        month: u(tm.tm_mon) + 1,
        day: u(tm.tm_mday),
        hour: u(tm.tm_hour),
        minute: u(tm.tm_min),
        second: u(tm.tm_sec),
        weekday: u(tm.tm_wday),
    }
}

/// `secs` in UTC, by the civil-from-days algorithm.
fn utc(secs: u64) -> LocalTime {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    LocalTime {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
        weekday: ((days + 4).rem_euclid(7)) as u32,
    }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `ctime(3)` without its newline: `Wed Nov 25 12:45:49 2026`.
pub fn ctime(secs: u64) -> String {
    let t = local_time(secs);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[t.weekday as usize % 7],
        MONTHS[(t.month as usize + 11) % 12],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

/// The `CCYYMMDDhhmm.SS` form that `db_recover -t` accepts:
/// `202611251245.49`.
pub fn recover_stamp(secs: u64) -> String {
    let t = local_time(secs);
    format!(
        "{:04}{:02}{:02}{:02}{:02}.{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

pub fn ctime_now() -> String {
    ctime(crate::env::now_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_matches_the_c_layout() {
        std::env::set_var("TZ", "UTC");
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(1_795_610_749), "Wed Nov 25 12:45:49 2026");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn times_format_as_ctime_and_recover_stamp() {
        // 1795610749 is Wed Nov 25 2026 12:45:49 UTC.
        let t = utc(1_795_610_749);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday),
            (2026, 11, 25, 12, 45, 49, 3)
        );
        assert_eq!(utc(0).weekday, 4);
        let secs = 1_795_610_749;
        let l = local_time(secs);
        let c = ctime(secs);
        assert!(c.starts_with(DAYS[l.weekday as usize]), "{c}");
        assert_eq!(c.len(), "Wed Nov 25 12:45:49 2026".len());
        assert_eq!(recover_stamp(secs).len(), "202611251245.49".len());
    }
}
