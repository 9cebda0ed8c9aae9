//! UTF-16 text: case folding as Windows compares names, well-formedness, and the string
//! operators. Patterns are folded once when content is compiled; inputs are folded on the
//! fly, one code unit at a time, so evaluation allocates nothing.

/// Wildcard: any run of code units, possibly empty.
pub const STAR: u16 = 0x2A;
/// Wildcard: exactly one code unit.
pub const QMARK: u16 = 0x3F;

/// Upper-cases one UTF-16 code unit the way an NTFS upcase table does: a one-to-one map of
/// code units, so characters whose upper case is longer (`ß`) or outside the BMP map to
/// themselves, and surrogates are compared exactly.
#[inline]
pub fn fold(unit: u16) -> u16 {
    if unit < 0x80 {
        return if (0x61..=0x7A).contains(&unit) {
            unit ^ 0x20
        } else {
            unit
        };
    }
    let Some(c) = char::from_u32(u32::from(unit)) else {
        return unit; // a surrogate half
    };
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(unit),
        _ => unit,
    }
}

/// Position and value of the first unpaired surrogate, if any.
pub fn first_unpaired_surrogate(units: &[u16]) -> Option<(usize, u16)> {
    first_unpaired_surrogate_in(units.iter().copied())
}

/// [`first_unpaired_surrogate`] over any sequence of code units.
pub fn first_unpaired_surrogate_in(units: impl Iterator<Item = u16>) -> Option<(usize, u16)> {
    let mut it = units.enumerate();
    while let Some((i, u)) = it.next() {
        match u {
            0xD800..=0xDBFF => match it.next() {
                Some((_, 0xDC00..=0xDFFF)) => {}
                _ => return Some((i, u)),
            },
            0xDC00..=0xDFFF => return Some((i, u)),
            _ => {}
        }
    }
    None
}

/// `input` (any case) equals the folded `pat`.
#[inline]
pub fn eq_folded(input: &[u16], pat: &[u16]) -> bool {
    input.len() == pat.len() && input.iter().zip(pat).all(|(&i, &p)| fold(i) == p)
}

/// `input` starts with the folded `pat`.
#[inline]
pub fn starts_with_folded(input: &[u16], pat: &[u16]) -> bool {
    input
        .get(..pat.len())
        .is_some_and(|head| eq_folded(head, pat))
}

/// `input` ends with the folded `pat`.
#[inline]
pub fn ends_with_folded(input: &[u16], pat: &[u16]) -> bool {
    input
        .len()
        .checked_sub(pat.len())
        .and_then(|start| input.get(start..))
        .is_some_and(|tail| eq_folded(tail, pat))
}

/// `input` contains the folded `pat` (naive scan; used only to re-check candidates and for
/// rules the index cannot anchor).
pub fn contains_folded(input: &[u16], pat: &[u16]) -> bool {
    let Some(last) = input.len().checked_sub(pat.len()) else {
        return false;
    };
    (0..=last).any(|start| {
        input
            .get(start..)
            .and_then(|rest| rest.get(..pat.len()))
            .is_some_and(|window| eq_folded(window, pat))
    })
}

/// `input` matches the folded wildcard `pat`. Greedy with single-star backtracking:
/// O(len(input) * len(pat)) in the worst case, never recursive, never unbounded.
pub fn wildcard_folded(input: &[u16], pat: &[u16]) -> bool {
    let (mut i, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        let Some(&unit) = input.get(i) else {
            while pat.get(p) == Some(&STAR) {
                p = p.saturating_add(1);
            }
            return p == pat.len();
        };
        match pat.get(p) {
            Some(&STAR) => {
                star = Some((p, i));
                p = p.saturating_add(1);
                continue;
            }
            Some(&q) if q == QMARK || q == fold(unit) => {
                i = i.saturating_add(1);
                p = p.saturating_add(1);
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, si)) => {
                let next = si.saturating_add(1);
                p = sp.saturating_add(1);
                i = next;
                star = Some((sp, next));
            }
            None => return false,
        }
    }
}

