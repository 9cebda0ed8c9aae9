//! Evaluator semantics and the incident regression on the evaluation side.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions)]

mod common;
use common::*;

use failsafe_loader::eval::{evaluate_scan, fold_content};
use failsafe_loader::text::split_path;
use failsafe_loader::{
    Action, Content, Event, EventType, Input, Match, Op, RuleSet, encode, validate,
};

fn compile(c: &Content) -> RuleSet {
    RuleSet::load(&encode(c).unwrap()).unwrap()
}

/// Decides a file-create of `path` by `process` with both the engine and the reference scan
/// and checks they agree.
fn decide(c: &Content, path: &str, process: &str, access: u64, dir: bool) -> Option<Match> {
    let rs = compile(c);
    let p = w(path);
    let (parent, name, ext) = split_path(&p);
    let proc_ = w(process);
    let inputs = [
        Input::Str(&p),
        Input::Str(name),
        Input::Str(ext),
        Input::Str(parent),
        Input::Str(&proc_),
        Input::Int(4242),
        Input::Int(access),
        Input::Int(1),
        Input::Int(0),
        Input::Flag(dir),
        Input::Flag(false),
    ];
    let ev = Event::new(EventType::FileCreate, &inputs);
    let got = rs.evaluate(&ev);
    let reference = evaluate_scan(&fold_content(c).unwrap(), &ev);
    assert_eq!(
        got, reference,
        "engine and reference scan disagree on {path}"
    );
    got
}

fn ransomware() -> Content {
    let mut block = rule(
        10,
        EventType::FileCreate,
        Action::Block,
        vec![strs(Op::StrEquals, 2, &["locky", "wncry", "crypt"])],
    );
    block.exceptions = vec![vec![strs(Op::EndsWith, 4, &["\\backup.exe"])]];
    content(vec![
        rule(
            1,
            EventType::FileCreate,
            Action::Allow,
            vec![strs(Op::StartsWith, 0, &["C:\\Quarantine\\"])],
        ),
        block,
        rule(
            20,
            EventType::FileCreate,
            Action::Audit,
            vec![strs(Op::Wildcard, 1, &["lsass*.dmp"])],
        ),
        rule(
            30,
            EventType::FileCreate,
            Action::Block,
            vec![
                strs(Op::Contains, 0, &["\\Failsafe\\Content\\"]),
                not(strs(Op::EndsWith, 4, &["\\failsafe-updater.exe"])),
            ],
        ),
        rule(
            40,
            EventType::FileCreate,
            Action::Audit,
            vec![ints(Op::AllBits, 6, &[0x0001_0000]), flag(Op::IsFalse, 9)],
        ),
    ])
}

#[test]
fn block_list_with_exception() {
    let c = ransomware();
    let m = decide(
        &c,
        "C:\\Users\\bob\\Documents\\report.docx.LOCKY",
        "C:\\evil.exe",
        0,
        false,
    )
    .unwrap();
    assert_eq!((m.action, m.rule_id, m.rule_index), (Action::Block, 10, 1));
    // The backup tool is excepted: no match from rule 10, and nothing else applies.
    assert_eq!(
        decide(
            &c,
            "C:\\Users\\bob\\x.wncry",
            "D:\\Tools\\Backup.EXE",
            0,
            false
        ),
        None
    );
    assert_eq!(
        decide(&c, "C:\\Users\\bob\\x.docx", "C:\\evil.exe", 0, false),
        None
    );
}

#[test]
fn first_rule_in_file_order_wins() {
    let c = ransomware();
    // Matches rule 1 (allow, prefix) and rule 10 (block, extension): rule 1 is first.
    let m = decide(&c, "c:\\quarantine\\sample.locky", "C:\\evil.exe", 0, false).unwrap();
    assert_eq!((m.action, m.rule_id), (Action::Allow, 1));
}

