//! RFC 3339 timestamps as the IQRF daemon writes them
//! (`2022-12-15T08:50:55.876+01:00`, and without a zone `2018-07-18T16:30:43.794327`).

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM]` into Unix seconds
/// (fractions dropped). A time without a zone is taken as UTC: the daemon
/// writes local time there, so gateways should run in UTC (see docs/collector.md).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second (RFC 3339 §5.6); Unix time repeats the next second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = (h * 3600 + m * 60) as i64;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month, day);
    Some(days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset)
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_daemons_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2022-12-15T08:50:55.876+01:00"),
            Some(1_671_090_655)
        );
        assert_eq!(
            parse_rfc3339("2018-07-18T16:30:43.794327"),
            Some(1_531_931_443)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29 12:00:00-02:30"),
            Some(1_709_217_000)
        );
    }

    #[test]
    fn refuses_malformed_times() {
        for bad in [
            "",
            "2022-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2022-12-15T24:00:00Z",
            "2022-12-15T08:50:55.+01:00",
            "2022-12-15T08:50:55+0100",
            "2022-12-15T08:50:55 junk",
            "２０２２-12-15T08:50:55Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
