//! Deterministic workloads for the benchmarks: Windows paths with the mix of locations,
//! depths, names and extensions real machines show, and rule sets of any size mixing
//! exact names, extension lists, prefixes, suffixes, contains, wildcards and negations.
#![allow(
    dead_code,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::type_complexity, clippy::unreachable)]

pub mod realistic;

use failsafe_loader::eval::{evaluate_scan, fold_content};
use failsafe_loader::text::split_path;
use failsafe_loader::{
    Action, Content, Criterion, Event, EventType, Input, Match, Op, Rule, RuleSet, Values, encode,
};

pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const VOL: &str = "\\Device\\HarddiskVolume3";
const SYSDIRS: &[&str] = &[
    "Windows\\System32",
    "Windows\\SysWOW64",
    "Windows\\WinSxS\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.22621.3007_none_3c1a8d3b0a8d9e2b",
    "Windows\\System32\\drivers",
    "Windows\\Temp",
    "Windows\\Prefetch",
    "ProgramData\\Microsoft\\Windows Defender\\Scans",
];
const PROGRAMS: &[&str] = &[
    "Program Files\\Microsoft Office\\root\\Office16",
    "Program Files (x86)\\Google\\Chrome\\Application",
    "Program Files\\Mozilla Firefox",
    "Program Files\\Git\\usr\\bin",
    "Program Files\\Microsoft VS Code\\resources\\app\\node_modules",
];
const USERS: &[&str] = &["alice", "bob", "svc_backup", "j.smith"];
const PROFILE: &[&str] = &[
    "Documents",
    "Downloads",
    "Desktop",
    "AppData\\Local\\Temp",
    "AppData\\Roaming\\Microsoft\\Windows\\Recent",
    "AppData\\Local\\Microsoft\\Edge\\User Data\\Default\\Cache\\Cache_Data",
    "OneDrive - Contoso\\Projects\\2026\\Q3",
];
const STEMS: &[&str] = &[
    "report",
    "invoice",
    "setup",
    "kernel32",
    "ntdll",
    "msedge",
    "chrome",
    "notes",
    "budget",
    "photo",
    "thumbcache_256",
    "index",
    "update",
    "~$draft",
    "data",
    "log",
    "config",
    "main",
    "README",
    "desktop",
];
const EXTS: &[&str] = &[
    "dll", "exe", "docx", "xlsx", "pdf", "jpg", "png", "txt", "log", "tmp", "dat", "js", "json",
    "sys", "pf", "mui", "etl", "lnk", "ini", "db",
];
const PROCS: &[&str] = &[
    "\\Windows\\explorer.exe",
    "\\Windows\\System32\\svchost.exe",
    "\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
    "\\Program Files (x86)\\Google\\Chrome\\Application\\chrome.exe",
    "\\Windows\\System32\\SearchIndexer.exe",
    "\\Users\\bob\\Downloads\\tool.exe",
];

/// `n` realistic normalized paths, with their requesting process.
pub fn paths(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let dir = match r.below(10) {
                0..=3 => r.pick(SYSDIRS).to_owned(),
                4 | 5 => r.pick(PROGRAMS).to_owned(),
                _ => format!("Users\\{}\\{}", r.pick(USERS), r.pick(PROFILE)),
            };
            // Some deep paths, as node_modules and caches make them.
            let mut deep = String::new();
            for _ in 0..(if r.below(8) == 0 {
                3 + r.below(8)
            } else {
                r.below(2)
            }) {
                deep.push('\\');
                deep.push_str(r.pick(STEMS));
                deep.push_str(&format!("{}", r.below(40)));
            }
            let name = if r.below(4) == 0 {
                format!("{}{}", r.pick(STEMS), r.below(500))
            } else {
                r.pick(STEMS).to_owned()
            };
            let path = format!("{VOL}\\{dir}{deep}\\{name}.{}", r.pick(EXTS));
            (path, format!("{VOL}{}", r.pick(PROCS)))
        })
        .collect()
}

pub fn s(x: &str) -> Vec<u16> {
    x.encode_utf16().collect()
}

fn strs(op: Op, field: u8, vals: &[String], negate: bool) -> Criterion {
    Criterion {
        field,
        op,
        negate,
        values: Values::Strs(vals.iter().map(|v| s(v)).collect()),
    }
}

