//! Test-only hooks of the drill build (feature `drill`; never in a release package): a
//! reader held on request, so that the hosted drill's Filter Manager double can put a
//! callback inside the rule-set read while the console swaps rule sets (issue 19: parking
//! exercised by a reader deliberately held inside; the swap's use-after-free window).
//!
//! The request travels in the operation's requestor process id, which the double answers
//! (`FltGetRequestorProcessId`): Windows' process ids are multiples of 4, so an odd id
//! never occurs there. Layout of such an id: bits 0–1 `01`, bits 2–11 a pause in 10 ms
//! units *before the reader loads the rule set* (after it is counted and has re-checked its
//! epoch: `active::Swappable::with_on_paused`), bits 12–21 a hold in 10 ms units *inside*
//! the read (the rule set loaded, not yet evaluated), bits 22–31 [`MARK`].
//!
//! Used at two places only: `flt::evaluate_create` and `flt::evaluate_set_info`.

/// Bits 22–31 of a hold request.
pub const MARK: u64 = 0x1F4;

/// Where a reader is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Counted, epoch re-checked, rule set not loaded yet.
    BeforeLoad,
    /// Rule set loaded, not evaluated yet.
    Inside,
}

/// The hold `pid` asks for at `place`, in milliseconds (0: none).
pub fn hold_ms(pid: u64, place: Place) -> u32 {
    if pid & 3 != 1 || pid >> 22 != MARK {
        return 0;
    }
    let units = match place {
        Place::BeforeLoad => (pid >> 2) & 0x3FF,
        Place::Inside => (pid >> 12) & 0x3FF,
    };
    u32::try_from(units.saturating_mul(10)).unwrap_or(0)
}

/// Holds the current thread as `pid` asks (PASSIVE_LEVEL or APC_LEVEL: the callbacks;
/// `KeDelayExecutionThread`, kernel mode, not alertable, relative 100 ns units).
#[cfg(windows)]
pub fn hold(pid: u64, place: Place) {
    let ms = hold_ms(pid, place);
    if ms == 0 {
        return;
    }
    let interval = i64::from(ms).saturating_mul(-10_000);
    // SAFETY: a live local; KernelMode (0), not alertable, at IRQL ≤ APC_LEVEL.
    let _ = unsafe {
        windows_sys::Wdk::System::SystemServices::KeDelayExecutionThread(0, false, &interval)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_odd_ids_hold() {
        let pid = (MARK << 22) | (300 << 12) | (80 << 2) | 1;
        assert_eq!(hold_ms(pid, Place::BeforeLoad), 800);
        assert_eq!(hold_ms(pid, Place::Inside), 3000);
        assert_eq!(
            hold_ms(pid & !1, Place::Inside),
            0,
            "an even id is a real process"
        );
        assert_eq!(hold_ms(pid ^ (1 << 30), Place::Inside), 0, "another mark");
        assert_eq!(hold_ms(4, Place::Inside), 0);
        assert_eq!(hold_ms(0, Place::BeforeLoad), 0);
    }
}
