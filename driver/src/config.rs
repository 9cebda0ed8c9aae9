//! Configuration from the service's `Parameters` key, and the store layout the driver
//! shares with `failsafectl` (`<dir>\state.bin`, `<dir>\content\<N>.fsc`).

use failsafe_loader::state::Config;

/// Values read from `HKLM\SYSTEM\CurrentControlSet\Services\failsafeflt\Parameters`
/// (`None`: absent or not a `REG_DWORD`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryValues {
    /// `Threshold`.
    pub threshold: Option<u32>,
    /// `HealthyAfterSeconds`.
    pub healthy_after_secs: Option<u32>,
    /// `ForceSafeMode`.
    pub force_safe_mode: Option<u32>,
}

/// The core's configuration from registry values: defaults for absent values, the
/// threshold clamped by the core (1..=16), healthy-after at least 10 s so that a
/// mistyped 0 cannot mark content healthy before it has run.
pub fn config_from(v: &RegistryValues) -> Config {
    let d = Config::default();
    Config {
        threshold: v
            .threshold
            .map_or(d.threshold, |t| u8::try_from(t).unwrap_or(u8::MAX)),
        healthy_after_secs: v
            .healthy_after_secs
            .map_or(d.healthy_after_secs, |s| s.max(10)),
        force_safe_mode: v.force_safe_mode.is_some_and(|x| x != 0),
    }
}

/// Whether Windows' boot options (`SystemStartOptions`: space-separated, upper case, e.g.
/// `" TESTSIGNING  NOEXECUTE=OPTIN"`) include test signing. A whole word, any case.
pub fn boot_options_test_signing(options: &[u16]) -> bool {
    const WORD: &[u8] = b"TESTSIGNING";
    options.split(|&u| u == u16::from(b' ')).any(|w| {
        w.len() == WORD.len()
            && w.iter()
                .zip(WORD)
                .all(|(&a, &b)| failsafe_loader::text::fold(a) == u16::from(b))
    })
}

/// Default store directory (NT path; `\SystemRoot` exists before drive letters do).
pub const DEFAULT_DIR: &str = "\\SystemRoot\\Failsafe";

/// Writes `<N>.fsc` as UTF-16 into `out`; returns the length.
pub fn content_file_name(version: u64, out: &mut [u16; 24]) -> usize {
    let mut digits = [0u16; 20];
    let mut n = version;
    let mut len = 0usize;
    loop {
        if let Some(d) = digits.get_mut(len) {
            *d = u16::try_from(n % 10).unwrap_or(0).saturating_add(0x30);
        }
        len = len.saturating_add(1);
        n /= 10;
        if n == 0 || len >= digits.len() {
            break;
        }
    }
    let mut w = 0usize;
    for i in (0..len).rev() {
        if let (Some(dst), Some(src)) = (out.get_mut(w), digits.get(i)) {
            *dst = *src;
            w = w.saturating_add(1);
        }
    }
    for u in ".fsc".encode_utf16() {
        if let Some(dst) = out.get_mut(w) {
            *dst = u;
            w = w.saturating_add(1);
        }
    }
    w
}

/// The version a content file name stands for: `<N>.fsc`, N >= 1, no leading zero (the
/// same rule as `failsafectl`'s store).
pub fn parse_content_name(name: &[u16]) -> Option<u64> {
    let suffix: [u16; 4] = [0x2E, 0x66, 0x73, 0x63]; // ".fsc"
    let digits = name.strip_suffix(&suffix[..])?;
    if digits.is_empty() || digits.first() == Some(&0x30) || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &u| {
        let d = u.checked_sub(0x30).filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
#[allow(
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed expectation is a test failure"
)]
mod tests {
    use super::*;

    #[test]
    fn test_signing_boot_option() {
        let w = |s: &str| s.encode_utf16().collect::<alloc::vec::Vec<u16>>();
        assert!(boot_options_test_signing(&w(
            " TESTSIGNING  NOEXECUTE=OPTIN"
        )));
        assert!(boot_options_test_signing(&w("testsigning")));
        assert!(!boot_options_test_signing(&w(" NOEXECUTE=OPTIN")));
        assert!(!boot_options_test_signing(&w(" NOTESTSIGNING")));
        assert!(!boot_options_test_signing(&w("")));
    }

    #[test]
    fn registry_values_to_config() {
        let c = config_from(&RegistryValues::default());
        assert_eq!(
            (c.threshold, c.healthy_after_secs, c.force_safe_mode),
            (3, 120, false)
        );
        let c = config_from(&RegistryValues {
            threshold: Some(0),
            healthy_after_secs: Some(0),
            force_safe_mode: Some(1),
        });
        assert_eq!(
            (c.threshold(), c.healthy_after_secs, c.force_safe_mode),
            (1, 10, true)
        );
        let c = config_from(&RegistryValues {
            threshold: Some(100_000),
            ..RegistryValues::default()
        });
        assert_eq!(c.threshold(), 16);
    }

    #[test]
    fn content_names_round_trip() {
        let mut buf = [0u16; 24];
        for v in [1u64, 7, 10, 42, 1_000_000, u64::MAX] {
            let n = content_file_name(v, &mut buf);
            let s: alloc::string::String = char::decode_utf16(buf[..n].iter().copied())
                .map(|c| c.unwrap_or('?'))
                .collect();
            assert_eq!(s, alloc::format!("{v}.fsc"));
            assert_eq!(parse_content_name(&buf[..n]), Some(v));
        }
        let w = |s: &str| s.encode_utf16().collect::<alloc::vec::Vec<u16>>();
        for bad in [
            "0.fsc",
            "012.fsc",
            ".fsc",
            "x.fsc",
            "12.fsc.tmp",
            "18446744073709551616.fsc",
        ] {
            assert_eq!(parse_content_name(&w(bad)), None, "{bad}");
        }
    }
}
