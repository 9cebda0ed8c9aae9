//! The record's meaning as plain registry values, for fleet tools that read the registry
//! and not the record (osquery's `registry` table): one `REG_DWORD` or `REG_SZ` value per
//! fact, under the service's `Parameters\State` key. The driver writes them after every
//! change of the record it makes; `failsafectl status` computes the same values from the
//! record and says where the registry disagrees. Value by value in docs/windows.md
//! ("State for fleet tools"). A mirror, never an input: nothing reads these values back to
//! decide anything.
//!
//! No allocation: values are produced one at a time ([`each`]); a text value is written
//! into a caller's [`Text`] buffer, reused for the next one.

use super::record::{MAX_QUARANTINE, State};

/// The subkey of the service's `Parameters` key that holds the mirror.
pub const SUBKEY: &str = "State";
/// Layout of the values: raised when a value changes meaning or goes away (new values may
/// be added without raising it).
pub const SCHEMA_VERSION: u32 = 1;

/// Longest text value: the quarantine list, 16 × `version:reason:detail,` at most
/// 20 + 1 + 15 + 1 + 10 + 1 bytes each.
pub const TEXT_MAX: usize = 1024;
const _: () = assert!(MAX_QUARANTINE * 48 <= TEXT_MAX);

/// An ASCII text value being built (no allocation; bytes past [`TEXT_MAX`] are dropped,
/// which the bound above rules out).
#[derive(Clone, Debug)]
pub struct Text {
    buf: [u8; TEXT_MAX],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Self::new()
    }
}

impl Text {
    /// An empty text.
    pub const fn new() -> Self {
        Text {
            buf: [0; TEXT_MAX],
            len: 0,
        }
    }
    fn clear(&mut self) {
        self.len = 0;
    }
    fn push(&mut self, s: &[u8]) {
        // Byte by byte, not `copy_from_slice` (whose length check the optimizer keeps, with
        // its panic, and the kernel check rejects).
        match self.buf.get_mut(self.len..) {
            Some(dst) if dst.len() >= s.len() => {
                for (d, b) in dst.iter_mut().zip(s) {
                    *d = *b;
                }
                self.len = self.len.saturating_add(s.len());
            }
            _ => {}
        }
    }
    fn push_u64(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut n = 0usize;
        loop {
            let d = u8::try_from(v % 10).unwrap_or(0);
            if let Some(slot) = digits.get_mut(n) {
                *slot = b'0'.saturating_add(d);
            }
            n = n.saturating_add(1);
            v /= 10;
            if v == 0 || n >= digits.len() {
                break;
            }
        }
        for i in (0..n).rev() {
            if let Some(&d) = digits.get(i) {
                self.push(&[d]);
            }
        }
    }
    fn push_hex(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            let hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            let lo = HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0');
            self.push(&[hi, lo]);
        }
    }
    /// The text (ASCII).
    pub fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// One value of the mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// `REG_DWORD`.
    Dword(u32),
    /// `REG_SZ` (ASCII).
    Sz(&'a str),
}

/// Every value name, in the order [`each`] produces them (docs/windows.md lists them).
pub const NAMES: [&str; 22] = [
    "SchemaVersion",
    "RecordSequence",
    "Boot",
    "Mode",
    "Reason",
    "ActiveVersion",
    "ActiveDigest",
    "LastKnownGood",
    "LastKnownGoodDigest",
    "AttemptVersion",
    "AttemptPhase",
    "Attempts",
    "QuarantineCount",
    "Quarantined",
    "HealthVersion",
    "HealthResult",
    "HealthUptimeSeconds",
    "HealthCanaryStatus",
    "TestSigning",
    "WritesMayNotPersist",
    "ForceSafeRecorded",
    "Floor",
];

/// Hands each value to the caller, building text values in one reused buffer.
struct Sink<'t, F> {
    text: &'t mut Text,
    f: F,
}

impl<F: FnMut(&'static str, Value<'_>)> Sink<'_, F> {
    fn dword(&mut self, name: &'static str, v: u32) {
        (self.f)(name, Value::Dword(v));
    }
    fn sz(&mut self, name: &'static str, build: impl FnOnce(&mut Text)) {
        self.text.clear();
        build(self.text);
        (self.f)(name, Value::Sz(self.text.as_str()));
    }
    fn num(&mut self, name: &'static str, v: u64) {
        self.sz(name, |t| t.push_u64(v));
    }
    fn word(&mut self, name: &'static str, w: &str) {
        self.sz(name, |t| t.push(w.as_bytes()));
    }
    fn hex(&mut self, name: &'static str, digest: Option<[u8; 32]>) {
        self.sz(name, |t| {
            if let Some(d) = digest {
                t.push_hex(&d);
            }
        });
    }
}

