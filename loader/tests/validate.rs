//! One test per rejection class: each asserts the specific error and where it was found.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions)]

mod common;
use common::*;

use failsafe_loader::content::limits;
use failsafe_loader::{
    Action, ContentError, Criterion, ErrorKind, EventType, FieldKind, Location, Op, Values, encode,
    validate,
};

fn rejects(bytes: &[u8]) -> ContentError {
    match validate(bytes) {
        Ok(v) => panic!("expected a rejection, got {} rules", v.content.rules.len()),
        Err(e) => e,
    }
}

fn at_rule(offset: usize, index: u32, id: u32) -> Location {
    Location {
        offset,
        rule_index: Some(index),
        rule_id: Some(id),
        ..Location::default()
    }
}

fn at_crit(offset: usize, index: u32, id: u32, crit: u8) -> Location {
    Location {
        criterion: Some(crit),
        ..at_rule(offset, index, id)
    }
}

// Layout of `one_rule()`: header 0..80, rule at 80 (id 80..84, event 84, action 85,
// criteria 86, sets 87), criterion at 88 (field 88, op 89, flags 90, count 91, string ref
// 92..98), string table at 98.

#[test]
fn valid_content_round_trips() {
    let c = one_rule();
    let bytes = encode(&c).unwrap();
    assert_eq!(bytes.len(), 98 + 10);
    let v = validate(&bytes).unwrap();
    assert_eq!(v.content, c);
    assert_eq!(v.header.version, 7);
    assert_eq!(v.header.rule_count, 1);
}

#[test]
fn empty_rule_set_is_valid() {
    let bytes = encode(&content(vec![])).unwrap();
    assert!(validate(&bytes).unwrap().content.rules.is_empty());
}

#[test]
fn truncated_header() {
    let bytes = encode(&one_rule()).unwrap();
    let e = rejects(&bytes[..40]);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "header",
            needed: 80,
            remaining: 40
        }
    );
    assert_eq!(e.at.offset, 0);
    let e = rejects(&bytes[..3]);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "magic",
            needed: 8,
            remaining: 3
        }
    );
}

#[test]
fn bad_magic() {
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[1] = b'X';
    let e = rejects(&bytes);
    assert!(matches!(e.kind, ErrorKind::BadMagic { found } if found[1] == b'X'));
    assert_eq!(e.code(), "bad-magic");
}

#[test]
fn unsupported_format_and_schema() {
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[8] = 2;
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::UnsupportedFormat {
            expected: 1,
            found: 2
        }
    );
    assert_eq!(e.at.offset, 8);
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[10] = 9;
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::UnsupportedSchema {
            expected: 1,
            found: 9
        }
    );
    assert_eq!(e.at.offset, 10);
}

#[test]
fn bad_header_length() {
    let mut bytes = encode(&one_rule()).unwrap();
    put_u32(&mut bytes, 12, 96);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::BadHeaderLength {
            expected: 80,
            found: 96
        }
    );
    assert_eq!(e.at.offset, 12);
}

#[test]
fn zero_content_version() {
    let mut c = one_rule();
    c.version = 0;
    let e = rejects(&encode(&c).unwrap());
    assert_eq!(e.kind, ErrorKind::ZeroContentVersion);
    assert_eq!(e.at.offset, 16);
}

#[test]
fn signature_block_and_reserved_fields() {
    // A signature block is one Ed25519 signature (64 bytes) or none.
    let mut bytes = encode(&one_rule()).unwrap();
    put_u32(&mut bytes, 36, 32);
    assert_eq!(
        rejects(&bytes).kind,
        ErrorKind::SignatureUnsupported { found: 32 }
    );
    // An unsigned file names no key.
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[41] = 1;
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::ReservedNonZero {
            what: "key id of an unsigned file",
            found: 0x100
        }
    );
    assert_eq!(e.at.offset, 40);
}

#[test]
fn declared_lengths_against_actual_size() {
    let bytes = encode(&one_rule()).unwrap();
    let e = rejects(&bytes[..bytes.len() - 1]);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "body",
            needed: 28,
            remaining: 27
        }
    );
    assert_eq!(e.at.offset, 80);
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0, 0]);
    let e = rejects(&longer);
    assert_eq!(e.kind, ErrorKind::TrailingBytes { count: 3 });
    assert_eq!(e.at.offset, bytes.len());
}

