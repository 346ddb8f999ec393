//! Times as people type and read them: the `[[CC]YY]MMDDhhmm[.SS]` form of
//! `db_recover -t` (and touch(1)), and the `ctime` form Berkeley DB prints
//! ("Wed Nov 25 12:45:26 2026"), both in the local time zone.
//!
//! Parsing is pure and range-checked here (month 1-12, a day that exists in
//! that month of that year, hour 0-23, minute 0-59, second 0-60), unlike
//! Berkeley DB, which lets `mktime` silently normalise `0100` to the last
//! day of the previous month. A second of 60 (a leap second) means the first
//! second of the next minute, as `mktime` reads it.
//!
//! Local time comes from the `jiff` crate's system time zone, which honours
//! every form of `TZ` the C library does (unset: `/etc/localtime`; a zone
//! name; a `:path`; a POSIX rule such as `EST5EDT,M3.2.0,M11.1.0`) and the
//! rule in a TZif file's footer for times past its last transition. A
//! wall-clock time a daylight-saving switch makes ambiguous is resolved
//! the "compatible" way (RFC 5545, Temporal): in a repeated hour the
//! earlier instant, in a skipped hour the time as if the clock had not
//! moved (so it lands after the gap).
//!
//! The UTC calendar arithmetic below (`days_from_civil`, `civil_from_days`)
//! is kept because it is total over every `i64` of seconds a hostile log
//! record can carry, where a calendar library stops at year 9999: such a
//! time prints as its UTC reading, as it always has.

use std::fmt;

/// The accepted form, as messages and usage texts spell it.
pub const FORMAT: &str = "[[CC]YY]MMDDhhmm[.SS]";

/// A wall-clock time: calendar fields, no zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i32,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    /// 0-60.
    pub second: u32,
}

/// A time specification that does not parse or is out of range. Displays
/// as Berkeley DB's message (without its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTime;

impl fmt::Display for BadTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "out of range or illegal time specification: {FORMAT}")
    }
}

impl std::error::Error for BadTime {}

