//! Structured: arbitrary rules and events -> encoder -> validator -> compiled evaluator,
//! compared with the reference scan over the same rules.
#![no_main]

use arbitrary::Arbitrary;
use failsafe_loader::eval::{evaluate_scan, fold_content};
use failsafe_loader::{
    Action, Content, Criterion, Event, EventType, FieldKind, Input, Op, Rule, RuleSet, Values,
    encode, validate,
};
use libfuzzer_sys::fuzz_target;

/// A small alphabet with case variants, separators and wildcards makes matches likely.
const ALPHA: [u16; 10] = [0x61, 0x41, 0x62, 0x42, 0x5C, 0x2E, 0xE9, 0xC9, 0x2A, 0x3F];

#[derive(Arbitrary, Debug)]
struct ACrit {
    field: u8,
    op: u8,
    negate: bool,
    values: Vec<(Vec<u8>, u64, u64)>,
}

#[derive(Arbitrary, Debug)]
struct ARule {
    set_info: bool,
    action: u8,
    criteria: Vec<ACrit>,
    exceptions: Vec<Vec<ACrit>>,
}

#[derive(Arbitrary, Debug)]
struct AEvent {
    set_info: bool,
    inputs: Vec<(u8, Vec<u8>, u64)>,
}

#[derive(Arbitrary, Debug)]
struct Case {
    rules: Vec<ARule>,
    events: Vec<AEvent>,
}

fn text(raw: &[u8], wild: bool) -> Vec<u16> {
    let n = if wild { ALPHA.len() } else { ALPHA.len() - 2 };
    raw.iter()
        .take(8)
        .map(|b| ALPHA[usize::from(*b) % n])
        .collect()
}

fn criterion(event: EventType, c: &ACrit) -> Criterion {
    let field = c.field % event.arity() as u8;
    let kind = event.field(field).map(|f| f.kind).unwrap_or(FieldKind::Str);
    let ops: Vec<Op> = Op::ALL.into_iter().filter(|o| o.kind() == kind).collect();
    let op = ops[usize::from(c.op) % ops.len()];
    let vals = c.values.iter().take(4);
    let values = match (kind, op) {
        (FieldKind::Str, _) => {
            let mut v: Vec<Vec<u16>> = vals
                .map(|(t, _, _)| text(t, op == Op::Wildcard))
                .filter(|s| !s.is_empty())
                .collect();
            if v.is_empty() {
                v.push(vec![0x61]);
            }
            Values::Strs(v)
        }
        (FieldKind::Int, Op::Range) => Values::Ranges(
            vals.map(|&(_, a, b)| ((a % 16).min(b % 16), (a % 16).max(b % 16)))
                .chain([(0, 1)])
                .take(4)
                .collect(),
        ),
        (FieldKind::Int, _) => {
            Values::Ints(vals.map(|&(_, a, _)| a % 16).chain([1]).take(4).collect())
        }
        (FieldKind::Flag, _) => Values::None,
    };
    Criterion {
        field,
        op,
        negate: c.negate,
        values,
    }
}

fuzz_target!(|case: Case| {
    let rules: Vec<Rule> = case
        .rules
        .iter()
        .take(64)
        .enumerate()
        .filter(|(_, r)| !r.criteria.is_empty())
        .map(|(i, r)| {
            let event = if r.set_info {
                EventType::FileSetInfo
            } else {
                EventType::FileCreate
            };
            Rule {
                id: i as u32,
                event,
                action: Action::ALL[usize::from(r.action) % 3],
                criteria: r
                    .criteria
                    .iter()
                    .take(4)
                    .map(|c| criterion(event, c))
                    .collect(),
                exceptions: r
                    .exceptions
                    .iter()
                    .take(3)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.iter().take(3).map(|c| criterion(event, c)).collect())
                    .collect(),
            }
        })
        .collect();
    let content = Content { version: 1, rules };
    let bytes = encode(&content).expect("encodable");
    let v = validate(&bytes).expect("the encoder's output validates");
    assert_eq!(v.content, content);
    let rs = RuleSet::compile(&v).expect("compiles");
    let folded = fold_content(&content).expect("folds");
    for e in case.events.iter().take(16) {
        let kind = if e.set_info {
            EventType::FileSetInfo
        } else {
            EventType::FileCreate
        };
        let owned: Vec<(u8, Vec<u16>, u64)> = e
            .inputs
            .iter()
            .take(12)
            .map(|(k, t, x)| (*k, text(t, false), *x % 16))
            .collect();
        let inputs: Vec<Input<'_>> = owned
            .iter()
            .map(|(k, t, x)| match k % 3 {
                0 => Input::Str(t),
                1 => Input::Int(*x),
                _ => Input::Flag(x % 2 == 0),
            })
            .collect();
        let ev = Event::new(kind, &inputs);
        assert_eq!(rs.evaluate(&ev), evaluate_scan(&folded, &ev));
    }
});
