//! Calendar dates as day numbers (days since 1970-01-01, proleptic Gregorian), the only
//! time arithmetic the predictor needs. Howard Hinnant's `days_from_civil` algorithm.

/// Parses `YYYY-MM-DD` strictly (also accepts Backblaze's `YYYY-MM-DD` only).
pub fn parse_day(text: &str) -> Result<i32, String> {
    let bytes = text.as_bytes();
    let well_formed = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(position, byte)| position == 4 || position == 7 || byte.is_ascii_digit());
    if !well_formed {
        return Err(format!("bad date {text:?}: expected YYYY-MM-DD"));
    }
    let number = |range: std::ops::Range<usize>| -> i32 {
        text[range]
            .bytes()
            .fold(0, |total, byte| total * 10 + i32::from(byte - b'0'))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("bad date {text:?}: no such day"));
    }
    Ok(days_from_civil(year, month, day))
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: i32) -> i32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub fn days_from_civil(year: i32, month: i32, day: i32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format_day(day_number: i32) -> String {
    let z = day_number + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
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
    let year = year_of_era + era * 400 + i32::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_values() {
        assert_eq!(parse_day("1970-01-01"), Ok(0));
        assert_eq!(
            parse_day("2024-02-29").map(format_day),
            Ok("2024-02-29".into())
        );
        for day in -1000..30_000 {
            assert_eq!(parse_day(&format_day(day)), Ok(day));
        }
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "2023-13-01",
            "2023-02-29",
            "2023-1-01",
            "20230101",
            "2023-01-0x",
            "",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }
}
