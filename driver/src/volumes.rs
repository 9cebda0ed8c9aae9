//! Volume device name -> DOS name (`\Device\HarddiskVolume3` -> `C:`), so that the sensor
//! reports paths as authors write them (`C:\Windows\...`; ADR 0013). Instance setup
//! (PASSIVE_LEVEL) records each volume's device name as *pending*; a work item of the
//! kernel layer (PASSIVE_LEVEL, outside the mount path) later asks the mount manager for its
//! DOS name and records it, retrying a bounded number of times (at boot the mount manager
//! may not have assigned letters yet). Read by the file-system callbacks and the
//! process-notify routine. Allocated once at `DriverEntry`; afterwards inserts, removals and
//! lookups never allocate. The caller provides the lock (a Filter Manager push lock in the
//! driver).

use alloc::vec::Vec;

use failsafe_loader::text::{dos_form, fold, has_drive_letter, without_dos_device_prefix};

/// Longest volume device name kept (`\Device\HarddiskVolumeShadowCopy123` is 35 units).
pub const MAX_DEVICE_UNITS: usize = 64;
/// Longest DOS name kept (`C:`, or a mount-point folder such as `C:\mnt\data`).
pub const MAX_DOS_UNITS: usize = 64;
/// Volumes with a DOS name the table holds (26 drive letters and a few mount points).
pub const CAPACITY: usize = 32;
/// Longest path the callbacks convert (code units). A longer path is reported in its
/// device form: `starts-with "C:\..."` rules do not see it; `ends-with`, `name` and
/// `extension` rules do (docs/content-format.md, "Paths").
pub const MAX_PATH_UNITS: usize = 512;
/// Attempts to learn a volume's DOS name before the volume is left in device form.
pub const MAX_ATTEMPTS: u8 = 60;
/// Least time between two attempts, in 100 ns units (the kernel's interrupt time): 2 s.
/// With [`MAX_ATTEMPTS`], a volume is tried for at least two minutes after it attaches.
pub const RETRY_INTERVAL: u64 = 20_000_000;

#[derive(Clone, Copy)]
struct Volume {
    device_len: u8,
    /// 0: the DOS name is not known (yet).
    dos_len: u8,
    /// Failed attempts to learn the DOS name.
    attempts: u8,
    device: [u16; MAX_DEVICE_UNITS],
    dos: [u16; MAX_DOS_UNITS],
}

impl Volume {
    fn device(&self) -> &[u16] {
        self.device
            .get(..usize::from(self.device_len))
            .unwrap_or(&[])
    }
    fn dos(&self) -> &[u16] {
        self.dos.get(..usize::from(self.dos_len)).unwrap_or(&[])
    }
    fn pending(&self) -> bool {
        self.dos_len == 0 && self.attempts < MAX_ATTEMPTS
    }
}

/// A trailing separator is not part of a volume's name.
fn trim_separator(s: &[u16]) -> &[u16] {
    match s.split_last() {
        Some((&0x5C, head)) => head,
        _ => s,
    }
}

/// A DOS name the sensor reports paths under: a drive letter (`C:`) or a folder on a
/// lettered volume (`C:\mnt\data`). The mount manager names a volume with neither by its
/// GUID (`\\?\Volume{...}`), which no author writes: such a volume stays in device form.
pub fn usable_dos_name(dos: &[u16]) -> bool {
    has_drive_letter(dos) && matches!(dos.get(2), None | Some(&0x5C))
}

/// An attempt is due: none was made yet, or the last was [`RETRY_INTERVAL`] ago (`now`
/// and `last` in 100 ns units; a clock that went backwards makes one due).
pub fn retry_due(now: u64, last: Option<u64>) -> bool {
    last.is_none_or(|last| now < last || now.saturating_sub(last) >= RETRY_INTERVAL)
}

/// The volumes whose DOS names are known.
pub struct VolumeTable {
    volumes: Vec<Volume>,
}

