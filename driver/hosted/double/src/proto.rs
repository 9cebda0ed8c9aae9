//! The double's request and response format (IOCTL [`IOCTL`] on `\\.\FltMgrDouble`,
//! `METHOD_BUFFERED`), little-endian throughout. Portable: decoded and encoded here, unit
//! tested on any host; the runner (driver/hosted/double/run.py) encodes it from
//! docs/windows.md's description independently.
//!
//! Request: a 16-byte header (`FDQ1`, kind u16, worker u16, count u32, reserved u32 = 0),
//! then `count` records of the kind. Response: a 16-byte header (`FDR1`, kind u16,
//! reserved u16, status i32, body length u32), then the body.
//!
//! | kind | records | response body |
//! |---|---|---|
//! | [`KIND_OPS`] | [`OpRecord`]s, run in order on worker `worker` | a [`RESULT_SIZE`]-byte result each |
//! | [`KIND_VOLUME`] | [`VolumeCommand`]s, run in order on the dispatch thread | i32 status + u32 value each |
//! | [`KIND_PROCESS`] | process starts and exits for the driver's notify routine | i32 status each |
//! | [`KIND_REPORT`] | none | the report (`device::report`) |
//! | [`KIND_SHUTDOWN`] | none (`count` = flags: 1 through the filter, 2 the shutdown notification) | i32 status, u32 callbacks |

/// `CTL_CODE(FILE_DEVICE_UNKNOWN, 0x9D0, METHOD_BUFFERED, FILE_ANY_ACCESS)`.
pub const IOCTL: u32 = (0x22 << 16) | (0x9D0 << 2);
/// Request and response header length.
pub const HEADER: usize = 16;
/// Largest request or response the double takes (one batch).
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Operations on a volume.
pub const KIND_OPS: u16 = 1;
/// Volume and instance commands.
pub const KIND_VOLUME: u16 = 2;
/// Process notifications.
pub const KIND_PROCESS: u16 = 3;
/// The verifier's report.
pub const KIND_REPORT: u16 = 4;
/// Shutdown delivery.
pub const KIND_SHUTDOWN: u16 = 5;

/// Length of an operation record's fixed part.
pub const OP_FIXED: usize = 64;
/// Length of an operation's result.
pub const RESULT_SIZE: usize = 56;
/// Length of a volume command's fixed part.
pub const VOLUME_FIXED: usize = 32;
/// Length of a process record's fixed part.
pub const PROCESS_FIXED: usize = 8;

/// Operation flags.
pub mod op_flag {
    /// After a pre-operation callback asked for its post-operation callback, wait (up to
    /// `hold_ms`, or 30 s) until the instance is torn down, then deliver the post
    /// callback with `FLTFL_POST_OPERATION_DRAINING` (an operation in flight during a
    /// detach or unload).
    pub const DRAIN: u32 = 1;
    /// An open by file ID in pre-create: answer the name (Filter Manager can open by ID)
    /// instead of `STATUS_FLT_INVALID_NAME_REQUEST`.
    pub const OPEN_BY_ID_RESOLVES: u32 = 2;
    /// Paging I/O (`IRP_PAGING_IO` in `IrpFlags`).
    pub const PAGING_IO: u32 = 4;
    /// A fast I/O operation instead of an IRP (`FLTFL_CALLBACK_DATA_FAST_IO_OPERATION`).
    pub const FAST_IO: u32 = 8;
    /// `Parameters.Create.SecurityContext` null.
    pub const NO_SECURITY_CONTEXT: u32 = 16;
}

/// Volume command actions.
pub mod volume_action {
    /// Attach the filter at `altitude` (manual attachment).
    pub const ATTACH: u8 = 1;
    /// Detach the instance at `altitude` by hand (query-teardown first).
    pub const DETACH: u8 = 2;
    /// Dismount: tear every instance down.
    pub const DISMOUNT: u8 = 3;
    /// Define the volume: name, types, DOS answer text, DOS kind, flags.
    pub const DEFINE: u8 = 4;
    /// Configure: DOS-name failures first, DOS kind (0xFF keeps it), flags.
    pub const CONFIGURE: u8 = 5;
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    u32_at(b, at).map(|v| i32::from_le_bytes(v.to_le_bytes()))
}

