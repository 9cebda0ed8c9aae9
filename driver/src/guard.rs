//! The driver's own directory (state record, content store, health canary) is never
//! subject to a `block` verdict: content must not be able to stop the driver recording its
//! own boot attempts, or the responder's tool staging a fix (issue: `failsafectl stage` was
//! blocked by the sample's own rule on a live VM). Protection of that directory against
//! other writers is the job of its ACL (Administrators and SYSTEM only), not of content.

use alloc::vec::Vec;

use failsafe_loader::text::fold;

/// The normalized, case-folded name of the driver's directory, e.g.
/// `\DEVICE\HARDDISKVOLUME3\WINDOWS\FAILSAFE`, without a trailing separator.
#[derive(Debug)]
pub struct OwnDir {
    folded: Vec<u16>,
}

const SEP: u16 = 0x5C; // '\'

impl OwnDir {
    /// From the directory's name as the object manager reports it; `None` for an empty name
    /// or when memory is short.
    pub fn try_new(name: &[u16]) -> Option<Self> {
        let mut end = name.len();
        while end > 0 && name.get(end.saturating_sub(1)) == Some(&SEP) {
            end = end.saturating_sub(1);
        }
        let name = name.get(..end)?;
        if name.is_empty() {
            return None;
        }
        let mut folded = Vec::new();
        folded.try_reserve_exact(name.len()).ok()?;
        for &u in name {
            failsafe_loader::mem::push(&mut folded, fold(u)).ok()?;
        }
        Some(OwnDir { folded })
    }

    /// `path` is the directory itself or lies inside it (compared as Windows compares
    /// names: case-insensitively, one code unit at a time).
    pub fn contains(&self, path: &[u16]) -> bool {
        under(path, &self.folded, |a, b| fold(a) == b)
    }
}

/// `path` is `dir` itself or lies inside it: `dir` is a prefix (units compared by `eq`)
/// followed by the end of `path` or a separator. Shared with the volume table.
pub fn under(path: &[u16], dir: &[u16], eq: impl Fn(u16, u16) -> bool) -> bool {
    let n = dir.len();
    path.get(..n)
        .is_some_and(|head| head.iter().zip(dir).all(|(&a, &b)| eq(a, b)))
        && matches!(path.get(n), None | Some(&SEP))
}

#[cfg(test)]
#[allow(
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed expectation is a test failure"
)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn inside_and_outside() {
        let d = OwnDir::try_new(&w("\\Device\\HarddiskVolume3\\Windows\\Failsafe\\"))
            .unwrap_or_else(|| unreachable!());
        assert!(d.contains(&w("\\Device\\HarddiskVolume3\\Windows\\Failsafe")));
        assert!(d.contains(&w(
            "\\device\\harddiskvolume3\\windows\\failsafe\\state.bin"
        )));
        assert!(d.contains(&w(
            "\\Device\\HarddiskVolume3\\Windows\\FAILSAFE\\content\\2.fsc"
        )));
        // A sibling whose name starts the same is not inside.
        assert!(!d.contains(&w("\\Device\\HarddiskVolume3\\Windows\\FailsafeX\\a")));
        assert!(!d.contains(&w("\\Device\\HarddiskVolume3\\Windows")));
        assert!(!d.contains(&w(
            "\\Device\\HarddiskVolume4\\Windows\\Failsafe\\state.bin"
        )));
        assert!(OwnDir::try_new(&w("\\\\")).is_none());
        assert!(OwnDir::try_new(&[]).is_none());
    }
}