/// The longest run of literal (non-wildcard) code units in a wildcard pattern, for indexing.
pub fn longest_literal(pat: &[u16]) -> &[u16] {
    pat.split(|&u| u == STAR || u == QMARK)
        .fold(
            &[][..],
            |best, run| if run.len() > best.len() { run } else { best },
        )
}

/// Splits a normalized path into `(parent, name, extension)`, as the sensor derives the
/// `parent`, `name` and `extension` inputs. The extension is the text after the last `.` of
/// the final component (empty when there is none); separators are `\` and `/`.
pub fn split_path(path: &[u16]) -> (&[u16], &[u16], &[u16]) {
    let is_sep = |u: &u16| *u == 0x5C || *u == 0x2F;
    let (parent, name) = match path.iter().rposition(is_sep) {
        Some(pos) => (
            path.get(..pos).unwrap_or(&[]),
            path.get(pos.saturating_add(1)..).unwrap_or(&[]),
        ),
        None => (&[][..], path),
    };
    let ext = match name.iter().rposition(|&u| u == 0x2E) {
        Some(dot) => name.get(dot.saturating_add(1)..).unwrap_or(&[]),
        None => &[],
    };
    (parent, name, ext)
}

/// `\`, the path separator.
const BACKSLASH: u16 = 0x5C;

/// The drive-letter form of a path the sensor reports under a volume's device name:
/// `\Device\HarddiskVolume3\Windows\x.sys` with the volume `\Device\HarddiskVolume3`
/// whose DOS name is `C:` becomes `C:\Windows\x.sys`, written into `out`. `None` when the
/// path does not lie on that volume (the device name must be followed by `\` or end the
/// path; compared case-insensitively), when either name is empty, or when the result does
/// not fit in `out`. The volume root itself (`\Device\HarddiskVolume3` or
/// `...Volume3\`) becomes `C:\`. The driver and `failsafectl test` both call this (ADR
/// 0013).
pub fn dos_form<'o>(
    path: &[u16],
    device: &[u16],
    dos: &[u16],
    out: &'o mut [u16],
) -> Option<&'o [u16]> {
    if device.is_empty() || dos.is_empty() {
        return None;
    }
    let head = path.get(..device.len())?;
    if !head.iter().zip(device).all(|(&a, &b)| fold(a) == fold(b)) {
        return None;
    }
    let rest = path.get(device.len()..)?;
    let rest: &[u16] = match rest.first() {
        None => &[BACKSLASH],
        Some(&BACKSLASH) => rest,
        Some(_) => return None, // `\Device\HarddiskVolume31` is not on `...Volume3`
    };
    let n = dos.len().checked_add(rest.len())?;
    let dst = out.get_mut(..n)?;
    for (d, &s) in dst.iter_mut().zip(dos.iter().chain(rest)) {
        *d = s;
    }
    Some(dst)
}

/// A Win32 path written in NT form, `\??\C:\x` or `\\?\C:\x` (how a process's image
/// name is often reported), without that prefix: `C:\x`. Other paths are returned as
/// they are.
pub fn without_dos_device_prefix(path: &[u16]) -> &[u16] {
    let prefixed = matches!(
        path.get(..4),
        Some([0x5C, 0x3F, 0x3F, 0x5C] | [0x5C, 0x5C, 0x3F, 0x5C])
    );
    let drive = matches!(path.get(4..6), Some([l, 0x3A]) if is_ascii_letter(*l));
    if prefixed && drive {
        path.get(4..).unwrap_or(path)
    } else {
        path
    }
}

/// `\Device\Mup`, the multiple UNC provider: network files are named
/// `\Device\Mup\server\share\...` by the Filter Manager, `\\server\share\...` by authors.
const MUP: [u16; 11] = [
    0x5C, 0x44, 0x65, 0x76, 0x69, 0x63, 0x65, 0x5C, 0x4D, 0x75, 0x70,
];
/// `:`, which in a normalized name can only start a stream (`file.exe:payload:$DATA`).
const COLON: u16 = 0x3A;