/// UTF-16 units at `at`, `n` of them, borrowed when aligned, else `None`.
fn units_at(b: &[u8], at: usize, n: usize) -> Option<&[u16]> {
    let bytes = b.get(at..at.checked_add(n.checked_mul(2)?)?)?;
    // SAFETY: u8 -> u16 reinterpretation of initialized bytes; `align_to` only yields the
    // aligned middle, and every bit pattern is a valid u16.
    let (head, mid, tail) = unsafe { bytes.align_to::<u16>() };
    (head.is_empty() && tail.is_empty()).then_some(mid)
}

/// A request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Request kind.
    pub kind: u16,
    /// Worker index (operations).
    pub worker: u16,
    /// Records that follow (shutdown: flags).
    pub count: u32,
}

/// Why a request was refused (the response status is `STATUS_INVALID_PARAMETER` and
/// the double logs the reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the header.
    Short,
    /// Not `FDQ1`.
    Magic,
    /// Reserved field not zero.
    Reserved,
    /// Record `n` runs past the end or is inconsistent.
    Record(u32),
    /// Bytes after the last record.
    Trailing,
}

/// Decodes the header.
pub fn header(b: &[u8]) -> Result<Header, Malformed> {
    if b.len() < HEADER {
        return Err(Malformed::Short);
    }
    if b.get(..4) != Some(b"FDQ1".as_slice()) {
        return Err(Malformed::Magic);
    }
    if u32_at(b, 12) != Some(0) {
        return Err(Malformed::Reserved);
    }
    Ok(Header {
        kind: u16_at(b, 4).ok_or(Malformed::Short)?,
        worker: u16_at(b, 6).ok_or(Malformed::Short)?,
        count: u32_at(b, 8).ok_or(Malformed::Short)?,
    })
}

/// One operation (see docs/windows.md, "The double's protocol", for each field).
#[derive(Clone, Copy, Debug)]
pub struct OpRecord<'a> {
    /// `IRP_MJ_CREATE` (0), `IRP_MJ_SET_INFORMATION` (6).
    pub major: u8,
    /// Volume index.
    pub volume: u8,
    /// Requestor process id (`FltGetRequestorProcessId`).
    pub pid: u32,
    /// [`op_flag`]s.
    pub flags: u32,
    /// `DesiredAccess`.
    pub desired_access: u32,
    /// `Parameters.Create.Options` (disposition << 24 | options).
    pub create_options: u32,
    /// `Iopb->OperationFlags` (`SL_*`).
    pub operation_flags: u8,
    /// `RequestorMode` (0 kernel, 1 user).
    pub requestor_mode: u8,
    /// `FltGetFileNameInformation` fails with this when non-zero.
    pub name_status: i32,
    /// `FltGetDestinationFileNameInformation` fails with this when non-zero.
    pub dest_status: i32,
    /// The file system's completion status when the operation reaches it.
    pub fs_status: i32,
    /// `FileInformationClass`.
    pub info_class: u32,
    /// `Parameters.SetFileInformation.Length` as the caller gives it.
    pub info_length: u32,
    /// Milliseconds to hold the thread inside the first `FltGetFileNameInformation`.
    pub hold_name_ms: u16,
    /// `IoStatus.Information` the file system returns.
    pub fs_information: u32,
    /// The normalized name.
    pub name: &'a [u16],
    /// The opened name (the file object's `FileName`); the normalized name when empty.
    pub opened: &'a [u16],
    /// The destination's normalized name (rename and link).
    pub dest: &'a [u16],
    /// The tunneled name `FltGetTunneledName` finds (none when empty).
    pub tunnel: &'a [u16],
    /// The information buffer the caller passes (`InfoBuffer`), `info_length` bytes.
    pub buffer: &'a [u8],
}

fn pad8(n: usize) -> Option<usize> {
    n.checked_add(7).map(|v| v & !7)
}

