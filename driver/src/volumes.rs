//! Volume device name -> DOS name (`\Device\HarddiskVolume3` -> `C:`), so that the sensor
//! reports paths as authors write them (`C:\Windows\...`; ADR 0013). Filled once per
//! volume at instance setup (PASSIVE_LEVEL), where the kernel layer asks the mount manager
//! for the volume's DOS name; read by the file-system callbacks and the process-notify
//! routine. Allocated once at `DriverEntry`; afterwards inserts, removals and lookups never
//! allocate. The caller provides the lock (a Filter Manager push lock in the driver).

use alloc::vec::Vec;

use failsafe_loader::text::{dos_form, fold, without_dos_device_prefix};

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

#[derive(Clone, Copy)]
struct Volume {
    device_len: u8,
    dos_len: u8,
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
        // A trailing separator is not part of either name.
        let trim = |s: &[u16]| match s.split_last() {
            Some((&0x5C, head)) => head.len(),
            _ => s.len(),
        };
        let (device, dos) = (
            device.get(..trim(device)).unwrap_or(&[]),
            dos.get(..trim(dos)).unwrap_or(&[]),
        );
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

    /// Forgets a volume (instance teardown).
    pub fn remove(&mut self, device: &[u16]) {
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
}