#[test]
fn odd_string_table() {
    let mut bytes = encode(&one_rule()).unwrap();
    put_u32(&mut bytes, 32, 11);
    let e = rejects(&bytes);
    assert_eq!(e.kind, ErrorKind::OddStringTable { len: 11 });
    assert_eq!(e.at.offset, 32);
}

#[test]
fn digest_mismatch() {
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[100] ^= 0x20; // a string byte: "locky" -> "Locky"
    let e = rejects(&bytes);
    assert!(
        matches!(e.kind, ErrorKind::DigestMismatch { declared, computed } if declared != computed)
    );
    assert_eq!(e.at.offset, 48);
    // The header is covered too: bumping the version without re-signing is caught.
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[16] = 8;
    assert_eq!(rejects(&bytes).code(), "digest-mismatch");
}

#[test]
fn file_size_limit() {
    let mut bytes = encode(&content(vec![])).unwrap();
    bytes.resize(limits::MAX_FILE_BYTES + 1, 0);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::LimitExceeded {
            what: "file size",
            limit: limits::MAX_FILE_BYTES as u64,
            found: limits::MAX_FILE_BYTES as u64 + 1
        }
    );
}

#[test]
fn rule_count_limit_and_count_against_bytes() {
    let mut bytes = encode(&one_rule()).unwrap();
    put_u32(&mut bytes, 24, limits::MAX_RULES as u32 + 1);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::LimitExceeded {
            what: "rule count",
            limit: limits::MAX_RULES as u64,
            found: limits::MAX_RULES as u64 + 1
        }
    );
    assert_eq!(e.at.offset, 24);
    // 1000 rules cannot fit in an 18-byte rule table: refused before anything is allocated.
    let mut bytes = encode(&one_rule()).unwrap();
    put_u32(&mut bytes, 24, 1000);
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "rule table",
            needed: 12_000,
            remaining: 18
        }
    );
}

#[test]
fn rule_table_with_bytes_after_declared_rules() {
    let two = content(vec![
        rule(
            1,
            EventType::FileCreate,
            Action::Block,
            vec![flag(Op::IsTrue, 9)],
        ),
        rule(
            2,
            EventType::FileCreate,
            Action::Block,
            vec![flag(Op::IsTrue, 9)],
        ),
    ]);
    let mut bytes = encode(&two).unwrap();
    put_u32(&mut bytes, 24, 1);
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::RuleTableLength {
            declared_rules: 1,
            unread_bytes: 12
        }
    );
    assert_eq!(e.at.offset, 92);
}

#[test]
fn unknown_event_action_operator() {
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[84] = 3;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(e.kind, ErrorKind::UnknownEventType { found: 3 });
    assert_eq!(e.at, at_rule(84, 0, 100));

    let mut bytes = encode(&one_rule()).unwrap();
    bytes[85] = 0;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(e.kind, ErrorKind::UnknownAction { found: 0 });
    assert_eq!(e.at, at_rule(85, 0, 100));

    let mut bytes = encode(&one_rule()).unwrap();
    bytes[89] = 6;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(e.kind, ErrorKind::UnknownOperator { found: 6 });
    assert_eq!(e.at, at_crit(89, 0, 100, 0));
}

#[test]
fn rule_without_criteria() {
    let c = content(vec![
        rule(5, EventType::FileCreate, Action::Block, vec![]),
        rule(
            6,
            EventType::FileCreate,
            Action::Block,
            vec![strs(Op::StrEquals, 2, &["locky"])],
        ),
    ]);
    let e = rejects(&encode(&c).unwrap());
    assert_eq!(e.kind, ErrorKind::NoCriteria);
    assert_eq!(e.at, at_rule(86, 0, 5));
    assert!(e.to_string().contains("would match everything"), "{e}");
}

#[test]
fn criteria_and_exception_set_limits() {
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[86] = 33;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::LimitExceeded {
            what: "criteria",
            limit: 32,
            found: 33
        }
    );
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[87] = 17;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::LimitExceeded {
            what: "exception sets",
            limit: 16,
            found: 17
        }
    );
    assert_eq!(e.at, at_rule(87, 0, 100));
}

