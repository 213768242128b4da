//! Calendar formatting of timestamps, for the fields the identity platform writes as text.

use store::Timestamp;

/// `2026-11-24 10:00:00Z`, the form of the platform's error `timestamp`.
pub fn error_timestamp(at: Timestamp) -> String {
    let (date, time) = civil(at);
    format!("{date} {time}Z")
}

/// `2026-11-24T10:00:00Z` (RFC 3339, UTC).
pub fn rfc3339(at: Timestamp) -> String {
    let (date, time) = civil(at);
    format!("{date}T{time}Z")
}

/// Reads an RFC 3339 UTC time such as `2027-11-24T11:00:00Z` or `2027-11-24T11:00:00.123456Z`
/// (fractions are dropped). `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let text = text.strip_suffix('Z').or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let time = time.split('.').next()?;
    let mut date_parts = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date_parts.next()??, date_parts.next()??, date_parts.next()??);
    let mut time_parts = time.splitn(3, ':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (time_parts.next()??, time_parts.next()??, time_parts.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Howard Hinnant's days-from-civil algorithm.
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(Timestamp((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000))
}

/// The UTC date and time of day of a timestamp (Howard Hinnant's days-to-civil algorithm).
fn civil(at: Timestamp) -> (String, String) {
    let seconds = at.0.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(error_timestamp(Timestamp(1_795_947_000_000)), "2026-11-29 10:10:00Z");
        assert_eq!(rfc3339(Timestamp(951_782_400_000)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(Timestamp(-1000)), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_what_it_formats_and_refuses_the_rest() {
        for millis in [0, 951_782_400_000, 1_795_947_000_000, 4_102_444_799_000] {
            assert_eq!(parse_rfc3339(&rfc3339(Timestamp(millis))), Some(Timestamp(millis)));
        }
        assert_eq!(
            parse_rfc3339("2027-11-24T11:00:00.123456Z"),
            parse_rfc3339("2027-11-24T11:00:00Z")
        );
        for bad in ["", "2027-11-24", "2027-13-01T00:00:00Z", "2027-11-24T11:00:00", "yesterday"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