/// Decodes the operation record at `at`; returns it and the offset of the next record.
pub fn op(b: &[u8], at: usize, n: u32) -> Result<(OpRecord<'_>, usize), Malformed> {
    let bad = Malformed::Record(n);
    let size = usize::from(u16_at(b, at).ok_or(bad)?);
    let rec = b.get(at..at.checked_add(size).ok_or(bad)?).ok_or(bad)?;
    if size < OP_FIXED
        || !size.is_multiple_of(8)
        || u16_at(rec, 22) != Some(0)
        || u32_at(rec, 60) != Some(0)
    {
        return Err(bad);
    }
    let g16 = |o: usize| u16_at(rec, o).ok_or(bad);
    let g32 = |o: usize| u32_at(rec, o).ok_or(bad);
    let gi32 = |o: usize| i32_at(rec, o).ok_or(bad);
    let (name_n, opened_n, dest_n, tunnel_n, buffer_n) = (
        usize::from(g16(44)?),
        usize::from(g16(46)?),
        usize::from(g16(48)?),
        usize::from(g16(50)?),
        usize::from(g16(52)?),
    );
    let mut p = OP_FIXED;
    let mut take = |units: usize| -> Result<&[u16], Malformed> {
        let s = units_at(rec, p, units).ok_or(bad)?;
        p = p.checked_add(units.checked_mul(2).ok_or(bad)?).ok_or(bad)?;
        Ok(s)
    };
    let name = take(name_n)?;
    let opened = take(opened_n)?;
    let dest = take(dest_n)?;
    let tunnel = take(tunnel_n)?;
    let buffer = rec.get(p..p.checked_add(buffer_n).ok_or(bad)?).ok_or(bad)?;
    let end = pad8(p.checked_add(buffer_n).ok_or(bad)?).ok_or(bad)?;
    if end != size {
        return Err(bad);
    }
    let r = OpRecord {
        major: *rec.get(2).ok_or(bad)?,
        volume: *rec.get(3).ok_or(bad)?,
        pid: g32(4)?,
        flags: g32(8)?,
        desired_access: g32(12)?,
        create_options: g32(16)?,
        operation_flags: *rec.get(20).ok_or(bad)?,
        requestor_mode: *rec.get(21).ok_or(bad)?,
        name_status: gi32(24)?,
        dest_status: gi32(28)?,
        fs_status: gi32(32)?,
        info_class: g32(36)?,
        info_length: g32(40)?,
        hold_name_ms: g16(54)?,
        fs_information: g32(56)?,
        name,
        opened,
        dest,
        tunnel,
        buffer,
    };
    Ok((r, at.checked_add(size).ok_or(bad)?))
}

/// An operation's result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpResult {
    /// Index of the operation in its batch.
    pub index: u32,
    /// Instances whose pre-operation callback ran.
    pub pre_called: u8,
    /// Post-operation callbacks that ran.
    pub post_called: u8,
    /// [`result_flag`]s.
    pub flags: u8,
    /// Pre-operation callback statuses (up to two instances; -1 not called).
    pub pre_status: [i32; 2],
    /// Post-operation callback statuses (-1 not called).
    pub post_status: [i32; 2],
    /// The operation's final `IoStatus.Status`.
    pub io_status: i32,
    /// Name structures the operation acquired.
    pub names_acquired: u32,
    /// Name structures still held after it.
    pub names_leaked: u32,
    /// Violations detected during it.
    pub violations: u32,
    /// Time-stamp-counter ticks in the first instance's pre-operation callback.
    pub pre_ticks: u64,
    /// The operation's final `IoStatus.Information`.
    pub information: u64,
}

/// Result flags.
pub mod result_flag {
    /// A pre-operation callback completed the operation (`FLT_PREOP_COMPLETE`).
    pub const COMPLETED: u8 = 1;
    /// `FltCancelFileOpen` was called in the post-create callback.
    pub const CANCELLED: u8 = 2;
    /// A post-operation callback ran with `FLTFL_POST_OPERATION_DRAINING`.
    pub const DRAINED: u8 = 4;
    /// No instance saw the operation (filter not filtering, or no instance on the volume).
    pub const UNFILTERED: u8 = 8;
    /// The record was malformed; nothing ran (`io_status` = `STATUS_INVALID_PARAMETER`).
    pub const MALFORMED: u8 = 16;
}

