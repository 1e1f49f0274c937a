//! Timestamps as text, without a date library: the civil-from-days algorithm is a few
//! lines and the formats confab needs are fixed.

/// `YYYY-MM-DDThh:mm:ss.sssZ` (UTC), as IRCv3 server-time and the JSON protocol use it.
/// The date comes from Howard Hinnant's civil-from-days algorithm.
pub fn iso_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// `YYYY-MM-DD hh:mm:ss` (UTC), for people reading history in a terminal.
pub fn human_time(ms: u64) -> String {
    let iso = iso_time(ms);
    format!("{} {}", &iso[..10], &iso[11..19])
}

/// Reads `YYYY-MM-DDThh:mm:ss[.sss]Z` back into milliseconds since the epoch; `None`
/// for anything else, including dates before 1970.
pub fn parse_iso_time(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let millis: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from civil, the inverse of the algorithm above.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_795_248_000_123), "2026-11-21T08:00:00.123Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(human_time(1_795_248_000_123), "2026-11-21 08:00:00");
        for ms in [0, 951_782_400_000, 1_795_248_000_123] {
            assert_eq!(parse_iso_time(&iso_time(ms)), Some(ms));
        }
        assert_eq!(
            parse_iso_time("2026-11-21T08:00:00Z"),
            Some(1_795_248_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-21T08:00:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_iso_time(bad), None, "{bad}");
        }
    }
}
