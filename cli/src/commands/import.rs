//! `failsafectl import sigma RULE.yml... -o OUT.toml`: Sigma rules of the Windows file
//! categories to Failsafe TOML (docs/cli.md, "import sigma"; mapping in `crate::sigma`).
//! A Sigma rule is imported whole or not at all; every rule that is not is reported with
//! each construct that stopped it, and the exit code is 1. The output is compiled (with
//! the lints) before it is written.

use std::path::PathBuf;

use serde_json::json;

use crate::fail::Fail;
use crate::report::versioned;
use crate::sigma;

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// Sigma detection rules (YAML).
    Sigma,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ImportAction {
    Audit,
    Block,
    Allow,
}

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  failsafectl import sigma rules/windows/file/file_event/*.yml -o sigma.toml --action audit\n\nExit codes: 0 every rule imported, 1 some rules not imported (the others are written), 2 usage or I/O error."
)]
pub struct Args {
    /// Rule format.
    #[arg(value_enum)]
    pub format: Format,
    /// Rule files.
    #[arg(required = true, value_name = "RULE.yml")]
    pub files: Vec<PathBuf>,
    /// Output TOML source.
    #[arg(short, long, value_name = "OUT.toml")]
    pub output: PathBuf,
    /// Action of every imported rule.
    #[arg(long, value_enum, default_value_t = ImportAction::Audit)]
    pub action: ImportAction,
    /// Id of the first imported rule; the others follow in order.
    #[arg(long, default_value_t = 100_000)]
    pub first_id: u32,
    /// Content version written into the source.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub version: u64,
    /// Overwrite OUT.toml if it exists.
    #[arg(long)]
    pub force: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &Args) -> Result<u8, Fail> {
    if a.output.exists() && !a.force {
        return Err(Fail::refused(
            "would-overwrite",
            format!(
                "refusing to overwrite {} (choose another -o, or --force)",
                a.output.display()
            ),
        ));
    }
    let action = match a.action {
        ImportAction::Audit => "audit",
        ImportAction::Block => "block",
        ImportAction::Allow => "allow",
    };
    let mut toml = format!(
        "# Imported by failsafectl import sigma ({} file(s)); action {action}.\n# Regenerate rather than edit: the Sigma rules are the source.\nversion = {}\n",
        a.files.len(),
        a.version
    );
    let mut id = a.first_id;
    let mut report = Vec::new();
    let (mut full, mut total) = (0usize, 0usize);
    for f in &a.files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Fail::io(format!("cannot read {}: {e}", f.display())))?;
        let docs = match sigma::load(&text) {
            Ok(d) => d,
            Err(e) => {
                total += 1;
                report.push(json!({"file": f, "title": null, "imported": false, "reasons": [e]}));
                continue;
            }
        };
        let name = f.file_name().map_or_else(
            || f.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for doc in docs.iter().filter(|d| !d.is_null()) {
            total += 1;
            let imp = sigma::import_doc(doc);
            match &imp.result {
                Ok(rules) => {
                    full += 1;
                    let first = id;
                    let n = rules.len();
                    for (k, r) in rules.iter().enumerate() {
                        let part = (n > 1).then_some((k + 1, n));
                        toml.push_str(&sigma::rule_toml(r, id, action, &imp, &name, part));
                        id = id.checked_add(1).ok_or_else(|| {
                            Fail::usage("rule ids overflow u32 (lower --first-id)".into())
                        })?;
                    }
                    report.push(json!({"file": f, "title": imp.title, "sigma_id": imp.sigma_id, "imported": true,
                                       "rule_ids": (first..id).collect::<Vec<_>>()}));
                }
                Err(why) => report.push(
                    json!({"file": f, "title": imp.title, "sigma_id": imp.sigma_id,
                                               "imported": false, "reasons": why}),
                ),
            }
        }
    }
    // The output must compile: the importer's own check.
    let mut compiled = crate::source::compile_all(&toml, None).map_err(|d| {
        Fail::new(
            2,
            "internal",
            format!("imported TOML does not compile (a bug in the importer): {d}"),
        )
    })?;
    crate::lint::lint(&mut compiled, &toml);
    crate::host::write_atomic(&a.output, toml.as_bytes())
        .map_err(|e| Fail::io(format!("cannot write {}: {e}", a.output.display())))?;
    let skipped = total - full;
    if a.json {
        outln!(
            "{}",
            versioned(
                json!({"output": a.output, "rules_in": total, "imported": full, "not_imported": skipped,
                   "failsafe_rules": id - a.first_id, "files": report,
                   "warnings": compiled.warnings.iter().map(crate::source::Diag::json).collect::<Vec<_>>()})
            )
        );
    } else {
        for r in &report {
            let file = r["file"].as_str().unwrap_or("?");
            let title = r["title"].as_str().unwrap_or("?");
            if r["imported"] == json!(true) {
                let ids: Vec<String> = r["rule_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(ToString::to_string)
                    .collect();
                outln!(
                    "imported      {file}: {title} -> rule id {}",
                    ids.join(", ")
                );
            } else {
                outln!("NOT imported  {file}: {title}");
                for w in r["reasons"].as_array().into_iter().flatten() {
                    outln!("    - {}", w.as_str().unwrap_or("?"));
                }
            }
        }
        for w in &compiled.warnings {
            outln!("warning[{}]: {w}", w.code);
        }
        outln!(
            "{full} of {total} Sigma rules imported fully ({} Failsafe rules) -> {}{}",
            id - a.first_id,
            a.output.display(),
            if skipped > 0 {
                format!("; {skipped} not imported (listed above)")
            } else {
                String::new()
            }
        );
    }
    Ok(u8::from(skipped > 0))
}
