//! The bounded queue of audit events between the filter's callbacks and the console.
//!
//! Allocated once (the driver: at `DriverEntry`), never grown: a full queue drops the new
//! event and counts it, so a burst of matches costs a counter, not memory. The caller
//! provides the lock (the driver: a push lock; callbacks run at PASSIVE or APC level).
//!
//! Every queued event has a sequence number (consecutive, from 0 at the queue's creation;
//! a dropped event gets none). A read writes the oldest events into the response and
//! leaves them queued; they leave the queue when a later read's cursor is past them, i.e.
//! once the console has shown that it received them. A response that never reaches the
//! console (the I/O manager could not copy it out, the console died) loses nothing: the
//! next read returns the same events again.
//! Record layout on the wire ([`RECORD_HEAD`] bytes, then the strings):
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0  | 1 | action code of the rule (`schema::Action`) |
//! | 1  | 1 | event type code (`schema::EventType`) |
//! | 2  | 1 | flags: 1 block not applied (own directory), 2 path cut, 4 process cut |
//! | 3  | 1 | reserved, 0 |
//! | 4  | 4 | rule id |
//! | 8  | 8 | process id |
//! | 16 | 2 | path length, UTF-16 units |
//! | 18 | 2 | process image length, UTF-16 units |
//! | 20 | . | path, then process image, UTF-16LE |

use alloc::vec::Vec;

use super::wire::{EVENTS_HEAD, HEADER_LEN, MAX_EVENTS, WriteError, Writer, finish, header, kind};
use crate::error::AllocError;
use crate::mem;
use crate::schema::{Action, EventType};

/// Length of a record's fixed part.
pub const RECORD_HEAD: usize = 20;
/// Most path units kept per event (longer paths are cut, flag [`FLAG_PATH_CUT`]).
pub const MAX_PATH_UNITS: usize = 512;
/// Most process-image units kept per event.
pub const MAX_PROCESS_UNITS: usize = 260;
/// The rule said block, and the driver did not (its own directory).
pub const FLAG_NOT_APPLIED: u8 = 1;
/// The path was longer than [`MAX_PATH_UNITS`]: its first units are kept.
pub const FLAG_PATH_CUT: u8 = 2;
/// The process image was longer than [`MAX_PROCESS_UNITS`].
pub const FLAG_PROCESS_CUT: u8 = 4;
/// Every defined flag.
pub const FLAG_KNOWN: u8 = 7;
/// Events the driver's queue holds.
pub const DEFAULT_CAPACITY: usize = 64;

/// What a callback reports (the strings are passed beside it, to be copied once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// The matching rule's action.
    pub action: Action,
    /// The event's type.
    pub event_type: EventType,
    /// A block the driver did not apply.
    pub not_applied: bool,
    /// The rule's id.
    pub rule_id: u32,
    /// Process id.
    pub pid: u64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    action: u8,
    event_type: u8,
    flags: u8,
    rule_id: u32,
    pid: u64,
    path_len: u16,
    process_len: u16,
    path: [u16; MAX_PATH_UNITS],
    process: [u16; MAX_PROCESS_UNITS],
}

impl Slot {
    const EMPTY: Slot = Slot {
        action: 0,
        event_type: 0,
        flags: 0,
        rule_id: 0,
        pid: 0,
        path_len: 0,
        process_len: 0,
        path: [0; MAX_PATH_UNITS],
        process: [0; MAX_PROCESS_UNITS],
    };

    fn path(&self) -> &[u16] {
        self.path.get(..usize::from(self.path_len)).unwrap_or(&[])
    }
    fn process(&self) -> &[u16] {
        self.process
            .get(..usize::from(self.process_len))
            .unwrap_or(&[])
    }
    fn wire_len(&self) -> usize {
        RECORD_HEAD
            .saturating_add(self.path().len().saturating_mul(2))
            .saturating_add(self.process().len().saturating_mul(2))
    }
}

/// Copies as much of `src` as fits into `dst`; returns (units copied, whether cut).
fn copy_cut(dst: &mut [u16], src: &[u16]) -> (u16, bool) {
    let n = src.len().min(dst.len()).min(usize::from(u16::MAX));
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
        (u16::try_from(n).unwrap_or(0), n < src.len())
    } else {
        (0, !src.is_empty())
    }
}

/// A fixed-capacity FIFO of audit events with a drop counter.
#[derive(Debug)]
pub struct EventRing {
    slots: Vec<Slot>,
    head: usize,
    len: usize,
    dropped: u64,
    /// Sequence number the next queued event gets.
    next_seq: u64,
}

