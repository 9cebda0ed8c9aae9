//! The docs say what the code does (issue 20, section 3: contradictions a model written
//! from the docs alone found). Each test pins the code's behaviour with the core's own
//! functions and checks that the document states it; where the docs were wrong, the
//! document check failed before the docs were fixed.
#![allow(clippy::unwrap_used)]

use failsafe_loader::state::machine::{Config, Env, LiveRefusal, choose, live_check, rollback_in};
use failsafe_loader::state::{QEntry, QuarantineReason, Reason, State, Ver};
use failsafe_loader::{Action, Content, Criterion, EventType, Op, Rule, Values, encode, validate};

fn doc(name: &str) -> String {
    let path = failsafe_tests::root().join("..").join("docs").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    // Paragraphs are wrapped: compare with whitespace folded.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The paragraph of `doc` that starts with `start` (up to the next blank line).
fn paragraph(name: &str, start: &str) -> String {
    let path = failsafe_tests::root().join("..").join("docs").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find(start)
        .unwrap_or_else(|| panic!("docs/{name}: no paragraph starting {start:?}"));
    let rest = &text[at..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ver(v: u64) -> Ver {
    Ver {
        version: v,
        digest: [v as u8; 32],
    }
}

/// The live rules of boot-safety.md, in table order: (code, name, text).
fn live_table() -> Vec<(u16, String, String)> {
    let path = failsafe_tests::root().join("../docs/boot-safety.md");
    let text = std::fs::read_to_string(path).unwrap();
    let at = text.find("| code | name | when |").unwrap();
    text[at..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].parse().unwrap(),
                cells[2].trim_matches('`').to_owned(),
                cells[3].to_owned(),
            )
        })
        .collect()
}

/// A version missing from the store that is also older than last-known-good is refused
/// `older-than-last-known-good` (the rules before the store is listed), and the table of
/// live refusals lists the store check after those rules; every refusal of the core has a
/// row with its code.
#[test]
fn live_refusals_are_documented_in_the_order_they_are_checked() {
    let s = State {
        lkg: Some(ver(5)),
        ..State::default()
    };
    assert_eq!(
        live_check(&s, None, 3, &Config::default(), &Env::default()),
        Err(LiveRefusal::OlderThanLastKnownGood { version: 3, lkg: 5 })
    );
    let table = live_table();
    let row = |name: &str, says: &str| {
        table
            .iter()
            .position(|(_, n, t)| n == name && t.contains(says))
            .unwrap_or_else(|| panic!("no live rule {name} saying {says:?}: {table:?}"))
    };
    let missing = row("not-in-store", "not in the store");
    for before in [
        "quarantined",
        "older-than-last-known-good",
        "below-floor",
        "attempts-used",
        "uncountable",
    ] {
        assert!(
            row(before, "") < missing,
            "boot-safety.md lists not-in-store (missing from the store) before {before}"
        );
    }
    let every = [
        LiveRefusal::SafeMode {
            reason: Reason::ForceSafeMode,
        },
        LiveRefusal::AlreadyActive { version: 1 },
        LiveRefusal::Quarantined {
            version: 1,
            reason: QuarantineReason::CrashLoop,
        },
        LiveRefusal::OlderThanLastKnownGood { version: 1, lkg: 2 },
        LiveRefusal::BelowFloor {
            version: 1,
            floor: 2,
        },
        LiveRefusal::Uncountable { version: 1 },
        LiveRefusal::NotInStore { version: 1 },
        LiveRefusal::Unreadable {
            version: 1,
            error: failsafe_loader::state::IoError { code: 5 },
        },
        LiveRefusal::NoLastKnownGood,
        LiveRefusal::LastKnownGoodChanged { version: 1 },
        LiveRefusal::StateUnwritable {
            error: failsafe_loader::state::IoError { code: 5 },
        },
        LiveRefusal::OutOfMemory,
        LiveRefusal::AttemptsUsed {
            version: 1,
            attempts: 3,
        },
        LiveRefusal::PendingAttempt { version: 1 },
        LiveRefusal::ShuttingDown,
    ];
    for r in every {
        assert!(
            table
                .iter()
                .any(|(c, n, _)| *c == r.code() && n == r.name()),
            "boot-safety.md has no row {} `{}`",
            r.code(),
            r.name()
        );
    }
}