/// `n` file-create rules mixing the common criteria. Most name tokens with a number suffix
/// so that rule sets grow by distinct rules, as real content does.
pub fn rules(n: usize, seed: u64) -> Content {
    let mut r = Rng::new(seed);
    let rules = (0..n)
        .map(|i| {
            let stem = format!("{}{}", r.pick(STEMS), r.below(500));
            let ext = r.pick(EXTS).to_owned();
            let criteria = match i % 7 {
                0 => vec![strs(Op::StrEquals, 1, &[format!("{stem}.{ext}")], false)],
                1 => vec![
                    strs(
                        Op::StrEquals,
                        2,
                        &[
                            format!("x{}", r.below(n.max(1))),
                            format!("y{}", r.below(n.max(1))),
                            ext.clone(),
                        ],
                        false,
                    ),
                    strs(
                        Op::EndsWith,
                        4,
                        &[format!("\\{}{}.exe", r.pick(STEMS), r.below(50))],
                        false,
                    ),
                ],
                2 => vec![strs(
                    Op::StartsWith,
                    0,
                    &[format!(
                        "{VOL}\\Users\\{}\\{}\\{stem}",
                        r.pick(USERS),
                        r.pick(PROFILE)
                    )],
                    false,
                )],
                3 => vec![strs(
                    Op::EndsWith,
                    0,
                    &[format!("\\{}\\{stem}.{ext}", r.pick(PROFILE))],
                    false,
                )],
                4 => vec![strs(
                    Op::Contains,
                    0,
                    &[format!("\\{stem}\\{}", r.pick(STEMS))],
                    false,
                )],
                5 => vec![strs(Op::Wildcard, 1, &[format!("{stem}*.{ext}")], false)],
                _ => vec![
                    strs(Op::Contains, 3, &[format!("\\{stem}")], false),
                    strs(Op::EndsWith, 4, &["\\explorer.exe".to_owned()], true),
                ],
            };
            Rule {
                id: i as u32,
                event: EventType::FileCreate,
                action: Action::ALL[i % 3],
                criteria,
                exceptions: vec![],
            }
        })
        .collect();
    Content { version: 1, rules }
}

/// Owned inputs for one file-create event.
pub struct OwnedEvent {
    pub path: Vec<u16>,
    pub process: Vec<u16>,
    pub path8: String,
}