impl core::fmt::Debug for VolumeTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VolumeTable")
            .field("volumes", &self.volumes.len())
            .finish()
    }
}

fn same_name(a: &[u16], b: &[u16]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold(x) == fold(y))
}

impl VolumeTable {
    /// An empty table with room for [`CAPACITY`] volumes; `None` when memory is short.
    pub fn try_new() -> Option<Self> {
        let mut volumes = Vec::new();
        volumes.try_reserve_exact(CAPACITY).ok()?;
        Some(VolumeTable { volumes })
    }

    /// Records (or replaces) a volume's DOS name. `false` when a name is empty or too long
    /// or the table is full: that volume's paths stay in device form.
    pub fn insert(&mut self, device: &[u16], dos: &[u16]) -> bool {
        let (device, dos) = (trim_separator(device), trim_separator(dos));
        let (Ok(device_len), Ok(dos_len)) = (u8::try_from(device.len()), u8::try_from(dos.len()))
        else {
            return false;
        };
        if device.is_empty()
            || dos.is_empty()
            || device.len() > MAX_DEVICE_UNITS
            || dos.len() > MAX_DOS_UNITS
        {
            return false;
        }
        let mut v = Volume {
            device_len,
            dos_len,
            attempts: 0,
            device: [0; MAX_DEVICE_UNITS],
            dos: [0; MAX_DOS_UNITS],
        };
        for (d, &s) in v.device.iter_mut().zip(device) {
            *d = s;
        }
        for (d, &s) in v.dos.iter_mut().zip(dos) {
            *d = s;
        }
        if let Some(old) = self
            .volumes
            .iter_mut()
            .find(|old| same_name(old.device(), device))
        {
            *old = v;
            return true;
        }
        if self.volumes.len() >= self.volumes.capacity() {
            return false; // never grows: no allocation after DriverEntry
        }
        self.volumes.push(v);
        true
    }

    /// Records a volume whose DOS name is not known yet (instance setup): its paths stay in
    /// device form until [`resolve`](Self::resolve). A volume already in the table (a new
    /// instance on it) is asked again: its letter may have changed. `false` when the name
    /// is empty or too long or the table is full.
    pub fn add_pending(&mut self, device: &[u16]) -> bool {
        let device = trim_separator(device);
        let Ok(device_len) = u8::try_from(device.len()) else {
            return false;
        };
        if device.is_empty() || device.len() > MAX_DEVICE_UNITS {
            return false;
        }
        if let Some(old) = self
            .volumes
            .iter_mut()
            .find(|old| same_name(old.device(), device))
        {
            old.dos_len = 0;
            old.attempts = 0;
            return true;
        }
        if self.volumes.len() >= self.volumes.capacity() {
            return false;
        }
        let mut v = Volume {
            device_len,
            dos_len: 0,
            attempts: 0,
            device: [0; MAX_DEVICE_UNITS],
            dos: [0; MAX_DOS_UNITS],
        };
        for (d, &s) in v.device.iter_mut().zip(device) {
            *d = s;
        }
        self.volumes.push(v);
        true
    }

    /// Records the DOS name learnt for a volume the table holds; `false` (nothing recorded)
    /// when the volume is gone (torn down meanwhile) or the name is not one paths are
    /// reported under ([`usable_dos_name`]) or too long.
    pub fn resolve(&mut self, device: &[u16], dos: &[u16]) -> bool {
        let device = trim_separator(device);
        let dos = trim_separator(dos);
        let Ok(dos_len) = u8::try_from(dos.len()) else {
            return false;
        };
        if !usable_dos_name(dos) || dos.len() > MAX_DOS_UNITS {
            return false;
        }
        let Some(v) = self
            .volumes
            .iter_mut()
            .find(|v| same_name(v.device(), device))
        else {
            return false;
        };
        for (d, &s) in v.dos.iter_mut().zip(dos) {
            *d = s;
        }
        v.dos_len = dos_len;
        v.attempts = 0;
        true
    }

