//! Sigma rules (the public `SigmaHQ/sigma-specification`, rules v2) of the Windows file
//! categories to Failsafe rules. A Sigma rule is imported whole or not at all: every
//! construct that Failsafe cannot express is collected and reported for that rule.
//!
//! - categories: `file_event` -> `file-create` with a creating disposition (Sysmon's
//!   FileCreate fires on create and overwrite, not on plain opens); `file_access` ->
//!   `file-create`; `file_delete` -> `file-set-info` with `is-delete`; `file_rename` ->
//!   `file-set-info`, rename classes;
//! - fields: `TargetFilename` -> `path` (`target-path` for renames, whose source is
//!   `SourceFilename`; `FileName` for `file_access`), `Image` -> `process`, `ProcessId` ->
//!   `pid`;
//! - modifiers: `contains`, `startswith`, `endswith`, `all`, `neq`; wildcards `*`, `?` and
//!   the spec's escapes (`\*`, `\?`, `\\`);
//! - conditions: `and`, `or`, `not`, brackets, `1 of X*` / `all of X*` / `them`, condition
//!   lists; a selection's list of maps is OR, a map is AND, a value list is OR. A
//!   disjunction in the positive part becomes several Failsafe rules (consecutive ids);
//!   each negated conjunction becomes an exception set.

use std::fmt::Write as _;

use yaml_rust2::{Yaml, YamlLoader};

/// What the import of one Sigma document produced.
#[derive(Debug)]
pub struct Imported {
    pub title: String,
    pub sigma_id: Option<String>,
    pub level: Option<String>,
    /// Failsafe rules (TOML `[[rule]]` bodies without the id line), or why not.
    pub result: Result<Vec<RuleOut>, Vec<String>>,
}

/// One Failsafe rule.
#[derive(Debug, Clone)]
pub struct RuleOut {
    pub event: &'static str,
    pub criteria: Vec<Crit>,
    pub exceptions: Vec<Vec<Crit>>,
}

/// One Failsafe criterion.
#[derive(Debug, Clone, PartialEq)]
pub struct Crit {
    pub field: &'static str,
    pub op: &'static str,
    pub values: Vec<Val>,
    pub negate: bool,
}

/// A criterion value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    S(String),
    I(u64),
}

/// Maximum number of Failsafe rules one Sigma rule may expand to.
const MAX_CLAUSES: usize = 16;

/// The Failsafe event type and fixed criteria for a Sigma category, or `None`.
fn category(cat: &str) -> Option<(&'static str, Vec<Crit>)> {
    Some(match cat {
        "file_event" => (
            "file-create",
            vec![Crit {
                field: "disposition",
                op: "equals",
                // FILE_SUPERSEDE, FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE, FILE_OVERWRITE_IF
                values: [0, 2, 3, 4, 5].map(Val::I).to_vec(),
                negate: false,
            }],
        ),
        "file_access" => ("file-create", vec![]),
        "file_delete" => (
            "file-set-info",
            vec![Crit {
                field: "is-delete",
                op: "is-true",
                values: vec![],
                negate: false,
            }],
        ),
        "file_rename" => (
            "file-set-info",
            vec![Crit {
                field: "info-class",
                op: "equals",
                // FileRenameInformation, FileRenameInformationEx
                values: vec![Val::I(10), Val::I(65)],
                negate: false,
            }],
        ),
        _ => return None,
    })
}

/// Sigma field -> Failsafe field for a category.
fn field(cat: &str, name: &str) -> Option<&'static str> {
    Some(match (cat, name) {
        ("file_rename", "TargetFilename") => "target-path",
        ("file_rename", "SourceFilename") => "path",
        (_, "TargetFilename") => "path",
        // Microsoft-Windows-Kernel-File, the source of `file_access`, names the file so.
        ("file_access", "FileName") => "path",
        (_, "Image") => "process",
        (_, "ProcessId") => "pid",
        _ => return None,
    })
}

/// A Sigma string value as pattern tokens, with the spec's escapes resolved.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Tok {
    C(char),
    Star,
    Q,
}