/// Whether `year` is a leap year of the proleptic Gregorian calendar.
pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1-12) of `year`; 0 for a month out of range.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Parses `[[CC]YY]MMDDhhmm[.SS]`: 8, 10 or 12 digits, then optionally a
/// dot and exactly two digits. Two-digit years below 69 are 20YY, others
/// 19YY; without a year, `current_year` is used.
pub fn parse(spec: &str, current_year: i32) -> Result<CivilTime, BadTime> {
    let (main, secs) = match spec.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (spec, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(main) || secs.is_some_and(|s| s.len() != 2 || !digits(s)) {
        return Err(BadTime);
    }
    // Two digits at a time, from the left.
    let pairs: Vec<u32> = main
        .as_bytes()
        .chunks(2)
        .map(|p| u32::from(p[0] - b'0') * 10 + u32::from(p.get(1).map_or(0, |b| b - b'0')))
        .collect();
    let (year, rest) = match main.len() {
        12 => ((pairs[0] * 100 + pairs[1]) as i32, &pairs[2..]),
        10 if pairs[0] < 69 => (2000 + pairs[0] as i32, &pairs[1..]),
        10 => (1900 + pairs[0] as i32, &pairs[1..]),
        8 => (current_year, &pairs[..]),
        _ => return Err(BadTime),
    };
    let t = CivilTime {
        year,
        month: rest[0],
        day: rest[1],
        hour: rest[2],
        minute: rest[3],
        second: match secs {
            Some(s) => s.parse().map_err(|_| BadTime)?,
            None => 0,
        },
    };
    let valid = (1..=12).contains(&t.month)
        && (1..=days_in_month(t.year, t.month)).contains(&t.day)
        && t.hour <= 23
        && t.minute <= 59
        && t.second <= 60;
    if valid {
        Ok(t)
    } else {
        Err(BadTime)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of
/// [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

impl CivilTime {
    /// Seconds since the epoch if this wall-clock time were UTC.
    #[cfg(test)]
    pub fn to_unix_utc(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The UTC wall-clock time of `secs` since the epoch.
    pub fn from_unix_utc(secs: i64) -> CivilTime {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400) as u32;
        CivilTime {
            year,
            month,
            day,
            hour: s / 3600,
            minute: s / 60 % 60,
            second: s % 60,
        }
    }

    /// Day of the week, 0 = Sunday.
    pub fn weekday(&self) -> u32 {
        // 1970-01-01 was a Thursday.
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as u32
    }

    /// The `ctime` form without its newline: `Wed Nov  5 09:03:26 2026`.
    pub fn ctime(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{} {}{:3} {:02}:{:02}:{:02} {}",
            DAYS[self.weekday() as usize],
            MONTHS[(self.month.clamp(1, 12) - 1) as usize],
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }
}

/// Seconds since the epoch of a local wall-clock time (ambiguous times
/// resolved as the module comment says); `None` when the time zone cannot
/// place it (out of its range).
pub fn local_to_unix(t: &CivilTime) -> Option<i64> {
    // jiff has no second 60: a leap second is the next minute's first.
    let leap = i64::from(t.second == 60);
    let dt = jiff::civil::DateTime::new(
        i16::try_from(t.year).ok()?,
        i8::try_from(t.month).ok()?,
        i8::try_from(t.day).ok()?,
        i8::try_from(t.hour).ok()?,
        i8::try_from(t.minute).ok()?,
        i8::try_from(t.second - leap as u32).ok()?,
        0,
    )
    .ok()?;
    let zoned = local_zone().to_ambiguous_zoned(dt).compatible().ok()?;
    Some(zoned.timestamp().as_second() + leap)
}

/// The local wall-clock time of `secs` since the epoch; the UTC time when
/// the time zone cannot convert it (out of its range).
pub fn unix_to_local(secs: i64) -> CivilTime {
    let local = jiff::Timestamp::from_second(secs)
        .ok()
        .map(|ts| ts.to_zoned(local_zone()).datetime());
    match local {
        Some(dt) => CivilTime {
            year: i32::from(dt.year()),
            month: dt.month() as u32,
            day: dt.day() as u32,
            hour: dt.hour() as u32,
            minute: dt.minute() as u32,
            second: dt.second() as u32,
        },
        None => CivilTime::from_unix_utc(secs),
    }
}

/// The local time zone (`TZ`, else `/etc/localtime`; UTC when neither can
/// be read).
fn local_zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses a `-t` argument as a local time and returns seconds since the
/// epoch. A form without a year takes the current local year.
pub fn parse_local(spec: &str) -> Result<i64, BadTime> {
    let t = parse(spec, unix_to_local(now()).year)?;
    local_to_unix(&t).ok_or(BadTime)
}

/// `secs` since the epoch in the `ctime` form, local time.
pub fn ctime(secs: i64) -> String {
    unix_to_local(secs).ctime()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn civil(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> CivilTime {
        CivilTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn the_three_lengths_and_seconds() {
        assert_eq!(parse("11251245", 2026), Ok(civil(2026, 11, 25, 12, 45, 0)));
        assert_eq!(
            parse("11251245.26", 2026),
            Ok(civil(2026, 11, 25, 12, 45, 26))
        );
        assert_eq!(
            parse("2611251245", 1999),
            Ok(civil(2026, 11, 25, 12, 45, 0))
        );
        assert_eq!(
            parse("202611251245.07", 1999),
            Ok(civil(2026, 11, 25, 12, 45, 7))
        );
        assert_eq!(parse("199901010000", 2026), Ok(civil(1999, 1, 1, 0, 0, 0)));
        assert_eq!(parse("000101010000", 2026), Ok(civil(1, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn two_digit_years_pivot_at_69() {
        assert_eq!(parse("6801010000", 0).unwrap().year, 2068);
        assert_eq!(parse("6901010000", 0).unwrap().year, 1969);
        assert_eq!(parse("9912312359", 0).unwrap().year, 1999);
        assert_eq!(parse("0001010000", 0).unwrap().year, 2000);
    }

    #[test]
    fn bad_forms_are_refused() {
        for s in [
            "",
            "1125124",
            "112512450",
            "11251245123",
            "1125124512345",
            "11251245.",
            "11251245.1",
            "11251245.123",
            "11251245.a1",
            "1125124a",
            "+1251245",
            " 11251245",
            "11251245 ",
            ".11251245",
            "1125.1245",
            "11251245.12.1",
            "１１251245",
        ] {
            assert_eq!(parse(s, 2026), Err(BadTime), "{s:?}");
        }
    }

    #[test]
    fn fields_are_range_checked() {
        for s in [
            "00011200", // month 0
            "13011200", // month 13
            "01001200", // day 0
            "01321200", // January 32
            "04311200", // April 31
            "06311200", // June 31
            "09311200", // September 31
            "11311200", // November 31
            "01012400", // hour 24
            "01011260", // minute 60
            "01011200.61",
            "01011200.99",
            "2302291200", // 2023 is not a leap year
            "190002291200",
            "210002291200",
        ] {
            assert_eq!(parse(s, 2026), Err(BadTime), "{s:?}");
        }
        assert!(parse("2402291200", 2026).is_ok());
        assert!(parse("200002291200", 2026).is_ok());
        assert!(parse("01011200.60", 2026).is_ok());
        assert!(parse("12312359.59", 2026).is_ok());
        // Without a year, February 29 needs the current one to be leap.
        assert!(parse("02291200", 2028).is_ok());
        assert_eq!(parse("02291200", 2027), Err(BadTime));
    }

    #[test]
    fn month_lengths() {
        let lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        for (m, &n) in lengths.iter().enumerate() {
            assert_eq!(days_in_month(2023, m as u32 + 1), n);
        }
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2024, 13), 0);
        assert!(is_leap(2000) && !is_leap(1900) && is_leap(2024) && !is_leap(2023));
    }

    #[test]
    fn utc_arithmetic_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil(2026, 11, 25, 12, 45, 26).to_unix_utc(), 1_795_610_726);
        assert_eq!(civil(2001, 9, 9, 1, 46, 40).to_unix_utc(), 1_000_000_000);
        for secs in [
            -86_401,
            -1,
            0,
            951_782_400,
            1_000_000_000,
            1_795_610_726,
            4_102_444_800,
        ] {
            assert_eq!(CivilTime::from_unix_utc(secs).to_unix_utc(), secs);
        }
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // A leap second reads as the first second of the next minute.
        assert_eq!(
            civil(2016, 12, 31, 23, 59, 60).to_unix_utc(),
            civil(2017, 1, 1, 0, 0, 0).to_unix_utc()
        );
    }

    #[test]
    fn ctime_form() {
        assert_eq!(
            civil(2026, 11, 25, 12, 45, 26).ctime(),
            "Wed Nov 25 12:45:26 2026"
        );
        assert_eq!(
            civil(2000, 12, 31, 0, 0, 0).ctime(),
            "Sun Dec 31 00:00:00 2000"
        );
        assert_eq!(
            civil(2024, 2, 5, 9, 3, 7).ctime(),
            "Mon Feb  5 09:03:07 2024"
        );
        assert_eq!(
            civil(1970, 1, 1, 0, 0, 0).ctime(),
            "Thu Jan  1 00:00:00 1970"
        );
    }

    /// The time zone path: whatever the zone this test runs in, a local
    /// time converted to seconds and back gives the same wall-clock time
    /// (times chosen clear of daylight-saving switches, which happen in the
    /// small hours), and the offset from UTC is whole minutes within a day.
    #[test]
    fn local_conversions_round_trip() {
        for t in [
            civil(2026, 1, 15, 12, 0, 0),
            civil(2026, 7, 15, 12, 30, 45),
            civil(1999, 12, 31, 23, 59, 59),
            civil(2040, 6, 1, 14, 0, 0),
        ] {
            let secs = local_to_unix(&t).expect("representable");
            assert_eq!(unix_to_local(secs), t);
            let offset = t.to_unix_utc() - secs;
            assert!(offset.abs() < 86_400 && offset % 60 == 0, "{offset}");
        }
        let now = now();
        assert_eq!(local_to_unix(&unix_to_local(now)), Some(now));
        assert!(parse_local("01011200").is_ok());
        assert_eq!(parse_local("01321200"), Err(BadTime));
    }
}
