//! The drill's scenarios as data: every boot with the decision and outcome it must have.
//! The runner (`super`) plays them across real child processes.

/// What a boot of a scenario must decide, and how it must end: the drill checks its own
/// timeline against these and exits 1 on any difference.
#[derive(Clone, Copy)]
pub(super) struct Expect {
    /// Version activated (0: none).
    pub(super) version: u64,
    pub(super) mode: &'static str,
    pub(super) reason: &'static str,
    pub(super) outcome: &'static str,
}

const fn x(
    version: u64,
    mode: &'static str,
    reason: &'static str,
    outcome: &'static str,
) -> Expect {
    Expect {
        version,
        mode,
        reason,
        outcome,
    }
}

#[derive(Clone, Copy)]
pub(super) enum Step {
    /// The update channel drops a good version into the store.
    Good(u64),
    /// The update channel drops a version with the 2024 mistake: a file-set-info rule
    /// naming field 10 of a type that has 10 fields.
    Bad(u64),
    /// A boot: how it ends, extra `boot` arguments, and what it must decide.
    Boot(&'static str, &'static [&'static str], Expect),
    /// A boot whose filter deadlocks (`--then hang`): killed once its health check has
    /// started (and blocked on the canary).
    Hang(Expect),
    /// The update channel drops an unsigned file (compiled, never signed).
    Unsigned(u64),
    /// Someone drops a file signed by a key the machine does not trust.
    Foreign(u64),
    /// Both slots of the state record overwritten with garbage.
    Corrupt,
    /// A responder's command (`failsafectl recover ...`).
    Recover(&'static [&'static str]),
    /// A start of the long-running host (`failsafectl serve`, healthy after 1 s): its
    /// decision must be the expected one; its outcome ("killed", "clean-shutdown") is
    /// filled in by the `Kill` or `Stop` that ends it.
    Serve(Expect),
    /// Wait (at most 15 s) until the running host reports `version` active and healthy,
    /// with last-known-good `lkg` (`failsafectl status --json` through the socket).
    WaitHealthy { version: u64, lkg: u64 },
    /// The update channel pushes a good `version` live: `failsafectl stage FILE --live`.
    Live(u64),
    /// A live push of a version already in the store that the host must refuse with the
    /// named refusal (`failsafectl stage --live N`).
    LiveRefused(u64, &'static str),
    /// SIGKILL to the running host: the crash.
    Kill,
    /// SIGTERM to the running host: the shutdown notification.
    Stop,
}

pub(super) use Step::{
    Boot, Corrupt, Good, Hang, Kill, Live, LiveRefused, Recover, Serve, Stop, WaitHealthy,
};

const N: &str = "normal";
const F: &str = "fallback";
const S: &str = "safe";
const NEW: &str = "newest-content";
const NQ: &str = "newer-quarantined";
const NU: &str = "nothing-usable";
const DD: &str = "driver-dormant";
/// The driver's own setup faults at this start (after its build attempt is durable).
const SETUP: &[&str] = &["--crash-at", "driver-setup"];
/// A new driver build (the drill's other boots run the host's default build).
const NEW_BUILD: &[&str] = &[
    "--build",
    "0.2.0+00000000000000000000000000000000000000000000000000000000000000b2",
];

const fn healthy(v: u64, mode: &'static str, reason: &'static str) -> Step {
    Boot("healthy", &[], x(v, mode, reason, "healthy"))
}
const fn crash(v: u64, mode: &'static str, reason: &'static str) -> Step {
    Boot("crash", &[], x(v, mode, reason, "crashed"))
}
const fn clean(v: u64, mode: &'static str, reason: &'static str) -> Step {
    Boot("clean-shutdown", &[], x(v, mode, reason, "clean-shutdown"))
}
const fn torn(at: &'static [&'static str], outcome: &'static str) -> Step {
    Boot("clean-shutdown", at, x(0, "-", "-", outcome))
}

pub(super) struct Scenario {
    /// Needs `failsafectl serve` (Unix sockets): not played on Windows.
    pub(super) live: bool,
    pub(super) number: u32,
    pub(super) name: &'static str,
    pub(super) title: &'static str,
    pub(super) steps: &'static [Step],
}

pub(super) const SCENARIOS: &[Scenario] = &[
    Scenario {
        live: false,
        number: 1,
        name: "crash-loop",
        title: "v2 crashes the machine at every boot",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(2, N, NEW),
            healthy(1, F, NQ),
            clean(1, F, NQ),
        ],
    },
    Scenario {
        live: false,
        number: 2,
        name: "unrelated-crash",
        title: "one unrelated crash, then healthy: no quarantine",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            healthy(2, N, NEW),
            clean(2, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 3,
        name: "lkg-crashes",
        title: "v2 and last-known-good v1 both crash: no content",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(1, F, NQ),
            crash(1, F, NQ),
            crash(1, F, NQ),
            clean(0, F, "nothing-usable"),
            clean(0, F, "nothing-usable"),
        ],
    },
    Scenario {
        live: false,
        number: 4,
        name: "newer-after-quarantine",
        title: "v3 staged after v2 was quarantined is tried",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(2, N, NEW),
            clean(1, F, NQ),
            Good(3),
            healthy(3, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 5,
        name: "torn-write",
        title: "killed in the middle of the state write: the previous record survives",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            torn(&["--crash-at", "state-write:0"], "crashed at state-write:0"),
            torn(&["--crash-at", "state-write:1"], "crashed at state-write:1"),
            torn(
                &["--crash-at", "state-write:512"],
                "crashed at state-write:512",
            ),
            torn(
                &["--crash-at", "state-write:2047"],
                "crashed at state-write:2047",
            ),
            torn(
                &["--crash-at", "after-state-write"],
                "crashed at after-state-write",
            ),
            healthy(2, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 6,
        name: "clean-reboots",
        title: "clean reboots before healthy never quarantine",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            clean(2, N, NEW),
            clean(2, N, NEW),
            clean(2, N, NEW),
            clean(2, N, NEW),
            clean(2, N, NEW),
            healthy(2, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 7,
        name: "safe-mode",
        title: "force-safe-mode and Windows Safe Mode activate nothing; switch off, normal again",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            Boot(
                "crash",
                &["--force-safe-mode"],
                x(0, S, "force-safe-mode", "crashed"),
            ),
            Boot(
                "crash",
                &["--windows-safe-mode"],
                x(0, S, "windows-safe-mode", "crashed"),
            ),
            Recover(&["force-safe-mode", "on"]),
            crash(0, S, "force-safe-mode"),
            Recover(&["force-safe-mode", "off"]),
            healthy(2, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 8,
        name: "state-lost",
        title: "corrupt state record: nothing new activated, reason state-lost",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Corrupt,
            clean(0, S, "state-lost"),
            healthy(1, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 9,
        name: "invalid-content",
        title: "content that fails validation (the 21-vs-20 mistake) is quarantined at once",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Step::Bad(2),
            clean(1, F, NQ),
            clean(1, F, NQ),
        ],
    },
    Scenario {
        live: false,
        number: 10,
        name: "safe-mode-look",
        title: "crash, a Safe Mode boot to look around, crash, crash: quarantined after the third crash",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            Boot(
                "clean-shutdown",
                &["--windows-safe-mode"],
                x(0, S, "windows-safe-mode", "clean-shutdown"),
            ),
            crash(2, N, NEW),
            crash(2, N, NEW),
            healthy(1, F, NQ),
        ],
    },
    Scenario {
        live: false,
        number: 11,
        name: "hang",
        title: "v2 deadlocks the filter: uptime passes, the canary never completes, never healthy",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            Hang(x(2, N, NEW, "hung (killed)")),
            Hang(x(2, N, NEW, "hung (killed)")),
            Hang(x(2, N, NEW, "hung (killed)")),
            healthy(1, F, NQ),
        ],
    },
    Scenario {
        live: false,
        number: 12,
        name: "unsigned-content",
        title: "an unsigned v2 and a v3 signed by an unknown key are quarantined at once; v1 runs",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Step::Unsigned(2),
            healthy(1, F, NQ),
            Step::Foreign(3),
            clean(1, F, NQ),
            Good(4),
            healthy(4, N, NEW),
        ],
    },
    // The counting: with threshold 3, the boot on which v2 arrived live is v2's first
    // attempt (its live attempt is durable before v2 is parsed), and the two restarts on
    // v2 are the second and third: 1 + 2 = 3 boots on v2 crash. The fourth start charges
    // the third crash, quarantines v2 (crash-loop) and runs v1.
    Scenario {
        live: true,
        number: 13,
        name: "july-2024",
        title: "July 2024: v2 pushed live to a healthy v1 crashes within a second; 3 boots on v2 crash (the live one + 2 restarts = threshold 3); the 4th start runs v1, v2 quarantined; v3 pushed live becomes last-known-good",
        steps: &[
            Good(1),
            Serve(x(1, N, NEW, "killed")),
            WaitHealthy { version: 1, lkg: 1 },
            Live(2),
            Kill,
            Serve(x(2, N, NEW, "killed")),
            Kill,
            Serve(x(2, N, NEW, "killed")),
            Kill,
            Serve(x(1, F, NQ, "clean-shutdown")),
            LiveRefused(2, "quarantined"),
            LiveRefused(1, "already-active"),
            Live(3),
            WaitHealthy { version: 3, lkg: 3 },
            Stop,
        ],
    },
    // Issue 20: the driver's own code under the counter. Setup faults come before content
    // is chosen, so they are the build's from the first: threshold (3) of them, then dormant.
    Scenario {
        live: false,
        number: 14,
        name: "driver-setup-fault",
        title: "the driver build faults in its own setup at every start: 3 crashes charged to the build, then dormant (nothing set up, also in Safe Mode, a crash then charges nothing); a new build runs v1 again",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Boot(
                "clean-shutdown",
                SETUP,
                x(0, "-", "-", "crashed at driver-setup"),
            ),
            Boot(
                "clean-shutdown",
                SETUP,
                x(0, "-", "-", "crashed at driver-setup"),
            ),
            Boot(
                "clean-shutdown",
                SETUP,
                x(0, "-", "-", "crashed at driver-setup"),
            ),
            Boot("healthy", &[], x(0, S, DD, "dormant")),
            Boot("crash", &["--windows-safe-mode"], x(0, S, DD, "crashed")),
            Boot("clean-shutdown", &[], x(0, S, DD, "dormant")),
            Boot("healthy", NEW_BUILD, x(1, N, NEW, "healthy")),
        ],
    },
    // The documented worst case: a build that crashes whatever runs. Content is charged
    // first: v2 (3), last-known-good v1 (3), then starts without content (3): 3 × (2
    // versions tried + 1) = 9 unclean starts; the 10th start is dormant.
    Scenario {
        live: false,
        number: 15,
        name: "driver-crash-loop",
        title: "the driver crashes whatever runs: v2, then last-known-good v1, then no content, 3 crashes each (3 x (2 + 1) = 9); the 10th start is dormant; recover wake gives 3 more tries; a new build runs",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(1, F, NQ),
            crash(1, F, NQ),
            crash(1, F, NQ),
            crash(0, F, NU),
            crash(0, F, NU),
            crash(0, F, NU),
            Boot("crash", &[], x(0, S, DD, "crashed")),
            Recover(&["wake", "--yes"]),
            crash(0, F, NU),
            crash(0, F, NU),
            crash(0, F, NU),
            Boot("healthy", &[], x(0, S, DD, "dormant")),
            Boot("healthy", NEW_BUILD, x(0, F, NU, "healthy")),
        ],
    },
];
