//! `failsafectl compile SRC.toml -o OUT.fsc`: TOML to binary content, every error and lint
//! of the file in one run, the kernel's validator last.

use std::path::{Path, PathBuf};

use failsafe_loader::format::MAGIC;
use failsafe_loader::state::start::file_digest;
use failsafe_loader::{check, encode};
use serde_json::json;

use crate::fail::Fail;
use crate::report::{hex, out};
use crate::source::{self, Diag, Severity};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  failsafectl compile content/sample.toml -o sample.fsc --version 42\n  failsafectl compile rules.toml -o rules.fsc --deny-warnings"
)]
pub struct Args {
    /// TOML source.
    pub src: PathBuf,
    /// Output file.
    #[arg(short, long, value_name = "OUT.fsc")]
    pub output: PathBuf,
    /// Content version (overrides `version` in the source).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub version: Option<u64>,
    /// Fail (exit 1, nothing written) when a lint warns.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Overwrite OUT even if it is the source itself or an existing file that is not
    /// Failsafe content.
    #[arg(long)]
    pub force: bool,
    /// Sign the output with this private key (see `keygen`).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Refuses to overwrite the source, or an existing file that does not start with the
/// content magic, unless `--force`.
fn check_output(a: &Args) -> Result<(), Fail> {
    if a.force {
        return Ok(());
    }
    if same_file(&a.src, &a.output) {
        return Err(Fail::refused(
            "would-overwrite",
            format!(
                "refusing to overwrite the source {} with compiled content (choose another -o, or --force)",
                a.src.display()
            ),
        ));
    }
    if let Ok(mut f) = std::fs::File::open(&a.output) {
        use std::io::Read as _;
        let mut head = [0u8; 8];
        let n = f.read(&mut head).unwrap_or(0);
        let is_dir = f.metadata().is_ok_and(|m| m.is_dir());
        if is_dir || n < MAGIC.len() || head != MAGIC {
            return Err(Fail::refused(
                "would-overwrite",
                format!(
                    "refusing to overwrite {}: it exists and is not Failsafe content (choose another -o, or --force)",
                    a.output.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Warnings of one kind printed with their place; past this many, the rest of that kind
/// are counted in one line (a generated source of 100k rules in device form had 180 000
/// `device-path` warnings). `--json` lists every one.
const SHOWN_PER_CODE: usize = 20;

/// Prints diagnostics on standard error, as `SRC:LINE:COL: warning[code]: ...`.
fn print_diags(src: &Path, diags: &[Diag]) {
    let color = crate::color::stderr();
    let mut warned: std::collections::BTreeMap<&str, usize> = Default::default();
    for d in diags {
        let (word, paint) = match d.severity {
            Severity::Error => ("error", crate::color::RED),
            Severity::Warning => ("warning", crate::color::YELLOW),
        };
        if d.severity == Severity::Warning {
            let n = warned.entry(d.code).or_default();
            *n += 1;
            if *n > SHOWN_PER_CODE {
                continue;
            }
        }
        let place = match d.line_col {
            Some((l, c)) => format!("{}:{l}:{c}", src.display()),
            None => src.display().to_string(),
        };
        let rule = d.rule.as_ref().map_or(String::new(), |r| format!("{r}: "));
        eprintln!(
            "{place}: {}[{}]: {rule}{}",
            color.paint(paint, word),
            d.code,
            d.message
        );
    }
    for (code, n) in warned {
        if n > SHOWN_PER_CODE {
            eprintln!(
                "{}: {} more warning[{code}] not shown ({n} in all; --json lists every one)",
                src.display(),
                n - SHOWN_PER_CODE
            );
        }
    }
}

pub fn run(a: &Args) -> Result<u8, Fail> {
    check_output(a)?;
    let key = a
        .sign
        .as_deref()
        .map(super::keygen::read_signing_key)
        .transpose()?;
    let src = &a.src;
    let text = std::fs::read_to_string(src)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", src.display())))?;
    let mut compiled = match source::compile_all(&text, a.version) {
        Ok(c) => c,
        Err(d) => {
            print_diags(src, &d.0);
            let n = d.0.iter().filter(|x| x.severity == Severity::Error).count();
            let first = d.0.first().map_or(String::new(), ToString::to_string);
            let msg = if n == 1 {
                format!("{}: {first}", src.display())
            } else {
                format!("{}: {n} errors; the first: {first}", src.display())
            };
            return Err(Fail::invalid(msg).with(
                "diagnostics",
                json!(d.0.iter().map(Diag::json).collect::<Vec<_>>()),
            ));
        }
    };
    crate::lint::lint(&mut compiled, &text);
    print_diags(src, &compiled.warnings);
    let warnings = || -> Vec<_> { compiled.warnings.iter().map(Diag::json).collect() };
    if a.deny_warnings && !compiled.warnings.is_empty() {
        return Err(Fail::invalid(format!(
            "{}: {} warning(s) and --deny-warnings: nothing written",
            src.display(),
            compiled.warnings.len()
        ))
        .with("diagnostics", json!(warnings())));
    }
    let content = &compiled.content;
    let bytes = encode(content).map_err(|e| Fail::invalid(format!("{}: {e}", src.display())))?;
    // The kernel's own validator has the last word on what gets written; its error points
    // at the rule's line in the source.
    // The validator's check, without decoding the content back (it is `content`).
    let header = check(&bytes).map_err(|e| {
        let at =
            e.at.rule_index
                .and_then(|i| compiled.rule_offsets.get(usize::try_from(i).ok()?))
                .map(|&o| {
                    let (l, c) = source::line_col(&text, o);
                    format!("line {l}, column {c}: ")
                })
                .unwrap_or_default();
        Fail::invalid(format!(
            "{}: {at}compiled content fails validation: {e}",
            src.display()
        ))
    })?;
    let bytes = match &key {
        Some(k) => super::sign::sign_bytes(&bytes, k)?,
        None => bytes,
    };
    crate::host::write_atomic(&a.output, &bytes)
        .map_err(|e| Fail::io(format!("cannot write {}: {e}", a.output.display())))?;
    let digest = hex(&file_digest(&bytes));
    let key_id = key.as_ref().map(|k| hex(&k.id));
    // The report's JSON only when asked for (a value per warning: 180 000 of them).
    let report = if a.json {
        json!({"output": a.output, "version": header.version, "rules": content.rules.len(),
               "bytes": bytes.len(), "sha256": digest, "key_id": key_id, "warnings": warnings()})
    } else {
        serde_json::Value::Null
    };
    out(
        a.json,
        report,
        format!(
            "compiled {} -> {}: version {}, {} rules, {} bytes, sha256 {digest}, {}{}",
            src.display(),
            a.output.display(),
            header.version,
            content.rules.len(),
            bytes.len(),
            key_id.map_or("unsigned".to_owned(), |id| format!("signed by key {id}")),
            match compiled.warnings.len() {
                0 => String::new(),
                n => format!(" ({n} warning{})", if n == 1 { "" } else { "s" }),
            }
        ),
    );
    // The process ends here: freeing the parsed source's many small allocations one by one
    // took a tenth of a 100k-rule compile.
    std::mem::forget(compiled);
    std::mem::forget(text);
    Ok(0)
}
