//! Process id -> image path, filled by the process-creation notify routine, read by the
//! file-system callbacks. Allocated once at `DriverEntry`; afterwards inserts, removals and
//! lookups never allocate, so the per-operation path allocates nothing. The caller provides
//! the lock (a Filter Manager push lock in the driver).

use alloc::vec::Vec;

/// Longest image path kept (UTF-16 code units). Longer paths keep their *tail*, which is
/// what `ends-with` rules on `process` look at.
pub const MAX_UNITS: usize = 260;
const WAYS: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    pid: u64,
    len: u16,
    units: [u16; MAX_UNITS],
}

const EMPTY: Entry = Entry {
    pid: 0,
    len: 0,
    units: [0; MAX_UNITS],
};

/// A fixed-capacity, 4-way set-associative table.
pub struct ProcessTable {
    entries: Vec<Entry>,
    sets: usize,
}

impl core::fmt::Debug for ProcessTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProcessTable")
            .field("slots", &self.entries.len())
            .finish()
    }
}

impl ProcessTable {
    /// A table with room for `sets * 4` processes, or `None` if memory is short.
    pub fn try_new(sets: usize) -> Option<Self> {
        let sets = sets.max(1);
        let n = sets.checked_mul(WAYS)?;
        let mut entries = Vec::new();
        entries.try_reserve_exact(n).ok()?;
        entries.resize(n, EMPTY);
        Some(ProcessTable { entries, sets })
    }

    /// The index range of `pid`'s set. Windows process ids are multiples of 4.
    fn range(&self, pid: u64) -> core::ops::Range<usize> {
        let s = usize::try_from(pid / 4)
            .unwrap_or(0)
            .checked_rem(self.sets)
            .unwrap_or(0);
        let start = s.saturating_mul(WAYS);
        start..start.saturating_add(WAYS)
    }

    fn set(&mut self, pid: u64) -> &mut [Entry] {
        let r = self.range(pid);
        self.entries.get_mut(r).unwrap_or(&mut [])
    }

    /// Records the image of a new process (pid 0 is ignored).
    pub fn insert(&mut self, pid: u64, image: &[u16]) {
        if pid == 0 {
            return;
        }
        let tail = image
            .get(image.len().saturating_sub(MAX_UNITS)..)
            .unwrap_or(&[]);
        let set = self.set(pid);
        let idx = set
            .iter()
            .position(|e| e.pid == pid)
            .or_else(|| set.iter().position(|e| e.pid == 0))
            .unwrap_or(usize::try_from(pid / 4).unwrap_or(0) / 7 % WAYS);
        if let Some(e) = set.get_mut(idx) {
            e.pid = pid;
            e.len = u16::try_from(tail.len()).unwrap_or(0);
            let _ = crate::wire::copy_prefix(&mut e.units, tail);
        }
    }

    /// Forgets an exited process.
    pub fn remove(&mut self, pid: u64) {
        for e in self.set(pid).iter_mut().filter(|e| e.pid == pid) {
            e.pid = 0;
            e.len = 0;
        }
    }

    /// Copies the image of `pid` into `out` and returns its length (0: unknown). Reads
    /// only, so readers may share the table.
    pub fn get_into(&self, pid: u64, out: &mut [u16; MAX_UNITS]) -> usize {
        let set = self.entries.get(self.range(pid)).unwrap_or(&[]);
        let Some(e) = set.iter().find(|e| e.pid == pid && pid != 0) else {
            return 0;
        };
        let n = usize::from(e.len).min(MAX_UNITS);
        crate::wire::copy_prefix(out, e.units.get(..n).unwrap_or(&[]))
    }
}

#[cfg(test)]
#[allow(
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed expectation is a test failure"
)]
mod tests {
    use super::*;

    fn w(s: &str) -> alloc::vec::Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn insert_lookup_remove_and_overflow() {
        let mut t = ProcessTable::try_new(2).unwrap_or_else(|| unreachable!());
        let mut buf = [0u16; MAX_UNITS];
        let smss = w("\\Device\\HarddiskVolume3\\Windows\\System32\\smss.exe");
        t.insert(4, &smss);
        assert_eq!(t.get_into(4, &mut buf), smss.len());
        assert_eq!(&buf[..smss.len()], smss.as_slice());
        assert_eq!(t.get_into(8, &mut buf), 0);
        // More processes than slots in one set: the newest always lands, nothing panics.
        for pid in (8..=200).step_by(8) {
            t.insert(pid, &w("x.exe"));
        }
        assert_eq!(t.get_into(200, &mut buf), 5);
        t.remove(200);
        assert_eq!(t.get_into(200, &mut buf), 0);
        // Long paths keep their tail.
        let long: alloc::string::String =
            core::iter::repeat_n("d\\", 200).collect::<alloc::string::String>() + "tail.exe";
        t.insert(12, &w(&long));
        let n = t.get_into(12, &mut buf);
        assert_eq!(n, MAX_UNITS);
        assert!(buf[..n].ends_with(&w("\\tail.exe")));
        t.insert(0, &w("ignored"));
        assert_eq!(t.get_into(0, &mut buf), 0);
    }
}
