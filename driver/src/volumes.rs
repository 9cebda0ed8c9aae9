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
    /// The caller's token for asking the DOS name (a referenced disk device object in the
    /// driver), 0 when the table holds none: resolved, given up, or taken by an attempt in
    /// progress.
    disk: usize,
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
        self.dos_len == 0 && self.attempts < MAX_ATTEMPTS && self.disk != 0
    }
}

/// A token to release, 0 meaning none.
fn token(disk: usize) -> Option<usize> {
    (disk != 0).then_some(disk)
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
            disk: 0,
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
            v.disk = old.disk; // still owned by the table, released with the volume
            *old = v;
            return true;
        }
        if self.volumes.len() >= self.volumes.capacity() {
            return false; // never grows: no allocation after DriverEntry
        }
        self.volumes.push(v);
        true
    }

    /// Records a volume whose DOS name is not known yet (instance setup), with `disk`, an
    /// opaque token the table now owns (in the driver: the volume's disk device object with
    /// a reference, which is what the mount manager is asked about; 0 for none). Its paths
    /// stay in device form until [`resolve`](Self::resolve). A volume already in the table
    /// (a new instance on it) is asked again: its letter may have changed. Returns a token
    /// the caller must release: the one replaced, or `disk` itself when the name is empty
    /// or too long or the table is full.
    #[must_use = "a returned token must be released"]
    pub fn add_pending(&mut self, device: &[u16], disk: usize) -> Option<usize> {
        let device = trim_separator(device);
        let Ok(device_len) = u8::try_from(device.len()) else {
            return token(disk);
        };
        if device.is_empty() || device.len() > MAX_DEVICE_UNITS {
            return token(disk);
        }
        if let Some(old) = self
            .volumes
            .iter_mut()
            .find(|old| same_name(old.device(), device))
        {
            old.dos_len = 0;
            old.attempts = 0;
            return token(core::mem::replace(&mut old.disk, disk));
        }
        if self.volumes.len() >= self.volumes.capacity() {
            return token(disk);
        }
        let mut v = Volume {
            device_len,
            dos_len: 0,
            attempts: 0,
            disk,
            device: [0; MAX_DEVICE_UNITS],
            dos: [0; MAX_DOS_UNITS],
        };
        for (d, &s) in v.device.iter_mut().zip(device) {
            *d = s;
        }
        self.volumes.push(v);
        None
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

    /// Takes the first volume at index `from` or later that waits for its DOS name and
    /// whose token is in the table: its index, its device name copied to `out`, and its
    /// token, which the caller now owns (and hands back with [`failed`](Self::failed), or
    /// releases after [`resolve`](Self::resolve)). The caller asks the mount manager
    /// without holding the table's lock, then asks again from the index after. Indices may
    /// shift when a volume is removed meanwhile; a volume skipped that way is tried on the
    /// next round.
    pub fn take_pending(
        &mut self,
        from: usize,
        out: &mut [u16; MAX_DEVICE_UNITS],
    ) -> Option<(usize, usize, usize)> {
        let (i, v) = self
            .volumes
            .iter_mut()
            .enumerate()
            .skip(from)
            .find(|(_, v)| v.pending())?;
        let n = crate::wire::copy_prefix(out, v.device());
        Some((i, n, core::mem::take(&mut v.disk)))
    }

    /// An attempt to learn a volume's DOS name failed; `disk` is the token
    /// [`take_pending`](Self::take_pending) gave. The table takes it back while the volume
    /// is still there and has attempts left (fewer than [`MAX_ATTEMPTS`]); otherwise it is
    /// returned for the caller to release, and the volume's paths stay in device form.
    #[must_use = "a returned token must be released"]
    pub fn failed(&mut self, device: &[u16], disk: usize) -> Option<usize> {
        let device = trim_separator(device);
        let Some(v) = self
            .volumes
            .iter_mut()
            .find(|v| same_name(v.device(), device))
        else {
            return token(disk);
        };
        v.attempts = v.attempts.saturating_add(1);
        if v.dos_len == 0 && v.attempts < MAX_ATTEMPTS && v.disk == 0 {
            v.disk = disk;
            return None;
        }
        token(disk)
    }

    /// Some volume waits for an attempt (pending, its token in the table).
    pub fn has_pending(&self) -> bool {
        self.volumes.iter().any(Volume::pending)
    }

    /// Forgets a volume (instance teardown); returns its token, if the table held one, for
    /// the caller to release.
    #[must_use = "a returned token must be released"]
    pub fn remove(&mut self, device: &[u16]) -> Option<usize> {
        let device = trim_separator(device);
        let i = self
            .volumes
            .iter()
            .position(|v| same_name(v.device(), device))?;
        let v = self.volumes.swap_remove(i);
        token(v.disk)
    }

    /// Takes any token still in the table (unload: every one must be released before the
    /// table is dropped).
    pub fn take_any_token(&mut self) -> Option<usize> {
        self.volumes
            .iter_mut()
            .find(|v| v.disk != 0)
            .map(|v| core::mem::take(&mut v.disk))
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
        assert_eq!(t.remove(&w("\\Device\\HarddiskVolume3")), None);
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
        assert_eq!(t.add_pending(&v3, 33), None);
        assert_eq!(t.add_pending(&v4, 44), None);
        assert!(t.has_pending());
        // Pending volumes are not mapped.
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume3\\a"),
            "\\Device\\HarddiskVolume3\\a"
        );
        // Walk the pending volumes as the work item does: each token is taken out.
        let mut name = [0u16; MAX_DEVICE_UNITS];
        let (i, n, disk) = t.take_pending(0, &mut name).unwrap();
        assert_eq!((i, &name[..n], disk), (0, v3.as_slice(), 33));
        let (j, n, disk4) = t.take_pending(i + 1, &mut name).unwrap();
        assert_eq!((j, &name[..n], disk4), (1, &v4[..v4.len() - 1], 44));
        assert!(t.take_pending(j + 1, &mut name).is_none());
        assert!(!t.has_pending()); // both tokens are out
        // A volume GUID name is not a DOS name paths are reported under.
        assert!(!t.resolve(
            &v3,
            &w("\\\\?\\Volume{0b1c5a4e-0000-0000-0000-100000000000}\\")
        ));
        assert!(t.resolve(&v3, &w("C:\\")));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\a");
        // A failed attempt hands the token back; after MAX_ATTEMPTS it is returned.
        assert_eq!(t.failed(&v4, disk4), None);
        assert!(t.has_pending());
        for k in 1..MAX_ATTEMPTS {
            let (_, _, d) = t.take_pending(0, &mut name).unwrap();
            let back = t.failed(&v4, d);
            assert_eq!(back, (k + 1 == MAX_ATTEMPTS).then_some(44));
        }
        assert!(!t.has_pending());
        assert!(t.take_pending(0, &mut name).is_none());
        // A new instance on the volume asks again, replacing (and returning) nothing here.
        assert_eq!(t.add_pending(&v4, 45), None);
        assert!(t.has_pending());
        // Teardown returns the token; a torn-down volume is neither resolved nor kept.
        let (_, _, d) = t.take_pending(0, &mut name).unwrap();
        assert_eq!(d, 45);
        assert_eq!(t.remove(&v4), None); // the attempt holds the token
        assert!(!t.resolve(&v4, &w("D:")));
        assert_eq!(t.failed(&v4, d), Some(45)); // so the attempt releases it
        // Re-attaching a resolved volume forgets its old letter until it is asked again.
        assert_eq!(t.add_pending(&v3, 34), None);
        assert_eq!(t.add_pending(&v3, 35), Some(34));
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume3\\a"),
            "\\Device\\HarddiskVolume3\\a"
        );
        assert!(t.resolve(&v3, &w("C:\\mnt\\data")));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\mnt\\data\\a");
        assert_eq!(t.take_any_token(), Some(35));
        assert_eq!(t.take_any_token(), None);
        // Bounded: full table, empty or long names give the token back.
        for i in 0..CAPACITY {
            let _ = t.add_pending(&w(&format!("\\Device\\X{i}")), 1);
        }
        assert_eq!(t.add_pending(&w("\\Device\\Y"), 7), Some(7));
        assert_eq!(t.add_pending(&[], 8), Some(8));
        assert_eq!(
            t.add_pending(&w(&"x".repeat(MAX_DEVICE_UNITS + 1)), 9),
            Some(9)
        );
        assert_eq!(t.add_pending(&w("\\Device\\Y"), 0), None);
        assert_eq!(t.remove(&w("\\Device\\X0")), Some(1));
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