/// The July 2024 class: a rule names field index == arity of its event type.
#[test]
fn field_index_equal_to_arity_is_rejected() {
    let arity = EventType::FileSetInfo.arity() as u8;
    assert_eq!(arity, 10);
    let c = content(vec![
        rule(
            1,
            EventType::FileCreate,
            Action::Audit,
            vec![flag(Op::IsTrue, 10)],
        ), // fine: create has 11
        rule(
            21,
            EventType::FileSetInfo,
            Action::Block,
            vec![flag(Op::IsTrue, arity)],
        ),
    ]);
    let e = rejects(&encode(&c).unwrap());
    assert_eq!(
        e.kind,
        ErrorKind::FieldOutOfRange {
            event: EventType::FileSetInfo,
            field: 10,
            arity: 10
        }
    );
    assert_eq!(e.at, at_crit(80 + 12 + 8, 1, 21, 0));
    assert_eq!(
        e.to_string(),
        "byte 100, rule #1 (id 21), criterion 0: field index 10 out of range for event type file-set-info: it has 10 fields (0..=9)"
    );
}

#[test]
fn field_out_of_range_inside_an_exception_set() {
    let mut r = rule(
        3,
        EventType::FileCreate,
        Action::Block,
        vec![flag(Op::IsTrue, 9)],
    );
    r.exceptions = vec![vec![flag(Op::IsTrue, 10), flag(Op::IsTrue, 200)]];
    let e = rejects(&encode(&content(vec![r])).unwrap());
    assert_eq!(
        e.kind,
        ErrorKind::FieldOutOfRange {
            event: EventType::FileCreate,
            field: 200,
            arity: 11
        }
    );
    assert_eq!(e.at.exception, Some(0));
    assert_eq!(e.at.criterion, Some(1));
}

#[test]
fn operator_value_type_mismatch() {
    let c = content(vec![rule(
        9,
        EventType::FileCreate,
        Action::Block,
        vec![strs(Op::Contains, 5, &["x"])],
    )]);
    let e = rejects(&encode(&c).unwrap());
    assert_eq!(
        e.kind,
        ErrorKind::OperatorMismatch {
            event: EventType::FileCreate,
            field: 5,
            expected: FieldKind::Int,
            op: Op::Contains
        }
    );
    assert_eq!(e.at, at_crit(89, 0, 9, 0));
}

#[test]
fn empty_list_and_values_on_flags() {
    let empty = Criterion {
        field: 2,
        op: Op::StrEquals,
        negate: false,
        values: Values::Strs(vec![]),
    };
    let e = rejects(
        &encode(&content(vec![rule(
            1,
            EventType::FileCreate,
            Action::Block,
            vec![empty],
        )]))
        .unwrap(),
    );
    assert_eq!(e.kind, ErrorKind::EmptyList);
    assert_eq!(e.at, at_crit(91, 0, 1, 0));

    let c = content(vec![rule(
        1,
        EventType::FileCreate,
        Action::Block,
        vec![flag(Op::IsTrue, 9)],
    )]);
    let mut bytes = encode(&c).unwrap();
    bytes[91] = 2;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(e.kind, ErrorKind::UnexpectedValues { found: 2 });
}

#[test]
fn reserved_criterion_flags() {
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[90] = 0x81;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::ReservedNonZero {
            what: "criterion flag bits",
            found: 0x81
        }
    );
    assert_eq!(e.at, at_crit(90, 0, 100, 0));
}

#[test]
fn string_reference_out_of_table() {
    let mut bytes = encode(&one_rule()).unwrap();
    put_u32(&mut bytes, 92, 3); // 3 + 5 units > 5 units in the table
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::StringOutOfRange {
            offset: 3,
            len: 5,
            table_units: 5
        }
    );
    assert_eq!(
        e.at,
        Location {
            value: Some(0),
            ..at_crit(92, 0, 100, 0)
        }
    );
}