/// Produces every value of the mirror of `state`, read from (or written as) record slot
/// sequence number `seq`, in [`NAMES`] order. Text values are built in `text`, which is
/// overwritten for each.
pub fn each(state: &State, seq: u64, text: &mut Text, f: impl FnMut(&'static str, Value<'_>)) {
    let mut out = Sink { text, f };
    let last = state.last;
    let active = last.map_or(0, |d| d.version);
    let attempt = state.attempt;
    // The digest of the active version: the attempt's when it is that version, else
    // last-known-good's (the record keeps no other copy).
    let active_digest = attempt
        .map(|a| a.ver)
        .filter(|v| active != 0 && v.version == active)
        .or(state.lkg.filter(|l| active != 0 && l.version == active))
        .map(|v| v.digest);
    let health = state.health;
    out.dword("SchemaVersion", SCHEMA_VERSION);
    out.num("RecordSequence", seq);
    out.num("Boot", state.boot);
    out.word("Mode", last.map_or("", |d| d.mode.name()));
    out.word("Reason", last.map_or("", |d| d.reason.name()));
    out.num("ActiveVersion", active);
    out.hex("ActiveDigest", active_digest);
    out.num("LastKnownGood", state.lkg.map_or(0, |l| l.version));
    out.hex("LastKnownGoodDigest", state.lkg.map(|l| l.digest));
    out.num("AttemptVersion", attempt.map_or(0, |a| a.ver.version));
    out.word("AttemptPhase", attempt.map_or("", |a| a.phase.name()));
    out.dword(
        "Attempts",
        u32::from(attempt.map_or(0, |a| state.attempts(a.ver.version))),
    );
    let count = state.quarantine.iter().flatten().count();
    out.dword("QuarantineCount", u32::try_from(count).unwrap_or(u32::MAX));
    out.sz("Quarantined", |t| {
        let mut entries = state.quarantine;
        entries.sort_unstable_by_key(|q| q.map_or(u64::MAX, |q| q.ver.version));
        for q in entries.iter().flatten() {
            if t.len != 0 {
                t.push(b",");
            }
            t.push_u64(q.ver.version);
            t.push(b":");
            t.push(q.reason.name().as_bytes());
            t.push(b":");
            t.push_u64(u64::from(q.detail));
        }
    });
    out.num("HealthVersion", health.map_or(0, |h| h.version));
    out.word(
        "HealthResult",
        health.map_or("", |h| match (h.passed, h.canary) {
            (true, _) => "passed",
            (false, Ok(())) => "refused",
            (false, Err(_)) => "canary-failed",
        }),
    );
    out.dword("HealthUptimeSeconds", health.map_or(0, |h| h.uptime_secs));
    // The OS error of a failed canary (an NTSTATUS on Windows) as its 32-bit pattern.
    out.dword(
        "HealthCanaryStatus",
        health.and_then(|h| h.canary.err()).map_or(0, |e| {
            u32::from_ne_bytes(i32::try_from(e.code).unwrap_or(-1).to_ne_bytes())
        }),
    );
    out.dword(
        "TestSigning",
        u32::from(last.is_some_and(|d| d.test_signing)),
    );
    out.dword(
        "WritesMayNotPersist",
        u32::from(last.is_some_and(|d| d.writes_may_not_persist)),
    );
    out.dword("ForceSafeRecorded", u32::from(state.force_safe));
    out.num("Floor", state.floor);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    use super::*;
    use crate::state::record::{
        Attempt, HealthCheck, LastDecision, Mode, Phase, QEntry, QuarantineReason, Reason, Track,
        Ver,
    };
    use crate::state::start::IoError;

    fn all(state: &State, seq: u64) -> Vec<(&'static str, String)> {
        let mut text = Text::new();
        let mut out = Vec::new();
        each(state, seq, &mut text, |n, v| {
            out.push((
                n,
                match v {
                    Value::Dword(d) => alloc::format!("dword {d}"),
                    Value::Sz(s) => alloc::format!("sz {s}"),
                },
            ));
        });
        out
    }

    fn get(values: &[(&'static str, String)], name: &str) -> String {
        values.iter().find(|(n, _)| *n == name).unwrap().1.clone()
    }

    fn ver(version: u64, fill: u8) -> Ver {
        Ver {
            version,
            digest: [fill; 32],
        }
    }

    #[test]
    fn every_name_once_in_order() {
        let values = all(&State::EMPTY, 0);
        let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, NAMES);
    }

    #[test]
    fn empty_record() {
        let v = all(&State::EMPTY, 0);
        assert_eq!(get(&v, "SchemaVersion"), "dword 1");
        assert_eq!(get(&v, "Mode"), "sz ");
        assert_eq!(get(&v, "ActiveVersion"), "sz 0");
        assert_eq!(get(&v, "ActiveDigest"), "sz ");
        assert_eq!(get(&v, "Quarantined"), "sz ");
        assert_eq!(get(&v, "QuarantineCount"), "dword 0");
        assert_eq!(get(&v, "HealthResult"), "sz ");
    }

    #[test]
    fn a_fallback_after_a_crash_loop() {
        let mut s = State::EMPTY;
        s.boot = 5;
        s.lkg = Some(ver(1, 0xab));
        s.attempt = Some(Attempt {
            ver: ver(1, 0xab),
            phase: Phase::InProgress,
            boot: 5,
        });
        s.tracks[0] = Some(Track {
            ver: ver(1, 0xab),
            attempts: 2,
        });
        s.quarantine[3] = Some(QEntry {
            ver: ver(7, 1),
            reason: QuarantineReason::Invalid,
            detail: 17,
            boot: 4,
        });
        s.quarantine[1] = Some(QEntry {
            ver: ver(2, 2),
            reason: QuarantineReason::CrashLoop,
            detail: 3,
            boot: 5,
        });
        s.last = Some(LastDecision {
            mode: Mode::Fallback,
            reason: Reason::NewerQuarantined,
            version: 1,
            boot: 5,
            writes_may_not_persist: true,
            test_signing: false,
        });
        s.health = Some(HealthCheck {
            version: 1,
            boot: 4,
            uptime_secs: 130,
            canary: Err(IoError {
                code: -1_073_741_790, // 0xC0000022
            }),
            passed: false,
        });
        s.floor = 9;
        let v = all(&s, 41);
        assert_eq!(get(&v, "RecordSequence"), "sz 41");
        assert_eq!(get(&v, "Boot"), "sz 5");
        assert_eq!(get(&v, "Mode"), "sz fallback");
        assert_eq!(get(&v, "Reason"), "sz newer-quarantined");
        assert_eq!(get(&v, "ActiveVersion"), "sz 1");
        assert_eq!(
            get(&v, "ActiveDigest"),
            alloc::format!("sz {}", "ab".repeat(32))
        );
        assert_eq!(get(&v, "LastKnownGood"), "sz 1");
        assert_eq!(get(&v, "AttemptVersion"), "sz 1");
        assert_eq!(get(&v, "AttemptPhase"), "sz in-progress");
        assert_eq!(get(&v, "Attempts"), "dword 2");
        assert_eq!(get(&v, "QuarantineCount"), "dword 2");
        // Sorted by version, whatever the slots.
        assert_eq!(
            get(&v, "Quarantined"),
            "sz 2:crash-loop:3,7:invalid-content:17"
        );
        assert_eq!(get(&v, "HealthVersion"), "sz 1");
        assert_eq!(get(&v, "HealthResult"), "sz canary-failed");
        assert_eq!(get(&v, "HealthUptimeSeconds"), "dword 130");
        assert_eq!(get(&v, "HealthCanaryStatus"), "dword 3221225506");
        assert_eq!(get(&v, "WritesMayNotPersist"), "dword 1");
        assert_eq!(get(&v, "TestSigning"), "dword 0");
        assert_eq!(get(&v, "Floor"), "sz 9");
    }

    #[test]
    fn the_longest_quarantine_list_fits() {
        let mut s = State::EMPTY;
        for (i, q) in s.quarantine.iter_mut().enumerate() {
            *q = Some(QEntry {
                ver: ver(u64::MAX - u64::try_from(i).unwrap(), 0),
                reason: QuarantineReason::Invalid,
                detail: u32::MAX,
                boot: 1,
            });
        }
        let v = all(&s, u64::MAX);
        let list = get(&v, "Quarantined");
        assert_eq!(list.matches(':').count(), 32, "{list}");
        assert!(list.ends_with("18446744073709551615:invalid-content:4294967295"));
        assert_eq!(get(&v, "RecordSequence"), "sz 18446744073709551615");
        assert_eq!(u64::MAX.to_string().len(), 20);
    }
}