impl OwnedEvent {
    pub fn new(path: &str, process: &str) -> Self {
        OwnedEvent {
            path: s(path),
            process: s(process),
            path8: path.to_owned(),
        }
    }
    pub fn with<R>(&self, f: impl FnOnce(&Event<'_>) -> R) -> R {
        let (parent, name, ext) = split_path(&self.path);
        let inputs = [
            Input::Str(&self.path),
            Input::Str(name),
            Input::Str(ext),
            Input::Str(parent),
            Input::Str(&self.process),
            Input::Int(4242),
            Input::Int(0x0012_0089),
            Input::Int(1),
            Input::Int(0x40),
            Input::Flag(false),
            Input::Flag(false),
        ];
        f(&Event::new(EventType::FileCreate, &inputs))
    }
}

pub fn events(n: usize, seed: u64) -> Vec<OwnedEvent> {
    paths(n, seed)
        .iter()
        .map(|(p, q)| OwnedEvent::new(p, q))
        .collect()
}

pub struct Workload {
    pub content: Content,
    pub folded: Content,
    pub bytes: Vec<u8>,
    pub rules: RuleSet,
}

pub fn workload(n: usize) -> Workload {
    let content = rules(n, 0xC0FFEE ^ n as u64);
    let bytes = encode(&content).unwrap();
    let rules = RuleSet::load(&bytes).unwrap();
    let folded = fold_content(&content).unwrap();
    Workload {
        content,
        folded,
        bytes,
        rules,
    }
}

pub fn scan(w: &Workload, e: &OwnedEvent) -> Option<Match> {
    e.with(|ev| evaluate_scan(&w.folded, ev))
}

/// Literal strings of every rule, for the aho-corasick baseline.
pub fn literals(c: &Content) -> Vec<String> {
    let mut out = Vec::new();
    for r in &c.rules {
        for cr in &r.criteria {
            if let Values::Strs(v) = &cr.values {
                for x in v {
                    let t = String::from_utf16_lossy(x);
                    out.extend(
                        t.split(['*', '?'])
                            .filter(|p| !p.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
        }
    }
    out
}

/// Each rule as one regular expression over "path\nname\nextension\nparent\nprocess"
/// (string criteria only; negated criteria cannot be expressed and are left out, so the
/// baseline does less work than a real evaluation).
pub fn regexes(c: &Content) -> Vec<String> {
    c.rules
        .iter()
        .map(|r| {
            let mut lines: Vec<String> = vec!["[^\\n]*".to_owned(); 5];
            for cr in r.criteria.iter().filter(|c| !c.negate && c.field < 5) {
                let Values::Strs(v) = &cr.values else {
                    continue;
                };
                let alts: Vec<String> = v
                    .iter()
                    .map(|x| {
                        let t = String::from_utf16_lossy(x);
                        match cr.op {
                            Op::Wildcard => t
                                .split('*')
                                .map(|p| {
                                    p.split('?')
                                        .map(regex::escape)
                                        .collect::<Vec<_>>()
                                        .join("[^\\n]")
                                })
                                .collect::<Vec<_>>()
                                .join("[^\\n]*"),
                            _ => regex::escape(&t),
                        }
                    })
                    .collect();
                let alt = alts.join("|");
                lines[usize::from(cr.field)] = match cr.op {
                    Op::StrEquals | Op::Wildcard => format!("(?:{alt})"),
                    Op::StartsWith => format!("(?:{alt})[^\\n]*"),
                    Op::EndsWith => format!("[^\\n]*(?:{alt})"),
                    _ => format!("[^\\n]*(?:{alt})[^\\n]*"),
                };
            }
            format!("(?i)^{}$", lines.join("\\n"))
        })
        .collect()
}

pub fn regex_subject(e: &OwnedEvent) -> String {
    let (parent, name, ext) = split_path(&e.path);
    [
        e.path8.clone(),
        String::from_utf16_lossy(name),
        String::from_utf16_lossy(ext),
        String::from_utf16_lossy(parent),
        String::from_utf16_lossy(&e.process),
    ]
    .join("\n")
}

/// The inputs of an event as UTF-8, for the baselines built on `regex` and `aho-corasick`.
pub fn utf8_fields(e: &OwnedEvent) -> [String; 5] {
    let (parent, name, ext) = split_path(&e.path);
    [
        e.path8.clone(),
        String::from_utf16_lossy(name),
        String::from_utf16_lossy(ext),
        String::from_utf16_lossy(parent),
        String::from_utf16_lossy(&e.process),
    ]
}

/// Baseline: `regex::RegexSet` (one pattern per rule over all its positive string
/// criteria) finds candidate rules; each is verified in order with the reference rule
/// check (negations, exceptions) until the first match. A complete evaluator.
pub struct RegexVerify {
    pub set: regex::RegexSet,
}

impl RegexVerify {
    pub fn new(c: &Content) -> Self {
        RegexVerify {
            set: regex::RegexSetBuilder::new(regexes(c))
                .size_limit(1 << 30)
                .dfa_size_limit(1 << 30)
                .build()
                .unwrap(),
        }
    }
    pub fn evaluate(&self, folded: &Content, subject: &str, ev: &Event<'_>) -> Option<Match> {
        self.set
            .matches(subject)
            .iter()
            .find(|&i| failsafe_loader::eval::rule_matches(&folded.rules[i], ev))
            .map(|i| Match {
                action: folded.rules[i].action,
                rule_id: folded.rules[i].id,
                rule_index: i as u32,
            })
    }
}

/// Baseline: the same anchors as the engine (`RuleSet::anchor`), one `aho-corasick`
/// automaton per field (ASCII case-insensitive, overlapping), the anchor's position checked,
/// candidates verified in full with the reference rule check, smallest index kept.
pub struct AcDesign {
    fields: Vec<(usize, aho_corasick::AhoCorasick, Vec<(u32, Op)>)>,
    always: Vec<u32>,
}

impl AcDesign {
    pub fn new(c: &Content, rs: &RuleSet) -> Self {
        let mut per: std::collections::BTreeMap<usize, (Vec<String>, Vec<(u32, Op)>)> =
            Default::default();
        let mut always = Vec::new();
        for (i, r) in c.rules.iter().enumerate() {
            let Some(a) = rs.anchor(i as u32) else {
                always.push(i as u32);
                continue;
            };
            let cr = &r.criteria[usize::from(a)];
            let Values::Strs(v) = &cr.values else {
                unreachable!()
            };
            let slot = per.entry(usize::from(cr.field)).or_default();
            for x in v {
                let t = String::from_utf16_lossy(x);
                let pat = if cr.op == Op::Wildcard {
                    t.split(['*', '?'])
                        .max_by_key(|p| p.len())
                        .unwrap()
                        .to_owned()
                } else {
                    t
                };
                slot.0.push(pat);
                slot.1.push((i as u32, cr.op));
            }
        }
        let fields = per
            .into_iter()
            .map(|(f, (pats, outs))| {
                let ac = aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(pats)
                    .unwrap();
                (f, ac, outs)
            })
            .collect();
        AcDesign { fields, always }
    }
    pub fn evaluate(
        &self,
        folded: &Content,
        inputs: &[String; 5],
        ev: &Event<'_>,
    ) -> Option<Match> {
        let ok = |i: u32| failsafe_loader::eval::rule_matches(&folded.rules[i as usize], ev);
        let mut best = self
            .always
            .iter()
            .copied()
            .find(|&i| ok(i))
            .unwrap_or(u32::MAX);
        for (f, ac, outs) in &self.fields {
            let hay = &inputs[*f];
            for m in ac.find_overlapping_iter(hay) {
                let (rule, op) = outs[m.pattern().as_usize()];
                let placed = match op {
                    Op::StrEquals => m.start() == 0 && m.end() == hay.len(),
                    Op::StartsWith => m.start() == 0,
                    Op::EndsWith => m.end() == hay.len(),
                    _ => true,
                };
                if placed && rule < best && ok(rule) {
                    best = rule;
                }
            }
        }
        (best != u32::MAX).then(|| Match {
            action: folded.rules[best as usize].action,
            rule_id: folded.rules[best as usize].id,
            rule_index: best,
        })
    }
}
