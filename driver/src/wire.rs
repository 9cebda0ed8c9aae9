//! Reading the kernel's variable-length output buffers: `KEY_VALUE_PARTIAL_INFORMATION`
//! (wdm.h) and `FILE_NAMES_INFORMATION` lists (ntifs.h). Portable and unit-tested here: the
//! kernel layer hands these functions the bytes the I/O manager filled in and never indexes
//! them itself. Every read is bounds-checked; malformed buffers yield `None` or end the
//! iteration.

use alloc::vec::Vec;

/// Registry value type `REG_SZ` (winnt.h).
pub const REG_SZ: u32 = 1;
/// Registry value type `REG_EXPAND_SZ` (winnt.h).
pub const REG_EXPAND_SZ: u32 = 2;
/// Registry value type `REG_BINARY` (winnt.h).
pub const REG_BINARY: u32 = 3;
/// Registry value type `REG_DWORD` (winnt.h).
pub const REG_DWORD: u32 = 4;
/// Registry value type `REG_QWORD` (winnt.h).
pub const REG_QWORD: u32 = 11;

/// The little-endian `u32` at byte `at`.
pub fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// The little-endian `u64` at byte `at`.
pub fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    let b: [u8; 8] = bytes.get(at..end)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// `KEY_VALUE_PARTIAL_INFORMATION`: `TitleIndex` u32, `Type` u32, `DataLength` u32,
/// `Data[DataLength]`. Returns the type and the data, or `None` when the buffer is shorter
/// than it says.
pub fn key_value_partial(buf: &[u8]) -> Option<(u32, &[u8])> {
    const DATA: usize = 12;
    let kind = le_u32(buf, 4)?;
    let len = usize::try_from(le_u32(buf, 8)?).ok()?;
    let data = buf.get(DATA..DATA.checked_add(len)?)?;
    Some((kind, data))
}

/// A `REG_DWORD` or `REG_QWORD` value as a number; other types and sizes are `None` (a
/// wrongly typed value is ignored and the default used, never misread).
pub fn number_value(kind: u32, data: &[u8]) -> Option<u64> {
    match (kind, data.len()) {
        (REG_DWORD, 4) => le_u32(data, 0).map(u64::from),
        (REG_QWORD, 8) => le_u64(data, 0),
        _ => None,
    }
}

/// A `REG_SZ` or `REG_EXPAND_SZ` value as UTF-16 code units without its trailing NULs,
/// appended to `out` (expanding `%variables%` is the caller's concern). `None` for other
/// types, odd byte counts, an empty string, or out of memory.
pub fn string_value(kind: u32, data: &[u8], out: &mut Vec<u16>) -> Option<()> {
    if !matches!(kind, REG_SZ | REG_EXPAND_SZ) || !data.len().is_multiple_of(2) {
        return None;
    }
    let mut units = data.chunks_exact(2).map(|c| match c {
        [lo, hi] => u16::from_le_bytes([*lo, *hi]),
        _ => 0,
    });
    let mut n = data.len() / 2;
    // Trailing NULs (REG_SZ data normally includes one) are not part of the string.
    while n > 0
        && data.get(n.saturating_mul(2).saturating_sub(2)..n.saturating_mul(2)) == Some(&[0, 0])
    {
        n = n.saturating_sub(1);
    }
    if n == 0 {
        return None;
    }
    out.try_reserve(n).ok()?;
    for u in units.by_ref().take(n) {
        failsafe_loader::mem::push(out, u).ok()?;
    }
    Some(())
}

/// The `FileName`s of a `FILE_NAMES_INFORMATION` list: `NextEntryOffset` u32, `FileIndex`
/// u32, `FileNameLength` u32 (bytes), `FileName[]`. Stops at the last entry, at an offset
/// that does not move forward, or at any entry that does not fit the buffer.
pub fn file_names(buf: &[u8]) -> FileNames<'_> {
    FileNames { buf, at: Some(0) }
}

/// Iterator returned by [`file_names`]; yields each name's raw UTF-16LE bytes.
#[derive(Debug)]
pub struct FileNames<'a> {
    buf: &'a [u8],
    at: Option<usize>,
}

impl<'a> Iterator for FileNames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        const NAME: usize = 12;
        let at = self.at.take()?;
        let next = usize::try_from(le_u32(self.buf, at)?).ok()?;
        let len = usize::try_from(le_u32(self.buf, at.checked_add(8)?)?).ok()?;
        let start = at.checked_add(NAME)?;
        let name = self.buf.get(start..start.checked_add(len)?)?;
        if next != 0 {
            self.at = at.checked_add(next);
        }
        Some(name)
    }
}

/// Copies as much of `src` as fits into `dst`; the number copied. `copy_from_slice`
/// without its length-mismatch panic (a panic in the kernel is a bugcheck).
pub fn copy_prefix<T: Copy>(dst: &mut [T], src: &[T]) -> usize {
    let mut n = 0usize;
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
        n = n.saturating_add(1);
    }
    n
}

/// UTF-16LE bytes as code units into `out` (which must be exactly half as long); `false`
/// when the lengths do not match.
pub fn utf16_into(bytes: &[u8], out: &mut [u16]) -> bool {
    if bytes.len() != out.len().saturating_mul(2) {
        return false;
    }
    for (u, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        if let [lo, hi] = c {
            *u = u16::from_le_bytes([*lo, *hi]);
        }
    }
    true
}

