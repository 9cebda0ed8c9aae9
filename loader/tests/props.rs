//! Property tests: encoder/validator round trip, engine == reference scan, no panics on
//! arbitrary or mutated bytes.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions)]

use failsafe_loader::eval::{evaluate_scan, fold_content};
use failsafe_loader::{
    Action, Content, Criterion, Event, EventType, FieldKind, Input, Op, Rule, RuleSet, Values,
    encode, validate,
};
use proptest::prelude::*;

/// A small alphabet (with case variants, separators and wildcards) makes matches likely.
const ALPHA: &[u16] = &[0x61, 0x41, 0x62, 0x5C, 0x2E, 0x63, 0xE9, 0xC9];

fn text(min: usize, max: usize) -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(prop::sample::select(ALPHA), min..=max)
}

fn pattern(op: Op) -> BoxedStrategy<Vec<u16>> {
    if op == Op::Wildcard {
        prop::collection::vec(
            prop::sample::select(&[0x61u16, 0x62, 0x5C, 0x2A, 0x3F, 0x41][..]),
            1..=5,
        )
        .boxed()
    } else {
        text(1, 4).boxed()
    }
}

fn criterion(event: EventType) -> impl Strategy<Value = Criterion> {
    let arity = event.arity() as u8;
    (0..arity, any::<bool>(), any::<u8>()).prop_flat_map(move |(field, negate, pick)| {
        let kind = event.field(field).unwrap().kind;
        let ops: Vec<Op> = Op::ALL.into_iter().filter(|o| o.kind() == kind).collect();
        let op = ops[usize::from(pick) % ops.len()];
        let values: BoxedStrategy<Values> = match (kind, op) {
            (FieldKind::Str, _) => prop::collection::vec(pattern(op), 1..=3)
                .prop_map(Values::Strs)
                .boxed(),
            (FieldKind::Int, Op::Range) => prop::collection::vec(
                (0u64..8, 0u64..8).prop_map(|(a, b)| (a.min(b), a.max(b))),
                1..=3,
            )
            .prop_map(Values::Ranges)
            .boxed(),
            (FieldKind::Int, _) => prop::collection::vec(0u64..8, 1..=3)
                .prop_map(Values::Ints)
                .boxed(),
            (FieldKind::Flag, _) => Just(Values::None).boxed(),
        };
        values.prop_map(move |values| Criterion {
            field,
            op,
            negate,
            values,
        })
    })
}

fn rule_strategy() -> impl Strategy<Value = (EventType, Action, Vec<Criterion>, Vec<Vec<Criterion>>)>
{
    (
        prop::sample::select(&EventType::ALL[..]),
        prop::sample::select(&Action::ALL[..]),
    )
        .prop_flat_map(|(event, action)| {
            (
                Just(event),
                Just(action),
                prop::collection::vec(criterion(event), 1..=3),
                prop::collection::vec(prop::collection::vec(criterion(event), 1..=2), 0..=2),
            )
        })
}

fn content_strategy(max_rules: usize) -> impl Strategy<Value = Content> {
    (
        1u64..u64::MAX,
        prop::collection::vec(rule_strategy(), 0..=max_rules),
    )
        .prop_map(|(version, rules)| Content {
            version,
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, (event, action, criteria, exceptions))| Rule {
                    id: i as u32 * 3 + 1,
                    event,
                    action,
                    criteria,
                    exceptions,
                })
                .collect(),
        })
}

/// `c` with every third rule repeated at the end under a new id (equal rules never decide,
/// and a guard shared by many rules is checked once for all of them), and every fourth
/// repeated with its string values reversed (a variant: same shape, other literals).
fn with_repeats(mut c: Content) -> Content {
    let n = c.rules.len();
    for i in 0..n {
        let mut r = c.rules[i].clone();
        r.id = 1_000_000 + i as u32;
        if i % 3 == 0 {
            c.rules.push(r.clone());
        }
        if i % 4 == 0 {
            for crit in &mut r.criteria {
                if let Values::Strs(v) = &mut crit.values {
                    v.iter_mut().for_each(|s| s.reverse());
                }
            }
            r.id += 500_000;
            c.rules.push(r);
        }
    }
    c
}

