//! Volume device name -> DOS name (`\Device\HarddiskVolume3` -> `C:`), so that the sensor
//! reports paths as authors write them (`C:\Windows\...`; ADR 0013). Instance setup
//! (PASSIVE_LEVEL) records each *instance* with its volume's device name as *pending*; a
//! work item of the kernel layer (PASSIVE_LEVEL, outside the mount path) later asks the
//! mount manager for its DOS name and records it, retrying a bounded number of times (at
//! boot the mount manager may not have assigned letters yet).
//!
//! Entries are keyed by instance, not by device name: two live instances can share a
//! volume (two altitudes, `fltmc attach -a`; or a remount while the old instance drains),
//! and the teardown of one must remove only what its own setup added (issue 19, finding 2:
//! keyed by name, one detach removed the other's entry and every `C:\` rule stopped
//! applying to that volume). A teardown needs nothing but its instance, so a failing
//! `FltGetVolumeName` there cannot leave an entry or its disk reference pinned. Read by the file-system callbacks and the
//! process-notify routine. Allocated once at `DriverEntry`; afterwards inserts, removals and
//! lookups never allocate. The caller provides the lock (a Filter Manager push lock in the
//! driver).

use alloc::vec::Vec;

use failsafe_loader::text::{
    dos_form, fold, has_drive_letter, rule_form, without_dos_device_prefix,
};

/// Longest volume device name kept (`\Device\HarddiskVolumeShadowCopy123` is 35 units).
pub const MAX_DEVICE_UNITS: usize = 64;
/// Longest DOS name kept (`C:`, or a mount-point folder such as `C:\mnt\data`).
pub const MAX_DOS_UNITS: usize = 64;
/// Instances the table holds: one entry each (26 drive letters, mount points, volume
/// shadow copies, and a second instance on some of them).
pub const CAPACITY: usize = 64;
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
    /// The instance this entry belongs to (the caller's key, never 0).
    instance: usize,
    /// Order of setup: where two instances of one volume both know a DOS name, the newer
    /// one's is used (after a remount the letter may have changed).
    seq: u64,
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

/// The attached instances, their volumes and the volumes' DOS names where known.
pub struct VolumeTable {
    volumes: Vec<Volume>,
    /// The next entry's `seq`.
    next_seq: u64,
}

impl core::fmt::Debug for VolumeTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VolumeTable")
            .field("volumes", &self.volumes.len())
            .finish()
    }
}

/// A volume waiting for its DOS name, taken out by [`VolumeTable::take_pending`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its index in the table (ask again from the next one).
    pub index: usize,
    /// Its instance: the key to hand back.
    pub instance: usize,
    /// Units of its device name written to the caller's buffer.
    pub units: usize,
    /// Its token, now the caller's.
    pub disk: usize,
}

impl VolumeTable {
    /// An empty table with room for [`CAPACITY`] instances; `None` when memory is short.
    pub fn try_new() -> Option<Self> {
        let mut volumes = Vec::new();
        volumes.try_reserve_exact(CAPACITY).ok()?;
        Some(VolumeTable {
            volumes,
            next_seq: 0,
        })
    }

    fn entry(&mut self, instance: usize) -> Option<&mut Volume> {
        self.volumes.iter_mut().find(|v| v.instance == instance)
    }

