//! A rule corpus with the shape of public Sigma `file_event` rules converted to this
//! format (written from scratch; no third-party rule is copied): long shared prefixes
//! (`\Device\HarddiskVolume3\Users\`), `contains` lists of 40+ directory fragments,
//! exception sets of 40+ processes, process `ends-with` filters (LOLBins, Office), and
//! indicator rules (tool and malware file names) that make up the bulk of large sets.
//! Events are paths as the driver reports them, mostly benign, a few percent in the
//! places the rules watch.

use super::{OwnedEvent, Rng, paths, s};
use failsafe_loader::{Action, Content, Criterion, EventType, Op, Rule, Values};

const VOL: &str = "\\Device\\HarddiskVolume3";

/// Directory fragments Sigma rules watch (`TargetFilename|contains`).
const DIRS: &[&str] = &[
    "\\AppData\\Local\\Temp\\",
    "\\AppData\\Roaming\\",
    "\\AppData\\Local\\",
    "\\Downloads\\",
    "\\Desktop\\",
    "\\Users\\Public\\",
    "\\ProgramData\\",
    "\\Windows\\Temp\\",
    "\\Start Menu\\Programs\\Startup\\",
    "\\Microsoft\\Windows\\Start Menu\\",
    "\\INetCache\\",
    "\\Content.Outlook\\",
    "\\Windows\\Tasks\\",
    "\\System32\\Tasks\\",
    "\\spool\\drivers\\color\\",
    "\\Windows\\Fonts\\",
    "\\$Recycle.Bin\\",
    "\\PerfLogs\\",
    "\\Windows\\debug\\",
    "\\Windows\\Help\\",
    "\\Windows\\addins\\",
    "\\Windows\\Media\\",
    "\\Windows\\repair\\",
    "\\Windows\\security\\",
    "\\Windows\\System32\\Com\\",
    "\\Windows\\System32\\config\\",
    "\\Windows\\System32\\wbem\\",
    "\\AppData\\LocalLow\\",
    "\\Microsoft\\Word\\STARTUP\\",
    "\\Microsoft\\Excel\\XLSTART\\",
    "\\Microsoft\\Templates\\",
    "\\Microsoft\\Outlook\\",
    "\\Microsoft\\Teams\\",
    "\\Google\\Chrome\\User Data\\",
    "\\Mozilla\\Firefox\\Profiles\\",
    "\\Microsoft\\Edge\\User Data\\",
    "\\OneDrive\\",
    "\\Dropbox\\",
    "\\7-Zip\\",
    "\\WinRAR\\",
    "\\Windows\\Installer\\",
    "\\Windows\\Prefetch\\",
    "\\Windows\\ServiceProfiles\\",
    "\\Windows\\Logs\\",
    "\\Windows\\Panther\\",
    "\\Windows\\SoftwareDistribution\\",
    "\\inetpub\\wwwroot\\",
    "\\xampp\\htdocs\\",
];
/// Process images (`Image|endswith`).
const PROCS: &[&str] = &[
    "\\powershell.exe",
    "\\pwsh.exe",
    "\\cmd.exe",
    "\\wscript.exe",
    "\\cscript.exe",
    "\\mshta.exe",
    "\\rundll32.exe",
    "\\regsvr32.exe",
    "\\WINWORD.EXE",
    "\\EXCEL.EXE",
    "\\POWERPNT.EXE",
    "\\OUTLOOK.EXE",
    "\\MSPUB.EXE",
    "\\ONENOTE.EXE",
    "\\msiexec.exe",
    "\\certutil.exe",
    "\\bitsadmin.exe",
    "\\curl.exe",
    "\\wget.exe",
    "\\schtasks.exe",
    "\\wmic.exe",
    "\\msbuild.exe",
    "\\installutil.exe",
    "\\regasm.exe",
    "\\regsvcs.exe",
    "\\hh.exe",
    "\\forfiles.exe",
    "\\pcalua.exe",
    "\\scriptrunner.exe",
    "\\cmstp.exe",
    "\\odbcconf.exe",
    "\\msxsl.exe",
    "\\control.exe",
    "\\explorer.exe",
    "\\winrar.exe",
    "\\7z.exe",
    "\\python.exe",
    "\\java.exe",
    "\\node.exe",
    "\\AcroRd32.exe",
    "\\Teams.exe",
    "\\chrome.exe",
    "\\firefox.exe",
    "\\msedge.exe",
];
/// Legitimate writers filtered out (`filter_*: Image|endswith / startswith`).
const LEGIT: &[&str] = &[
    "\\MsMpEng.exe",
    "\\TrustedInstaller.exe",
    "\\TiWorker.exe",
    "\\svchost.exe",
    "\\OneDriveSetup.exe",
    "\\OneDrive.exe",
    "\\setup.exe",
    "\\msiexec.exe",
    "\\Update.exe",
    "\\GoogleUpdate.exe",
    "\\MicrosoftEdgeUpdate.exe",
    "\\SearchIndexer.exe",
    "\\SearchProtocolHost.exe",
    "\\wuauclt.exe",
    "\\dllhost.exe",
    "\\WmiPrvSE.exe",
    "\\spoolsv.exe",
    "\\services.exe",
    "\\lsass.exe",
    "\\System",
    "\\smss.exe",
    "\\csrss.exe",
    "\\wininit.exe",
    "\\winlogon.exe",
    "\\explorer.exe",
    "\\taskhostw.exe",
    "\\sihost.exe",
    "\\RuntimeBroker.exe",
    "\\ctfmon.exe",
    "\\backgroundTaskHost.exe",
    "\\CompatTelRunner.exe",
    "\\DismHost.exe",
    "\\MoUsoCoreWorker.exe",
    "\\SgrmBroker.exe",
    "\\NisSrv.exe",
    "\\MpCmdRun.exe",
    "\\SecurityHealthService.exe",
    "\\ccmexec.exe",
    "\\CcmExec.exe",
    "\\vmtoolsd.exe",
    "\\Code.exe",
    "\\devenv.exe",
    "\\Teams.exe",
    "\\slack.exe",
    "\\Zoom.exe",
    "\\Dropbox.exe",
];
const EXTS: &[&str] = &[
    ".exe", ".dll", ".ps1", ".bat", ".cmd", ".vbs", ".vbe", ".js", ".jse", ".hta", ".lnk", ".scr",
    ".iso", ".img", ".vhd", ".zip", ".7z", ".rar", ".docm", ".xlsm", ".one", ".wsf", ".cpl",
    ".sys", ".msi", ".jar", ".py",
];
const SYL: &[&str] = &[
    "ka", "zor", "mim", "pwn", "dump", "rat", "loader", "sharp", "hound", "krb", "cob", "ter",
    "nix", "vex", "lum", "qua", "sy", "dex", "tor", "gal", "fin", "mok", "ul", "tra", "bex",
];

