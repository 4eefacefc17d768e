//! Ages: days since 1970-01-01 to calendar dates, whole years between two dates, age bands.

use super::N_AGE;

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
#[must_use]
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y as i32, m, d)
}

/// Age in whole years on `test` of someone born on `birth` (both days since 1970-01-01).
/// A 29 February birthday is reached on 1 March in common years.
#[must_use]
pub fn age_in_years(birth: i32, test: i32) -> i64 {
    let (by, bm, bd) = civil_from_days(birth);
    let (ty, tm, td) = civil_from_days(test);
    let mut age = i64::from(ty) - i64::from(by);
    if (tm, td) < (bm, bd) {
        age -= 1;
    }
    age
}

/// Age band index 0..18 for a valid age in years, `None` when invalid (negative or > max).
#[inline]
#[must_use]
pub fn age_band(age: i64, max_age: i64) -> Option<usize> {
    if (0..=max_age).contains(&age) {
        Some(((age / 5) as usize).min(N_AGE - 1))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_known_values() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_448), (2023, 4, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn age_counts_whole_years_and_leap_birthdays() {
        // born 2000-02-29 (11016); 2023-02-28 is 19416, 2023-03-01 is 19417
        assert_eq!(age_in_years(11_016, 19_416), 22);
        assert_eq!(age_in_years(11_016, 19_417), 23);
        assert_eq!(age_in_years(0, 0), 0);
        assert_eq!(age_in_years(10, 0), -1);
    }

    #[test]
    fn age_bands_cap_at_90_plus() {
        assert_eq!(age_band(0, 130), Some(0));
        assert_eq!(age_band(4, 130), Some(0));
        assert_eq!(age_band(5, 130), Some(1));
        assert_eq!(age_band(89, 130), Some(17));
        assert_eq!(age_band(90, 130), Some(18));
        assert_eq!(age_band(130, 130), Some(18));
        assert_eq!(age_band(131, 130), None);
        assert_eq!(age_band(-1, 130), None);
    }
}
