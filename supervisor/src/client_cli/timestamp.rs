//! RFC 3339 UTC timestamps for the protocol's millisecond times (`since_ms`, `time_ms`).
//!
//! The date comes from Howard Hinnant's `civil_from_days` (days since 1970-01-01 to a
//! proleptic Gregorian year, month and day), in unsigned arithmetic since protocol times
//! are never before the epoch.

const MS_PER_SECOND: u64 = 1000;
const SECONDS_PER_DAY: u64 = 86_400;

/// Days from 0000-03-01 to 1970-01-01: the algorithm counts eras from a March 1st so that
/// leap days fall at the end of its year.
const EPOCH_SHIFT_DAYS: u64 = 719_468;
const DAYS_PER_ERA: u64 = 146_097;

/// `ms` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_millis(ms: u64) -> String {
    let (date, time) = split(ms / MS_PER_SECOND);
    format!("{date}T{time}.{:03}Z", ms % MS_PER_SECOND)
}

/// `ms` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`, for tables.
pub fn rfc3339_seconds(ms: u64) -> String {
    let (date, time) = split(ms / MS_PER_SECOND);
    format!("{date}T{time}Z")
}

/// `(YYYY-MM-DD, HH:MM:SS)`. Years past 9999 (only from a nonsensical daemon value) get
/// more digits rather than wrapping.
fn split(seconds: u64) -> (String, String) {
    let (year, month, day) = civil_from_days(seconds / SECONDS_PER_DAY);
    let of_day = seconds % SECONDS_PER_DAY;
    let date = format!("{year:04}-{month:02}-{day:02}");
    let time = format!("{:02}:{:02}:{:02}", of_day / 3600, of_day % 3600 / 60, of_day % 60);
    (date, time)
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + EPOCH_SHIFT_DAYS;
    let era = shifted / DAYS_PER_ERA;
    let day_of_era = shifted % DAYS_PER_ERA; // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365], from March 1st
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = SECONDS_PER_DAY * MS_PER_SECOND;

    #[test]
    fn the_epoch_and_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1_733_000_000_450), "2024-11-30T20:53:20.450Z");
        assert_eq!(rfc3339_seconds(1_733_000_000_450), "2024-11-30T20:53:20Z");
        // `date -u -d @1000000000`, and the last second of 2038's i32 time.
        assert_eq!(rfc3339_seconds(1_000_000_000_000), "2001-09-09T01:46:40Z");
        assert_eq!(rfc3339_millis(2_147_483_647_999), "2038-01-19T03:14:07.999Z");
        assert_eq!(rfc3339_millis(DAY_MS - 1), "1970-01-01T23:59:59.999Z");
    }

    #[test]
    fn leap_days_of_leap_years_and_their_absence_in_others() {
        // 2000 is a leap year (divisible by 400), 1900 would not be, 2100 is not.
        assert_eq!(rfc3339_seconds(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_seconds(951_782_400_000 + DAY_MS), "2000-03-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_709_164_800_000), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_677_542_400_000), "2023-02-28T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_677_542_400_000 + DAY_MS), "2023-03-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(4_107_456_000_000), "2100-02-28T00:00:00Z");
        assert_eq!(rfc3339_seconds(4_107_456_000_000 + DAY_MS), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_704_067_199_000), "2023-12-31T23:59:59Z");
        assert_eq!(rfc3339_seconds(1_704_067_200_000), "2024-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_735_603_200_000), "2024-12-31T00:00:00Z");
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_one_before() {
        let mut previous = civil_from_days(0);
        assert_eq!(previous, (1970, 1, 1));
        for days in 1..(DAYS_PER_ERA + 366) {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = (y, m, d) == (py, pm, pd + 1);
            let next_month = (y, m, d) == (py, pm + 1, 1);
            let next_year = (y, m, d) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(next_day || next_month || next_year, "{previous:?} then {:?}", (y, m, d));
            assert!(d <= days_in_month(y, m), "{:?}", (y, m, d));
            previous = (y, m, d);
        }
    }

    fn days_in_month(year: u64, month: u64) -> u64 {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn the_largest_time_does_not_overflow() {
        let text = rfc3339_millis(u64::MAX);
        assert!(text.ends_with(".615Z"), "{text}");
    }
}
