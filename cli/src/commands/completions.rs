//! `failsafectl completions SHELL` and `failsafectl man`: generated from the clap
//! definition at run time, so they never drift from `--help` and nothing generated is
//! committed. Install, e.g.:
//! `failsafectl completions bash > /etc/bash_completion.d/failsafectl`,
//! `failsafectl man > /usr/local/share/man/man1/failsafectl.1`.

use clap::Command;

use crate::fail::Fail;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  failsafectl completions bash > /etc/bash_completion.d/failsafectl\n  failsafectl completions powershell >> $PROFILE"
)]
pub struct Args {
    /// Shell to generate for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args)]
#[command(after_help = "Example:\n  failsafectl man > /usr/local/share/man/man1/failsafectl.1")]
pub struct ManArgs {}

pub fn run(a: &Args, mut cmd: Command) -> Result<u8, Fail> {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "failsafectl", &mut buf);
    outp!("{}", String::from_utf8_lossy(&buf));
    Ok(0)
}

pub fn man(_: &ManArgs, cmd: Command) -> Result<u8, Fail> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(|e| Fail::io(format!("cannot render the man page: {e}")))?;
    outp!("{}", String::from_utf8_lossy(&buf));
    Ok(0)
}
