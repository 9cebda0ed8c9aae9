//! The work the instruction-count gate (`.ci/gate`, issue 22) counts under callgrind: each
//! run does its setup outside and the measured work inside one `measured_*` function, which
//! the gate passes to `--toggle-collect`, so only that work is counted.
//!
//! `gate eval <realistic|variants|synthetic> <rules>`: builds the corpus, loads it, then evaluates its
//! 2000 events once in `measured_eval`. `gate check <rules>`: the realistic file at that size,
//! checked once in `measured_check` and hashed once in `measured_sha256` (the validation
//! target is a ratio to SHA-256). Natively it also prints per-event times, for a look.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hint::black_box;

use common::OwnedEvent;
use failsafe_loader::{RuleSet, encode};
use sha2::{Digest, Sha256};

#[inline(never)]
fn measured_eval(rs: &RuleSet, evs: &[OwnedEvent]) -> usize {
    evs.iter()
        .filter(|e| e.with(|ev| rs.evaluate(black_box(ev))).is_some())
        .count()
}

#[inline(never)]
fn measured_check(bytes: &[u8]) -> bool {
    failsafe_loader::check(black_box(bytes)).is_ok()
}

#[inline(never)]
fn measured_sha256(bytes: &[u8]) -> u8 {
    Sha256::digest(black_box(bytes))[0]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let n: usize = arg(2).parse().expect("usage: gate eval|check CORPUS RULES");
    let content = match arg(1) {
        "realistic" => common::realistic::realistic_rules(n, 0xC0FFEE ^ n as u64),
        "variants" => common::realistic::variant_rules(n, 0xC0FFEE ^ n as u64),
        "synthetic" => common::rules(n, 0xC0FFEE ^ n as u64),
        other => panic!("unknown corpus {other:?}: realistic, variants or synthetic"),
    };
    let bytes = encode(&content).unwrap();
    match arg(0) {
        "eval" => {
            let rs = RuleSet::load(&bytes).unwrap();
            let evs = if arg(1) == "synthetic" {
                common::events(2000, 7)
            } else {
                common::realistic::realistic_events(2000, n, 7)
            };
            let t = std::time::Instant::now();
            let matched = measured_eval(&rs, &evs);
            println!(
                "items {} matched {matched}, {} rules unanchored ({:.0} ns/event natively)",
                evs.len(),
                rs.unanchored(failsafe_loader::EventType::FileCreate),
                t.elapsed().as_nanos() as f64 / evs.len() as f64
            );
        }
        "check" => {
            assert!(measured_check(&bytes), "the generated file checks");
            black_box(measured_sha256(&bytes));
            println!("items {}", bytes.len());
        }
        other => panic!("unknown mode {other:?}: eval or check"),
    }
}
