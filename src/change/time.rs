//! Desk's timestamps ("2026-01-15T10:22:33.000Z") as epoch milliseconds.
//!
//! Why a reader of its own: every snapshot row has its `createdTime` and `modifiedTime` read, three times in
//! all, and `chrono`'s general RFC 3339 parser cost about a tenth of a microsecond each time. Desk writes
//! one fixed form, read here directly; anything else (offsets, other precisions, out-of-range fields) goes to
//! `chrono`, which has the last word.

use std::ops::Range;

/// Epoch milliseconds of an RFC 3339 timestamp; `None` when it is not one.
pub fn parse_desk_time(value: &str) -> Option<i64> {
    desk_form(value).or_else(|| rfc3339(value))
}

/// Any RFC 3339 form, through `chrono`.
fn rfc3339(value: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(value).ok().map(|t| t.timestamp_millis())
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ` exactly, with every field in its everyday range (no leap second).
fn desk_form(value: &str) -> Option<i64> {
    let b: &[u8; 24] = value.as_bytes().try_into().ok()?;
    let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')];
    if punctuation.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let number = |digits: Range<usize>| {
        b.get(digits)?
            .iter()
            .try_fold(0_i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second, milli) = (number(11..13)?, number(14..16)?, number(17..19)?, number(20..23)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(seconds * 1_000 + milli)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`: years counted
/// from March, so the leap day ends the year, in 400-year eras of 146,097 days).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desk_form_agrees_with_chrono_everywhere() {
        // A deterministic walk over the range Desk's form can write (years 0000-9999): every day of the years
        // around the epoch, of every century year and of every 97th year, each at a pseudo-random time.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut checked = 0;
        for year in (0..10_000).filter(|y| y % 97 == 0 || y % 100 == 0 || (1_895..2_105).contains(y)) {
            for month in 1..=12 {
                for day in 1..=31 {
                    let text = format!(
                        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
                        next(24),
                        next(60),
                        next(60),
                        next(1_000)
                    );
                    // Every generated time is in range, so only a day past its month's end makes both refuse.
                    assert_eq!(desk_form(&text), rfc3339(&text), "{text}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000);
    }

    #[test]
    fn other_forms_are_chronos_to_judge() {
        for text in [
            "1970-01-01T00:00:01.500Z",
            "2024-02-29T23:59:59.999Z",
            "2023-02-29T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "2016-12-31T23:59:60.000Z",
            "2024-01-01t00:00:00.000z",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.5Z",
            "2024-01-01T00:00:00.000+05:30",
            "2024-01-01 00:00:00.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-00-10T00:00:00.000Z",
            "+024-01-01T00:00:00.000Z",
            "2024-01-01T00:00:00.0a0Z",
            "garbage",
            "",
        ] {
            assert_eq!(parse_desk_time(text), rfc3339(text), "{text}");
        }
        assert_eq!(parse_desk_time("1970-01-01T00:00:01.500Z"), Some(1_500));
        assert_eq!(desk_form("2016-12-31T23:59:60.000Z"), None);
    }
}
