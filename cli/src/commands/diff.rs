//! `failsafectl diff OLD.fsc NEW.fsc`: what a reviewer of a content update needs before it
//! ships: rules added, removed and changed (matched by rule id), and moves that change
//! which rule decides first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use failsafe_loader::{Content, Rule, validate};
use serde_json::json;

use crate::fail::Fail;
use crate::report::versioned;
use crate::source::{describe_criterion, rule_name};

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  failsafectl diff 41.fsc 42.fsc\n\nExit code: 0 no rule differs, 1 rules differ (as diff(1)), 2 error."
)]
pub struct Args {
    /// The content that ships today.
    pub old: PathBuf,
    /// The update.
    pub new: PathBuf,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

fn load(p: &Path) -> Result<Content, Fail> {
    let bytes =
        crate::read_capped(p).map_err(|e| Fail::io(format!("cannot read {}: {e}", p.display())))?;
    validate(&bytes)
        .map(|v| v.content)
        .map_err(|e| Fail::invalid(format!("{}: {e}", p.display())))
}

/// A rule in words: action, event, criteria and exceptions, one item per line.
fn lines(r: &Rule) -> Vec<String> {
    let mut out = vec![format!("{} on {}", r.action, r.event)];
    for c in &r.criteria {
        out.push(format!("match {}", describe_criterion(r.event, c)));
    }
    for (k, set) in r.exceptions.iter().enumerate() {
        let parts: Vec<_> = set.iter().map(|c| describe_criterion(r.event, c)).collect();
        out.push(format!("except[{k}] {}", parts.join(" and ")));
    }
    out
}

pub fn run(a: &Args) -> Result<u8, Fail> {
    let (old, new) = (load(&a.old)?, load(&a.new)?);
    let old_ix: HashMap<u32, usize> = old
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    let new_ix: HashMap<u32, usize> = new
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    let mut moved = Vec::new();
    for (i, r) in new.rules.iter().enumerate() {
        match old_ix.get(&r.id) {
            None => added.push((i, r)),
            Some(&j) => {
                let o = &old.rules[j];
                if o != r {
                    let (ol, nl) = (lines(o), lines(r));
                    let minus: Vec<_> = ol.iter().filter(|l| !nl.contains(l)).cloned().collect();
                    let plus: Vec<_> = nl.iter().filter(|l| !ol.contains(l)).cloned().collect();
                    changed.push((j, i, r, minus, plus));
                }
            }
        }
    }
    for (j, r) in old.rules.iter().enumerate() {
        if !new_ix.contains_key(&r.id) {
            removed.push((j, r));
        }
    }
    // Order among the rules both files keep: a different relative order can change which
    // rule decides first.
    let kept_old: Vec<u32> = old
        .rules
        .iter()
        .map(|r| r.id)
        .filter(|id| new_ix.contains_key(id))
        .collect();
    let kept_new: Vec<u32> = new
        .rules
        .iter()
        .map(|r| r.id)
        .filter(|id| old_ix.contains_key(id))
        .collect();
    if kept_old != kept_new {
        for (k, id) in kept_new.iter().enumerate() {
            if kept_old.get(k) != Some(id) {
                moved.push((old_ix[id], new_ix[id], *id));
            }
        }
    }
    let differs =
        !(added.is_empty() && removed.is_empty() && changed.is_empty() && moved.is_empty());
    if a.json {
        outln!(
            "{}",
            versioned(json!({
                "old": {"file": a.old, "version": old.version, "rules": old.rules.len()},
                "new": {"file": a.new, "version": new.version, "rules": new.rules.len()},
                "added": added.iter().map(|(i, r)| crate::report::rule_json(*i, r)).collect::<Vec<_>>(),
                "removed": removed.iter().map(|(i, r)| crate::report::rule_json(*i, r)).collect::<Vec<_>>(),
                "changed": changed.iter().map(|(j, i, r, minus, plus)| json!({"id": r.id, "old_index": j, "new_index": i, "removed": minus, "added": plus})).collect::<Vec<_>>(),
                "moved": moved.iter().map(|(j, i, id)| json!({"id": id, "old_index": j, "new_index": i})).collect::<Vec<_>>(),
                "differs": differs,
            }))
        );
        return Ok(u8::from(differs));
    }
    outln!(
        "{} (version {}, {} rules) -> {} (version {}, {} rules)",
        a.old.display(),
        old.version,
        old.rules.len(),
        a.new.display(),
        new.version,
        new.rules.len()
    );
    let c = crate::color::stdout();
    for (i, r) in &added {
        outln!(
            "{} {}",
            c.paint(crate::color::GREEN, "added  "),
            rule_name(*i, r.id)
        );
        for l in lines(r) {
            outln!("    + {l}");
        }
    }
    for (j, r) in &removed {
        outln!(
            "{} {}",
            c.paint(crate::color::RED, "removed"),
            rule_name(*j, r.id)
        );
        for l in lines(r) {
            outln!("    - {l}");
        }
    }
    for (j, i, r, minus, plus) in &changed {
        let at = if j == i {
            format!("#{i}")
        } else {
            format!("#{j} -> #{i}")
        };
        outln!(
            "{} rule {at} (id {})",
            c.paint(crate::color::YELLOW, "changed"),
            r.id
        );
        for l in minus {
            outln!("    - {l}");
        }
        for l in plus {
            outln!("    + {l}");
        }
    }
    for (j, i, id) in &moved {
        outln!(
            "moved   rule id {id}: #{j} -> #{i} (the first matching rule decides: order matters)"
        );
    }
    outln!(
        "{} added, {} removed, {} changed, {} moved",
        added.len(),
        removed.len(),
        changed.len(),
        moved.len()
    );
    Ok(u8::from(differs))
}