    /// An attempt to learn a volume's DOS name failed; after [`MAX_ATTEMPTS`] the volume is
    /// no longer pending (its paths stay in device form).
    pub fn failed(&mut self, device: &[u16]) {
        let device = trim_separator(device);
        for v in self
            .volumes
            .iter_mut()
            .filter(|v| same_name(v.device(), device))
        {
            v.attempts = v.attempts.saturating_add(1);
        }
    }

    /// Some volume still waits for its DOS name.
    pub fn has_pending(&self) -> bool {
        self.volumes.iter().any(Volume::pending)
    }

    /// The first pending volume at index `from` or later: its index, and its device name
    /// copied to `out` (the caller resolves it without holding the table's lock, then asks
    /// again from the index after). Indices may shift when a volume is removed meanwhile;
    /// a volume skipped that way is tried on the next round.
    pub fn next_pending(
        &self,
        from: usize,
        out: &mut [u16; MAX_DEVICE_UNITS],
    ) -> Option<(usize, usize)> {
        let (i, v) = self
            .volumes
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, v)| v.pending())?;
        Some((i, crate::wire::copy_prefix(out, v.device())))
    }

    /// Forgets a volume (instance teardown).
    pub fn remove(&mut self, device: &[u16]) {
        let device = trim_separator(device);
        self.volumes.retain(|v| !same_name(v.device(), device));
    }

    /// The path as authors write it: the drive-letter form of a path on a known volume,
    /// `C:\x` for `\??\C:\x`, and otherwise the path itself (a volume without a DOS name,
    /// a path longer than `out`).
    pub fn dos_path<'a>(&self, path: &'a [u16], out: &'a mut [u16]) -> &'a [u16] {
        let path = without_dos_device_prefix(path);
        let same_unit = |a: u16, b: u16| fold(a) == fold(b);
        let Some(v) = self
            .volumes
            .iter()
            .filter(|v| v.dos_len != 0)
            .find(|v| crate::guard::under(path, v.device(), same_unit))
        else {
            return path;
        };
        match dos_form(path, v.device(), v.dos(), out) {
            Some(dos) => dos,
            None => path,
        }
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

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn dos(t: &VolumeTable, p: &str) -> String {
        let mut out = [0u16; MAX_PATH_UNITS];
        let p = w(p);
        String::from_utf16_lossy(t.dos_path(&p, &mut out))
    }

    #[test]
    fn paths_on_known_volumes_get_their_drive_letter() {
        let mut t = VolumeTable::try_new().unwrap();
        assert!(t.insert(&w("\\Device\\HarddiskVolume3"), &w("C:")));
        assert!(t.insert(&w("\\Device\\HarddiskVolume31\\"), &w("D:\\")));
        assert_eq!(
            dos(
                &t,
                "\\Device\\HarddiskVolume3\\Windows\\System32\\drivers\\x.sys"
            ),
            "C:\\Windows\\System32\\drivers\\x.sys"
        );
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume31\\a"), "D:\\a");
        // Unknown volume: device form kept. Process images in NT form lose `\??\`.
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume4\\a"),
            "\\Device\\HarddiskVolume4\\a"
        );
        assert_eq!(dos(&t, "\\??\\C:\\Windows\\x.exe"), "C:\\Windows\\x.exe");
        // Too long for the buffer: device form kept, never truncated.
        let long = format!("\\Device\\HarddiskVolume3\\{}", "a".repeat(MAX_PATH_UNITS));
        assert_eq!(dos(&t, &long), long);
        // Re-insert replaces; remove forgets.
        assert!(t.insert(&w("\\device\\harddiskvolume3"), &w("E:")));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "E:\\a");
        t.remove(&w("\\Device\\HarddiskVolume3"));
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume3\\a"),
            "\\Device\\HarddiskVolume3\\a"
        );
    }

    #[test]
    fn the_table_never_grows() {
        let mut t = VolumeTable::try_new().unwrap();
        for i in 0..CAPACITY {
            assert!(t.insert(&w(&format!("\\Device\\HarddiskVolume{i}")), &w("X:")));
        }
        assert!(!t.insert(&w("\\Device\\HarddiskVolume999"), &w("Y:")));
        assert!(!t.insert(&[], &w("Y:")));
        assert!(!t.insert(&w("\\Device\\V"), &[]));
        assert!(!t.insert(&w(&"x".repeat(MAX_DEVICE_UNITS + 1)), &w("Y:")));
    }

    #[test]
    fn pending_volumes_resolve_fail_and_give_up() {
        let mut t = VolumeTable::try_new().unwrap();
        let v3 = w("\\Device\\HarddiskVolume3");
        let v4 = w("\\Device\\HarddiskVolume4\\");
        assert!(!t.has_pending());
        assert!(t.add_pending(&v3));
        assert!(t.add_pending(&v4));
        assert!(t.has_pending());
        // Pending volumes are not mapped.
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume3\\a"),
            "\\Device\\HarddiskVolume3\\a"
        );
        // Walk the pending volumes as the work item does.
        let mut name = [0u16; MAX_DEVICE_UNITS];
        let (i, n) = t.next_pending(0, &mut name).unwrap();
        assert_eq!((i, &name[..n]), (0, v3.as_slice()));
        let (i, n) = t.next_pending(i + 1, &mut name).unwrap();
        assert_eq!((i, &name[..n]), (1, &v4[..v4.len() - 1]));
        assert!(t.next_pending(i + 1, &mut name).is_none());
        // A volume GUID name is not a DOS name paths are reported under.
        assert!(!t.resolve(
            &v3,
            &w("\\\\?\\Volume{0b1c5a4e-0000-0000-0000-100000000000}\\")
        ));
        assert!(t.resolve(&v3, &w("C:\\")));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\a");
        assert_eq!(t.next_pending(0, &mut name).map(|(i, _)| i), Some(1));
        // Failures count; after MAX_ATTEMPTS the volume is no longer pending.
        for _ in 0..MAX_ATTEMPTS {
            assert!(t.has_pending());
            t.failed(&v4);
        }
        assert!(!t.has_pending());
        assert!(t.next_pending(0, &mut name).is_none());
        // A new instance on the volume asks again; a torn-down volume is not resolved.
        assert!(t.add_pending(&v4));
        assert!(t.has_pending());
        t.remove(&v4);
        assert!(!t.resolve(&v4, &w("D:")));
        assert!(!t.has_pending());
        // Re-attaching a resolved volume forgets its old letter until it is asked again.
        assert!(t.add_pending(&v3));
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume3\\a"),
            "\\Device\\HarddiskVolume3\\a"
        );
        assert!(t.resolve(&v3, &w("C:\\mnt\\data")));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\mnt\\data\\a");
        // Bounded: full table, empty or long names.
        for i in 0..CAPACITY {
            let _ = t.add_pending(&w(&format!("\\Device\\X{i}")));
        }
        assert!(!t.add_pending(&w("\\Device\\Y")));
        assert!(!t.add_pending(&[]));
        assert!(!t.add_pending(&w(&"x".repeat(MAX_DEVICE_UNITS + 1))));
    }

    #[test]
    fn dos_names_and_retry_timing() {
        assert!(usable_dos_name(&w("C:")));
        assert!(usable_dos_name(&w("c:\\mnt\\data")));
        assert!(!usable_dos_name(&w("\\\\?\\Volume{x}")));
        assert!(!usable_dos_name(&w("C:x")));
        assert!(!usable_dos_name(&[]));
        assert!(retry_due(5, None));
        assert!(!retry_due(RETRY_INTERVAL, Some(1)));
        assert!(retry_due(RETRY_INTERVAL + 1, Some(1)));
        assert!(retry_due(1, Some(5))); // the clock went backwards
    }
}