/// The form the rules see a path in (docs/content-format.md, "Paths"), written into `out`;
/// its length, or `None` when it does not fit (the caller then evaluates the path as it
/// is). Shared by the driver and `failsafectl test`, so both see the same:
/// 1. `\??\C:\x` and `\\?\C:\x` lose their prefix;
/// 2. an alternate data stream is cut off (`evil.exe:payload` is `evil.exe`): the first
///    `:` after the last `\` (a name component cannot hold one otherwise);
/// 3. a network path `\Device\Mup\server\share\x` becomes `\\server\share\x`;
///    other paths are given to `volume`, which writes the drive-letter form of a path on a
///    volume it knows into its buffer (its length) or declines (`None`: the path is copied
///    as it is);
/// 4. trailing dots and spaces are removed from every component, as Win32 removes them
///    when it resolves a name (`evil.exe.` and `evil.exe ` are written that way only
///    through the native API, and a rule on `*.exe` must still see `.exe`); a component
///    that would become empty is kept.
pub fn rule_form(
    path: &[u16],
    volume: impl FnOnce(&[u16], &mut [u16]) -> Option<usize>,
    out: &mut [u16],
) -> Option<usize> {
    let path = without_dos_device_prefix(path);
    let path = match path.iter().rposition(|&u| u == BACKSLASH) {
        Some(last) => {
            let stream = path
                .iter()
                .skip(last)
                .position(|&u| u == COLON)
                .and_then(|at| at.checked_add(last));
            stream.and_then(|at| path.get(..at)).unwrap_or(path)
        }
        None => path,
    };
    let n = match mup_rest(path) {
        Some(rest) => {
            let n = rest.len().checked_add(1)?;
            let dst = out.get_mut(..n)?;
            for (d, &s) in dst.iter_mut().zip(core::iter::once(&BACKSLASH).chain(rest)) {
                *d = s;
            }
            n
        }
        None => match volume(path, out) {
            Some(n) if n <= out.len() => n,
            _ => {
                let dst = out.get_mut(..path.len())?;
                for (d, &s) in dst.iter_mut().zip(path) {
                    *d = s;
                }
                path.len()
            }
        },
    };
    Some(trim_component_ends(out.get_mut(..n)?))
}

/// `\server\share\x` of `\Device\Mup\server\share\x` (case-insensitively).
fn mup_rest(path: &[u16]) -> Option<&[u16]> {
    let head = path.get(..MUP.len())?;
    if !head.iter().zip(&MUP).all(|(&a, &b)| fold(a) == fold(b)) {
        return None;
    }
    let rest = path.get(MUP.len()..)?;
    (rest.first() == Some(&BACKSLASH)).then_some(rest)
}

/// Removes trailing `.` and ` ` from every component of `buf` in place (see
/// [`rule_form`]); the new length.
fn trim_component_ends(buf: &mut [u16]) -> usize {
    let mut w = 0usize; // write position
    let mut start = 0usize; // read position of the current component
    while start <= buf.len() {
        let end = buf
            .iter()
            .skip(start)
            .position(|&u| u == BACKSLASH)
            .map_or(buf.len(), |p| p.saturating_add(start));
        let comp_len = end.saturating_sub(start);
        let keep = buf
            .get(start..end)
            .and_then(|c| c.iter().rposition(|&u| u != 0x2E && u != 0x20))
            .map_or(comp_len, |p| p.saturating_add(1));
        for i in 0..keep {
            let (Some(&u), Some(_)) = (buf.get(start.saturating_add(i)), buf.get(w)) else {
                break;
            };
            if let Some(d) = buf.get_mut(w) {
                *d = u;
            }
            w = w.saturating_add(1);
        }
        if end >= buf.len() {
            break;
        }
        if let Some(d) = buf.get_mut(w) {
            *d = BACKSLASH;
        }
        w = w.saturating_add(1);
        start = end.saturating_add(1);
    }
    w.min(buf.len())
}

/// `path` begins with a drive letter and a colon (`C:`).
pub fn has_drive_letter(path: &[u16]) -> bool {
    matches!(path.get(..2), Some([l, 0x3A]) if is_ascii_letter(*l))
}

