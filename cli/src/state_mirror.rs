//! The driver's registry mirror of the record (`Parameters\State`; docs/windows.md, "State
//! for fleet tools") as `failsafectl status` shows it: the values the record means
//! (`failsafe_loader::state::mirror`, the same function the driver writes them with), what
//! the registry holds (Windows, this system's own store), and where they disagree. The
//! comparison is portable and unit-tested here; the registry read is `cfg(windows)`.

use std::collections::BTreeMap;

use failsafe_loader::state::State;
use failsafe_loader::state::mirror::{self, Text, Value};
use serde_json::{Value as Json, json};

/// The key, under `HKLM`.
pub const KEY: &str = r"SYSTEM\CurrentControlSet\Services\failsafeflt\Parameters\State";

/// A value as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// `REG_DWORD`.
    Dword(u32),
    /// `REG_SZ`.
    Sz(String),
    /// Present with another type (named). Only the Windows read makes it.
    #[cfg_attr(not(windows), allow(dead_code))]
    OtherType(String),
    /// Absent.
    Absent,
}

impl Found {
    fn json(&self) -> Json {
        match self {
            Found::Dword(d) => json!(d),
            Found::Sz(s) => json!(s),
            Found::OtherType(t) => json!({"unexpected_type": t}),
            Found::Absent => Json::Null,
        }
    }
}

/// The values the record means, by name (what the driver writes for it).
pub fn expected(state: &State, seq: u64) -> BTreeMap<&'static str, Found> {
    let mut text = Box::new(Text::new());
    let mut out = BTreeMap::new();
    mirror::each(state, seq, &mut text, |name, v| {
        out.insert(
            name,
            match v {
                Value::Dword(d) => Found::Dword(d),
                Value::Sz(s) => Found::Sz(s.to_owned()),
            },
        );
    });
    out
}

/// How the registry's mirror relates to the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// Every value equal.
    Same,
    /// No mirror (`RecordSequence` absent): no driver with the mirror has started since
    /// install, or the key was removed.
    Missing,
    /// Written from an older record slot than the one read: a change the driver did not
    /// mirror (a responder's `failsafectl recover`, a failed mirror write, an offline
    /// edit); the next start mirrors the record again.
    Older,
    /// Names a newer record slot than the one read: the record was replaced or restored
    /// behind the driver's back.
    Newer,
    /// Same record slot, different values: the mirror is wrong.
    Differs,
}

impl Agreement {
    /// Stable name (JSON).
    pub fn name(&self) -> &'static str {
        match self {
            Agreement::Same => "same",
            Agreement::Missing => "missing",
            Agreement::Older => "older-than-record",
            Agreement::Newer => "newer-than-record",
            Agreement::Differs => "differs",
        }
    }
}

/// A value that differs: name, the record's, the registry's.
pub type Difference = (&'static str, Found, Found);

/// Compares the registry's values (`found`, by name) with the record's meaning.
pub fn compare(
    expected: &BTreeMap<&'static str, Found>,
    seq: u64,
    found: &BTreeMap<String, Found>,
) -> (Agreement, Vec<Difference>) {
    let get = |n: &str| found.get(n).cloned().unwrap_or(Found::Absent);
    let diffs: Vec<Difference> = mirror::NAMES
        .iter()
        .filter_map(|&n| {
            let want = expected.get(n).cloned().unwrap_or(Found::Absent);
            let got = get(n);
            (want != got).then_some((n, want, got))
        })
        .collect();
    let agreement = if diffs.is_empty() {
        Agreement::Same
    } else {
        match get("RecordSequence") {
            Found::Sz(s) => match s.parse::<u64>() {
                Ok(m) if m < seq => Agreement::Older,
                Ok(m) if m > seq => Agreement::Newer,
                _ => Agreement::Differs,
            },
            Found::Absent => Agreement::Missing,
            _ => Agreement::Differs,
        }
    };
    (agreement, diffs)
}

/// `status --json`'s `registry_mirror`: the key, the values the record means and, where
/// the registry was read, what it holds and how the two agree.
pub fn json(
    expected: &BTreeMap<&'static str, Found>,
    seq: u64,
    found: Result<Option<BTreeMap<String, Found>>, String>,
) -> Json {
    let exp: serde_json::Map<String, Json> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.json()))
        .collect();
    let mut out = json!({"key": format!("HKLM\\{KEY}"), "expected": exp});
    match found {
        Ok(None) => out["read"] = json!(false),
        Err(e) => {
            out["read"] = json!(false);
            out["error"] = json!(e);
        }
        Ok(Some(found)) => {
            let (agreement, diffs) = compare(expected, seq, &found);
            out["read"] = json!(true);
            out["found"] = found.iter().map(|(k, v)| (k.clone(), v.json())).collect();
            out["agreement"] = json!(agreement.name());
            out["differences"] = diffs
                .iter()
                .map(|(n, want, got)| json!({"name": n, "record": want.json(), "registry": got.json()}))
                .collect();
        }
    }
    out
}