/// Well-known SIDs in their binary form (winnt.h `SID`: revision 1, sub-authority count,
/// 6-byte identifier authority big-endian, then the sub-authorities as little-endian
/// ULONGs), as `u32` words so they have the ULONG alignment a `SID` needs. From Microsoft
/// Learn "Well-known SIDs": LocalSystem S-1-5-18, BUILTIN\Administrators S-1-5-32-544.
/// The control device's DACL grants these two, and no one else, access.
pub const SID_LOCAL_SYSTEM: [u32; 3] = [
    u32::from_le_bytes([1, 1, 0, 0]), // revision 1, one sub-authority, authority bytes 0-1
    u32::from_le_bytes([0, 0, 0, 5]), // authority bytes 2-5: SECURITY_NT_AUTHORITY (5)
    18,                               // SECURITY_LOCAL_SYSTEM_RID
];
/// BUILTIN\Administrators, S-1-5-32-544 (see [`SID_LOCAL_SYSTEM`]).
pub const SID_ADMINISTRATORS: [u32; 4] = [
    u32::from_le_bytes([1, 2, 0, 0]), // revision 1, two sub-authorities
    u32::from_le_bytes([0, 0, 0, 5]), // SECURITY_NT_AUTHORITY
    32,                               // SECURITY_BUILTIN_DOMAIN_RID
    544,                              // DOMAIN_ALIAS_RID_ADMINS
];

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

    fn kvpi(kind: u32, data: &[u8], declared: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&declared.to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn registry_numbers() {
        let b = kvpi(REG_DWORD, &7u32.to_le_bytes(), 4);
        let (k, d) = key_value_partial(&b).unwrap_or_default();
        assert_eq!(number_value(k, d), Some(7));
        let b = kvpi(REG_QWORD, &(1u64 << 40).to_le_bytes(), 8);
        let (k, d) = key_value_partial(&b).unwrap_or_default();
        assert_eq!(number_value(k, d), Some(1 << 40));
        // A DWORD stored as a string, or with the wrong size, is not a number.
        assert_eq!(number_value(REG_SZ, &[1, 0, 0, 0]), None);
        assert_eq!(number_value(REG_DWORD, &[1, 0]), None);
        // A buffer shorter than its declared data length is refused.
        assert_eq!(key_value_partial(&kvpi(REG_DWORD, &[1, 0], 4)), None);
        assert_eq!(key_value_partial(&[0u8; 8]), None);
    }

    #[test]
    fn registry_strings() {
        let mut data = utf16le("\\??\\C:\\Failsafe");
        data.extend_from_slice(&[0, 0, 0, 0]);
        let mut out = Vec::new();
        assert_eq!(string_value(REG_SZ, &data, &mut out), Some(()));
        assert_eq!(out, "\\??\\C:\\Failsafe".encode_utf16().collect::<Vec<_>>());
        let mut out = Vec::new();
        assert_eq!(string_value(REG_SZ, &[0, 0], &mut out), None, "empty");
        assert_eq!(string_value(REG_SZ, &[0x41], &mut out), None, "odd length");
        assert_eq!(
            string_value(REG_DWORD, &[0x41, 0], &mut out),
            None,
            "wrong type"
        );
        assert!(out.is_empty());
        // REG_EXPAND_SZ is read as written (the caller refuses `%variables%`).
        assert_eq!(
            string_value(REG_EXPAND_SZ, &utf16le("C:\\F"), &mut out),
            Some(())
        );
        assert_eq!(out, "C:\\F".encode_utf16().collect::<Vec<_>>());
    }

    #[test]
    fn directory_entries() {
        let mut b = Vec::new();
        for (i, name) in ["1.fsc", "22.fsc", "x"].iter().enumerate() {
            let n = utf16le(name);
            let entry_len = (12 + n.len() + 7) & !7;
            let next = if i == 2 { 0 } else { entry_len as u32 };
            b.extend_from_slice(&next.to_le_bytes());
            b.extend_from_slice(&(i as u32).to_le_bytes());
            b.extend_from_slice(&(n.len() as u32).to_le_bytes());
            b.extend_from_slice(&n);
            b.resize(b.len() + entry_len - 12 - n.len(), 0);
        }
        let names: Vec<&[u8]> = file_names(&b).collect();
        assert_eq!(
            names,
            vec![
                &utf16le("1.fsc")[..],
                &utf16le("22.fsc")[..],
                &utf16le("x")[..]
            ]
        );
        // A name length past the buffer ends the listing; so does a cut-off header.
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(file_names(&bad).count(), 0);
        assert_eq!(file_names(&b[..10]).count(), 0);
        // An offset that points past the end stops after the entry before it.
        let mut far = b.clone();
        far[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(file_names(&far).count(), 1);
        let mut units = [0u16; 5];
        assert!(utf16_into(&utf16le("1.fsc"), &mut units));
        assert!(!utf16_into(&utf16le("1.fs"), &mut units));
    }

    #[test]
    fn well_known_sids_match_their_documented_bytes() {
        let bytes = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        // S-1-5-18 and S-1-5-32-544 as the SID structure lays them out.
        assert_eq!(
            bytes(&SID_LOCAL_SYSTEM),
            [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]
        );
        assert_eq!(
            bytes(&SID_ADMINISTRATORS),
            [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0]
        );
    }
}
