//! `failsafectl test FILE --event SPEC | --events FILE.jsonl`: evaluates events with the
//! kernel's evaluator; shows the verdict, the deciding rule and every exception that vetoed
//! an earlier rule; checks expectations (per event or for all) and exits 1 for CI when one
//! fails.

use std::path::{Path, PathBuf};

use failsafe_loader::eval::{criterion_holds, fold_content};
use failsafe_loader::{Content, RuleSet, validate};
use serde_json::json;

use crate::events::{self, OwnedEvent, Volumes};
use crate::fail::Fail;
use crate::report::versioned;
use crate::source::{describe_criterion, rule_name};

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Allow,
    Audit,
    Block,
    Pass,
}

use clap::ValueEnum;

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Audit => "audit",
            Verdict::Block => "block",
            Verdict::Pass => "pass",
        }
    }
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  failsafectl test 42.fsc --event 'file-create path=\"C:\\Users\\a\\x.locky\" desired-access=0x2' --expect block\n  failsafectl test 42.fsc --event 'file-create path=\\Device\\HarddiskVolume3\\Users\\a\\x.locky'\n  failsafectl test 42.fsc --events events.jsonl --json\n\nEvents file: one JSON object per line, e.g.\n  {\"event\": \"file-create\", \"path\": \"C:\\\\Users\\\\a\\\\x.locky\", \"desired-access\": 2, \"expect\": \"block\"}"
)]
pub struct Args {
    /// Content file.
    pub file: PathBuf,
    /// Event: '<event-type> field=value ...' (repeatable).
    #[arg(long = "event", value_name = "SPEC")]
    pub event: Vec<String>,
    /// JSON-lines file of events ({"event": "file-create", "path": ..., "expect": "block"}).
    #[arg(long = "events", value_name = "FILE")]
    pub events_file: Option<PathBuf>,
    /// Fail (exit 1) unless every event gets this verdict (an event's own "expect" wins).
    #[arg(long, value_enum)]
    pub expect: Option<Verdict>,
    /// A volume's DOS name, for device paths in events: DEVICE=DOS (repeatable; default
    /// \Device\HarddiskVolume3=C:).
    #[arg(long = "volume", value_name = "DEVICE=DOS")]
    pub volume: Vec<String>,
    /// JSON lines: one object per event, then a summary.
    #[arg(long)]
    pub json: bool,
}

/// A rule whose criteria held but one of whose exception sets vetoed it.
struct Veto {
    rule_index: usize,
    rule_id: u32,
    set: usize,
    text: String,
}

/// The rules before the deciding one (or all, if none decided) that an exception vetoed.
fn vetoes(folded: &Content, original: &Content, e: &OwnedEvent, upto: Option<usize>) -> Vec<Veto> {
    e.with(|ev| {
        let mut out = Vec::new();
        for (i, (r, o)) in folded.rules.iter().zip(&original.rules).enumerate() {
            if upto.is_some_and(|u| i >= u) {
                break;
            }
            if r.event != ev.kind || !r.criteria.iter().all(|c| criterion_holds(c, ev)) {
                continue;
            }
            if let Some(k) = r
                .exceptions
                .iter()
                .position(|set| set.iter().all(|c| criterion_holds(c, ev)))
            {
                let parts: Vec<_> = o.exceptions[k]
                    .iter()
                    .map(|c| describe_criterion(o.event, c))
                    .collect();
                out.push(Veto {
                    rule_index: i,
                    rule_id: r.id,
                    set: k,
                    text: parts.join(" and "),
                });
            }
        }
        out
    })
}