fn is_ascii_letter(u: u16) -> bool {
    (0x41..=0x5A).contains(&u) || (0x61..=0x7A).contains(&u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// `rule_form` of `p` with one volume, `\Device\HarddiskVolume3` = `C:`.
    fn rf(p: &str) -> String {
        let mut out = [0u16; 128];
        let n = rule_form(
            &w(p),
            |path, out| {
                dos_form(path, &w("\\Device\\HarddiskVolume3"), &w("C:"), out).map(<[u16]>::len)
            },
            &mut out,
        );
        assert!(n.is_some(), "{p}: does not fit");
        String::from_utf16_lossy(out.get(..n.unwrap_or(0)).unwrap_or_default())
    }

    #[test]
    fn rule_form_is_what_the_rules_see() {
        let v = "\\Device\\HarddiskVolume3";
        assert_eq!(rf(&format!("{v}\\Windows\\x.sys")), "C:\\Windows\\x.sys");
        // Streams: cut at the first colon of the last component.
        assert_eq!(rf(&format!("{v}\\t\\evil.exe:payload")), "C:\\t\\evil.exe");
        assert_eq!(rf(&format!("{v}\\t\\evil.exe::$DATA")), "C:\\t\\evil.exe");
        assert_eq!(rf("\\??\\C:\\t\\a.exe:s"), "C:\\t\\a.exe");
        assert_eq!(rf("C:"), "C:", "a drive's own colon is no stream");
        // Trailing dots and spaces of every component.
        assert_eq!(rf(&format!("{v}\\t\\evil.exe.")), "C:\\t\\evil.exe");
        assert_eq!(rf(&format!("{v}\\t\\evil.exe . .")), "C:\\t\\evil.exe");
        assert_eq!(
            rf(&format!("{v}\\Windows.\\System32 \\x.sys")),
            "C:\\Windows\\System32\\x.sys"
        );
        assert_eq!(
            rf(&format!("{v}\\t\\...")),
            "C:\\t\\...",
            "an all-dots name is kept"
        );
        assert_eq!(rf(&format!("{v}\\t\\a.b")), "C:\\t\\a.b");
        // Network paths in UNC form; device form kept for volumes without a DOS name.
        assert_eq!(
            rf("\\Device\\Mup\\srv\\share\\e.exe"),
            "\\\\srv\\share\\e.exe"
        );
        assert_eq!(
            rf("\\device\\mup\\srv\\share\\e.exe:x"),
            "\\\\srv\\share\\e.exe"
        );
        assert_eq!(rf("\\Device\\Mupx\\a"), "\\Device\\Mupx\\a");
        assert_eq!(
            rf("\\Device\\HarddiskVolume4\\a "),
            "\\Device\\HarddiskVolume4\\a"
        );
        assert_eq!(rf(""), "");
        // Too long for `out`: None (the caller evaluates the path as given).
        let mut small = [0u16; 4];
        assert_eq!(
            rule_form(&w("\\Device\\X\\abc"), |_, _| None, &mut small),
            None
        );
    }

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }
    fn wf(s: &str) -> Vec<u16> {
        s.encode_utf16().map(fold).collect()
    }

    #[test]
    fn folding_matches_windows_one_to_one_upcase() {
        assert_eq!(fold(u16::from(b'a')), u16::from(b'A'));
        assert_eq!(fold(0x00E9), 0x00C9); // é -> É
        assert_eq!(fold(0x00DF), 0x00DF); // ß has no one-unit upper case
        assert_eq!(fold(0x0434), 0x0414); // д -> Д
        assert_eq!(fold(0xD83D), 0xD83D); // surrogate half unchanged
    }

    #[test]
    fn string_operators() {
        let path = w("C:\\Users\\Bob\\Documents\\Report.DOCX");
        assert!(ends_with_folded(&path, &wf(".docx")));
        assert!(starts_with_folded(&path, &wf("c:\\users\\")));
        assert!(contains_folded(&path, &wf("\\bob\\")));
        assert!(!contains_folded(&path, &wf("\\alice\\")));
        assert!(eq_folded(&w("lsass.exe"), &wf("LSASS.EXE")));
        assert!(!eq_folded(&w("lsass.ex"), &wf("LSASS.EXE")));
        assert!(!ends_with_folded(&w("x"), &wf("longer")));
    }

    #[test]
    fn wildcards() {
        let t = |i: &str, p: &str| wildcard_folded(&w(i), &wf(p));
        assert!(t("report.docx", "*.docx"));
        assert!(t("report.docx", "r?port.*"));
        assert!(t("", "*"));
        assert!(!t("", "?"));
        assert!(t("abcabcabd", "*abd"));
        assert!(!t("abcabcabe", "*abd"));
        assert!(t("a\\b\\c", "a*c"));
        assert!(!t("ab", "a"));
        assert_eq!(
            longest_literal(&w("*\\temp\\*.t?p")),
            w("\\temp\\").as_slice()
        );
    }

    #[test]
    fn unpaired_surrogates_are_found() {
        assert_eq!(first_unpaired_surrogate(&w("ok 😀")), None);
        assert_eq!(first_unpaired_surrogate(&[0x41, 0xD800]), Some((1, 0xD800)));
        assert_eq!(first_unpaired_surrogate(&[0xDC00, 0x41]), Some((0, 0xDC00)));
        assert_eq!(first_unpaired_surrogate(&[0xD800, 0x41]), Some((0, 0xD800)));
    }

    #[test]
    fn path_split() {
        let p = w("\\Device\\HarddiskVolume3\\Users\\a.b.txt");
        let (parent, name, ext) = split_path(&p);
        assert_eq!(parent, w("\\Device\\HarddiskVolume3\\Users").as_slice());
        assert_eq!(name, w("a.b.txt").as_slice());
        assert_eq!(ext, w("txt").as_slice());
        let (parent, name, ext) = split_path(&[]);
        assert!(parent.is_empty() && name.is_empty() && ext.is_empty());
        let q = w("noext");
        assert_eq!(split_path(&q), (&[][..], q.as_slice(), &[][..]));
    }
    #[test]
    fn dos_form_maps_a_volume_device_name_to_its_drive_letter() {
        let mut out = [0u16; 64];
        let dev = w("\\Device\\HarddiskVolume3");
        let c = w("C:");
        let p = w("\\Device\\HarddiskVolume3\\Windows\\System32\\drivers\\x.sys");
        assert_eq!(
            dos_form(&p, &dev, &c, &mut out),
            Some(w("C:\\Windows\\System32\\drivers\\x.sys").as_slice())
        );
        // Case-insensitive device name; the root maps to `C:\`.
        let root = w("\\device\\harddiskvolume3");
        assert_eq!(
            dos_form(&root, &dev, &c, &mut out),
            Some(w("C:\\").as_slice())
        );
        let root2 = w("\\Device\\HarddiskVolume3\\");
        assert_eq!(
            dos_form(&root2, &dev, &c, &mut out),
            Some(w("C:\\").as_slice())
        );
        // Another volume whose name starts the same is not this one.
        let other = w("\\Device\\HarddiskVolume31\\a");
        assert_eq!(dos_form(&other, &dev, &c, &mut out), None);
        // Too long for the buffer, or no names: no DOS form.
        let mut small = [0u16; 8];
        assert_eq!(dos_form(&p, &dev, &c, &mut small), None);
        assert_eq!(dos_form(&p, &[], &c, &mut out), None);
        assert_eq!(dos_form(&p, &dev, &[], &mut out), None);
        // A volume mounted in a folder maps to that folder.
        let m = w("C:\\mnt\\data");
        let q = w("\\Device\\HarddiskVolume3\\a.txt");
        assert_eq!(
            dos_form(&q, &dev, &m, &mut out),
            Some(w("C:\\mnt\\data\\a.txt").as_slice())
        );
    }

    #[test]
    fn nt_prefixes_of_win32_paths() {
        assert_eq!(
            without_dos_device_prefix(&w("\\??\\C:\\Windows\\x.exe")),
            w("C:\\Windows\\x.exe").as_slice()
        );
        assert_eq!(
            without_dos_device_prefix(&w("\\\\?\\d:\\x")),
            w("d:\\x").as_slice()
        );
        let unc = w("\\??\\UNC\\srv\\share");
        assert_eq!(without_dos_device_prefix(&unc), unc.as_slice());
        assert!(has_drive_letter(&w("c:\\x")) && !has_drive_letter(&w("\\Device")));
    }
}
