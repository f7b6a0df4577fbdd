//! The SigV4 date form `YYYYMMDDTHHMMSSZ`, parsed exactly (no calendar library: the
//! parser is small enough to check by eye and to fuzz).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses the SigV4 basic ISO-8601 form `YYYYMMDDTHHMMSSZ`: only real calendar times,
/// each in its one spelling (the text [`format_amz_date`] writes). February 31st or a
/// 60th second would otherwise name the same instant as another text (found by the
/// `internal_auth` fuzz target; harmless there, since the signature covers the date
/// text as the signer wrote it, but a parser should not accept what no signer writes).
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    parse_fields(text).filter(|time| format_amz_date(*time) == text)
}

/// `time` in the SigV4 form, UTC, whole seconds.
pub fn format_amz_date(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let (year, month, day) = civil_from_days(days);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

fn parse_fields(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = text.get(range)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let seconds = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm, the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse_exactly() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_amz_date("20000301T000001Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_868_801))
        );
        for bad in [
            "",
            "20261301T000000Z",
            "2026010T1000000Z",
            "20260101T000000",
            "２0260101T000000Z",
            // Days a month does not have, and a 60th second: each would be another
            // spelling of a real instant.
            "20260231T000000Z",
            "20250229T000000Z",
            "20260431T000000Z",
            "20261231T235960Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
        for good in ["20240229T120000Z", "20261231T235959Z", "99991231T235959Z"] {
            let parsed = parse_amz_date(good).unwrap_or(UNIX_EPOCH);
            assert_eq!(format_amz_date(parsed), good);
        }
    }
}