/// `status`'s line about the mirror (Windows, the live store).
pub fn text(agreement: &Agreement, diffs: &[Difference]) -> String {
    let show = |f: &Found| match f {
        Found::Dword(d) => d.to_string(),
        Found::Sz(s) => format!("{s:?}"),
        Found::OtherType(t) => format!("(a {t} value)"),
        Found::Absent => "(absent)".to_owned(),
    };
    let list = diffs
        .iter()
        .map(|(n, want, got)| format!("{n}: record {} registry {}", show(want), show(got)))
        .collect::<Vec<_>>()
        .join("; ");
    match agreement {
        Agreement::Same => format!("registry mirror (HKLM\\{KEY}): same as the record"),
        Agreement::Missing => {
            format!("registry mirror (HKLM\\{KEY}): none (no driver start has written it yet)")
        }
        Agreement::Older => format!(
            "registry mirror: WARNING: written from an older record (a change the driver did not mirror, e.g. recover; the next start rewrites it): {list}"
        ),
        Agreement::Newer => format!(
            "registry mirror: WARNING: names a newer record than the one read (the record was replaced or restored): {list}"
        ),
        Agreement::Differs => {
            format!("registry mirror: WARNING: disagrees with the record it names: {list}")
        }
    }
}

/// Reads the mirror's values (`Ok(None)`: the key does not exist).
#[cfg(windows)]
pub fn read() -> Result<Option<BTreeMap<String, Found>>, String> {
    use windows_registry::Type;
    let key = match windows_registry::LOCAL_MACHINE.open(KEY) {
        Ok(k) => k,
        // HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND): the key does not exist.
        Err(e) if e.code().0 == -2_147_024_894 => return Ok(None),
        Err(e) => return Err(format!("cannot open HKLM\\{KEY}: {e}")),
    };
    let mut out = BTreeMap::new();
    for name in mirror::NAMES {
        let Ok(v) = key.get_value(name) else {
            continue;
        };
        let found = match v.ty() {
            Type::U32 => key
                .get_u32(name)
                .map_or(Found::OtherType("REG_DWORD".into()), Found::Dword),
            Type::String => key
                .get_string(name)
                .map_or(Found::OtherType("REG_SZ".into()), Found::Sz),
            other => Found::OtherType(format!("{other:?}")),
        };
        out.insert(name.to_owned(), found);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use failsafe_loader::state::{LastDecision, Mode, Reason, Ver};

    fn state() -> State {
        let mut s = State::EMPTY;
        s.boot = 3;
        s.lkg = Some(Ver {
            version: 1,
            digest: [7; 32],
        });
        s.last = Some(LastDecision {
            mode: Mode::Normal,
            reason: Reason::NewestContent,
            version: 1,
            boot: 3,
            writes_may_not_persist: false,
            test_signing: false,
        });
        s
    }

    fn registry_of(exp: &BTreeMap<&'static str, Found>) -> BTreeMap<String, Found> {
        exp.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn the_same_values_agree() {
        let exp = expected(&state(), 9);
        let (a, d) = compare(&exp, 9, &registry_of(&exp));
        assert_eq!(a, Agreement::Same);
        assert!(d.is_empty());
        assert_eq!(exp["ActiveVersion"], Found::Sz("1".into()));
        assert_eq!(exp["SchemaVersion"], Found::Dword(1));
    }

    #[test]
    fn no_key_is_missing() {
        let exp = expected(&state(), 9);
        let (a, d) = compare(&exp, 9, &BTreeMap::new());
        assert_eq!(a, Agreement::Missing);
        assert_eq!(d.len(), mirror::NAMES.len());
    }

    #[test]
    fn a_recover_the_driver_did_not_mirror_is_older() {
        // The registry was written at sequence 8 with v1 active; the record (seq 9) was
        // since changed by hand to force safe mode.
        let old = registry_of(&expected(&state(), 8));
        let mut now = state();
        now.force_safe = true;
        let exp = expected(&now, 9);
        let (a, d) = compare(&exp, 9, &old);
        assert_eq!(a, Agreement::Older);
        let names: Vec<&str> = d.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, ["RecordSequence", "ForceSafeRecorded"]);
        assert_eq!(d[1].1, Found::Dword(1));
        assert_eq!(d[1].2, Found::Dword(0));
    }

    #[test]
    fn a_restored_record_is_newer_and_a_wrong_value_differs() {
        let exp = expected(&state(), 9);
        let mut reg = registry_of(&expected(&state(), 12));
        let (a, _) = compare(&exp, 9, &reg);
        assert_eq!(a, Agreement::Newer);
        reg = registry_of(&exp);
        reg.insert("Mode".into(), Found::Sz("safe".into()));
        reg.insert("Attempts".into(), Found::OtherType("REG_SZ".into()));
        let (a, d) = compare(&exp, 9, &reg);
        assert_eq!(a, Agreement::Differs);
        assert_eq!(d.len(), 2);
        let t = text(&a, &d);
        assert!(
            t.contains("Mode: record \"normal\" registry \"safe\""),
            "{t}"
        );
        assert!(
            t.contains("Attempts: record 0 registry (a REG_SZ value)"),
            "{t}"
        );
    }

    #[test]
    fn json_without_a_registry_read_carries_the_expected_values() {
        let exp = expected(&state(), 9);
        let j = json(&exp, 9, Ok(None));
        assert_eq!(j["read"], json!(false));
        assert_eq!(j["expected"]["RecordSequence"], json!("9"));
        assert_eq!(j["expected"]["LastKnownGoodDigest"], json!("07".repeat(32)));
        let j = json(&exp, 9, Ok(Some(registry_of(&exp))));
        assert_eq!(j["agreement"], json!("same"));
    }
}