fn tokens(s: &str) -> Vec<Tok> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        match (cs[i], cs.get(i + 1)) {
            ('\\', Some('*')) => {
                out.push(Tok::C('*'));
                i += 2;
            }
            ('\\', Some('?')) => {
                out.push(Tok::C('?'));
                i += 2;
            }
            ('\\', Some('\\')) => {
                out.push(Tok::C('\\'));
                i += 2;
            }
            ('*', _) => {
                out.push(Tok::Star);
                i += 1;
            }
            ('?', _) => {
                out.push(Tok::Q);
                i += 1;
            }
            (c, _) => {
                out.push(Tok::C(c));
                i += 1;
            }
        }
    }
    out
}

/// (operator, value) for one Sigma string under a position modifier.
fn string_value(raw: &str, pos: Option<&str>) -> Result<(&'static str, String), String> {
    let mut t = tokens(raw);
    match pos {
        Some("contains") => {
            t.insert(0, Tok::Star);
            t.push(Tok::Star);
        }
        Some("startswith") => t.push(Tok::Star),
        Some("endswith") => t.insert(0, Tok::Star),
        _ => {}
    }
    if t.iter().any(|x| matches!(x, Tok::C('*' | '?'))) {
        return Err(format!(
            "value '{raw}' has an escaped `*` or `?`, which no Windows path contains"
        ));
    }
    let lead = t.first() == Some(&Tok::Star);
    let trail = t.len() > 1 && t.last() == Some(&Tok::Star);
    let inner = &t[usize::from(lead)..t.len() - usize::from(trail)];
    let lit = |ts: &[Tok]| -> Option<String> {
        ts.iter()
            .map(|x| match x {
                Tok::C(c) => Some(*c),
                _ => None,
            })
            .collect()
    };
    let text = match lit(inner) {
        Some(s) if !s.is_empty() => Some(s),
        _ => None,
    };
    let (op, v) = match (lead, trail, text) {
        (false, false, Some(s)) => ("equals", s),
        (false, true, Some(s)) => ("starts-with", s),
        (true, false, Some(s)) => ("ends-with", s),
        (true, true, Some(s)) => ("contains", s),
        _ => {
            let mut s = String::new();
            for x in &t {
                s.push(match x {
                    Tok::C(c) => *c,
                    Tok::Star => '*',
                    Tok::Q => '?',
                });
            }
            if s.chars().all(|c| c == '*') {
                return Err(format!("value '{raw}' matches anything"));
            }
            ("wildcard", s)
        }
    };
    Ok((op, v))
}

/// The same value as a wildcard pattern (to put differing operators in one list).
fn as_wildcard(op: &str, v: &str) -> String {
    match op {
        "starts-with" => format!("{v}*"),
        "ends-with" => format!("*{v}"),
        "contains" => format!("*{v}*"),
        _ => v.to_owned(),
    }
}