/// Rollback with no last-known-good while a version runs quarantines it and leaves nothing
/// running; it is refused only when nothing runs either. docs/cli.md says so.
#[test]
fn rollback_without_last_known_good_is_documented() {
    let running = failsafe_loader::state::machine::Activation {
        ver: ver(4),
        boot: 1,
    };
    let mut s = State {
        boot: 1,
        ..State::default()
    };
    assert_eq!(
        rollback_in(&mut s, Some(&running), &Env::default()),
        Ok(None)
    );
    assert_eq!(
        s.quarantined(4).map(|q| q.reason),
        Some(QuarantineReason::RolledBack)
    );
    let mut s = State::default();
    assert_eq!(
        rollback_in(&mut s, None, &Env::default()),
        Err(LiveRefusal::NoLastKnownGood)
    );
    let p = paragraph("cli.md", "`failsafectl rollback [--socket PATH]");
    assert!(
        p.contains("Without a last-known-good, the running version is quarantined")
            && p.contains("`no-last-known-good`"),
        "docs/cli.md's rollback paragraph: {p}"
    );
}

/// `recover` (but `rebuild`) on a record whose slots are both invalid exits 3 (the CLI test
/// `recover_on_a_corrupt_record_exits_3` runs it); the exit codes say so.
#[test]
fn exit_3_for_a_corrupt_record_is_documented() {
    let d = doc("cli.md");
    assert!(
        d.contains("**3** the state record cannot be read")
            && d.contains("it is corrupt, both of its slots invalid"),
        "docs/cli.md's exit codes do not give 3 for a corrupt record"
    );
}

/// `stage --keep` keeps the version of the record's last attempt, whatever its phase.
#[test]
fn stage_keep_keeps_the_last_attempt_documented() {
    let p = paragraph("cli.md", "`failsafectl stage FILE [--store DIR]");
    assert!(
        p.contains("version of the record's last attempt") && p.contains("a closed one too"),
        "docs/cli.md's stage paragraph: {p}"
    );
}

fn rule(id: u32) -> Rule {
    Rule {
        id,
        event: EventType::FileCreate,
        action: Action::Block,
        criteria: vec![Criterion {
            field: 0,
            op: Op::Contains,
            negate: false,
            values: Values::Strs(vec!["x".encode_utf16().collect()]),
        }],
        exceptions: vec![],
    }
}

/// Several duplicated ids: the error names the lowest one (at its second rule), not the
/// first duplicate in file order; content-format.md says which.
#[test]
fn the_duplicate_id_named_is_the_lowest_and_documented() {
    // File order: 9, 9 (the first duplicate met), 3, 3.
    let c = Content {
        version: 1,
        rules: vec![rule(9), rule(9), rule(3), rule(3)],
    };
    let e = validate(&encode(&c).unwrap()).unwrap_err();
    assert_eq!(
        e.kind,
        failsafe_loader::ErrorKind::DuplicateRuleId {
            id: 3,
            first_index: 2
        }
    );
    assert_eq!((e.at.rule_index, e.at.rule_id), (Some(3), Some(3)));
    assert!(
        doc("content-format.md").contains("the error names the **lowest** duplicated id"),
        "content-format.md does not say which duplicate is named"
    );
}