#[test]
fn wildcard_negation_integers_and_flags() {
    let c = ransomware();
    let m = decide(
        &c,
        "C:\\Windows\\Temp\\LSASS_1234.DMP",
        "C:\\procdump.exe",
        0,
        false,
    )
    .unwrap();
    assert_eq!((m.action, m.rule_id), (Action::Audit, 20));
    let m = decide(
        &c,
        "C:\\ProgramData\\Failsafe\\Content\\9.fsc",
        "C:\\evil.exe",
        0,
        false,
    )
    .unwrap();
    assert_eq!(m.rule_id, 30);
    assert_eq!(
        decide(
            &c,
            "C:\\ProgramData\\Failsafe\\Content\\9.fsc",
            "C:\\Program Files\\Failsafe\\failsafe-updater.exe",
            0,
            false
        ),
        None
    );
    // DELETE access (0x10000) on a file: rule 40; on a directory: not.
    assert_eq!(
        decide(&c, "C:\\a.txt", "C:\\x.exe", 0x0011_0000, false)
            .unwrap()
            .rule_id,
        40
    );
    assert_eq!(decide(&c, "C:\\a", "C:\\x.exe", 0x0011_0000, true), None);
}

/// The incident, evaluation side: an event that supplies fewer inputs than a rule names
/// is "no match" for that rule, never an out-of-bounds read.
#[test]
fn event_with_fewer_inputs_than_rules_name_is_no_match() {
    let c = content(vec![
        rule(
            1,
            EventType::FileSetInfo,
            Action::Block,
            vec![flag(Op::IsTrue, 9)],
        ),
        rule(
            2,
            EventType::FileSetInfo,
            Action::Block,
            vec![not(flag(Op::IsTrue, 9))],
        ),
        rule(
            3,
            EventType::FileSetInfo,
            Action::Audit,
            vec![strs(Op::EndsWith, 0, &[".fsc"])],
        ),
    ]);
    let rs = compile(&c);
    let p = w("C:\\x\\1.fsc");
    let nine = [
        Input::Str(&p),
        Input::Str(&[]),
        Input::Str(&[]),
        Input::Str(&[]),
        Input::Str(&[]),
        Input::Int(1),
        Input::Int(10),
        Input::Str(&[]),
        Input::Flag(true),
    ];
    let ev = Event::new(EventType::FileSetInfo, &nine);
    assert_eq!(ev.supplied(), 9);
    // Rules 1 and 2 name field 9, which was not supplied: neither matches, negated or not.
    assert_eq!(rs.evaluate(&ev).map(|m| m.rule_id), Some(3));
    let none = Event::new(EventType::FileSetInfo, &[]);
    assert_eq!(rs.evaluate(&none), None);
    // Wrong input type for a field: also no match.
    let wrong = [Input::Int(5)];
    assert_eq!(
        rs.evaluate(&Event::new(EventType::FileSetInfo, &wrong)),
        None
    );
}

#[test]
fn rules_apply_only_to_their_event_type() {
    let c = content(vec![rule(
        1,
        EventType::FileSetInfo,
        Action::Block,
        vec![strs(Op::Contains, 0, &["secret"])],
    )]);
    assert_eq!(decide(&c, "C:\\secret.txt", "x", 0, false), None);
}

#[test]
fn case_insensitive_beyond_ascii() {
    let c = content(vec![rule(
        1,
        EventType::FileCreate,
        Action::Block,
        vec![strs(Op::Contains, 0, &["ÉTÉ\\ДОКУМЕНТ"])],
    )]);
    assert_eq!(
        decide(&c, "C:\\été\\документ.txt", "x", 0, false)
            .unwrap()
            .rule_id,
        1
    );
}

#[test]
fn many_rules_sharing_patterns_pick_the_first() {
    let mut rules = Vec::new();
    for i in 0..500u32 {
        let pat = format!("\\dir{}\\", i % 50);
        rules.push(rule(
            1000 + i,
            EventType::FileCreate,
            if i % 2 == 0 {
                Action::Audit
            } else {
                Action::Block
            },
            vec![
                strs(Op::Contains, 0, &[&pat]),
                ints(Op::IntEquals, 5, &[4242 + u64::from(i % 7)]),
            ],
        ));
    }
    let c = content(rules);
    // pid is 4242 in `decide`, so only rules with i % 7 == 0 can match; the first with
    // i % 50 == 17 decides: i = 217.
    assert_eq!(
        decide(&c, "C:\\dir17\\f.txt", "x", 0, false)
            .unwrap()
            .rule_id,
        1217
    );
}

#[test]
fn validated_content_is_what_was_encoded() {
    let c = ransomware();
    assert_eq!(validate(&encode(&c).unwrap()).unwrap().content, c);
    let rs = compile(&c);
    assert_eq!(rs.len(), 5);
    assert_eq!(rs.version(), 7);
    // Rule 40 has no string anchor: it is the only one checked on every event.
    assert_eq!(rs.unanchored(EventType::FileCreate), 1);
}

