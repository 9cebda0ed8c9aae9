//! `failsafectl inspect FILE`: header, digest and every rule decoded; `--source` prints
//! TOML that compiles back to the same bytes; `--json` gives every value as data.

use std::path::PathBuf;

use failsafe_loader::format::read_header;
use failsafe_loader::state::start::file_digest;
use failsafe_loader::validate;
use failsafe_loader::view::view;
use serde_json::json;

use crate::fail::Fail;
use crate::report::{hex, versioned};
use crate::source::{self, rule_name};
use crate::stream::{self, Out};

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
    let invalid = |e: failsafe_loader::ContentError| {
        Fail::invalid(format!(
            "{}: header read, but the file is invalid: {e}",
            file.display()
        ))
    };
    if a.source {
        // The TOML source is the owned content (`source::to_source`): its size follows the
        // decoded content, not the file (docs/cli.md).
        let v = validate(&bytes).map_err(invalid)?;
        outp!("{}", source::to_source(&v.content));
        return Ok(0);
    }
    // By reference: memory bounded by the file, whatever the output's size.
    let v = view(&bytes).map_err(invalid)?;
    let trust = a.keys.given()?;
    let (sig, sig_text) = super::verify::describe(&bytes, &header, trust.as_ref());
    let d = hex(&file_digest(&bytes));
    let mut out = Out::new();
    if a.json {
        let head = versioned(
            json!({"file": file, "format": header.format, "schema": header.schema, "version": header.version,
               "rule_count": header.rule_count, "rule_table_bytes": header.rules_len,
               "string_table_bytes": header.strings_len, "file_digest": hex(&header.digest), "body_sha256": hex(&header.digest), "sha256": d, "bytes": bytes.len(),
               "signature": sig}),
        );
        // The header's fields, then the rules streamed one by one into the same object.
        let mut text = head.to_string();
        text.pop(); // the closing brace
        out.s(&text);
        out.s(",\"rules\":[");
        for (i, r) in v.rules().iter().enumerate() {
            if i > 0 {
                out.s(",");
            }
            stream::rule_json(&mut out, &v, i, r);
        }
        out.s("]}\n");
        out.flush();
        return Ok(0);
    }
    let w: &mut dyn std::fmt::Write = &mut out;
    let _ = writeln!(w, "file:          {}", file.display());
    let _ = writeln!(
        w,
        "format:        v{} (event schema {})",
        header.format, header.schema
    );
    let _ = writeln!(w, "version:       {}", header.version);
    let _ = writeln!(
        w,
        "size:          {} bytes (rule table {}, string table {}, signature block {})",
        bytes.len(),
        header.rules_len,
        header.strings_len,
        header.signature_len
    );
    let _ = writeln!(w, "signature:     {sig_text}");
    let _ = writeln!(w, "sha256:        {d}");
    let _ = writeln!(w, "file digest:   {} (verified)", hex(&header.digest));
    let _ = writeln!(w, "rules:         {}", header.rule_count);
    for (i, r) in v.rules().iter().enumerate() {
        let _ = writeln!(w, "  {}: {} on {}", rule_name(i, r.id), r.action, r.event);
        for c in v.criteria(r) {
            let _ = w.write_str("      ");
            let _ = stream::criterion_text(w, &v, r.event, c);
            let _ = w.write_str("\n");
        }
        for (k, set) in v.exceptions(r).enumerate() {
            let _ = write!(w, "      except[{k}]: ");
            let _ = stream::criteria_text(w, &v, r.event, set);
            let _ = w.write_str("\n");
        }
    }
    out.flush();
    Ok(0)
}