impl OpResult {
    /// The result's bytes.
    pub fn encode(&self) -> [u8; RESULT_SIZE] {
        let mut o = [0u8; RESULT_SIZE];
        let mut put = |at: usize, v: &[u8]| {
            if let Some(d) = o.get_mut(at..at.saturating_add(v.len())) {
                d.copy_from_slice(v);
            }
        };
        put(0, &self.index.to_le_bytes());
        put(4, &[self.pre_called, self.post_called, self.flags, 0]);
        put(8, &self.pre_status[0].to_le_bytes());
        put(12, &self.pre_status[1].to_le_bytes());
        put(16, &self.post_status[0].to_le_bytes());
        put(20, &self.post_status[1].to_le_bytes());
        put(24, &self.io_status.to_le_bytes());
        put(28, &self.names_acquired.to_le_bytes());
        put(32, &self.names_leaked.to_le_bytes());
        put(36, &self.violations.to_le_bytes());
        put(40, &self.pre_ticks.to_le_bytes());
        put(48, &self.information.to_le_bytes());
        o
    }
}

/// A volume command.
#[derive(Clone, Copy, Debug)]
pub struct VolumeCommand<'a> {
    /// [`volume_action`].
    pub action: u8,
    /// Volume index.
    pub volume: u8,
    /// Altitude (attach, detach).
    pub altitude: u32,
    /// `FLT_FILESYSTEM_TYPE` (define).
    pub fs_type: u32,
    /// Device type (define).
    pub device_type: u32,
    /// DOS-name failures before an answer (configure).
    pub dos_failures: u32,
    /// Volume flags (define, configure).
    pub flags: u32,
    /// DOS kind (define, configure; 0xFF in configure keeps it).
    pub dos_kind: u32,
    /// Device name (define).
    pub name: &'a [u16],
    /// DOS answer text (define).
    pub dos: &'a [u16],
}

/// Decodes the volume command at `at`.
pub fn volume(b: &[u8], at: usize, n: u32) -> Result<(VolumeCommand<'_>, usize), Malformed> {
    let bad = Malformed::Record(n);
    let fixed = b
        .get(at..at.checked_add(VOLUME_FIXED).ok_or(bad)?)
        .ok_or(bad)?;
    let name_n = usize::from(u16_at(fixed, 2).ok_or(bad)?);
    let dos_n = usize::from(u16_at(fixed, 28).ok_or(bad)?);
    if u16_at(fixed, 30) != Some(0) {
        return Err(bad);
    }
    let name_at = at.checked_add(VOLUME_FIXED).ok_or(bad)?;
    let name = units_at(b, name_at, name_n).ok_or(bad)?;
    let dos_at = name_at
        .checked_add(name_n.checked_mul(2).ok_or(bad)?)
        .ok_or(bad)?;
    let dos = units_at(b, dos_at, dos_n).ok_or(bad)?;
    let end = pad8(
        dos_at
            .checked_add(dos_n.checked_mul(2).ok_or(bad)?)
            .ok_or(bad)?,
    )
    .ok_or(bad)?;
    if end > b.len() {
        return Err(bad);
    }
    let c = VolumeCommand {
        action: *fixed.first().ok_or(bad)?,
        volume: *fixed.get(1).ok_or(bad)?,
        altitude: u32_at(fixed, 4).ok_or(bad)?,
        fs_type: u32_at(fixed, 8).ok_or(bad)?,
        device_type: u32_at(fixed, 12).ok_or(bad)?,
        dos_failures: u32_at(fixed, 16).ok_or(bad)?,
        flags: u32_at(fixed, 20).ok_or(bad)?,
        dos_kind: u32_at(fixed, 24).ok_or(bad)?,
        name,
        dos,
    };
    Ok((c, end))
}

/// A process start (`image` non-empty) or exit.
#[derive(Clone, Copy, Debug)]
pub struct ProcessRecord<'a> {
    /// 1 start, 2 exit.
    pub action: u8,
    /// Process id.
    pub pid: u32,
    /// Image file name (starts).
    pub image: &'a [u16],
}

/// Decodes the process record at `at`.
pub fn process(b: &[u8], at: usize, n: u32) -> Result<(ProcessRecord<'_>, usize), Malformed> {
    let bad = Malformed::Record(n);
    let fixed = b
        .get(at..at.checked_add(PROCESS_FIXED).ok_or(bad)?)
        .ok_or(bad)?;
    let units = usize::from(u16_at(fixed, 2).ok_or(bad)?);
    let image_at = at.checked_add(PROCESS_FIXED).ok_or(bad)?;
    let image = units_at(b, image_at, units).ok_or(bad)?;
    let end = pad8(
        image_at
            .checked_add(units.checked_mul(2).ok_or(bad)?)
            .ok_or(bad)?,
    )
    .ok_or(bad)?;
    let action = *fixed.first().ok_or(bad)?;
    if end > b.len() || !(1..=2).contains(&action) || *fixed.get(1).ok_or(bad)? != 0 {
        return Err(bad);
    }
    Ok((
        ProcessRecord {
            action,
            pid: u32_at(fixed, 4).ok_or(bad)?,
            image,
        },
        end,
    ))
}

