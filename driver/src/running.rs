//! What the driver keeps after its start for the events that follow (health, shutdown,
//! power transitions, live changes), and how those events close or reopen this start's
//! attempt. Portable, generic over the record's medium and the content store, so the
//! lifecycle is unit-tested here; the kernel layer keeps one `Running<KernelMedium,
//! KernelStore>` under its record lock (`kernel::globals::STATE`) and calls these at
//! PASSIVE_LEVEL with that lock held.

use failsafe_loader::RuleSet;
use failsafe_loader::state::machine::{Activation, BuildActivation, LiveRefusal};
use failsafe_loader::state::record::{Attempt, BuildAttempt, Phase};
use failsafe_loader::state::{Config, Durable, Env, Started, State, StateMedium};
use failsafe_loader::trust::Trust;

/// Why an attempt is closed as clean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// An orderly stop: unload, or the system shutting down. No live change may open an
    /// attempt afterwards.
    Stop,
    /// The content never ran (its rule set could not be handed to the callbacks, or
    /// filtering did not start): not charged, and nothing runs; live changes stay allowed.
    NotRun,
}

/// A system power transition (the `\Callback\PowerState` callback's
/// `PO_CB_SYSTEM_STATE_LOCK`, wdm.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// A sleep or hibernation state is imminent, Fast Startup's "shutdown" included (no
    /// `IRP_MJ_SHUTDOWN` is sent for it).
    Sleep,
    /// Back in the working state (S0) with this session.
    Wake,
}

/// What the health and shutdown events need after the start.
#[derive(Debug)]
pub struct Running<M, S> {
    /// The durable record.
    pub durable: Durable<M>,
    /// The attempt this start activated: the only one its health check and shutdown may
    /// close (`None`: nothing active; then `build` is what they close).
    pub activation: Option<Activation>,
    /// This start's attempt of the driver build (issue 20): closed by the health check and
    /// shutdown while no content is active (`None`: a safe start, which made none).
    pub build: Option<BuildActivation>,
    /// The configuration the start used.
    pub cfg: Config,
    /// Interrupt time (100 ns) when the content became active (at the start or at a live
    /// swap), for the uptime evidence.
    pub active_since: u64,
    /// The content store, for live activations.
    pub store: S,
    /// The environment of this start (Safe Mode, write filters), for live activations.
    pub env: Env,
    /// The keys content must be signed with (as read at the start).
    pub trust: Trust,
    /// The active content came through the control channel, not the start.
    pub live: bool,
    /// The attempt was closed for an orderly stop (unload, shutdown): no live change may
    /// open another.
    pub closing: bool,
    /// The attempt was closed clean for a sleep or hibernation (`Power::Sleep`): a wake
    /// reopens it.
    pub suspended: bool,
}

/// `s` with this start's attempts in progress again where a sleep closed them clean: the
/// content's (`act`) and the build's (`build`; closed with the content's, or alone without
/// content). `None` when neither is (healthy, replaced by a live change, another start's).
#[inline(never)]
fn reopened(s: &State, act: Option<&Activation>, build: Option<&BuildActivation>) -> Option<State> {
    let content = act.and_then(|act| {
        s.attempt.filter(|a| {
            a.ver == act.ver && a.boot == act.boot && s.boot == act.boot && a.phase == Phase::Clean
        })
    });
    let clean = Some(BuildAttempt {
        phase: Phase::Clean,
        boot: build.map_or(0, |b| b.boot),
    });
    let build = build.filter(|b| {
        s.boot == b.boot
            && s.driver
                .is_some_and(|d| d.build == b.build && d.attempt == clean)
    });
    if content.is_none() && build.is_none() {
        return None;
    }
    let mut n = *s;
    if let Some(a) = content {
        n.attempt = Some(Attempt {
            phase: Phase::InProgress,
            ..a
        });
    }
    if let Some(b) = build
        && let Some(d) = n.driver.as_mut()
    {
        d.attempt = Some(BuildAttempt {
            phase: Phase::InProgress,
            boot: b.boot,
        });
    }
    Some(n)
}

