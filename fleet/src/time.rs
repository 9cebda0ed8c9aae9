//! Durations as operators write them (`90s`, `10m`, `48h`, `7d`) and the clock.

use crate::error::{Error, Result};

/// The longest duration a plan or an expiry may name: 400 days (a root key's year, with
/// slack). Bounds every addition to a timestamp.
pub const MAX_SECS: u64 = 400 * 86_400;

/// Parses `N` followed by `s`, `m`, `h` or `d` (a bare number is seconds).
pub fn parse_duration(field: &str, s: &str) -> Result<u64> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (t.get(..i).unwrap_or(""), c),
        _ => (t, 's'),
    };
    let mult: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        other => {
            return Err(Error::refused(
                "duration-invalid",
                format!(
                    "{field}: unit `{other}` in `{s}` is not a duration unit (expected s, m, h or d, e.g. 90s, 10m, 48h, 7d)"
                ),
            ));
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        Error::refused(
            "duration-invalid",
            format!("{field}: `{s}` is not a duration (expected a whole number and a unit, e.g. 90s, 10m, 48h, 7d)"),
        )
    })?;
    match n.checked_mul(mult) {
        Some(v) if v <= MAX_SECS => Ok(v),
        _ => Err(Error::refused(
            "duration-invalid",
            format!("{field}: `{s}` is longer than the limit of 400 days"),
        )),
    }
}

/// A duration as the plan shows it: the largest unit that divides it.
pub fn show_duration(secs: u64) -> String {
    match secs {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Now, as TUF's timestamps are kept.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// `t + secs` (secs bounded by [`MAX_SECS`], so this never leaves jiff's range).
pub fn after(t: jiff::Timestamp, secs: u64) -> jiff::Timestamp {
    let secs = i64::try_from(secs.min(MAX_SECS)).unwrap_or(0);
    t.checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or(t)
}

/// Whole seconds that have fully elapsed from `a` to `b` (0 when `b` is earlier).
/// Measured in milliseconds, then floored: subtracting whole-second timestamps would
/// count 10.9 s -> 14.0 s as 4 s, so a ring could open up to a second before its bake
/// time (the fleet drill caught a 3 s gap for a 4 s bake).
pub fn secs_between(a: jiff::Timestamp, b: jiff::Timestamp) -> u64 {
    let ms = b.as_millisecond().saturating_sub(a.as_millisecond());
    u64::try_from(ms / 1000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_seconds_count_only_whole_seconds_that_passed() {
        let a = jiff::Timestamp::from_millisecond(10_900).unwrap();
        let b = jiff::Timestamp::from_millisecond(14_000).unwrap();
        assert_eq!(secs_between(a, b), 3);
        let c = jiff::Timestamp::from_millisecond(14_900).unwrap();
        assert_eq!(secs_between(a, c), 4);
        assert_eq!(secs_between(c, a), 0);
    }

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_duration("bake", "90s").unwrap(), 90);
        assert_eq!(parse_duration("bake", "10m").unwrap(), 600);
        assert_eq!(parse_duration("bake", "48h").unwrap(), 172_800);
        assert_eq!(parse_duration("bake", "7d").unwrap(), 604_800);
        assert_eq!(parse_duration("bake", "15").unwrap(), 15);
        let e = parse_duration("ring 1 bake", "10w").unwrap_err();
        assert_eq!(e.code, "duration-invalid");
        assert!(e.msg.contains("ring 1 bake: unit `w`"), "{}", e.msg);
        let e = parse_duration("bake", "soon").unwrap_err();
        assert!(e.msg.contains("`soon` is not a duration"), "{}", e.msg);
        let e = parse_duration("bake", "401d").unwrap_err();
        assert!(e.msg.contains("longer than the limit"), "{}", e.msg);
        assert_eq!(show_duration(172_800), "2d");
        assert_eq!(show_duration(90), "90s");
    }
}
