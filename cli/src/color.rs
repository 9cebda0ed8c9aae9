//! Colour on a terminal only, and never when `NO_COLOR` is set to a non-empty value
//! (<https://no-color.org>). Pipes, files and `--json` get plain text.

use std::io::IsTerminal as _;

/// ANSI SGR codes used.
pub const RED: &str = "31";
pub const YELLOW: &str = "33";
pub const GREEN: &str = "32";

/// Whether to colour one stream.
#[derive(Clone, Copy, Debug)]
pub struct Color(bool);

fn allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// For standard error.
pub fn stderr() -> Color {
    Color(allowed() && std::io::stderr().is_terminal())
}

/// For standard output.
pub fn stdout() -> Color {
    Color(allowed() && std::io::stdout().is_terminal())
}

impl Color {
    /// `text` in colour `code`, or as it is.
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}
