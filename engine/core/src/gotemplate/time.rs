//! Times for sprig's date functions, in UTC: Go layouts (`2006-01-02T15:04:05Z07:00`)
//! for formatting and parsing, and civil-date arithmetic without a time crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds and nanoseconds since the Unix epoch, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since the epoch → (year, month 1-12, day 1-31) (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since the epoch.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Time {
    /// The current time.
    pub fn now() -> Time {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Time {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }

    /// Formats with a Go layout.
    pub fn format(&self, layout: &str) -> String {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400);
        let (y, mo, d) = civil(days);
        let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
        let weekday = (days + 4).rem_euclid(7) as usize;
        let yday = days - days_from_civil(y, 1, 1) + 1;
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let (token, len) = next_token(rest);
            match token {
                Some(t) => out.push_str(&match t {
                    "January" => MONTHS[mo as usize - 1].to_string(),
                    "Jan" => MONTHS[mo as usize - 1][..3].to_string(),
                    "Monday" => DAYS[weekday].to_string(),
                    "Mon" => DAYS[weekday][..3].to_string(),
                    "MST" => "UTC".to_string(),
                    "2006" => format!("{y:04}"),
                    "06" => format!("{:02}", y.rem_euclid(100)),
                    "01" => format!("{mo:02}"),
                    "1" => mo.to_string(),
                    "02" => format!("{d:02}"),
                    "2" => d.to_string(),
                    "_2" => format!("{d:>2}"),
                    "002" => format!("{yday:03}"),
                    "__2" => format!("{yday:>3}"),
                    "15" => format!("{h:02}"),
                    "03" => format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 }),
                    "3" => (if h % 12 == 0 { 12 } else { h % 12 }).to_string(),
                    "04" => format!("{mi:02}"),
                    "4" => mi.to_string(),
                    "05" => format!("{s:02}"),
                    "5" => s.to_string(),
                    "PM" => (if h >= 12 { "PM" } else { "AM" }).to_string(),
                    "pm" => (if h >= 12 { "pm" } else { "am" }).to_string(),
                    t if t.starts_with('Z') => "Z".to_string(),
                    "-07" => "+00".to_string(),
                    "-0700" => "+0000".to_string(),
                    "-07:00" => "+00:00".to_string(),
                    "-070000" => "+000000".to_string(),
                    "-07:00:00" => "+00:00:00".to_string(),
                    frac => {
                        let digits = frac.len() - 1;
                        let all = format!("{:09}", self.nanos);
                        let mut f = all[..digits.min(9)].to_string();
                        if frac.as_bytes()[1] == b'9' {
                            f = f.trim_end_matches('0').to_string();
                            if f.is_empty() {
                                String::new()
                            } else {
                                format!("{}{f}", &frac[..1])
                            }
                        } else {
                            format!("{}{f}", &frac[..1])
                        }
                    }
                }),
                None => out.push_str(&rest[..len]),
            }
            rest = &rest[len..];
        }
        out
    }

    /// Parses `value` with a Go layout (numeric fields, month and day names, `Z`/±hh:mm offsets).
    pub fn parse(layout: &str, value: &str) -> Result<Time, String> {
        let err = || format!("parsing time {value:?} as {layout:?}: cannot parse");
        let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut nanos, mut offset, mut pm) =
            (1i64, 1u32, 1u32, 0i64, 0i64, 0i64, 0u32, 0i64, None::<bool>);
        let mut l = layout;
        let mut v = value;
        let num = |v: &mut &str, min: usize, max: usize| -> Result<i64, String> {
            let n = v
                .bytes()
                .take(max)
                .take_while(|b| b.is_ascii_digit())
                .count();
            if n < min {
                return Err(err());
            }
            let x = v[..n].parse::<i64>().map_err(|_| err())?;
            *v = &v[n..];
            Ok(x)
        };
        while !l.is_empty() {
            let (token, len) = next_token(l);
            match token {
                None => {
                    if !v.starts_with(&l[..len]) {
                        return Err(err());
                    }
                    v = &v[len..];
                }
                Some(t) => match t {
                    "2006" => y = num(&mut v, 4, 4)?,
                    "06" => y = 2000 + num(&mut v, 2, 2)?,
                    "01" => mo = num(&mut v, 2, 2)? as u32,
                    "1" => mo = num(&mut v, 1, 2)? as u32,
                    "02" => d = num(&mut v, 2, 2)? as u32,
                    "2" | "_2" => {
                        v = v.trim_start_matches(' ');
                        d = num(&mut v, 1, 2)? as u32
                    }
                    "15" => h = num(&mut v, 1, 2)?,
                    "03" | "3" => h = num(&mut v, 1, 2)?,
                    "04" | "4" => mi = num(&mut v, 1, 2)?,
                    "05" | "5" => s = num(&mut v, 1, 2)?,
                    "PM" | "pm" => {
                        let up = v.get(..2).unwrap_or("").to_ascii_uppercase();
                        pm = Some(up == "PM");
                        if up != "PM" && up != "AM" {
                            return Err(err());
                        }
                        v = &v[2..];
                    }
                    "January" | "Jan" | "Monday" | "Mon" => {
                        let names: &[&str] = if t.starts_with('J') { &MONTHS } else { &DAYS };
                        let full = t.len() > 3;
                        let found = names.iter().position(|n| {
                            let n = if full { *n } else { &n[..3] };
                            v.get(..n.len()).is_some_and(|p| p.eq_ignore_ascii_case(n))
                        });
                        let i = found.ok_or_else(err)?;
                        let n = if full { names[i].len() } else { 3 };
                        if t.starts_with('J') {
                            mo = i as u32 + 1;
                        }
                        v = &v[n..];
                    }
                    "MST" => {
                        let n = v.bytes().take_while(|b| b.is_ascii_uppercase()).count();
                        if v[..n] != *"UTC" && v[..n] != *"GMT" && v[..n] != *"Z" {
                            return Err(format!("parsing time {value:?}: time zone {:?} is not supported by prism (UTC only)", &v[..n]));
                        }
                        v = &v[n..];
                    }
                    t if t.starts_with('Z') || t.starts_with('-') => {
                        if t.starts_with('Z') && v.starts_with('Z') {
                            v = &v[1..];
                        } else {
                            let sign = match v.as_bytes().first() {
                                Some(b'+') => 1,
                                Some(b'-') => -1,
                                _ => return Err(err()),
                            };
                            v = &v[1..];
                            let oh = num(&mut v, 2, 2)?;
                            if v.starts_with(':') {
                                v = &v[1..];
                            }
                            let om = if t.len() > 3 { num(&mut v, 2, 2)? } else { 0 };
                            offset = sign * (oh * 3600 + om * 60);
                        }
                    }
                    _ => {
                        // Fractional seconds.
                        if v.starts_with(['.', ',']) {
                            v = &v[1..];
                            let n = v.bytes().take_while(|b| b.is_ascii_digit()).count();
                            let digits = format!("{:0<9}", &v[..n.min(9)]);
                            nanos = digits.parse().map_err(|_| err())?;
                            v = &v[n..];
                        }
                    }
                },
            }
            l = &l[len..];
        }
        if !v.is_empty() {
            return Err(format!(
                "parsing time {value:?} as {layout:?}: extra text {v:?}"
            ));
        }
        if let Some(pm) = pm {
            h = h % 12 + if pm { 12 } else { 0 };
        }
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return Err(format!("parsing time {value:?}: value out of range"));
        }
        let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
        Ok(Time { secs, nanos })
    }

    /// Go's `time.Time.String()` for a UTC time.
    pub fn go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }
}

