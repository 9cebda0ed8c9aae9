//! One-screen summary: the evaluator against its baselines on the same rules and paths, and
//! validation against memcpy and the digest alone, as ratios measured in this process.
//! `cargo bench -p failsafe-loader --bench summary` (a few minutes; `--file PATH` adds a
//! content file's rules scaled by variants as a third corpus; `--full` for 100k rules against
//! the naive scan and more passes; `--realistic` or `--variants` for one corpus only,
//! `--validation` for the validation line only).
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::*;
use failsafe_loader::{RuleSet, encode, validate};
use sha2::{Digest, Sha256};

/// Median over passes of (pass time / items), in nanoseconds.
fn per_item(items: usize, budget: Duration, mut pass: impl FnMut()) -> f64 {
    pass(); // warm-up
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || (start.elapsed() < budget && samples.len() < 51) {
        let t = Instant::now();
        pass();
        samples.push(t.elapsed().as_nanos() as f64 / items as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A rule corpus: its title, its rules at a size, and its events for a rule count.
struct Corpus {
    title: String,
    rules: Box<dyn Fn(usize) -> failsafe_loader::Content>,
    events: Box<dyn Fn(usize) -> Vec<OwnedEvent>>,
}

fn realistic_corpus() -> Corpus {
    Corpus {
        title: "realistic corpus (Sigma file_event shape, a unique indicator per rule)".into(),
        rules: Box::new(|n| common::realistic::realistic_rules(n, 0xC0FFEE ^ n as u64)),
        events: Box::new(|n| common::realistic::realistic_events(2000, n, 7)),
    }
}

fn variant_corpus() -> Corpus {
    Corpus {
        title: "variant-scaled corpus (200 shapes, path literals varied by a token per variant)"
            .into(),
        rules: Box::new(|n| common::realistic::variant_rules(n, 0xC0FFEE ^ n as u64)),
        events: Box::new(|n| common::realistic::realistic_events(2000, n, 7)),
    }
}

/// Rules from a content file (e.g. public Sigma rules through `failsafectl import`), scaled
/// by variants as [`variant_corpus`]; events in drive-letter form, as the sensor reports
/// them (ADR 0013).
fn file_corpus(path: &str) -> Corpus {
    let bytes = std::fs::read(path).unwrap();
    let shapes = validate(&bytes).unwrap().content;
    Corpus {
        title: format!("{path}: {} rules scaled by variants", shapes.rules.len()),
        rules: Box::new(move |n| common::realistic::variants_of(&shapes, n)),
        events: Box::new(|n| {
            common::realistic::realistic_events(2000, n, 7)
                .iter()
                .map(|e| {
                    let dos = |s: &[u16]| {
                        String::from_utf16_lossy(s).replacen("\\Device\\HarddiskVolume3", "C:", 1)
                    };
                    OwnedEvent::new(&dos(&e.path), &dos(&e.process))
                })
                .collect()
        }),
    }
}

/// A rule corpus: engine against RegexSet + verify, the aho-corasick design with
/// the same anchors and the naive scan, every verdict compared, ratios from one run.
fn realistic(budget: Duration, sizes: &[usize], corpus: &Corpus) {
    println!("{} (median ns per event over 2000 events)", corpus.title);
    println!(
        "{:>6} {:>8} {:>9} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8}",
        "rules",
        "MB",
        "engine",
        "aho-des.",
        "regex+ver",
        "naive",
        "ac/eng",
        "rx/eng",
        "nv/eng",
        "matched",
        "load ms",
        "chk/sha",
        "load/sha"
    );
    let mut first = f64::NAN;
    for &n in sizes {
        let content = (corpus.rules)(n);
        let bytes = encode(&content).unwrap();
        let rs = RuleSet::load(&bytes).unwrap();
        let folded = failsafe_loader::eval::fold_content(&content).unwrap();
        let evs = (corpus.events)(n);
        let utf8: Vec<[String; 5]> = evs.iter().map(utf8_fields).collect();
        let ac = AcDesign::new(&content, &rs);
        let mut matched = 0;
        for (e, u) in evs.iter().zip(&utf8) {
            let got = e.with(|ev| rs.evaluate(ev));
            matched += usize::from(got.is_some());
            assert_eq!(
                got,
                e.with(|ev| ac.evaluate(&folded, u, ev)),
                "aho-corasick design disagrees on {}",
                e.path8
            );
        }
        let naive_evs = if n > 10_000 {
            &evs[..100]
        } else if n > 1000 {
            &evs[..400]
        } else {
            &evs[..]
        };
        for e in naive_evs {
            assert_eq!(
                e.with(|ev| rs.evaluate(ev)),
                e.with(|ev| failsafe_loader::eval::evaluate_scan(&folded, ev)),
                "naive scan disagrees on {}",
                e.path8
            );
        }
        let engine = per_item(evs.len(), budget, || {
            for e in &evs {
                black_box(e.with(|ev| rs.evaluate(ev)));
            }
        });
        if first.is_nan() {
            first = engine;
        }
        let acs = per_item(evs.len(), budget, || {
            for (e, u) in evs.iter().zip(&utf8) {
                black_box(e.with(|ev| ac.evaluate(&folded, u, ev)));
            }
        });
        let regex = if n <= 10_000 {
            let rv = RegexVerify::new(&content);
            let subjects: Vec<String> = utf8.iter().map(|u| u.join("\n")).collect();
            for (e, s) in evs.iter().zip(&subjects) {
                assert_eq!(
                    e.with(|ev| rs.evaluate(ev)),
                    e.with(|ev| rv.evaluate(&folded, s, ev)),
                    "RegexSet + verify disagrees on {}",
                    e.path8
                );
            }
            per_item(evs.len(), budget, || {
                for (e, s) in evs.iter().zip(&subjects) {
                    black_box(e.with(|ev| rv.evaluate(&folded, s, ev)));
                }
            })
        } else {
            f64::NAN
        };
        let naive = per_item(naive_evs.len(), budget, || {
            for e in naive_evs {
                black_box(e.with(|ev| failsafe_loader::eval::evaluate_scan(&folded, ev)));
            }
        });
        // Validation of the same file: check and load against SHA-256 alone, medians
        // measured back to back.
        let check = per_item(1, budget, || {
            black_box(failsafe_loader::check(black_box(&bytes)).unwrap());
        });
        let digest = per_item(1, budget, || {
            black_box(Sha256::digest(black_box(&bytes)));
        });
        let load = per_item(1, budget, || {
            black_box(RuleSet::load(black_box(&bytes)).unwrap());
        });
        println!(
            "{n:>6} {:>8.2} {engine:>9.0} {acs:>10.0} {regex:>10.0} {naive:>8.0} {:>9.1} {:>9.1} {:>9.1} {matched:>8} {:>9.1} {:>8.2} {:>8.1}",
            bytes.len() as f64 / 1e6,
            acs / engine,
            regex / engine,
            naive / engine,
            load / 1e6,
            check / digest,
            load / digest,
        );
        if n == *sizes.last().unwrap() {
            println!(
                "growth of engine time from {} to {n} rules: {:.2}x; compiled size {:.2} MB ({:.1}x the file); {} literals",
                sizes[0],
                engine / first,
                rs.heap_bytes() as f64 / 1e6,
                rs.heap_bytes() as f64 / bytes.len() as f64,
                rs.literals()
            );
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--full");
    let budget = Duration::from_millis(if full { 2000 } else { 300 });
    if let Some(pos) = std::env::args().position(|a| a == "--write-realistic") {
        // `--write-realistic N FILE`: the realistic corpus as a content file (for the
        // CLI's compile and validate timings).
        let args: Vec<String> = std::env::args().collect();
        let n: usize = args[pos + 1].parse().unwrap();
        let bytes = encode(&common::realistic::realistic_rules(n, 0xC0FFEE ^ n as u64)).unwrap();
        std::fs::write(&args[pos + 2], &bytes).unwrap();
        println!("wrote {} rules, {} bytes", n, bytes.len());
        return;
    }
    if std::env::args().any(|a| a == "--validation") {
        validation(budget); // the validation line only
        return;
    }
    // Every corpus in this one run (issue 22): the realistic one, the variant-scaled one,
    // and `--file PATH` (e.g. public Sigma rules imported) scaled by variants.
    let sizes = [200, 1_000, 10_000, 65_000];
    if std::env::args().any(|a| a == "--variants") {
        realistic(budget, &sizes, &variant_corpus());
        return;
    }
    let synthetic_only = std::env::args().any(|a| a == "--synthetic");
    if !synthetic_only {
        corpora(budget, &sizes);
    }
    synthetic(budget, full);
}

/// The realistic and variant-scaled corpora, and `--file`'s.
fn corpora(budget: Duration, sizes: &[usize]) {
    realistic(budget, sizes, &realistic_corpus());
    if std::env::args().any(|a| a == "--realistic") {
        std::process::exit(0); // the realistic corpus only (quicker while tuning)
    }
    println!();
    realistic(budget, sizes, &variant_corpus());
    if let Some(pos) = std::env::args().position(|a| a == "--file") {
        let path = std::env::args().nth(pos + 1).unwrap();
        println!();
        realistic(budget, sizes, &file_corpus(&path));
    }
    println!();
}

/// The synthetic mix (seven simple rule kinds, its own events; `--synthetic` alone).
fn synthetic(budget: Duration, full: bool) {
    let evs = events(2000, 7);
    println!(
        "failsafe-loader benchmark summary ({} events of realistic Windows paths; median ns per event)",
        evs.len()
    );
    println!(
        "{:>7} {:>10} {:>12} {:>10} {:>12} {:>9} {:>10}",
        "rules", "engine", "naive scan", "aho-cor.", "RegexSet", "naive/eng", "regex/eng"
    );
    let mut engine_at = Vec::new();
    for n in [100usize, 1_000, 10_000, 100_000] {
        let w = workload(n);
        let mut matched = 0usize;
        for e in &evs {
            if e.with(|ev| w.rules.evaluate(ev)).is_some() {
                matched += 1;
            }
            assert_eq!(
                e.with(|ev| w.rules.evaluate(ev)),
                scan(&w, e),
                "engine and scan disagree"
            );
        }
        let engine = per_item(evs.len(), budget, || {
            for e in &evs {
                black_box(e.with(|ev| w.rules.evaluate(ev)));
            }
        });
        engine_at.push((n, engine));
        let naive_evs = if n >= 100_000 && !full {
            &evs[..0]
        } else if n >= 10_000 {
            &evs[..200]
        } else {
            &evs[..]
        };
        let naive = if naive_evs.is_empty() {
            f64::NAN
        } else {
            per_item(naive_evs.len(), budget, || {
                for e in naive_evs {
                    black_box(scan(&w, e));
                }
            })
        };
        let ac = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(literals(&w.content))
            .unwrap();
        let acs = per_item(evs.len(), budget, || {
            for e in &evs {
                black_box(ac.find_overlapping_iter(&e.path8).count());
            }
        });
        let regex = if n <= 10_000 {
            let set = regex::RegexSetBuilder::new(regexes(&w.content))
                .size_limit(1 << 30)
                .dfa_size_limit(1 << 30)
                .build()
                .unwrap();
            let subjects: Vec<String> = evs.iter().map(regex_subject).collect();
            per_item(subjects.len(), budget, || {
                for s in &subjects {
                    black_box(set.matches(s).iter().next());
                }
            })
        } else {
            f64::NAN
        };
        println!(
            "{n:>7} {engine:>10.1} {naive:>12.1} {acs:>10.1} {regex:>12.1} {:>9.1} {:>10.1}   ({matched} of {} events matched a rule)",
            naive / engine,
            regex / engine,
            evs.len()
        );
    }
    let at = |n: usize| {
        engine_at
            .iter()
            .find(|(k, _)| *k == n)
            .map_or(f64::NAN, |x| x.1)
    };
    println!(
        "growth of engine time from 1k to 100k rules: {:.2}x",
        at(100_000) / at(1_000)
    );

    validation(budget);
}

/// `check` against SHA-256 alone and memcpy on the 10k-rule synthetic file.
fn validation(budget: Duration) {
    let w = workload(10_000);
    let bytes = &w.bytes;
    let mut dst = vec![0u8; bytes.len()];
    let mb = bytes.len() as f64 / 1e6;
    let reps = 1;
    let val = per_item(reps, budget, || {
        black_box(failsafe_loader::check(black_box(bytes)).unwrap());
    });
    let decode = per_item(reps, budget, || {
        black_box(validate(black_box(bytes)).unwrap());
    });
    let load = per_item(reps, budget, || {
        black_box(RuleSet::load(black_box(bytes)).unwrap());
    });
    let digest = per_item(reps, budget, || {
        black_box(Sha256::digest(black_box(bytes)));
    });
    let copy = per_item(reps, budget, || {
        dst.copy_from_slice(black_box(bytes));
        black_box(&dst);
    });
    let mbs = |ns: f64| mb / (ns / 1e9);
    println!(
        "validation of a 10k-rule file ({:.2} MB): check {:.0} MB/s, validate+decode {:.0} MB/s, load (check+compile) {:.0} MB/s, SHA-256 alone {:.0} MB/s, memcpy {:.0} MB/s; check/digest = {:.2}x, check/memcpy = {:.0}x",
        mb,
        mbs(val),
        mbs(decode),
        mbs(load),
        mbs(digest),
        mbs(copy),
        val / digest,
        val / copy
    );

    // Signed content: the kernel's authenticity check (Ed25519 over the header, then the
    // SHA-256 digest of the tables) against SHA-256 of the same file alone.
    use failsafe_loader::trust::{CONTEXT, KeyKind, Trust, check_signature, key_id, verify};
    let kp = ed25519_compact::KeyPair::generate();
    let mut signed = failsafe_loader::format::prepare_signed(bytes, key_id(&kp.pk)).unwrap();
    let sig = kp.sk.sign([CONTEXT, &signed[..80]].concat(), None);
    signed.extend_from_slice(&sig[..]);
    let mut trust = Trust::EMPTY;
    trust.add(*kp.pk, KeyKind::Release).unwrap();
    // Interleaved, so that a busy machine slows both alike: median of 21 rounds each.
    let (mut v_ns, mut d_ns) = (Vec::new(), Vec::new());
    for _ in 0..21 {
        let t = Instant::now();
        black_box(verify(black_box(&signed), &trust).unwrap());
        v_ns.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        black_box(Sha256::digest(black_box(&signed)));
        d_ns.push(t.elapsed().as_nanos() as f64);
    }
    v_ns.sort_by(f64::total_cmp);
    d_ns.sort_by(f64::total_cmp);
    let (verify_ns, digest_signed) = (v_ns[10], d_ns[10]);
    let sig_only = per_item(1, budget, || {
        assert!(black_box(check_signature(black_box(&signed[..80]), &sig, &kp.pk)).unwrap());
    });
    let load_trusted = per_item(reps, budget, || {
        black_box(RuleSet::load_trusted(black_box(&signed), &trust).unwrap());
    });
    println!(
        "signed 10k-rule file ({:.2} MB): verify (Ed25519 + digest) {:.2} ms, SHA-256 of the file {:.2} ms, Ed25519 check alone {:.0} us; verify/SHA-256 = {:.3}x; load_trusted {:.2} ms vs load {:.2} ms ({:.3}x)",
        signed.len() as f64 / 1e6,
        verify_ns / 1e6,
        digest_signed / 1e6,
        sig_only / 1e3,
        verify_ns / digest_signed,
        load_trusted / 1e6,
        load / 1e6,
        load_trusted / load
    );
}