/// A tool / malware name: unique per `k` (indicator rules grow the set by new names).
fn ioc(k: usize) -> String {
    let a = SYL[k % SYL.len()];
    let b = SYL[(k / SYL.len()) % SYL.len()];
    format!("{a}{b}{}", k / (SYL.len() * SYL.len()))
}

fn crit(field: u8, op: Op, vals: Vec<String>, negate: bool) -> Criterion {
    Criterion {
        field,
        op,
        negate,
        values: Values::Strs(vals.iter().map(|v| s(v)).collect()),
    }
}

fn pick_n(r: &mut Rng, xs: &[&str], n: usize) -> Vec<String> {
    let start = r.below(xs.len());
    (0..n.min(xs.len()))
        .map(|i| xs[(start + i * 7) % xs.len()].to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Exception sets as Sigma writes them: legitimate writers by image, and by install path.
fn filters(r: &mut Rng) -> Vec<Vec<Criterion>> {
    vec![
        {
            let n = 42 + r.below(4);
            vec![crit(4, Op::EndsWith, pick_n(r, LEGIT, n), false)]
        },
        vec![crit(
            4,
            Op::StartsWith,
            vec![
                format!("{VOL}\\Program Files\\"),
                format!("{VOL}\\Program Files (x86)\\"),
                format!("{VOL}\\Windows\\System32\\"),
                format!("{VOL}\\Windows\\SysWOW64\\"),
                format!("{VOL}\\Windows\\WinSxS\\"),
            ],
            false,
        )],
    ]
}

/// `n` file-create rules of the realistic shape. About a fifth are generic behaviour rules
/// (big contains lists, process filters, 40+-value exception lists); the rest are
/// indicator rules on file names, paths and writers, as large rule sets mostly are.
pub fn realistic_rules(n: usize, seed: u64) -> Content {
    let mut r = Rng::new(seed);
    let users = format!("{VOL}\\Users\\");
    let rules = (0..n)
        .map(|i| {
            let k = i / 10 * 3 + i % 3;
            let name = ioc(k);
            let ext = EXTS[r.below(EXTS.len())];
            let (criteria, exceptions) = match i % 10 {
                // Indicator: a tool's file name, anywhere.
                0 | 1 => (
                    vec![crit(
                        0,
                        Op::EndsWith,
                        vec![format!("\\{name}{ext}"), format!("\\{name}64{ext}")],
                        false,
                    )],
                    vec![],
                ),
                // Indicator: a name dropped under the user profile, by a LOLBin.
                2 => (
                    vec![
                        crit(0, Op::StartsWith, vec![users.clone()], false),
                        crit(
                            1,
                            Op::StrEquals,
                            vec![format!("{name}.dll"), format!("{name}.exe")],
                            false,
                        ),
                        crit(4, Op::EndsWith, pick_n(&mut r, PROCS, 6), false),
                    ],
                    vec![],
                ),
                // Behaviour: scripting host writes into a watched directory (40+ fragments).
                3 => (
                    vec![
                        crit(4, Op::EndsWith, pick_n(&mut r, PROCS, 5), false),
                        crit(0, Op::Contains, pick_n(&mut r, DIRS, 42), false),
                        crit(1, Op::Contains, vec![name.clone()], false),
                    ],
                    filters(&mut r),
                ),
                // Behaviour: executable content in user folders, with 40+-value filters.
                4 => (
                    vec![
                        crit(0, Op::StartsWith, vec![users.clone()], false),
                        crit(0, Op::Contains, pick_n(&mut r, DIRS, 44), false),
                        crit(0, Op::EndsWith, vec![format!("\\{name}{ext}")], false),
                    ],
                    filters(&mut r),
                ),
                // Indicator directory used by a family.
                5 => (
                    vec![
                        crit(
                            3,
                            Op::EndsWith,
                            vec![format!("\\AppData\\Roaming\\{name}")],
                            false,
                        ),
                        crit(
                            2,
                            Op::StrEquals,
                            pick_n(&mut r, &["exe", "dll", "dat", "tmp", "bin"], 3),
                            false,
                        ),
                    ],
                    vec![],
                ),
                // Wildcard names (dropper naming schemes).
                6 => (
                    vec![crit(
                        1,
                        Op::Wildcard,
                        vec![format!("{name}_*.tmp"), format!("~{name}*.dat")],
                        false,
                    )],
                    vec![],
                ),
                // Driver or DLL planted in the system directory.
                7 => (
                    vec![
                        crit(
                            0,
                            Op::StartsWith,
                            vec![format!("{VOL}\\Windows\\System32\\")],
                            false,
                        ),
                        crit(
                            1,
                            Op::StrEquals,
                            vec![format!("{name}.sys"), format!("{name}.dll")],
                            false,
                        ),
                    ],
                    vec![vec![crit(
                        4,
                        Op::EndsWith,
                        vec!["\\TrustedInstaller.exe".into()],
                        false,
                    )]],
                ),
                // Office writes a macro or script file somewhere under a name.
                8 => (
                    vec![
                        crit(4, Op::EndsWith, pick_n(&mut r, &PROCS[8..14], 6), false),
                        crit(0, Op::EndsWith, pick_n(&mut r, EXTS, 8), false),
                        crit(0, Op::Contains, vec![format!("\\{name}")], false),
                    ],
                    filters(&mut r),
                ),
                // Indicator path fragment, not written by the installer.
                _ => (
                    vec![
                        crit(
                            0,
                            Op::Contains,
                            vec![format!("\\{name}\\"), format!("\\{name}-data\\")],
                            false,
                        ),
                        crit(4, Op::EndsWith, vec!["\\msiexec.exe".into()], true),
                    ],
                    vec![],
                ),
            };
            Rule {
                id: i as u32 + 1,
                event: EventType::FileCreate,
                action: Action::ALL[i % 3],
                criteria,
                exceptions,
            }
        })
        .collect();
    Content { version: 1, rules }
}

/// `n` events: the benign mix of `paths` plus, one in 25, writes in the places the rules
/// watch (temp, startup, downloads) by scripting hosts or Office, some with indicator names
/// of the first rules (so some events match, as on a real machine under attack: rarely).
pub fn realistic_events(n: usize, rules: usize, seed: u64) -> Vec<OwnedEvent> {
    let mut r = Rng::new(seed ^ 0x5EED);
    paths(n, seed)
        .into_iter()
        .map(|(path, process)| {
            if r.below(25) != 0 {
                return OwnedEvent::new(&path, &process);
            }
            let user = ["alice", "bob", "svc_backup"][r.below(3)];
            let dir = DIRS[r.below(DIRS.len())];
            let name = if r.below(3) == 0 {
                ioc((r.below(rules.max(1)) / 10) * 3 + r.below(3))
            } else {
                format!("invoice_{}", r.below(1000))
            };
            let ext = EXTS[r.below(EXTS.len())];
            let p = format!("{VOL}\\Users\\{user}{dir}{name}{ext}");
            let proc_ = format!("{VOL}\\Windows\\System32{}", PROCS[r.below(PROCS.len())]);
            OwnedEvent::new(&p, &proc_)
        })
        .collect()
}

/// Rule shapes the variant-scaled corpus repeats (issue 22: real large sets are a few
/// hundred shapes repeated with different literals).
pub const SHAPES: usize = 200;

/// Fields of a file-create event that hold the file's path or a part of it.
const PATH_FIELDS: [u8; 4] = [0, 1, 2, 3];

/// `value` with `token` put inside its last literal path component: before the first `.`,
/// `*` or `?` of that component, else at its end (`\Temp\` -> `\Temp_v17\`, `evil.exe` ->
/// `evil_v17.exe`, `name_*.tmp` -> `name_v17_*.tmp`, `.exe` -> `_v17.exe`).
pub fn with_token(value: &[u16], token: &str) -> Vec<u16> {
    let sep = |u: u16| u == u16::from(b'\\') || u == u16::from(b'/');
    // The last component that is not empty: a trailing separator belongs to the one
    // before it.
    let end = value.len() - usize::from(value.last().is_some_and(|&u| sep(u)));
    let start = value[..end]
        .iter()
        .rposition(|&u| sep(u))
        .map_or(0, |p| p + 1);
    let stop = [u16::from(b'.'), u16::from(b'*'), u16::from(b'?')];
    let at = value[start..end]
        .iter()
        .position(|u| stop.contains(u))
        .map_or(end, |p| start + p);
    let mut out = value[..at].to_vec();
    out.extend(token.encode_utf16());
    out.extend_from_slice(&value[at..]);
    out
}

/// The variant-scaled corpus: the first [`SHAPES`] rules of [`realistic_rules`], then
/// variants of them ([`variants_of`]) until `n` rules.
pub fn variant_rules(n: usize, seed: u64) -> Content {
    variants_of(&realistic_rules(SHAPES.min(n), seed), n)
}

/// `n` rules: the rules of `shapes`, then variants of them, shape by shape in rounds.
/// Variant `k` of a rule changes every value of its path criteria (path, name,
/// extension, parent) by the token `_v{k}` inside the last literal path component
/// ([`with_token`]); its process criteria, its other criteria and its exception sets stay
/// identical to the shape's. So most events match none of the variants, and variants of
/// one shape share all but their path literals.
pub fn variants_of(shapes: &Content, n: usize) -> Content {
    let vary = |c: &Criterion, token: &str| -> Criterion {
        let mut c = c.clone();
        if let (true, Values::Strs(v)) = (PATH_FIELDS.contains(&c.field), &mut c.values) {
            for s in v.iter_mut() {
                *s = with_token(s, token);
            }
        }
        c
    };
    let rules = (0..n)
        .map(|i| {
            let shape = &shapes.rules[i % shapes.rules.len()];
            let k = i / shapes.rules.len();
            let mut r = shape.clone();
            r.id = i as u32 + 1;
            if k > 0 {
                let token = format!("_v{k}");
                r.criteria = shape.criteria.iter().map(|c| vary(c, &token)).collect();
            }
            r
        })
        .collect();
    Content { version: 1, rules }
}