impl EventRing {
    /// A queue of `capacity` events, allocated now (about 1.6 KiB each).
    pub fn with_capacity(capacity: usize) -> Result<Self, AllocError> {
        let mut slots = mem::with_capacity(capacity)?;
        for _ in 0..capacity {
            mem::push(&mut slots, Slot::EMPTY)?;
        }
        Ok(EventRing {
            slots,
            head: 0,
            len: 0,
            dropped: 0,
            next_seq: 0,
        })
    }

    /// A queue with no room (memory could not be had): every event is counted as dropped.
    pub const fn disabled() -> Self {
        EventRing {
            slots: Vec::new(),
            head: 0,
            len: 0,
            dropped: 0,
            next_seq: 0,
        }
    }

    /// Events queued.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Events it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
    /// Events dropped since it was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Counts `n` events dropped elsewhere (the driver: found the queue's lock taken).
    pub fn add_dropped(&mut self, n: u64) {
        self.dropped = self.dropped.saturating_add(n);
    }

    /// Queues an event, copying `path` and `process` (cut to their maxima). `false`: the
    /// queue was full and the event was counted as dropped.
    pub fn push(&mut self, ev: &AuditEvent, path: &[u16], process: &[u16]) -> bool {
        let cap = self.slots.len();
        let at = self
            .head
            .checked_add(self.len)
            .and_then(|i| i.checked_rem(cap));
        let slot = match at {
            Some(i) if self.len < cap => self.slots.get_mut(i),
            _ => None,
        };
        let Some(slot) = slot else {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        };
        let (path_len, path_cut) = copy_cut(&mut slot.path, path);
        let (process_len, process_cut) = copy_cut(&mut slot.process, process);
        slot.action = ev.action.code();
        slot.event_type = ev.event_type.code();
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        slot.flags = flag(ev.not_applied, FLAG_NOT_APPLIED)
            | flag(path_cut, FLAG_PATH_CUT)
            | flag(process_cut, FLAG_PROCESS_CUT);
        slot.rule_id = ev.rule_id;
        slot.pid = ev.pid;
        slot.path_len = path_len;
        slot.process_len = process_len;
        self.len = self.len.saturating_add(1);
        self.next_seq = self.next_seq.saturating_add(1);
        true
    }

    /// Sequence number of the oldest queued event (with none: of the next one).
    pub fn first_seq(&self) -> u64 {
        self.next_seq
            .saturating_sub(u64::try_from(self.len).unwrap_or(u64::MAX))
    }

    /// Answers a read-events request with `cursor`: the events numbered below `cursor` were
    /// received and leave the queue; then as many of the remaining as fit in `buf`, at most
    /// [`MAX_EVENTS`], oldest first, are written into a response, **and stay queued** until
    /// a later cursor passes them. Fails only when not even the response's fixed part fits
    /// (then nothing is acknowledged either).
    pub fn read_into(&mut self, buf: &mut [u8], cursor: u64) -> Result<usize, WriteError> {
        let fixed = HEADER_LEN.saturating_add(EVENTS_HEAD);
        if buf.len() < fixed {
            return Err(WriteError {
                need: fixed,
                have: buf.len(),
            });
        }
        // Acknowledge: at most `len` turns.
        while self.len > 0 && self.first_seq() < cursor {
            self.head = self
                .head
                .saturating_add(1)
                .checked_rem(self.slots.len())
                .unwrap_or(0);
            self.len = self.len.saturating_sub(1);
        }
        let mut w = Writer::new(buf);
        header(&mut w, kind::READ_EVENTS, 0)?;
        w.u64(self.dropped)?;
        w.u64(self.first_seq())?;
        w.u16(0)?; // count, patched below
        w.u16(0)?;
        w.u32(0)?;
        let mut count: u16 = 0;
        let mut at = self.head;
        while usize::from(count) < self.len && count < MAX_EVENTS {
            let Some(slot) = self.slots.get(at) else {
                break;
            };
            if w.room() < slot.wire_len() {
                break;
            }
            w.u8(slot.action)?;
            w.u8(slot.event_type)?;
            w.u8(slot.flags)?;
            w.u8(0)?;
            w.u32(slot.rule_id)?;
            w.u64(slot.pid)?;
            w.u16(slot.path_len)?;
            w.u16(slot.process_len)?;
            w.units(slot.path())?;
            w.units(slot.process())?;
            at = at
                .saturating_add(1)
                .checked_rem(self.slots.len())
                .unwrap_or(0);
            count = count.saturating_add(1);
        }
        let total = finish(&mut w)?;
        let count_at = HEADER_LEN.saturating_add(16);
        if let Some(dst) = buf.get_mut(count_at..count_at.saturating_add(2)) {
            dst.copy_from_slice(&count.to_le_bytes());
        }
        Ok(total)
    }
}