/// A response header.
pub fn response_header(kind: u16, status: i32, body: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    let parts: [(usize, &[u8]); 4] = [
        (0, b"FDR1"),
        (4, &kind.to_le_bytes()),
        (8, &status.to_le_bytes()),
        (12, &body.to_le_bytes()),
    ];
    for (at, v) in parts {
        if let Some(d) = h.get_mut(at..at.saturating_add(v.len())) {
            d.copy_from_slice(v);
        }
    }
    h
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    reason = "tests: a failed expectation is a test failure"
)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    /// An 8-aligned buffer (records hold UTF-16 at even offsets of an aligned buffer, as
    /// the I/O manager's system buffer is).
    fn aligned(bytes: &[u8]) -> Vec<u64> {
        let mut v = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: the Vec<u64> holds at least `bytes.len()` bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast(), bytes.len())
        };
        v
    }

    fn as_bytes(v: &[u64], n: usize) -> &[u8] {
        // SAFETY: the Vec's memory, at least `n` bytes.
        unsafe { core::slice::from_raw_parts(v.as_ptr().cast(), n) }
    }

    fn op_bytes(name: &str, dest: &str, buffer: &[u8]) -> Vec<u8> {
        let (n, d) = (w(name), w(dest));
        let body = OP_FIXED + 2 * (n.len() + d.len()) + buffer.len();
        let size = (body + 7) & !7;
        let mut r = vec![0u8; size];
        r[0..2].copy_from_slice(&(size as u16).to_le_bytes());
        r[2] = 6;
        r[3] = 1;
        r[4..8].copy_from_slice(&1234u32.to_le_bytes());
        r[36..40].copy_from_slice(&10u32.to_le_bytes());
        r[40..44].copy_from_slice(&(buffer.len() as u32).to_le_bytes());
        r[44..46].copy_from_slice(&(n.len() as u16).to_le_bytes());
        r[48..50].copy_from_slice(&(d.len() as u16).to_le_bytes());
        r[52..54].copy_from_slice(&(buffer.len() as u16).to_le_bytes());
        let mut p = OP_FIXED;
        for u in n.iter().chain(&d) {
            r[p..p + 2].copy_from_slice(&u.to_le_bytes());
            p += 2;
        }
        r[p..p + buffer.len()].copy_from_slice(buffer);
        r
    }

    #[test]
    fn an_operation_record_round_trips_its_fields() {
        let rec = op_bytes(
            "\\Device\\HarddiskVolume3\\a.txt",
            "\\Device\\HarddiskVolume3\\b.txt",
            &[1, 2, 3],
        );
        let buf = aligned(&rec);
        let (r, next) = op(as_bytes(&buf, rec.len()), 0, 0).unwrap();
        assert_eq!(next, rec.len());
        assert_eq!((r.major, r.volume, r.pid, r.info_class), (6, 1, 1234, 10));
        assert_eq!(r.name, w("\\Device\\HarddiskVolume3\\a.txt").as_slice());
        assert_eq!(r.dest, w("\\Device\\HarddiskVolume3\\b.txt").as_slice());
        assert_eq!(r.buffer, &[1, 2, 3]);
        assert!(r.opened.is_empty() && r.tunnel.is_empty());
    }

    #[test]
    fn malformed_operation_records_are_refused_with_their_index() {
        let rec = op_bytes("\\a", "", &[]);
        // Size past the end.
        let mut long = rec.clone();
        long[0..2].copy_from_slice(&((rec.len() + 8) as u16).to_le_bytes());
        let b = aligned(&long);
        assert_eq!(
            op(as_bytes(&b, long.len()), 0, 7).unwrap_err(),
            Malformed::Record(7)
        );
        // A name longer than the record says.
        let mut bad = rec.clone();
        bad[44..46].copy_from_slice(&400u16.to_le_bytes());
        let b = aligned(&bad);
        assert_eq!(
            op(as_bytes(&b, bad.len()), 0, 3).unwrap_err(),
            Malformed::Record(3)
        );
        // Reserved bytes set.
        let mut res = rec.clone();
        res[60] = 1;
        let b = aligned(&res);
        assert_eq!(
            op(as_bytes(&b, res.len()), 0, 1).unwrap_err(),
            Malformed::Record(1)
        );
        // Size not a multiple of 8 / below the fixed part.
        let mut odd = rec.clone();
        odd[0..2].copy_from_slice(&60u16.to_le_bytes());
        let b = aligned(&odd);
        assert_eq!(
            op(as_bytes(&b, odd.len()), 0, 2).unwrap_err(),
            Malformed::Record(2)
        );
    }

    #[test]
    fn headers_say_what_is_wrong() {
        assert_eq!(header(b"FDQ1").unwrap_err(), Malformed::Short);
        assert_eq!(header(&[0u8; 16]).unwrap_err(), Malformed::Magic);
        let mut h = *b"FDQ1\x01\x00\x02\x00\x05\x00\x00\x00\x00\x00\x00\x00";
        assert_eq!(
            header(&h).unwrap(),
            Header {
                kind: 1,
                worker: 2,
                count: 5
            }
        );
        h[12] = 1;
        assert_eq!(header(&h).unwrap_err(), Malformed::Reserved);
    }

    #[test]
    fn results_encode_at_the_documented_offsets() {
        let r = OpResult {
            index: 9,
            pre_called: 1,
            post_called: 0,
            flags: result_flag::COMPLETED,
            pre_status: [4, -1],
            post_status: [-1, -1],
            io_status: 0xC000_0022_u32 as i32,
            names_acquired: 2,
            names_leaked: 0,
            violations: 0,
            pre_ticks: 77,
            information: 5,
        };
        let b = r.encode();
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), 9);
        assert_eq!(&b[4..8], &[1, 0, 1, 0]);
        assert_eq!(i32::from_le_bytes(b[8..12].try_into().unwrap()), 4);
        assert_eq!(
            u32::from_le_bytes(b[24..28].try_into().unwrap()),
            0xC000_0022
        );
        assert_eq!(u64::from_le_bytes(b[40..48].try_into().unwrap()), 77);
        assert_eq!(u64::from_le_bytes(b[48..56].try_into().unwrap()), 5);
        let h = response_header(KIND_OPS, 0, 56);
        assert_eq!(&h[0..4], b"FDR1");
        assert_eq!(u32::from_le_bytes(h[12..16].try_into().unwrap()), 56);
    }

    #[test]
    fn volume_and_process_records_decode() {
        let name = w("\\Device\\HarddiskVolume13");
        let mut v = vec![0u8; VOLUME_FIXED];
        v[0] = volume_action::DEFINE;
        v[1] = 6;
        v[2..4].copy_from_slice(&(name.len() as u16).to_le_bytes());
        v[8..12].copy_from_slice(&2u32.to_le_bytes());
        for u in &name {
            v.extend_from_slice(&u.to_le_bytes());
        }
        while !v.len().is_multiple_of(8) {
            v.push(0);
        }
        let b = aligned(&v);
        let (c, end) = volume(as_bytes(&b, v.len()), 0, 0).unwrap();
        assert_eq!(
            (c.action, c.volume, c.fs_type, end),
            (volume_action::DEFINE, 6, 2, v.len())
        );
        assert_eq!(c.name, name.as_slice());
        let img = w("\\??\\C:\\x.exe");
        let mut p = vec![1u8, 0];
        p.extend_from_slice(&(img.len() as u16).to_le_bytes());
        p.extend_from_slice(&44u32.to_le_bytes());
        for u in &img {
            p.extend_from_slice(&u.to_le_bytes());
        }
        while !p.len().is_multiple_of(8) {
            p.push(0);
        }
        let b = aligned(&p);
        let (r, _) = process(as_bytes(&b, p.len()), 0, 0).unwrap();
        assert_eq!((r.action, r.pid, r.image), (1, 44, img.as_slice()));
        p[0] = 3;
        let b = aligned(&p);
        assert_eq!(
            process(as_bytes(&b, p.len()), 0, 4).unwrap_err(),
            Malformed::Record(4)
        );
    }
}
