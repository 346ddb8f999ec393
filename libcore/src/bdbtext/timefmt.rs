//! Wall-clock times as the Berkeley DB tools print them: `ctime(3)`'s
//! layout (`Wed Nov 25 12:45:20 2026`) and `db_recover -t`'s
//! `CCYYMMDDhhmm.SS`, in the local time zone (`TZ`). The conversions
//! themselves are in `timespec`.

use crate::bdbtext::timespec;

pub use crate::bdbtext::timespec::CivilTime as LocalTime;

/// `secs` (unix time) in the local time zone.
pub fn local_time(secs: u64) -> LocalTime {
    timespec::unix_to_local(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// `ctime(3)` without its newline: `Wed Nov 25 12:45:49 2026`.
pub fn ctime(secs: u64) -> String {
    local_time(secs).ctime()
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
    ctime(crate::types::now_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bdbtext::timespec::CivilTime;

    #[test]
    fn times_format_as_ctime_and_recover_stamp() {
        // 1795610749 is Wed Nov 25 2026 12:45:49 UTC.
        let t = CivilTime::from_unix_utc(1_795_610_749);
        assert_eq!(
            (
                t.year,
                t.month,
                t.day,
                t.hour,
                t.minute,
                t.second,
                t.weekday()
            ),
            (2026, 11, 25, 12, 45, 49, 3)
        );
        assert_eq!(t.ctime(), "Wed Nov 25 12:45:49 2026");
        assert_eq!(
            CivilTime::from_unix_utc(0).ctime(),
            "Thu Jan  1 00:00:00 1970"
        );
        let c = ctime(1_795_610_749);
        assert_eq!(c.len(), "Wed Nov 25 12:45:49 2026".len());
        assert_eq!(recover_stamp(1_795_610_749).len(), "202611251245.49".len());
    }
}