#[derive(Debug, Clone)]
enum OwnedInput {
    S(Vec<u16>),
    I(u64),
    F(bool),
}

fn event_strategy() -> impl Strategy<Value = (EventType, Vec<OwnedInput>)> {
    prop::sample::select(&EventType::ALL[..]).prop_flat_map(|event| {
        let arity = event.arity();
        let fields: Vec<BoxedStrategy<OwnedInput>> = event
            .fields()
            .iter()
            .map(|f| match f.kind {
                FieldKind::Str => text(0, 12).prop_map(OwnedInput::S).boxed(),
                FieldKind::Int => (0u64..8).prop_map(OwnedInput::I).boxed(),
                FieldKind::Flag => any::<bool>().prop_map(OwnedInput::F).boxed(),
            })
            .collect();
        // Sometimes the sensor supplies fewer inputs than the type has.
        (Just(event), fields, 0..=arity).prop_map(|(e, mut v, keep)| {
            if keep < v.len() && keep % 3 == 0 {
                v.truncate(keep);
            }
            (e, v)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn encoded_content_validates_and_round_trips(c in content_strategy(12)) {
        let bytes = encode(&c).unwrap();
        let v = validate(&bytes).unwrap();
        prop_assert_eq!(&v.content, &c);
        prop_assert_eq!(encode(&v.content).unwrap(), bytes);
    }

    #[test]
    fn engine_agrees_with_reference_scan(c in content_strategy(24).prop_map(with_repeats), events in prop::collection::vec(event_strategy(), 1..16)) {
        let rs = RuleSet::load(&encode(&c).unwrap()).unwrap();
        let folded = fold_content(&c).unwrap();
        for (kind, owned) in &events {
            let inputs: Vec<Input<'_>> = owned.iter().map(|i| match i {
                OwnedInput::S(s) => Input::Str(s),
                OwnedInput::I(x) => Input::Int(*x),
                OwnedInput::F(b) => Input::Flag(*b),
            }).collect();
            let ev = Event::new(*kind, &inputs);
            prop_assert_eq!(rs.evaluate(&ev), evaluate_scan(&folded, &ev));
        }
    }

    /// As the sensor supplies them: name, extension and parent derived from the path
    /// (sub-slices of it, or equal copies), so that one walk of the path serves them all.
    #[test]
    fn engine_agrees_with_reference_scan_on_derived_inputs(c in content_strategy(24).prop_map(with_repeats), events in prop::collection::vec((event_strategy(), text(0, 16), any::<bool>()), 1..16)) {
        let rs = RuleSet::load(&encode(&c).unwrap()).unwrap();
        let folded = fold_content(&c).unwrap();
        for ((kind, owned), path, copies) in &events {
            let (parent, name, ext) = failsafe_loader::text::split_path(path);
            let (pc, nc, ec) = (parent.to_vec(), name.to_vec(), ext.to_vec());
            let mut inputs: Vec<Input<'_>> = owned.iter().map(|i| match i {
                OwnedInput::S(s) => Input::Str(s),
                OwnedInput::I(x) => Input::Int(*x),
                OwnedInput::F(b) => Input::Flag(*b),
            }).collect();
            let parts: [&[u16]; 4] = if *copies { [path, &nc, &ec, &pc] } else { [path, name, ext, parent] };
            for (slot, part) in inputs.iter_mut().zip(parts) {
                *slot = Input::Str(part);
            }
            let ev = Event::new(*kind, &inputs);
            prop_assert_eq!(rs.evaluate(&ev), evaluate_scan(&folded, &ev));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate(&bytes);
        let _ = RuleSet::load(&bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic(c in content_strategy(6), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>(), refix in any::<bool>()) {
        let mut bytes = encode(&c).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if refix && bytes.len() >= 80 {
            // Re-sign so the mutation reaches the rule parser instead of the digest check.
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(&bytes[..48]);
            h.update(&bytes[80..]);
            let d: [u8; 32] = h.finalize().into();
            bytes[48..80].copy_from_slice(&d);
        }
        let n = cut.index(bytes.len() + 1);
        for slice in [&bytes[..], &bytes[..n]] {
            match validate(slice) {
                Ok(v) => prop_assert!(RuleSet::compile(&v).is_ok()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