#[test]
fn empty_oversize_nul_and_invalid_utf16_strings() {
    let one = |units: Vec<u16>| {
        let c = Criterion {
            field: 0,
            op: Op::StartsWith,
            negate: false,
            values: Values::Strs(vec![units]),
        };
        rejects(
            &encode(&content(vec![rule(
                4,
                EventType::FileCreate,
                Action::Block,
                vec![c],
            )]))
            .unwrap(),
        )
    };
    assert_eq!(one(vec![]).kind, ErrorKind::EmptyString);
    let e = one(vec![0x41; limits::MAX_STRING_UNITS + 1]);
    assert_eq!(
        e.kind,
        ErrorKind::LimitExceeded {
            what: "string length (code units)",
            limit: 1024,
            found: 1025
        }
    );
    let e = one(vec![0x41, 0x42, 0]);
    assert_eq!(e.kind, ErrorKind::NulInString { index: 2 });
    assert_eq!(e.at.offset, 98 + 4);
    let e = one(vec![0x41, 0xDC00]);
    assert_eq!(
        e.kind,
        ErrorKind::InvalidUtf16 {
            index: 1,
            unit: 0xDC00
        }
    );
    assert_eq!(e.at.offset, 98 + 2);
    assert_eq!(e.at.value, Some(0));
}

#[test]
fn empty_range() {
    let c = Criterion {
        field: 5,
        op: Op::Range,
        negate: false,
        values: Values::Ranges(vec![(1, 2), (9, 3)]),
    };
    let e = rejects(
        &encode(&content(vec![rule(
            8,
            EventType::FileCreate,
            Action::Block,
            vec![c],
        )]))
        .unwrap(),
    );
    assert_eq!(e.kind, ErrorKind::EmptyRange { lo: 9, hi: 3 });
    assert_eq!(
        e.at,
        Location {
            value: Some(1),
            ..at_crit(108, 0, 8, 0)
        }
    );
}

#[test]
fn duplicate_rule_ids() {
    let c = content(vec![
        rule(
            7,
            EventType::FileCreate,
            Action::Block,
            vec![flag(Op::IsTrue, 9)],
        ),
        rule(
            8,
            EventType::FileCreate,
            Action::Block,
            vec![flag(Op::IsTrue, 9)],
        ),
        rule(
            7,
            EventType::FileSetInfo,
            Action::Audit,
            vec![flag(Op::IsTrue, 8)],
        ),
    ]);
    let e = rejects(&encode(&c).unwrap());
    assert_eq!(
        e.kind,
        ErrorKind::DuplicateRuleId {
            id: 7,
            first_index: 0
        }
    );
    assert_eq!(e.at, at_rule(80 + 24, 2, 7));
}

#[test]
fn every_error_has_a_distinct_code() {
    let mut codes = failsafe_loader::error::ERROR_CODES.to_vec();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), failsafe_loader::error::ERROR_CODES.len());
}

#[test]
fn encoder_refuses_what_the_format_cannot_express() {
    use failsafe_loader::format::EncodeError;
    let many = Criterion {
        field: 5,
        op: Op::IntEquals,
        negate: false,
        values: Values::Ints(vec![1; 256]),
    };
    let e = encode(&content(vec![rule(
        1,
        EventType::FileCreate,
        Action::Block,
        vec![many],
    )]))
    .unwrap_err();
    assert_eq!(
        e,
        EncodeError::Limit {
            rule_index: Some(0),
            what: "values",
            limit: 255,
            found: 256
        }
    );
    let wrong = Criterion {
        field: 5,
        op: Op::IntEquals,
        negate: false,
        values: Values::None,
    };
    let e = encode(&content(vec![rule(
        1,
        EventType::FileCreate,
        Action::Block,
        vec![wrong],
    )]))
    .unwrap_err();
    assert_eq!(
        e,
        EncodeError::ValuesShape {
            rule_index: 0,
            op: Op::IntEquals
        }
    );
}

#[test]
fn counts_that_run_past_the_rule_table() {
    // Value list: 3 string refs need 18 bytes, 6 remain.
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[91] = 3;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "values",
            needed: 18,
            remaining: 6
        }
    );
    assert_eq!(e.at, at_crit(92, 0, 100, 0));
    // Criteria: 5 need at least 20 bytes, 10 remain.
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[86] = 5;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "criteria",
            needed: 20,
            remaining: 10
        }
    );
    assert_eq!(e.at.offset, 88);
    // Exception sets: 2 declared, the table ends after the criteria. Each set needs at
    // least 5 bytes (count byte and one criterion): a truncation, not a rule-table-length.
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[87] = 2;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "exception sets",
            needed: 10,
            remaining: 0
        }
    );
    assert_eq!(e.code(), "truncated");
    assert_eq!(e.at, at_rule(98, 0, 100));
    assert_eq!(
        e.to_string(),
        "byte 98, rule #0 (id 100): truncated exception sets: needs 10 bytes, 0 bytes left"
    );
}