/// Newer versions unreadable, uncountable and quarantined at once: `newer-unreadable` is
/// recorded; boot-safety.md states the precedence.
#[test]
fn fallback_reason_precedence_is_documented() {
    // v10 quarantined, v9 unreadable this start, v8 uncountable (16 counts held), v7 runs.
    let mut s = State::default();
    s.quarantine[0] = Some(QEntry {
        ver: ver(10),
        reason: QuarantineReason::Invalid,
        detail: 1,
        boot: 1,
    });
    for (i, t) in s.tracks.iter_mut().enumerate() {
        *t = Some(failsafe_loader::state::record::Track {
            ver: ver(100 + i as u64),
            attempts: 1,
        });
    }
    // v7 holds one of the entries, so it stays countable; v8 has none.
    s.tracks[0] = Some(failsafe_loader::state::record::Track {
        ver: ver(7),
        attempts: 1,
    });
    let cfg = Config::default();
    let c = choose(&mut s.clone(), &[7, 8, 9, 10], &[9], &cfg, &Env::default());
    assert_eq!((c.target, c.reason), (Some(7), Reason::NewerUnreadable));
    let c = choose(&mut s.clone(), &[7, 8, 10], &[], &cfg, &Env::default());
    assert_eq!((c.target, c.reason), (Some(7), Reason::NewerUncountable));
    let d = doc("boot-safety.md");
    assert!(
        d.contains("`newer-unreadable` (a newer version, not quarantined, could not be read this start) over `newer-uncountable` (a newer version got no count entry) over `newer-quarantined`"),
        "boot-safety.md does not state the fallback reasons' precedence"
    );
}

/// A count entry of a version no longer in the store is not reused while it holds an
/// unclean count; the docs say so, and say the quarantine eviction order.
#[test]
fn count_reuse_and_quarantine_eviction_are_documented() {
    let mut s = State::default();
    for (i, t) in s.tracks.iter_mut().enumerate() {
        *t = Some(failsafe_loader::state::record::Track {
            ver: ver(100 + i as u64),
            attempts: 1,
        });
    }
    // None of 100..116 is in the store: still no room for v200.
    assert!(!failsafe_loader::state::machine::countable(&s, 200));
    // A full quarantine of crash-loop and rolled-back entries: a rollback's quarantine
    // evicts the lowest version, whatever its reason, and the floor rises to it.
    let mut s = State {
        boot: 1,
        ..State::default()
    };
    for (i, q) in s.quarantine.iter_mut().enumerate() {
        *q = Some(QEntry {
            ver: ver(20 + i as u64),
            reason: if i % 2 == 0 {
                QuarantineReason::RolledBack
            } else {
                QuarantineReason::CrashLoop
            },
            detail: 0,
            boot: 1,
        });
    }
    let running = failsafe_loader::state::machine::Activation {
        ver: ver(50),
        boot: 1,
    };
    rollback_in(&mut s, Some(&running), &Env::default()).unwrap();
    assert!(s.quarantined(20).is_none() && s.quarantined(50).is_some());
    assert_eq!(s.floor, 20);
    let d = doc("boot-safety.md");
    assert!(
        d.contains("A count entry of a version that is no longer in the store is **not** freed by that alone"),
        "boot-safety.md does not say whether a missing version's count entry is reused"
    );
    assert!(
        d.contains("`crash-loop` and `rolled-back` alike")
            && d.contains("Within each class the lowest version goes first"),
        "boot-safety.md does not give the eviction order within a class and for rolled-back"
    );
}

/// Unquarantining a `rolled-back` version needs no `--yes` (the CLI test
/// `unquarantine_of_a_rolled_back_version_needs_no_yes` runs it); the docs say so.
#[test]
fn unquarantine_of_rolled_back_is_documented() {
    let d = doc("cli.md");
    assert!(
        d.contains("and so is a `rolled-back` one"),
        "docs/cli.md does not say whether releasing a rolled-back version needs --yes"
    );
}

/// `.github/workflows/windows.yml` does not say the driver links wdk-alloc (ADR 0006: its
/// own pool allocator).
#[test]
fn the_windows_workflow_does_not_claim_wdk_alloc() {
    let path = failsafe_tests::root().join("../.github/workflows/windows.yml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        !text.contains("wdk-alloc"),
        "windows.yml still names wdk-alloc as the driver's allocator"
    );
}