pub fn run(a: &Args) -> Result<u8, Fail> {
    let file = &a.file;
    let bytes = crate::read_capped(file)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", file.display())))?;
    let v = validate(&bytes).map_err(|e| Fail::invalid(format!("{}: {e}", file.display())))?;
    let rs = RuleSet::compile(&v).map_err(|e| Fail::io(format!("{}: {e}", file.display())))?;
    let folded =
        fold_content(&v.content).map_err(|e| Fail::io(format!("{}: {e}", file.display())))?;
    let mut volumes = Volumes::default();
    for s in &a.volume {
        volumes.add(s).map_err(Fail::usage)?;
    }
    let mut evs: Vec<(String, OwnedEvent, Option<String>)> = Vec::new();
    for (i, s) in a.event.iter().enumerate() {
        let e = events::parse_spec(s, &volumes)
            .map_err(|e| Fail::usage(format!("--event #{}: {e}", i + 1)))?;
        evs.push((format!("--event #{}", i + 1), e, None));
    }
    if let Some(p) = &a.events_file {
        read_events(p, &volumes, &mut evs)?;
    }
    if a.event.is_empty() && a.events_file.is_none() {
        return Err(Fail::usage(
            "no events: give --event SPEC or --events FILE".into(),
        ));
    }
    let color = crate::color::stdout();
    let (mut checked, mut as_expected) = (0usize, 0usize);
    for (origin, e, own_expect) in &evs {
        let m = e.with(|ev| rs.evaluate(ev));
        let verdict = m.map_or("pass", |m| m.action.name());
        let expected = own_expect
            .clone()
            .or_else(|| a.expect.map(|x| x.name().to_owned()));
        let ok = expected.as_deref().is_none_or(|x| x == verdict);
        if expected.is_some() {
            checked += 1;
            as_expected += usize::from(ok);
        }
        let decided = m.and_then(|m| usize::try_from(m.rule_index).ok());
        let vetoed = vetoes(&folded, &v.content, e, decided);
        let rule = decided.and_then(|i| v.content.rules.get(i).map(|r| (i, r)));
        if a.json {
            outln!(
                "{}",
                versioned(json!({
                    "source": origin,
                    "event": e.json(),
                    "verdict": verdict,
                    "rule": rule.map(|(i, r)| json!({"index": i, "id": r.id, "action": r.action.name()})),
                    "vetoed": vetoed.iter().map(|x| json!({"rule_index": x.rule_index, "rule_id": x.rule_id, "exception": x.set, "text": x.text})).collect::<Vec<_>>(),
                    "expected": expected,
                    "ok": ok,
                }))
            );
            continue;
        }
        let why = match rule {
            Some((i, r)) => {
                let parts: Vec<_> = r
                    .criteria
                    .iter()
                    .map(|c| describe_criterion(r.event, c))
                    .collect();
                format!(" by {}: {}", rule_name(i, r.id), parts.join(" and "))
            }
            None if vetoed.is_empty() => " (no rule matched)".into(),
            None => " (no rule decided)".into(),
        };
        let flag = match (&expected, ok) {
            (Some(x), false) => format!("  <-- UNEXPECTED (expected {x})"),
            _ => String::new(),
        };
        let shown = if ok {
            verdict.to_owned()
        } else {
            color.paint(crate::color::RED, verdict)
        };
        outln!("{}\n  => {shown}{why}{flag}", e.describe());
        for x in &vetoed {
            outln!(
                "     {} matched, but its except[{}] vetoed it: {}",
                rule_name(x.rule_index, x.rule_id),
                x.set,
                x.text
            );
        }
    }
    let failed = checked - as_expected;
    if a.json {
        outln!(
            "{}",
            versioned(
                json!({"summary": {"events": evs.len(), "checked": checked, "as_expected": as_expected, "unexpected": failed}})
            )
        );
    } else if evs.is_empty() {
        outln!("0 events");
    } else if checked > 0 {
        outln!(
            "{} event{}, {checked} with an expectation, {as_expected} as expected{}",
            evs.len(),
            if evs.len() == 1 { "" } else { "s" },
            if failed > 0 {
                format!(", {failed} unexpected")
            } else {
                String::new()
            }
        );
    } else {
        outln!(
            "{} event{}",
            evs.len(),
            if evs.len() == 1 { "" } else { "s" }
        );
    }
    Ok(u8::from(failed > 0))
}

fn read_events(
    p: &Path,
    volumes: &Volumes,
    evs: &mut Vec<(String, OwnedEvent, Option<String>)>,
) -> Result<(), Fail> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", p.display())))?;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l = events::parse_json(line, volumes)
            .map_err(|e| Fail::usage(format!("{}:{}: {e}", p.display(), n + 1)))?;
        evs.push((format!("{}:{}", p.display(), n + 1), l.event, l.expect));
    }
    Ok(())
}
