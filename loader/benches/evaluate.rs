//! Criterion benchmarks: `cargo bench -p failsafe-loader --bench evaluate`. The quick ratio
//! table is `--bench summary`.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hint::black_box;

use common::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use failsafe_loader::{RuleSet, validate};
use sha2::{Digest, Sha256};

fn evaluate(c: &mut Criterion) {
    let evs = events(500, 7);
    let mut g = c.benchmark_group("evaluate");
    g.throughput(Throughput::Elements(evs.len() as u64));
    for n in [100usize, 1_000, 10_000, 100_000] {
        let w = workload(n);
        g.bench_with_input(BenchmarkId::new("engine", n), &w, |b, w| {
            b.iter(|| {
                for e in &evs {
                    black_box(e.with(|ev| w.rules.evaluate(ev)));
                }
            })
        });
        if n <= 10_000 {
            g.bench_with_input(BenchmarkId::new("naive-scan", n), &w, |b, w| {
                b.iter(|| {
                    for e in &evs {
                        black_box(scan(w, e));
                    }
                })
            });
            let set = regex::RegexSetBuilder::new(regexes(&w.content))
                .size_limit(1 << 30)
                .dfa_size_limit(1 << 30)
                .build()
                .unwrap();
            let subjects: Vec<String> = evs.iter().map(regex_subject).collect();
            g.bench_with_input(BenchmarkId::new("regexset", n), &set, |b, set| {
                b.iter(|| {
                    for s in &subjects {
                        black_box(set.matches(s).iter().next());
                    }
                })
            });
        }
        let ac = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(literals(&w.content))
            .unwrap();
        g.bench_with_input(BenchmarkId::new("aho-corasick", n), &ac, |b, ac| {
            b.iter(|| {
                for e in &evs {
                    black_box(ac.find_overlapping_iter(&e.path8).count());
                }
            })
        });
    }
    g.finish();
}

fn validation(c: &mut Criterion) {
    let w = workload(10_000);
    let mut g = c.benchmark_group("validate-10k-rules");
    g.throughput(Throughput::Bytes(w.bytes.len() as u64));
    g.bench_function("validate", |b| {
        b.iter(|| black_box(validate(black_box(&w.bytes)).unwrap()))
    });
    g.bench_function("validate+compile", |b| {
        b.iter(|| black_box(RuleSet::load(black_box(&w.bytes)).unwrap()))
    });
    g.bench_function("sha256-alone", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&w.bytes))))
    });
    let mut dst = vec![0u8; w.bytes.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&w.bytes));
            black_box(&dst);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = evaluate, validation
}
criterion_main!(benches);