impl<M: StateMedium, S> Running<M, S> {
    /// After the start: `publish` hands the start's rule set to the callbacks (`false`:
    /// it could not, e.g. no pool memory to move it to). Returns the version that runs.
    /// Content that never ran has its attempt closed as clean, so it is not charged.
    pub fn after_start(
        started: Started<M>,
        publish: impl FnOnce(RuleSet) -> bool,
        cfg: Config,
        store: S,
        env: Env,
        trust: Trust,
        now: u64,
    ) -> (Self, Option<u64>) {
        let (mut version, mut activation) = (None, None);
        if let Some((ver, rules)) = started.active
            && publish(rules)
        {
            version = Some(ver.version);
            activation = started.activation;
        }
        let lost = started.activation.filter(|_| activation.is_none());
        let mut running = Running {
            durable: started.durable,
            activation: lost.or(activation),
            build: started.build,
            cfg,
            active_since: now,
            store,
            env,
            trust,
            live: false,
            closing: false,
            suspended: false,
        };
        if lost.is_some() {
            running.close(Close::NotRun);
        }
        (running, version)
    }

    /// Closes this start's attempt as clean (nothing if this start activated nothing), for
    /// `why`. Only an orderly stop refuses live changes afterwards: content that never ran
    /// is no reason to refuse the next push that boot (issue 19, finding 7). Whether the
    /// record changed (the caller mirrors it then).
    pub fn close(&mut self, why: Close) -> bool {
        if why == Close::Stop {
            // Under the same lock as live changes: none can open an attempt after this.
            self.closing = true;
        }
        let mut changed = false;
        if self.durable.refresh().is_ok() {
            // The content's attempt closes the build's with it; without content, the
            // build's alone.
            changed = match (self.activation, self.build) {
                (Some(act), _) => self.durable.clean_shutdown(&act) == Ok(true),
                (None, Some(b)) => self.durable.build_shutdown(&b) == Ok(true),
                (None, None) => false,
            };
        }
        if why == Close::NotRun {
            self.activation = None;
        }
        changed
    }

    /// A power transition. Returns `true` when the health window must be armed afresh.
    ///
    /// `Sleep` closes this start's attempt as clean, as an orderly shutdown would, but
    /// remembers it: Fast Startup hibernates the kernel session instead of shutting down
    /// (no `IRP_MJ_SHUTDOWN`), and if the hibernation file is then discarded the next boot
    /// is a cold start that would otherwise find the attempt in progress and charge it
    /// (issue 19, finding 8). `Wake` reopens the attempt (in progress again, so a crash of
    /// the resumed session is charged as before) and its health window starts again. Live
    /// changes stay allowed throughout: this is no stop.
    pub fn power(&mut self, p: Power) -> bool {
        if self.closing || (self.activation.is_none() && self.build.is_none()) {
            return false;
        }
        let (act, build) = (self.activation, self.build);
        match p {
            Power::Sleep => {
                // The content's attempt closes the build's with it (as at shutdown).
                self.suspended = self.durable.refresh().is_ok()
                    && match (act, build) {
                        (Some(act), _) => self.durable.clean_shutdown(&act),
                        (None, Some(b)) => self.durable.build_shutdown(&b),
                        (None, None) => Ok(false),
                    }
                    .unwrap_or(false);
                false
            }
            Power::Wake => {
                if !core::mem::take(&mut self.suspended) || self.durable.refresh().is_err() {
                    return false;
                }
                self.durable
                    .apply(|s| reopened(s, act.as_ref(), build.as_ref()))
                    .unwrap_or(false)
            }
        }
    }

    /// A live change (activate, rollback) may go ahead: refused `shutting-down` once an
    /// orderly stop closed this start's attempt.
    pub fn live_allowed(&self) -> Result<(), LiveRefusal> {
        if self.closing {
            return Err(LiveRefusal::ShuttingDown);
        }
        Ok(())
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
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;
    use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN};
    use failsafe_loader::state::{ContentStore, IoError};
    use failsafe_loader::trust::{KeyKind, Trust};
    use failsafe_loader::{Content, encode};
    use std::collections::BTreeMap;

    /// The record in memory.
    #[derive(Debug, Default)]
    pub(crate) struct Mem {
        pub(crate) rec: Option<Vec<u8>>,
    }

