//! The verifier: every contract violation the double detects, by code, with a count and the
//! first [`RECORDS`] occurrences (code, sequence number, three values). The runner reads
//! them with the report request and fails on any. Codes are stable (docs/windows.md, "The
//! double's checks", lists each with the Microsoft Learn page it comes from).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::kit;

/// A violation's code ([`proto`](crate::proto) reports them as numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    /// `FLT_REGISTRATION`: size, version, flags, operation table or context table invalid.
    Registration = 1,
    /// A pre-operation callback returned a value not documented for an IRP-based
    /// create / set-information (`PFLT_PRE_OPERATION_CALLBACK`).
    PreopStatus = 2,
    /// `FLT_PREOP_COMPLETE` with `IoStatus.Status == STATUS_PENDING`.
    CompletePending = 3,
    /// `FLT_PREOP_SUCCESS_WITH_CALLBACK` / `FLT_PREOP_SYNCHRONIZE` without a registered
    /// post-operation callback.
    NoPostCallback = 4,
    /// `*CompletionContext` set although the status was neither WITH_CALLBACK nor
    /// SYNCHRONIZE ("Otherwise, it must be NULL").
    CompletionContext = 5,
    /// A post-operation callback returned a value the double cannot honour for this
    /// operation (`MORE_PROCESSING_REQUIRED` without `FltCompletePendedPostOperation`,
    /// `DISALLOW_FSFILTER_IO` outside QueryOpen, anything but FINISHED while draining).
    PostopStatus = 6,
    /// `FltReleaseFileNameInformation` / `FltReferenceFileNameInformation` of a pointer the
    /// double did not hand out, or one already released.
    NameUnknown = 7,
    /// A name handed out during an operation was still referenced after it completed.
    NameLeak = 8,
    /// `FLT_FILE_NAME_OPTIONS` without exactly one format and one query method.
    NameOptions = 9,
    /// A `PFLT_CALLBACK_DATA` that is not a live operation's.
    CallbackData = 10,
    /// A push lock used without `FltInitializePushLock`.
    PushLockUninitialized = 11,
    /// `FltReleasePushLock` of a lock not held.
    PushLockNotHeld = 12,
    /// `FltDeletePushLock` of a lock still held.
    PushLockDeletedHeld = 13,
    /// `FltInitializePushLock` of a lock already initialized and not deleted.
    PushLockReinitialized = 14,
    /// `FltCancelFileOpen` outside a post-create callback, or after a failed create.
    CancelOutsidePostCreate = 15,
    /// After `FltCancelFileOpen`, the post-create callback left a success status.
    CancelWithoutFailure = 16,
    /// `FltGetTunneledName` outside a post-create / post-set-information callback.
    TunnelOutsidePost = 17,
    /// More `ObDereferenceObject` of a volume's disk device object than
    /// `FltGetDiskDeviceObject` references.
    DiskReferenceUnderflow = 18,
    /// `FltObjectDereference` of an object not referenced.
    ObjectReferenceUnderflow = 19,
    /// Something of the driver was left when its unload finished (see the leftover bits).
    UnloadLeftover = 20,
    /// `FltUnregisterFilter` / `FltStartFiltering` of an unknown or gone filter, or twice.
    FilterHandle = 21,
    /// A `PFLT_VOLUME` / `PFLT_INSTANCE` that is not one of the double's live objects.
    ObjectUnknown = 22,
    /// `FltGetDestinationFileNameInformation` given a name outside the operation's
    /// information buffer.
    DestinationOutsideBuffer = 23,
    /// `PsSetCreateProcessNotifyRoutineEx(.., TRUE)` of a routine not registered.
    NotifyRemoveUnknown = 24,
    /// An instance reference (`FltObjectReference`) still held when its teardown ended.
    InstanceReferenceHeld = 25,
    /// A callback the double cannot honour (a pended pre-operation, contexts).
    Unsupported = 26,
    /// `FltGetFileNameInformation` outside a callback of the operation it names (after
    /// the operation ended).
    NameAfterOperation = 27,
    /// A push lock acquired again by the thread that holds it exclusively ("the thread
    /// will hang", FltAcquirePushLockExclusive / Shared).
    PushLockRecursive = 28,
}

impl Code {
    /// The code's number.
    #[allow(
        clippy::as_conversions,
        reason = "a fieldless #[repr(u32)] enum's discriminant"
    )]
    pub const fn value(self) -> u32 {
        self as u32
    }
}

/// Violation records kept in full.
pub const RECORDS: usize = 64;

/// One violation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Record {
    /// [`Code`] as a number.
    pub code: u32,
    /// Order of detection (1-based).
    pub seq: u32,
    /// Values that say where (an address, a status, an operation number).
    pub values: [u64; 3],
}

static TOTAL: AtomicU32 = AtomicU32::new(0);
static COUNT: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];

/// A record's fields as atomics: the report may read a slot while it is written.
struct Slot {
    code: AtomicU32,
    seq: AtomicU32,
    values: [AtomicU64; 3],
}

static RECORDED: [Slot; RECORDS] = [const {
    Slot {
        code: AtomicU32::new(0),
        seq: AtomicU32::new(0),
        values: [const { AtomicU64::new(0) }; 3],
    }
}; RECORDS];

/// Notes a violation (any thread, any time).
pub fn violation(code: Code, values: [u64; 3]) {
    let seq = TOTAL.fetch_add(1, Ordering::AcqRel).saturating_add(1);
    let c = code.value();
    if let Some(n) = COUNT.get(usize::try_from(c).unwrap_or(usize::MAX)) {
        n.fetch_add(1, Ordering::Relaxed);
    }
    let slot = usize::try_from(seq.saturating_sub(1)).unwrap_or(usize::MAX);
    if let Some(r) = RECORDED.get(slot) {
        for (d, &v) in r.values.iter().zip(values.iter()) {
            d.store(v, Ordering::Relaxed);
        }
        r.code.store(c, Ordering::Relaxed);
        r.seq.store(seq, Ordering::Release);
    }
    let [first, _, _] = values;
    kit::log2(c"violation", u64::from(c), first);
}

/// Violations so far.
pub fn total() -> u32 {
    TOTAL.load(Ordering::Acquire)
}

/// Violations of one code so far.
pub fn count(code: Code) -> u64 {
    COUNT
        .get(usize::try_from(code.value()).unwrap_or(usize::MAX))
        .map_or(0, |n| n.load(Ordering::Relaxed))
}

/// Copies the first violations recorded so far into `out`; returns how many.
pub fn records(out: &mut [Record; RECORDS]) -> usize {
    let mut n = 0usize;
    for (d, s) in out.iter_mut().zip(RECORDED.iter()) {
        let seq = s.seq.load(Ordering::Acquire);
        if seq == 0 {
            break;
        }
        let mut values = [0u64; 3];
        for (v, a) in values.iter_mut().zip(s.values.iter()) {
            *v = a.load(Ordering::Relaxed);
        }
        *d = Record {
            code: s.code.load(Ordering::Relaxed),
            seq,
            values,
        };
        n = n.saturating_add(1);
    }
    n
}