/// The layout token at the start of `s`, or `None` and the length of literal text.
fn next_token(s: &str) -> (Option<&str>, usize) {
    const TOKENS: &[&str] = &[
        "January",
        "Jan",
        "Monday",
        "Mon",
        "MST",
        "2006",
        "002",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "__2",
        "_2",
        "15",
        "1",
        "2",
        "3",
        "4",
        "5",
        "PM",
        "pm",
        "-07:00:00",
        "-070000",
        "-07:00",
        "-0700",
        "-07",
        "Z07:00:00",
        "Z070000",
        "Z07:00",
        "Z0700",
        "Z07",
    ];
    for t in TOKENS {
        if s.starts_with(t) {
            // "Jan" must not be the start of a longer word like "January" handled above; Go
            // also refuses "Mon" inside "Month"; keep it simple and accept.
            return (Some(&s[..t.len()]), t.len());
        }
    }
    let b = s.as_bytes();
    if (b[0] == b'.' || b[0] == b',') && b.len() > 1 && (b[1] == b'0' || b[1] == b'9') {
        let run = b[1..].iter().take_while(|c| **c == b[1]).count();
        if !b.get(1 + run).is_some_and(|c| c.is_ascii_digit()) {
            return (Some(&s[..1 + run]), 1 + run);
        }
    }
    let len = s.chars().next().map(char::len_utf8).unwrap_or(1);
    (None, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layouts() {
        // 2009-11-10T23:04:05.123Z, a Tuesday.
        let t = Time {
            secs: 1_257_894_245,
            nanos: 123_000_000,
        };
        assert_eq!(
            t.format("2006-01-02T15:04:05Z07:00"),
            "2009-11-10T23:04:05Z"
        );
        assert_eq!(
            t.format("Mon Jan _2 3:04PM 2006"),
            "Tue Nov 10 11:04PM 2009"
        );
        assert_eq!(
            t.format("January 2, 06 .000 .999"),
            "November 10, 09 .123 .123"
        );
        assert_eq!(t.go_string(), "2009-11-10 23:04:05.123 +0000 UTC");
        assert_eq!(
            Time::parse("2006-01-02T15:04:05.000Z07:00", "2009-11-10T23:04:05.123Z").unwrap(),
            t
        );
        assert_eq!(
            Time::parse("2006-01-02", "1970-01-02").unwrap().secs,
            86_400
        );
        assert_eq!(
            Time::parse("2006-01-02T15:04:05-07:00", "2009-11-10T16:04:05-07:00")
                .unwrap()
                .secs,
            t.secs
        );
        assert!(Time::parse("2006-01-02", "2009-13-10").is_err());
        assert_eq!(civil(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