    /// A new entry, not yet in the table; `None` for instance 0 or an empty or too long
    /// device name.
    fn new_entry(&mut self, instance: usize, device: &[u16], disk: usize) -> Option<Volume> {
        let device = trim_separator(device);
        let device_len = u8::try_from(device.len()).ok()?;
        if instance == 0 || device.is_empty() || device.len() > MAX_DEVICE_UNITS {
            return None;
        }
        let mut v = Volume {
            instance,
            seq: self.next_seq,
            device_len,
            dos_len: 0,
            attempts: 0,
            disk,
            device: [0; MAX_DEVICE_UNITS],
            dos: [0; MAX_DOS_UNITS],
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        for (d, &s) in v.device.iter_mut().zip(device) {
            *d = s;
        }
        Some(v)
    }

    /// Records an instance whose volume's DOS name is known already (tests, and tables
    /// built by hand). `false` when the instance is 0, a name is empty or too long, or the
    /// table is full: that instance's paths stay in device form.
    pub fn insert(&mut self, instance: usize, device: &[u16], dos: &[u16]) -> bool {
        if self.entry(instance).is_some() || self.volumes.len() >= self.volumes.capacity() {
            return false; // never grows: no allocation after DriverEntry
        }
        let Some(mut v) = self.new_entry(instance, device, 0) else {
            return false;
        };
        set_dos(&mut v, dos) && push_within(&mut self.volumes, v)
    }

    /// Records an instance being attached (instance setup), its volume's DOS name not
    /// known yet, with `disk`, an opaque token the table now owns (in the driver: the
    /// volume's disk device object with a reference, which is what the mount manager is
    /// asked about; 0 for none). Its paths stay in device form until
    /// [`resolve`](Self::resolve) (unless another instance of the volume knows the name).
    /// Returns a token the caller must release: the one replaced (the same instance set up
    /// again), or `disk` itself when the instance is 0, the name is empty or too long, or
    /// the table is full.
    #[must_use = "a returned token must be released"]
    pub fn add_pending(&mut self, instance: usize, device: &[u16], disk: usize) -> Option<usize> {
        let exists = self.entry(instance).is_some();
        if !exists && self.volumes.len() >= self.volumes.capacity() {
            return token(disk);
        }
        let Some(v) = self.new_entry(instance, device, disk) else {
            return token(disk);
        };
        if let Some(old) = self.entry(instance) {
            return token(core::mem::replace(old, v).disk);
        }
        if push_within(&mut self.volumes, v) {
            None
        } else {
            token(disk)
        }
    }

    /// Records the DOS name learnt for an instance the table holds; `false` (nothing
    /// recorded) when the instance is gone (torn down meanwhile) or the name is not one
    /// paths are reported under ([`usable_dos_name`]) or too long.
    pub fn resolve(&mut self, instance: usize, dos: &[u16]) -> bool {
        let Some(v) = self.entry(instance) else {
            return false;
        };
        if !set_dos(v, dos) {
            return false;
        }
        v.attempts = 0;
        true
    }

    /// Takes the first instance at index `from` or later that waits for its DOS name and
    /// whose token is in the table: its device name copied to `out`, and its token, which
    /// the caller now owns (and hands back with [`failed`](Self::failed), or releases after
    /// [`resolve`](Self::resolve)). The caller asks the mount manager without holding the
    /// table's lock, then asks again from the index after. Indices may shift when an
    /// instance is removed meanwhile; one skipped that way is tried on the next round.
    pub fn take_pending(
        &mut self,
        from: usize,
        out: &mut [u16; MAX_DEVICE_UNITS],
    ) -> Option<Pending> {
        let (index, v) = self
            .volumes
            .iter_mut()
            .enumerate()
            .skip(from)
            .find(|(_, v)| v.pending())?;
        let units = crate::wire::copy_prefix(out, v.device());
        Some(Pending {
            index,
            instance: v.instance,
            units,
            disk: core::mem::take(&mut v.disk),
        })
    }

    /// An attempt to learn an instance's DOS name failed; `disk` is the token
    /// [`take_pending`](Self::take_pending) gave. The table takes it back while the
    /// instance is still there and has attempts left (fewer than [`MAX_ATTEMPTS`]);
    /// otherwise it is returned for the caller to release, and the instance's paths stay in
    /// device form.
    #[must_use = "a returned token must be released"]
    pub fn failed(&mut self, instance: usize, disk: usize) -> Option<usize> {
        let Some(v) = self.entry(instance) else {
            return token(disk);
        };
        v.attempts = v.attempts.saturating_add(1);
        if v.dos_len == 0 && v.attempts < MAX_ATTEMPTS && v.disk == 0 {
            v.disk = disk;
            return None;
        }
        token(disk)
    }

    /// Some instance waits for an attempt (pending, its token in the table).
    pub fn has_pending(&self) -> bool {
        self.volumes.iter().any(Volume::pending)
    }

    /// Forgets an instance (its teardown): only its own entry, never another instance's
    /// of the same volume. Returns its token, if the table held one, for the caller to
    /// release.
    #[must_use = "a returned token must be released"]
    pub fn remove(&mut self, instance: usize) -> Option<usize> {
        let i = self.volumes.iter().position(|v| v.instance == instance)?;
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

    /// The path as the rules see it (the core's `text::rule_form`, which `failsafectl test`
    /// calls too): the drive-letter form of a path on a volume whose DOS name an instance
    /// knows (the newest such instance's), `C:\x` for `\??\C:\x`, no stream, `\\server\...`
    /// for `\Device\Mup\server\...`, no trailing dots or spaces; the path itself (without
    /// a `\??\` prefix) when it is longer than `out`.
    pub fn dos_path<'a>(&self, path: &'a [u16], out: &'a mut [u16]) -> &'a [u16] {
        let same_unit = |a: u16, b: u16| fold(a) == fold(b);
        let volume = |p: &[u16], o: &mut [u16]| {
            let v = self
                .volumes
                .iter()
                .filter(|v| v.dos_len != 0)
                .filter(|v| crate::guard::under(p, v.device(), same_unit))
                .max_by_key(|v| v.seq)?;
            dos_form(p, v.device(), v.dos(), o).map(<[u16]>::len)
        };
        match rule_form(path, volume, out) {
            Some(n) => out.get(..n).unwrap_or(&[]),
            None => without_dos_device_prefix(path),
        }
    }
}

/// Appends `v` if the table has room: it never grows (no allocation after `DriverEntry`);
/// the check beside the push lets the compiler drop `Vec::push`'s growth path and its
/// capacity-overflow panic (the PE test checks no panic is reachable).
fn push_within(volumes: &mut Vec<Volume>, v: Volume) -> bool {
    if volumes.len() < volumes.capacity() {
        volumes.push(v);
        true
    } else {
        false
    }
}

/// Records `dos` as `v`'s DOS name; `false` (nothing changed) when it is not one paths are
/// reported under or too long.
fn set_dos(v: &mut Volume, dos: &[u16]) -> bool {
    let dos = trim_separator(dos);
    let Ok(dos_len) = u8::try_from(dos.len()) else {
        return false;
    };
    if !usable_dos_name(dos) || dos.len() > MAX_DOS_UNITS {
        return false;
    }
    for (d, &s) in v.dos.iter_mut().zip(dos) {
        *d = s;
    }
    v.dos_len = dos_len;
    true
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
        assert!(t.insert(1, &w("\\Device\\HarddiskVolume3"), &w("C:")));
        assert!(t.insert(2, &w("\\Device\\HarddiskVolume31\\"), &w("D:\\")));
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
        // A newer instance of the volume with another letter wins; removing an instance
        // forgets its entry only.
        assert!(t.insert(3, &w("\\device\\harddiskvolume3"), &w("E:")));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "E:\\a");
        assert_eq!(t.remove(3), None);
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\a");
        assert_eq!(t.remove(1), None);
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume3\\a"),
            "\\Device\\HarddiskVolume3\\a"
        );
        assert!(
            !t.insert(2, &w("\\Device\\X"), &w("F:")),
            "instance 2 is in the table"
        );
    }

    #[test]
    fn the_table_never_grows() {
        let mut t = VolumeTable::try_new().unwrap();
        for i in 0..CAPACITY {
            assert!(t.insert(i + 1, &w(&format!("\\Device\\HarddiskVolume{i}")), &w("X:")));
        }
        assert!(!t.insert(999, &w("\\Device\\HarddiskVolume999"), &w("Y:")));
        let mut t = VolumeTable::try_new().unwrap();
        assert!(!t.insert(1, &[], &w("Y:")));
        assert!(!t.insert(1, &w("\\Device\\V"), &[]));
        assert!(!t.insert(1, &w("\\Device\\V"), &w("\\\\?\\Volume{x}")));
        assert!(!t.insert(1, &w(&"x".repeat(MAX_DEVICE_UNITS + 1)), &w("Y:")));
        assert!(
            !t.insert(0, &w("\\Device\\V"), &w("Y:")),
            "instance 0 is no key"
        );
    }

    /// The work item's round as `dosnames::volume_work` runs it: take, ask, resolve or fail.
    fn attempt(
        t: &mut VolumeTable,
        from: usize,
        answer: Option<&str>,
    ) -> Option<(Pending, Option<usize>)> {
        let mut name = [0u16; MAX_DEVICE_UNITS];
        let p = t.take_pending(from, &mut name)?;
        let back = match answer {
            Some(dos) if t.resolve(p.instance, &w(dos)) => Some(p.disk),
            _ => t.failed(p.instance, p.disk),
        };
        Some((p, back))
    }

    #[test]
    fn pending_volumes_resolve_fail_and_give_up() {
        let mut t = VolumeTable::try_new().unwrap();
        let v3 = w("\\Device\\HarddiskVolume3");
        let v4 = w("\\Device\\HarddiskVolume4\\");
        assert!(!t.has_pending());
        assert_eq!(t.add_pending(30, &v3, 33), None);
        assert_eq!(t.add_pending(40, &v4, 44), None);
        assert!(t.has_pending());
        // Pending volumes are not mapped.
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume3\\a"),
            "\\Device\\HarddiskVolume3\\a"
        );
        // Walk the pending instances as the work item does: each token is taken out.
        let mut name = [0u16; MAX_DEVICE_UNITS];
        let p3 = t.take_pending(0, &mut name).unwrap();
        assert_eq!(
            (p3.index, p3.instance, &name[..p3.units], p3.disk),
            (0, 30, v3.as_slice(), 33)
        );
        let p4 = t.take_pending(p3.index + 1, &mut name).unwrap();
        assert_eq!(
            (p4.index, p4.instance, &name[..p4.units], p4.disk),
            (1, 40, &v4[..v4.len() - 1], 44)
        );
        assert!(t.take_pending(p4.index + 1, &mut name).is_none());
        assert!(!t.has_pending()); // both tokens are out
        // A volume GUID name is not a DOS name paths are reported under.
        assert!(!t.resolve(
            30,
            &w("\\\\?\\Volume{0b1c5a4e-0000-0000-0000-100000000000}\\")
        ));
        assert!(t.resolve(30, &w("C:\\")));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\a");
        // A failed attempt hands the token back; after MAX_ATTEMPTS it is returned.
        assert_eq!(t.failed(40, p4.disk), None);
        assert!(t.has_pending());
        for k in 1..MAX_ATTEMPTS {
            let (_, back) = attempt(&mut t, 0, None).unwrap();
            assert_eq!(back, (k + 1 == MAX_ATTEMPTS).then_some(44));
        }
        assert!(!t.has_pending());
        assert!(t.take_pending(0, &mut name).is_none());
        // The same instance set up again asks again, replacing (and returning) nothing here.
        assert_eq!(t.add_pending(40, &v4, 45), None);
        assert!(t.has_pending());
        // Teardown returns the token; a torn-down instance is neither resolved nor kept.
        let p = t.take_pending(0, &mut name).unwrap();
        assert_eq!((p.instance, p.disk), (40, 45));
        assert_eq!(t.remove(40), None); // the attempt holds the token
        assert!(!t.resolve(40, &w("D:")));
        assert_eq!(t.failed(40, p.disk), Some(45)); // so the attempt releases it
        // Setting an instance up again forgets its old letter until it is asked again.
        assert_eq!(t.add_pending(30, &v3, 34), None);
        assert_eq!(t.add_pending(30, &v3, 35), Some(34));
        assert_eq!(
            dos(&t, "\\Device\\HarddiskVolume3\\a"),
            "\\Device\\HarddiskVolume3\\a"
        );
        assert!(t.resolve(30, &w("C:\\mnt\\data")));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\mnt\\data\\a");
        assert_eq!(t.take_any_token(), Some(35));
        assert_eq!(t.take_any_token(), None);
        // Bounded: full table, instance 0, empty or long names give the token back.
        for i in 1..CAPACITY {
            let _ = t.add_pending(100 + i, &w(&format!("\\Device\\X{i}")), 1);
        }
        assert_eq!(t.add_pending(999, &w("\\Device\\Y"), 7), Some(7));
        assert_eq!(t.remove(101), Some(1));
        assert_eq!(t.add_pending(0, &w("\\Device\\Y"), 8), Some(8));
        assert_eq!(t.add_pending(998, &[], 8), Some(8));
        assert_eq!(
            t.add_pending(997, &w(&"x".repeat(MAX_DEVICE_UNITS + 1)), 9),
            Some(9)
        );
        assert_eq!(t.add_pending(996, &w("\\Device\\Y"), 0), None);
    }

    /// The review's finding 2 (issue 19): two live instances on one volume (two altitudes,
    /// or a remount while the old instance drains), then one is torn down. The other's
    /// paths must keep their drive letter, or every `C:\` rule silently stops applying.
    #[test]
    fn one_instance_teardown_leaves_the_other_instance_of_its_volume() {
        let mut t = VolumeTable::try_new().unwrap();
        let v3 = w("\\Device\\HarddiskVolume3");
        // Instance A attaches, its DOS name is learnt.
        assert_eq!(t.add_pending(0xA0, &v3, 33), None);
        assert_eq!(attempt(&mut t, 0, Some("C:")).unwrap().1, Some(33));
        // Instance B attaches to the same volume (another altitude): A's letter still
        // applies while B waits for its own.
        assert_eq!(t.add_pending(0xB0, &v3, 34), None);
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\a");
        assert_eq!(attempt(&mut t, 0, Some("C:")).unwrap().1, Some(34));
        // B is detached: A still filters the volume, its paths keep the drive letter.
        assert_eq!(t.remove(0xB0), None);
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "C:\\a");
        // A remount: the new instance (C drained later) learns another letter; the newer
        // wins, and A's teardown afterwards leaves it.
        assert_eq!(t.add_pending(0xC0, &v3, 35), None);
        assert_eq!(attempt(&mut t, 0, Some("E:")).unwrap().1, Some(35));
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "E:\\a");
        assert_eq!(t.remove(0xA0), None);
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "E:\\a");
        // A teardown of an instance the table never held (its setup could not name the
        // volume) removes nothing.
        assert_eq!(t.remove(0xD0), None);
        assert_eq!(dos(&t, "\\Device\\HarddiskVolume3\\a"), "E:\\a");
        // A teardown while its instance's token is in the table returns it.
        assert_eq!(
            t.add_pending(0xE0, &w("\\Device\\HarddiskVolume9"), 36),
            None
        );
        assert_eq!(t.remove(0xE0), Some(36));
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