/// One `Field|mod|mod: value(s)` entry of a map -> criteria (several under `|all`).
fn field_criteria(cat: &str, key: &str, value: &Yaml, why: &mut Vec<String>) -> Vec<Crit> {
    let mut parts = key.split('|');
    let name = parts.next().unwrap_or("");
    let mods: Vec<&str> = parts.collect();
    if name.is_empty() {
        why.push("keyword search (a value without a field) is not supported".into());
        return vec![];
    }
    let Some(f) = field(cat, name) else {
        why.push(format!(
            "field `{name}` has no Failsafe equivalent (the file sensor supplies TargetFilename, Image, ProcessId{})",
            if cat == "file_rename" { ", SourceFilename" } else { "" }
        ));
        return vec![];
    };
    let mut pos = None;
    let (mut all, mut neq) = (false, false);
    for m in &mods {
        match *m {
            "contains" | "startswith" | "endswith" if pos.is_none() => pos = Some(*m),
            "all" => all = true,
            "neq" => neq = true,
            "re" | "cidr" | "base64" | "base64offset" | "utf16le" | "utf16be" | "utf16"
            | "wide" | "windash" | "exists" | "fieldref" | "cased" | "expand" | "gt" | "gte"
            | "lt" | "lte" | "i" | "m" | "s" => {
                why.push(format!("modifier `|{m}` (on {name}) is not supported"))
            }
            other => why.push(format!("unknown modifier `|{other}` (on {name})")),
        }
    }
    let items: Vec<&Yaml> = match value {
        Yaml::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    if items.is_empty() {
        why.push(format!("{key}: empty value list"));
        return vec![];
    }
    let int_field = f == "pid";
    let mut vals: Vec<(&'static str, Val)> = Vec::new();
    for it in items {
        match (it, int_field) {
            (Yaml::String(s), false) => match string_value(s, pos) {
                Ok((op, v)) => vals.push((op, Val::S(v))),
                Err(e) => why.push(format!("{key}: {e}")),
            },
            (Yaml::Integer(i), false) => match string_value(&i.to_string(), pos) {
                Ok((op, v)) => vals.push((op, Val::S(v))),
                Err(e) => why.push(format!("{key}: {e}")),
            },
            (Yaml::Integer(i), true) if pos.is_none() && *i >= 0 => {
                vals.push(("equals", Val::I(*i as u64)));
            }
            (Yaml::String(s), true) if pos.is_none() && s.parse::<u64>().is_ok() => {
                vals.push(("equals", Val::I(s.parse().unwrap_or(0))));
            }
            (Yaml::Null, _) => why.push(format!(
                "{key}: null (field absent or empty) is not expressible"
            )),
            (other, _) => why.push(format!("{key}: value {other:?} is not supported")),
        }
    }
    if !why.is_empty() {
        return vec![];
    }
    let mk = |vals: Vec<(&'static str, Val)>| -> Crit {
        let first = vals.first().map_or("equals", |v| v.0);
        let same = vals.iter().all(|v| v.0 == first);
        let (op, values) = if same {
            (first, vals.into_iter().map(|v| v.1).collect())
        } else {
            (
                "wildcard",
                vals.into_iter()
                    .map(|(op, v)| match v {
                        Val::S(s) => Val::S(as_wildcard(op, &s)),
                        other => other,
                    })
                    .collect(),
            )
        };
        Crit {
            field: f,
            op,
            values,
            negate: neq,
        }
    };
    if all && !neq {
        vals.into_iter().map(|v| mk(vec![v])).collect()
    } else {
        if all {
            why.push(format!("{key}: `|all` with `|neq` is not supported"));
        }
        vec![mk(vals)]
    }
}

/// A search identifier: OR of maps, each map an AND of criteria.
fn selection(cat: &str, name: &str, y: &Yaml, why: &mut Vec<String>) -> Vec<Vec<Crit>> {
    let maps: Vec<&Yaml> = match y {
        Yaml::Hash(_) => vec![y],
        Yaml::Array(a) if a.iter().all(|x| matches!(x, Yaml::Hash(_))) => a.iter().collect(),
        _ => {
            why.push(format!(
                "`{name}` is a keyword list (full-text search), which is not supported"
            ));
            return vec![];
        }
    };
    let mut out = Vec::new();
    for m in maps {
        let Yaml::Hash(h) = m else { continue };
        let mut conj = Vec::new();
        for (k, v) in h {
            let Yaml::String(k) = k else {
                why.push(format!("`{name}`: a key that is not a string"));
                continue;
            };
            conj.extend(field_criteria(cat, k, v, why));
        }
        out.push(conj);
    }
    out
}

/// Condition syntax.
#[derive(Debug, Clone)]
enum Cond {
    Id(String),
    /// `1 of P` (`any`) or `all of P`.
    Of(bool, String),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

fn lex(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c == '(' || c == ')' || c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Parser {
    t: Vec<String>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(String::as_str)
    }
    fn next(&mut self) -> Option<String> {
        let x = self.t.get(self.i).cloned();
        self.i += 1;
        x
    }
    fn or(&mut self) -> Result<Cond, String> {
        let mut l = self.and()?;
        while self.peek() == Some("or") {
            self.i += 1;
            l = Cond::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Cond, String> {
        let mut l = self.not()?;
        while self.peek() == Some("and") {
            self.i += 1;
            l = Cond::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Cond, String> {
        if self.peek() == Some("not") {
            self.i += 1;
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.atom()
    }
    fn atom(&mut self) -> Result<Cond, String> {
        match self.next().as_deref() {
            Some("(") => {
                let e = self.or()?;
                if self.next().as_deref() != Some(")") {
                    return Err("condition: missing `)`".into());
                }
                Ok(e)
            }
            Some(q @ ("1" | "all")) => {
                let any = q == "1";
                if self.next().as_deref() != Some("of") {
                    return Err(format!("condition: expected `of` after `{q}`"));
                }
                let p = self.next().ok_or("condition: `of` without a pattern")?;
                Ok(Cond::Of(any, p))
            }
            Some("|") => Err("aggregation (`| count()` ...) is not supported".into()),
            Some(x) if ["and", "or", ")", "of"].contains(&x) => {
                Err(format!("condition: unexpected `{x}`"))
            }
            Some(x) if x.chars().all(|c| c.is_ascii_digit()) => Err(format!(
                "condition: `{x} of` (only `1 of` and `all of`) is not supported"
            )),
            Some(id) => Ok(Cond::Id(id.to_owned())),
            None => Err("condition ends early".into()),
        }
    }
}

fn glob(p: &str, s: &str) -> bool {
    let p = p.encode_utf16().collect::<Vec<_>>();
    let s = s.encode_utf16().collect::<Vec<_>>();
    failsafe_loader::text::wildcard_folded(
        &s,
        &p.iter()
            .map(|&u| failsafe_loader::text::fold(u))
            .collect::<Vec<_>>(),
    )
}

/// A clause: all of `pos` (criteria) and none of the `neg` conjunctions.
#[derive(Clone, Debug, Default)]
struct Clause {
    pos: Vec<Crit>,
    neg: Vec<Vec<Crit>>,
}

fn and_clauses(a: Vec<Clause>, b: Vec<Clause>) -> Vec<Clause> {
    let mut out = Vec::new();
    for x in &a {
        for y in &b {
            let mut c = x.clone();
            c.pos.extend(y.pos.iter().cloned());
            c.neg.extend(y.neg.iter().cloned());
            out.push(c);
        }
    }
    out
}

fn dnf(c: &Cond, sels: &[(String, Vec<Vec<Crit>>)], why: &mut Vec<String>) -> Vec<Clause> {
    let one = |conj: &Vec<Crit>| Clause {
        pos: conj.clone(),
        neg: vec![],
    };
    match c {
        Cond::Id(n) => match sels.iter().find(|(k, _)| k == n) {
            Some((_, maps)) => maps.iter().map(one).collect(),
            None => {
                why.push(format!(
                    "condition names `{n}`, which is not a search identifier"
                ));
                vec![]
            }
        },
        Cond::Of(any, p) => {
            let picked: Vec<&(String, Vec<Vec<Crit>>)> = sels
                .iter()
                .filter(|(k, _)| {
                    if p == "them" {
                        !k.starts_with('_')
                    } else {
                        glob(p, k)
                    }
                })
                .collect();
            if picked.is_empty() {
                why.push(format!("`of {p}` matches no search identifier"));
                return vec![];
            }
            let parts = picked
                .into_iter()
                .map(|(_, maps)| maps.iter().map(one).collect::<Vec<_>>());
            if *any {
                parts.flatten().collect()
            } else {
                parts.reduce(and_clauses).unwrap_or_default()
            }
        }
        Cond::And(a, b) => and_clauses(dnf(a, sels, why), dnf(b, sels, why)),
        Cond::Or(a, b) => {
            let mut x = dnf(a, sels, why);
            x.extend(dnf(b, sels, why));
            x
        }
        Cond::Not(x) => {
            // not (C1 or C2 ...) = not C1 and not C2 ...; not (P and not N1 ...) =
            // (not P) or N1 or ...
            let mut acc = vec![Clause::default()];
            for cl in dnf(x, sels, why) {
                let mut alts = Vec::new();
                if !cl.pos.is_empty() {
                    alts.push(Clause {
                        pos: vec![],
                        neg: vec![cl.pos.clone()],
                    });
                }
                for n in &cl.neg {
                    alts.push(Clause {
                        pos: n.clone(),
                        neg: vec![],
                    });
                }
                acc = and_clauses(acc, alts);
                if acc.len() > MAX_CLAUSES * 4 {
                    break;
                }
            }
            acc
        }
    }
}

/// Imports one YAML document (a Sigma rule).
pub fn import_doc(doc: &Yaml) -> Imported {
    let s = |k: &str| doc[k].as_str().map(str::to_owned);
    let title = s("title").unwrap_or_else(|| "(untitled)".into());
    let mut why = Vec::new();
    let result = convert(doc, &mut why);
    Imported {
        title,
        sigma_id: s("id"),
        level: s("level"),
        result: match result {
            Some(r) if why.is_empty() => Ok(r),
            _ => {
                if why.is_empty() {
                    why.push("nothing to import".into());
                }
                why.dedup();
                Err(why)
            }
        },
    }
}

fn convert(doc: &Yaml, why: &mut Vec<String>) -> Option<Vec<RuleOut>> {
    let ls = &doc["logsource"];
    let product = ls["product"].as_str().unwrap_or("");
    let cat = ls["category"].as_str().unwrap_or("");
    if product != "windows" {
        why.push(format!("logsource product `{product}` is not windows"));
        return None;
    }
    let Some((event, fixed)) = category(cat) else {
        why.push(format!(
            "logsource category `{cat}` is not a file category (file_event, file_access, file_delete, file_rename)"
        ));
        return None;
    };
    if !ls["service"].is_badvalue() {
        why.push("logsource with a service is not supported".into());
    }
    let det = &doc["detection"];
    let Yaml::Hash(h) = det else {
        why.push("no detection".into());
        return None;
    };
    let mut sels = Vec::new();
    let mut conds = Vec::new();
    for (k, v) in h {
        let Some(k) = k.as_str() else { continue };
        if k == "condition" {
            match v {
                Yaml::String(c) => conds.push(c.clone()),
                Yaml::Array(a) => {
                    conds.extend(a.iter().filter_map(|x| x.as_str().map(str::to_owned)))
                }
                _ => why.push("condition is not a string".into()),
            }
        } else if k == "timeframe" {
            why.push("timeframe (correlation) is not supported".into());
        } else {
            sels.push((k.to_owned(), selection(cat, k, v, why)));
        }
    }
    if conds.is_empty() {
        why.push("no condition".into());
    }
    let mut clauses = Vec::new();
    for c in &conds {
        let mut p = Parser { t: lex(c), i: 0 };
        match p.or() {
            Ok(e) if p.i == p.t.len() => clauses.extend(dnf(&e, &sels, why)),
            Ok(_) => why.push(format!("condition `{c}`: unexpected `{}`", p.t[p.i])),
            Err(e) => why.push(e),
        }
    }
    if !why.is_empty() {
        return None;
    }
    if clauses.len() > MAX_CLAUSES {
        why.push(format!(
            "the condition expands to {} Failsafe rules (more than {MAX_CLAUSES})",
            clauses.len()
        ));
        return None;
    }
    let mut out = Vec::new();
    for cl in clauses {
        if cl.pos.is_empty() {
            why.push("a branch of the condition has no positive selection (it would match every operation)".into());
            return None;
        }
        let mut criteria = fixed.clone();
        for c in cl.pos {
            if !criteria.contains(&c) {
                criteria.push(c);
            }
        }
        let exceptions: Vec<Vec<Crit>> = cl.neg.into_iter().filter(|n| !n.is_empty()).collect();
        if criteria.len() > 32 || exceptions.len() > 16 || exceptions.iter().any(|e| e.len() > 32) {
            why.push("more criteria or exception sets than a Failsafe rule holds (32 / 16)".into());
            return None;
        }
        if criteria
            .iter()
            .chain(exceptions.iter().flatten())
            .any(|c| c.values.len() > 255)
        {
            why.push("a value list longer than 255".into());
            return None;
        }
        out.push(RuleOut {
            event,
            criteria,
            exceptions,
        });
    }
    Some(out)
}

/// Parses a YAML file into documents (a file may hold several, `---`-separated).
pub fn load(text: &str) -> Result<Vec<Yaml>, String> {
    YamlLoader::load_from_str(text).map_err(|e| format!("YAML: {e}"))
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn crit_toml(c: &Crit) -> String {
    let vals: Vec<String> = c
        .values
        .iter()
        .map(|v| match v {
            Val::S(s) => toml_str(s),
            Val::I(i) => i.to_string(),
        })
        .collect();
    let mut s = format!("{{ field = \"{}\", op = \"{}\"", c.field, c.op);
    match vals.len() {
        0 => {}
        1 => {
            let _ = write!(s, ", value = {}", vals[0]);
        }
        _ => {
            let _ = write!(s, ", value = [{}]", vals.join(", "));
        }
    }
    if c.negate {
        s.push_str(", negate = true");
    }
    s.push_str(" }");
    s
}

/// TOML for one rule.
pub fn rule_toml(
    r: &RuleOut,
    id: u32,
    action: &str,
    meta: &Imported,
    file: &str,
    part: Option<(usize, usize)>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n# Sigma: {}{}",
        meta.title,
        part.map_or(String::new(), |(i, n)| format!(" (part {i} of {n})"))
    );
    let _ = writeln!(
        s,
        "[[rule]]\nid = {id}\nevent = \"{}\"\naction = \"{action}\"",
        r.event
    );
    let mut m = vec![
        format!("source = {}", toml_str(file)),
        format!("title = {}", toml_str(&meta.title)),
    ];
    if let Some(x) = &meta.sigma_id {
        m.push(format!("sigma-id = {}", toml_str(x)));
    }
    if let Some(x) = &meta.level {
        m.push(format!("level = {}", toml_str(x)));
    }
    let _ = writeln!(s, "meta = {{ {} }}", m.join(", "));
    s.push_str("match = [\n");
    for c in &r.criteria {
        let _ = writeln!(s, "  {},", crit_toml(c));
    }
    s.push_str("]\n");
    if !r.exceptions.is_empty() {
        s.push_str("except = [\n");
        for set in &r.exceptions {
            let parts: Vec<_> = set.iter().map(crit_toml).collect();
            let _ = writeln!(s, "  [{}],", parts.join(", "));
        }
        s.push_str("]\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_escapes() {
        assert_eq!(
            string_value(r"C:\Windows\x.exe", None).unwrap(),
            ("equals", r"C:\Windows\x.exe".into())
        );
        assert_eq!(
            string_value(r"\x.exe", Some("endswith")).unwrap(),
            ("ends-with", r"\x.exe".into())
        );
        assert_eq!(
            string_value(r"*\x.exe", None).unwrap(),
            ("ends-with", r"\x.exe".into())
        );
        assert_eq!(
            string_value(r"C:\Users\\*\AppData\\*.exe", None).unwrap(),
            ("wildcard", r"C:\Users\*\AppData\*.exe".into())
        );
        assert_eq!(
            string_value(r"\Temp\", Some("contains")).unwrap(),
            ("contains", r"\Temp\".into())
        );
        assert_eq!(
            string_value(r"C:\\Temp", None).unwrap(),
            ("equals", r"C:\Temp".into())
        );
        assert_eq!(
            string_value(r"C:\Temp\\*", None).unwrap(),
            ("starts-with", r"C:\Temp\".into())
        );
        assert!(string_value(r"a\*b", None).is_err());
        assert!(string_value("*", None).is_err());
        assert_eq!(
            string_value("a?c", Some("contains")).unwrap(),
            ("wildcard", "*a?c*".into())
        );
    }

    #[test]
    fn conditions() {
        let mut p = Parser {
            t: lex("1 of sel* and not (filter_a or filter_b)"),
            i: 0,
        };
        let e = p.or().unwrap();
        assert_eq!(p.i, p.t.len());
        assert!(matches!(e, Cond::And(_, _)));
    }
}
