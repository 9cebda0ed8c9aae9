//! Memory bounds of the kernel path: validation peaks below 2x the file size and
//! compilation below 8x, whatever the body references. A counting allocator measures the
//! peak per thread (the tests run in parallel).
#![allow(clippy::unwrap_used)]

use failsafe_loader::{Content, RuleSet, check, encode};
use sha2::{Digest, Sha256};

fn w(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn content(rules: Vec<failsafe_loader::Rule>) -> Content {
    Content { version: 7, rules }
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn refix(bytes: &mut [u8]) {
    let mut h = Sha256::new();
    h.update(&bytes[..48]);
    h.update(&bytes[80..]);
    let d: [u8; 32] = h.finalize().into();
    bytes[48..80].copy_from_slice(&d);
}

// ---------------------------------------------------------------------------------------
// Memory: validation is bounded by the file size, whatever the body references.

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts live and peak heap bytes per thread (tests run on many threads at once).
    pub struct Counting;

    // SAFETY: forwards to the system allocator; the bookkeeping allocates nothing.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: same layout contract as ours.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                let _ = LIVE.try_with(|l| {
                    l.set(l.get() + layout.size());
                    let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
                });
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(layout.size())));
            // SAFETY: ptr came from System.alloc with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// Peak heap bytes allocated on this thread while `f` ran, above what was live before.
    pub fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let r = f();
        (r, PEAK.with(Cell::get) - base)
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// A content file whose rules reference 1024-unit strings `refs` times each: with
/// `overlap`, every reference starts one code unit later in one long string, so no two
/// references are equal (the worst case for anything that decodes or indexes per
/// reference); without, all share one string (what the encoder writes for equal values).
fn many_references(rules: usize, refs: u8, overlap: bool) -> Vec<u8> {
    let long: String = (0..4096u32)
        .map(|i| char::from_u32(0x4E00 + (i * 7919) % 20000).unwrap())
        .collect();
    let table = w(&long);
    let mut rt = Vec::new();
    let mut k = 0u32;
    for id in 0..rules as u32 {
        rt.extend_from_slice(&id.to_le_bytes());
        rt.extend_from_slice(&[1, 3, 1, 0]); // file-create, block, 1 criterion, 0 sets
        rt.extend_from_slice(&[0, 4, 0, refs]); // path contains <refs values>
        for _ in 0..refs {
            let off = if overlap { k % 3072 } else { 0 };
            k += 1;
            rt.extend_from_slice(&off.to_le_bytes());
            rt.extend_from_slice(&1024u16.to_le_bytes());
        }
    }
    let mut bytes = encode(&content(vec![])).unwrap();
    put_u32(&mut bytes, 24, rules as u32);
    put_u32(&mut bytes, 28, rt.len() as u32);
    put_u32(&mut bytes, 32, (table.len() * 2) as u32);
    bytes.extend_from_slice(&rt);
    for u in &table {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    refix(&mut bytes);
    bytes
}

#[test]
fn validation_memory_is_bounded_by_the_file_size() {
    for overlap in [false, true] {
        // 400 rules x 255 references: 0.62 MB of references to 2 KB strings (each would
        // decode to 2 KB: 209 MB if every reference were copied).
        let file = many_references(400, 255, overlap);
        let len = file.len();
        let (r, peak) = counting::peak_of(|| check(&file).map(|h| h.rule_count));
        assert_eq!(r, Ok(400));
        assert!(
            peak <= 2 * len + 64 * 1024,
            "check: peak {peak} bytes for a {len}-byte file (overlap {overlap})"
        );
        let (rs, peak) = counting::peak_of(|| RuleSet::load(&file).map(|r| r.len()));
        assert_eq!(rs, Ok(400));
        assert!(
            peak <= 8 * len + 64 * 1024,
            "load: peak {peak} bytes for a {len}-byte file (overlap {overlap})"
        );
        eprintln!(
            "{len}-byte file, overlap {overlap}: load peak {peak} ({:.2}x)",
            peak as f64 / len as f64
        );
    }
}

/// The file by reference (`view::view`, what `failsafectl inspect` and `test` read): the
/// validator's checks with memory below 2x the file, whatever the body references; and a
/// tool decoding one criterion at a time holds one criterion (at most 255 strings of 1024
/// code units), not the file's decoded strings (`validate` holds them all: about 1,000x the
/// file for these).
#[test]
fn a_view_is_bounded_by_the_file_size() {
    for overlap in [false, true] {
        let file = many_references(400, 255, overlap);
        let len = file.len();
        let (n, peak) =
            counting::peak_of(|| failsafe_loader::view::view(&file).map(|v| v.rules().len()));
        assert_eq!(n, Ok(400));
        assert!(
            peak <= 2 * len + 64 * 1024,
            "view: peak {peak} bytes for a {len}-byte file (overlap {overlap})"
        );
        let v = failsafe_loader::view::view(&file).unwrap();
        // The first 40 rules (decoding all 400 takes long in a debug build; each criterion
        // is as large as any).
        let (units, peak) = counting::peak_of(|| {
            let mut units = 0usize;
            for r in v.rules().iter().take(40) {
                for c in v.criteria(r) {
                    if let failsafe_loader::Values::Strs(s) = v.criterion(c, true).unwrap().values {
                        units += s.iter().map(Vec::len).sum::<usize>();
                    }
                }
            }
            units
        });
        assert_eq!(units, 40 * 255 * 1024, "every reference decoded once");
        let one = 255 * (1024 * 2 + 24) + 64;
        assert!(
            peak <= one + 4 * 1024,
            "decoding criteria one at a time: peak {peak} bytes (one criterion: {one})"
        );
        eprintln!(
            "{len}-byte file, overlap {overlap}: view peak {:.2}x the file",
            counting::peak_of(|| failsafe_loader::view::view(&file).map(|_| ())).1 as f64
                / len as f64
        );
    }
}
