//! `failsafectl inspect FILE`: header, digest and every rule decoded; `--source` prints
//! TOML that compiles back to the same bytes; `--json` gives every value as data.

use std::path::PathBuf;

use failsafe_loader::format::read_header;
use failsafe_loader::state::start::file_digest;
use failsafe_loader::validate;
use serde_json::json;

use crate::fail::Fail;
use crate::report::{hex, versioned};
use crate::source::{self, rule_name};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  failsafectl inspect 42.fsc\n  failsafectl inspect 42.fsc --source > 42.toml\n  failsafectl inspect 42.fsc --json"
)]
pub struct Args {
    /// Content file.
    pub file: PathBuf,
    /// Print TOML that compiles back to the same bytes.
    #[arg(long, conflicts_with = "json")]
    pub source: bool,
    /// Keys to verify the signature with.
    #[command(flatten)]
    pub keys: super::verify::KeyArgs,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &Args) -> Result<u8, Fail> {
    let file = &a.file;
    let bytes = crate::read_capped(file)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", file.display())))?;
    let header =
        read_header(&bytes).map_err(|e| Fail::invalid(format!("{}: {e}", file.display())))?;
    let v = validate(&bytes).map_err(|e| {
        Fail::invalid(format!(
            "{}: header read, but the file is invalid: {e}",
            file.display()
        ))
    })?;
    if a.source {
        outp!("{}", source::to_source(&v.content));
        return Ok(0);
    }
    let trust = a.keys.given()?;
    let (sig, sig_text) = super::verify::describe(&bytes, &header, trust.as_ref());
    let d = hex(&file_digest(&bytes));
    if a.json {
        let rules: Vec<_> = v
            .content
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| crate::report::rule_json(i, r))
            .collect();
        outln!(
            "{}",
            versioned(
                json!({"file": file, "format": header.format, "schema": header.schema, "version": header.version,
                   "rules": rules, "rule_count": header.rule_count, "rule_table_bytes": header.rules_len,
                   "string_table_bytes": header.strings_len, "file_digest": hex(&header.digest), "body_sha256": hex(&header.digest), "sha256": d, "bytes": bytes.len(),
                   "signature": sig})
            )
        );
        return Ok(0);
    }
    outln!("file:          {}", file.display());
    outln!(
        "format:        v{} (event schema {})",
        header.format,
        header.schema
    );
    outln!("version:       {}", header.version);
    outln!(
        "size:          {} bytes (rule table {}, string table {}, signature block {})",
        bytes.len(),
        header.rules_len,
        header.strings_len,
        header.signature_len
    );
    outln!("signature:     {sig_text}");
    outln!("sha256:        {d}");
    outln!("file digest:   {} (verified)", hex(&header.digest));
    outln!("rules:         {}", header.rule_count);
    for (i, r) in v.content.rules.iter().enumerate() {
        outln!("  {}: {} on {}", rule_name(i, r.id), r.action, r.event);
        for c in &r.criteria {
            outln!("      {}", source::describe_criterion(r.event, c));
        }
        for (k, set) in r.exceptions.iter().enumerate() {
            let parts: Vec<_> = set
                .iter()
                .map(|c| source::describe_criterion(r.event, c))
                .collect();
            outln!("      except[{k}]: {}", parts.join(" and "));
        }
    }
    Ok(0)
}