/// Equal criteria share their values in the compiled form; membership literals are per
/// event type. A `contains` criterion equal in a set-info rule and a file-create rule must
/// still be found in a file-create event (a shared value once carried the other type's
/// literal).
#[test]
fn equal_criteria_of_two_event_types_keep_their_own_literals() {
    let shared = || {
        vec![
            strs(Op::StrEquals, 1, &["x.txt"]),
            strs(Op::Contains, 0, &["\\dir\\", "\\other\\"]),
        ]
    };
    for create_first in [true, false] {
        let mut rules = vec![
            rule(1, EventType::FileSetInfo, Action::Audit, shared()),
            rule(2, EventType::FileCreate, Action::Block, shared()),
        ];
        if create_first {
            rules.reverse();
        }
        let c = Content { version: 1, rules };
        let m = decide(&c, "C:\\dir\\x.txt", "C:\\p.exe", 0, false);
        assert_eq!(
            m.map(|m| m.rule_id),
            Some(2),
            "create first: {create_first}"
        );
        assert_eq!(
            decide(&c, "C:\\elsewhere\\x.txt", "C:\\p.exe", 0, false),
            None
        );
    }
}

/// Many rules that share everything but a literal of their path (variants of one shape,
/// as large sets are made): the first whose literal holds decides, and a shared guard that
/// fails passes over all of them.
#[test]
fn variants_of_one_shape_decide_as_the_reference() {
    let mut rules = Vec::new();
    for k in 0..300u32 {
        let mut r = rule(
            k + 1,
            EventType::FileCreate,
            Action::ALL[(k % 3) as usize],
            vec![
                strs(Op::EndsWith, 4, &["\\tool.exe", "\\other.exe"]),
                strs(Op::Contains, 0, &[&format!("\\Temp_v{k}\\")]),
            ],
        );
        r.exceptions = vec![vec![strs(Op::StartsWith, 4, &["C:\\Program Files\\"])]];
        rules.push(r);
        // The same rule again: never decides.
        let mut again = rules.last().unwrap().clone();
        again.id += 10_000;
        rules.push(again);
    }
    let c = Content { version: 1, rules };
    for (path, process, want) in [
        ("C:\\Temp_v17\\a.txt", "C:\\x\\tool.exe", Some(18)),
        ("C:\\Temp_v17\\Temp_v3\\a.txt", "C:\\x\\tool.exe", Some(4)),
        ("C:\\Temp_v17\\a.txt", "C:\\x\\benign.exe", None),
        ("C:\\Temp_v17\\a.txt", "C:\\Program Files\\tool.exe", None),
        ("C:\\Temp\\a.txt", "C:\\x\\tool.exe", None),
    ] {
        let m = decide(&c, path, process, 0, false);
        assert_eq!(m.map(|m| m.rule_id), want, "{path} by {process}");
    }
}

/// A literal many rules share is a poor anchor even when every criterion holding it is
/// unique: rules whose extension list is `[x<i>, y<i>, "txt"]` (unique per rule, `txt` in
/// all 400) and whose process filter is one of 40 images are anchored on the process
/// filter (10 rules a literal), not on the list (an event named `.txt` would make all 400
/// candidates). Before the anchor estimate counted rules per literal, it counted them per
/// criterion and took the list: the synthetic mix's 100k-rule set went from 3.5 to 33 us
/// per event (issue 22).
#[test]
fn a_literal_many_rules_share_is_not_their_anchor() {
    let rules = (0..400u32)
        .map(|i| {
            let (x, y, p) = (
                format!("x{i}"),
                format!("y{i}"),
                format!("\\tool{}.exe", i % 40),
            );
            rule(
                i,
                EventType::FileCreate,
                Action::Audit,
                vec![
                    strs(Op::StrEquals, 2, &[&x, &y, "txt"]),
                    strs(Op::EndsWith, 4, &[&p]),
                ],
            )
        })
        .collect();
    let c = content(rules);
    let rs = compile(&c);
    for i in 0..400 {
        assert_eq!(rs.anchor(i), Some(1), "rule {i}");
    }
    assert_eq!(
        decide(&c, "C:\\d\\a.txt", "C:\\bin\\tool17.exe", 0, false).map(|m| m.rule_id),
        Some(17)
    );
    assert_eq!(
        decide(&c, "C:\\d\\a.txt", "C:\\bin\\other.exe", 0, false),
        None
    );
}