    impl StateMedium for &mut Mem {
        fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
            match &self.rec {
                None => Ok(false),
                Some(r) => {
                    buf.copy_from_slice(r);
                    Ok(true)
                }
            }
        }
        fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
            let rec = self.rec.get_or_insert_with(|| alloc::vec![0; RECORD_LEN]);
            rec[slot * SLOT_LEN..(slot + 1) * SLOT_LEN].copy_from_slice(bytes);
            Ok(())
        }
    }

    /// Signed content files by version.
    #[derive(Debug, Default)]
    pub(crate) struct Store(pub(crate) BTreeMap<u64, Vec<u8>>);

    impl ContentStore for Store {
        fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
            out.extend(self.0.keys());
            Ok(())
        }
        fn read(&mut self, version: u64, limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
            let f = self.0.get(&version).ok_or(IoError { code: 2 })?;
            buf.clear();
            buf.extend_from_slice(&f[..f.len().min(limit)]);
            Ok(())
        }
    }

    /// A key made for this test process, and the trust in it as a release key.
    fn key() -> &'static (ed25519_compact::KeyPair, Trust) {
        static KEY: std::sync::OnceLock<(ed25519_compact::KeyPair, Trust)> =
            std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            let kp = ed25519_compact::KeyPair::generate();
            let mut t = Trust::EMPTY;
            t.add(*kp.pk, KeyKind::Release).unwrap();
            (kp, t)
        })
    }

    /// Content `version` (no rules), signed as `failsafectl sign` signs.
    pub(crate) fn signed(version: u64) -> Vec<u8> {
        let bytes = encode(&Content {
            version,
            rules: alloc::vec![],
        })
        .unwrap();
        let kp = &key().0;
        let id = failsafe_loader::trust::key_id(&kp.pk);
        let mut p = failsafe_loader::format::prepare_signed(&bytes, id).unwrap();
        let msg = [failsafe_loader::trust::CONTEXT, &p[..80]].concat();
        let sig = kp.sk.sign(msg, None);
        p.extend_from_slice(&sig[..]);
        p
    }

    /// A real start (the core's start sequence) of version 7 over `mem`.
    pub(crate) fn start(mem: &mut Mem) -> Started<&mut Mem> {
        let mut store = Store::default();
        store.0.insert(7, signed(7));
        failsafe_loader::state::start::start_with_trust(
            mem,
            &mut store,
            &Config::default(),
            &Env::default(),
            &key().1,
        )
    }

    /// The review's finding 7 (issue 19): a start whose rule set could not be handed to
    /// the callbacks closes its attempt clean (the content never ran) but is no orderly
    /// stop: live changes that boot must still be allowed.
    #[test]
    fn a_start_that_could_not_publish_closes_clean_and_still_takes_live_changes() {
        let mut mem = Mem::default();
        let started = start(&mut mem);
        assert!(started.activation.is_some(), "the start activated v7");
        let (r, version) = Running::after_start(
            started,
            |_| false,
            Config::default(),
            Store::default(),
            Env::default(),
            Trust::EMPTY,
            0,
        );
        assert_eq!(version, None);
        assert_eq!(r.activation, None, "nothing runs");
        let attempt = r.durable.state().attempt.unwrap();
        assert_eq!(
            (attempt.ver.version, attempt.phase),
            (7, Phase::Clean),
            "not charged"
        );
        assert_eq!(r.live_allowed(), Ok(()), "a live change is no shutdown");
    }

    fn published(mem: &mut Mem) -> Running<&mut Mem, Store> {
        let (r, version) = Running::after_start(
            start(mem),
            |_| true,
            Config::default(),
            Store::default(),
            Env::default(),
            Trust::EMPTY,
            0,
        );
        assert_eq!(version, Some(7));
        r
    }

    /// Unclean starts charged to v7 as the next start finds them.
    fn charged_at_next_start(mut mem: Mem) -> u8 {
        start(&mut mem).durable.state().attempts(7)
    }

    /// The review's finding 8 (issue 19): Fast Startup hibernates instead of shutting down
    /// (no `IRP_MJ_SHUTDOWN`); when the hibernation file is then discarded (a cold boot),
    /// the next start found the attempt in progress and charged good content.
    #[test]
    fn a_fast_startup_whose_hibernation_file_is_discarded_charges_nothing() {
        let mut mem = Mem::default();
        let mut r = published(&mut mem);
        assert!(!r.power(Power::Sleep), "nothing to arm on the way down");
        drop(r);
        assert_eq!(
            charged_at_next_start(mem),
            0,
            "a deliberate power-off is not a crash"
        );
    }

    #[test]
    fn a_wake_reopens_the_attempt_so_a_later_crash_is_charged() {
        let mut mem = Mem::default();
        let mut r = published(&mut mem);
        let _ = r.power(Power::Sleep);
        assert_eq!(r.durable.state().attempt.unwrap().phase, Phase::Clean);
        assert!(r.power(Power::Wake), "the health window starts again");
        assert_eq!(r.durable.state().attempt.unwrap().phase, Phase::InProgress);
        assert_eq!(r.live_allowed(), Ok(()));
        // A second wake (no sleep before it) changes nothing.
        assert!(!r.power(Power::Wake));
        drop(r);
        assert_eq!(
            charged_at_next_start(mem),
            1,
            "a crash after the wake is charged"
        );
    }

    /// A start with no content: the build's own attempt (issue 20), which a discarded
    /// hibernation must not charge either, and which a wake reopens.
    #[test]
    fn a_start_without_content_sleeps_and_wakes_with_its_build_attempt() {
        let build_phase = |r: &Running<&mut Mem, Store>| {
            r.durable
                .state()
                .driver
                .and_then(|d| d.attempt)
                .map(|a| a.phase)
        };
        let mut mem = Mem::default();
        let started = failsafe_loader::state::start::start_with_trust(
            &mut mem,
            &mut Store::default(),
            &Config::default(),
            &Env::default(),
            &key().1,
        );
        assert!(started.activation.is_none() && started.build.is_some());
        let (mut r, version) = Running::after_start(
            started,
            |_| true,
            Config::default(),
            Store::default(),
            Env::default(),
            Trust::EMPTY,
            0,
        );
        assert_eq!(version, None);
        assert_eq!(build_phase(&r), Some(Phase::InProgress));
        assert!(!r.power(Power::Sleep));
        assert_eq!(
            build_phase(&r),
            Some(Phase::Clean),
            "closed before the sleep"
        );
        assert!(
            r.power(Power::Wake),
            "the build's health window starts again"
        );
        assert_eq!(build_phase(&r), Some(Phase::InProgress), "reopened");
        let _ = r.power(Power::Sleep);
        drop(r);
        // The hibernation file discarded: the next start finds nothing unclean.
        let next = failsafe_loader::state::start::start_with_trust(
            &mut mem,
            &mut Store::default(),
            &Config::default(),
            &Env::default(),
            &key().1,
        );
        assert_eq!(next.durable.state().driver.map(|d| d.unclean), Some(0));
    }

    #[test]
    fn power_transitions_leave_healthy_stopped_and_empty_starts_alone() {
        // Healthy before the sleep: nothing to close or reopen.
        let mut mem = Mem::default();
        let mut r = published(&mut mem);
        let act = r.activation.unwrap();
        let ev = failsafe_loader::state::HealthEvidence {
            uptime_secs: 999,
            canary: Ok(()),
        };
        let cfg = r.cfg;
        assert!(r.durable.health(&act, &ev, &cfg).unwrap().is_some());
        assert!(!r.power(Power::Sleep));
        assert!(!r.power(Power::Wake));
        assert_eq!(r.durable.state().attempt.unwrap().phase, Phase::Healthy);
        // After an orderly stop: a wake reopens nothing.
        let mut mem = Mem::default();
        let mut r = published(&mut mem);
        r.close(Close::Stop);
        assert!(!r.power(Power::Sleep));
        assert!(!r.power(Power::Wake));
        assert_eq!(r.durable.state().attempt.unwrap().phase, Phase::Clean);
        // A start that activated nothing writes nothing.
        let mut mem = Mem::default();
        let (mut r, _) = Running::after_start(
            start(&mut mem),
            |_| false,
            Config::default(),
            Store::default(),
            Env::default(),
            Trust::EMPTY,
            0,
        );
        let seq = r.durable.seq();
        assert!(!r.power(Power::Sleep));
        assert!(!r.power(Power::Wake));
        assert_eq!(r.durable.seq(), seq);
    }

    #[test]
    fn a_published_start_runs_and_an_orderly_stop_refuses_live_changes() {
        let mut mem = Mem::default();
        let started = start(&mut mem);
        let (mut r, version) = Running::after_start(
            started,
            |_| true,
            Config::default(),
            Store::default(),
            Env::default(),
            Trust::EMPTY,
            5,
        );
        assert_eq!((version, r.active_since), (Some(7), 5));
        assert_eq!(r.activation.map(|a| a.ver.version), Some(7));
        assert_eq!(r.durable.state().attempt.unwrap().phase, Phase::InProgress);
        assert_eq!(r.live_allowed(), Ok(()));
        r.close(Close::Stop);
        assert_eq!(r.durable.state().attempt.unwrap().phase, Phase::Clean);
        assert_eq!(r.live_allowed(), Err(LiveRefusal::ShuttingDown));
    }
}