#[test]
fn too_few_bytes_for_exception_sets_in_a_later_rule() {
    // The shape: 8 rules declared, the 6th claims 16 exception sets with only the
    // bytes of the rules after it left. The error names the sets, not the rule count.
    let r = |id| {
        rule(
            id,
            EventType::FileCreate,
            Action::Block,
            vec![strs(Op::StrEquals, 2, &["x"])],
        )
    };
    let mut bytes = encode(&content((1..=8).map(r).collect())).unwrap();
    // Each rule is 18 bytes; rule #5 starts at 80 + 5 * 18; its set count is byte 7.
    let sets_at = 80 + 5 * 18 + 7;
    bytes[sets_at] = 16;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "exception sets",
            needed: 80,
            remaining: 36
        }
    );
    assert_eq!(e.at, at_rule(80 + 6 * 18, 5, 6));
}

#[test]
fn messages_name_the_field_and_the_valid_codes() {
    let mut bytes = encode(&one_rule()).unwrap();
    bytes[89] = 20;
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(e.kind, ErrorKind::UnknownOperator { found: 20 });
    let msg = e.kind.to_string();
    assert!(
        msg.starts_with("unknown operator code 20 (expected 1 equals on string, 2 starts-with"),
        "{msg}"
    );
    assert!(msg.ends_with("33 is-false on flag)"), "{msg}");
    let one = ErrorKind::Truncated {
        what: "field index",
        needed: 1,
        remaining: 0,
    };
    assert_eq!(
        one.to_string(),
        "truncated field index: needs 1 byte, 0 bytes left"
    );
}

#[test]
fn a_rule_cut_off_by_the_end_of_the_table() {
    // Two 18-byte rules and a declared third: the count passes the 12-bytes-per-rule bound
    // (36 <= 36), then the third rule's id runs off the end.
    let r = |id| {
        rule(
            id,
            EventType::FileCreate,
            Action::Block,
            vec![strs(Op::StrEquals, 2, &["x"])],
        )
    };
    let mut bytes = encode(&content(vec![r(1), r(2)])).unwrap();
    put_u32(&mut bytes, 24, 3);
    refix(&mut bytes);
    let e = rejects(&bytes);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "rule id",
            needed: 4,
            remaining: 0
        }
    );
    assert_eq!(
        e.at,
        Location {
            offset: 80 + 36,
            rule_index: Some(2),
            ..Location::default()
        }
    );
}

#[test]
fn encoder_errors_read_well() {
    use failsafe_loader::format::EncodeError;
    let e = EncodeError::Limit {
        rule_index: Some(3),
        what: "values",
        limit: 255,
        found: 256,
    };
    assert_eq!(
        e.to_string(),
        "rule #3: values: 256 exceeds the limit of 255"
    );
    let e = EncodeError::ValuesShape {
        rule_index: 1,
        op: Op::Range,
    };
    assert_eq!(e.to_string(), "rule #1: values do not fit operator range");
}

/// The string table holds each distinct string once, however many values share it and
/// however large the set: 100 000 indicators, each used twice by its rule (a map with a
/// bounded probe once wrote some of them twice at this size), plus one value every rule
/// repeats.
#[test]
fn the_string_table_holds_each_distinct_string_once() {
    let mut rules = Vec::new();
    let mut distinct_units = "common.exe".len();
    for i in 0..100_000u32 {
        let name = format!("indicator{i}.bin");
        distinct_units += name.len();
        rules.push(rule(
            i,
            EventType::FileCreate,
            Action::Audit,
            vec![
                strs(Op::StrEquals, 1, &[&name]),
                strs(Op::EndsWith, 0, &[&name]),
                strs(Op::EndsWith, 4, &["common.exe"]),
            ],
        ));
    }
    let c = content(rules);
    let bytes = encode(&c).unwrap();
    let v = validate(&bytes).unwrap();
    assert_eq!(v.header.strings_len as usize, distinct_units * 2);
    assert_eq!(v.content, c);
}
