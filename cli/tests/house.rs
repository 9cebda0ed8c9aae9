//! The console's own house (issue 20, section 3): its top-level modules import each other
//! in one direction only, and `status` reads the state record once per run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assert_cmd::Command;

fn ctl() -> Command {
    Command::cargo_bin("failsafectl").unwrap()
}

/// Every `crate::NAME` a top-level module of `cli/src` names, per module.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut names = BTreeSet::new();
    let mut text = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            // A module's folder (`control/windows.rs`) belongs to it.
            let mut t = std::fs::read_to_string(&p).unwrap();
            if let Ok(rd) = std::fs::read_dir(src.join(&name)) {
                for f in rd {
                    t += &std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
                }
            }
            names.insert(name.clone());
            text.insert(name, t);
        }
    }
    names.remove("main");
    let mut graph = BTreeMap::new();
    for (m, t) in &text {
        if m == "main" {
            continue;
        }
        let deps: BTreeSet<String> = t
            .split("crate::")
            .skip(1)
            .filter_map(|rest| {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (names.contains(&name) && name != *m).then_some(name)
            })
            .collect();
        graph.insert(m.clone(), deps);
    }
    graph
}

/// A cycle through `from`, if any (depth-first).
fn cycle(
    g: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    from: &str,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|p| p == from) {
        let mut c = path[i..].to_vec();
        c.push(from.to_owned());
        return Some(c);
    }
    path.push(from.to_owned());
    for d in g.get(from).into_iter().flatten() {
        if let Some(c) = cycle(g, path, d) {
            return Some(c);
        }
    }
    path.pop();
    None
}

#[test]
fn console_modules_import_each_other_in_one_direction() {
    let g = module_graph();
    // The files the old circle ran through are all there (the check reads the right tree).
    for m in ["host", "store", "report", "fail"] {
        assert!(g.contains_key(m), "cli/src/{m}.rs not found: {g:?}");
    }
    for m in g.keys() {
        if let Some(c) = cycle(&g, &mut Vec::new(), m) {
            panic!(
                "cli/src modules import each other in a circle: {}",
                c.join(" -> ")
            );
        }
    }
}

/// Counts the opens of `path` while `f` runs (inotify `IN_OPEN` events).
#[cfg(target_os = "linux")]
fn opens_of(path: &Path, f: impl FnOnce()) -> usize {
    use std::os::unix::ffi::OsStrExt as _;
    // SAFETY: a plain syscall; the descriptor is this function's and closed below.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(
        fd >= 0,
        "inotify_init1: {}",
        std::io::Error::last_os_error()
    );
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // Closes too: inotify merges an event into an identical one still unread, so two opens
    // in a row would count once; open, close, open, close do not merge.
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN | libc::IN_CLOSE) };
    assert!(
        wd >= 0,
        "inotify_add_watch: {}",
        std::io::Error::last_os_error()
    );
    f();
    let mut n = 0;
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is writable for its length.
        let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let Ok(got) = usize::try_from(got) else { break };
        if got == 0 {
            break;
        }
        // struct inotify_event (inotify(7)): wd i32, mask u32, cookie u32, len u32, name.
        let u32_at = |i: usize| u32::from_ne_bytes(buf[i..i + 4].try_into().unwrap());
        let mut at = 0usize;
        while at + 16 <= got {
            if u32_at(at + 4) & libc::IN_OPEN != 0 {
                n += 1;
            }
            at += 16 + u32_at(at + 12) as usize;
        }
    }
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd) };
    n
}

#[cfg(target_os = "linux")]
#[test]
fn status_reads_the_record_once() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s");
    std::fs::create_dir_all(store.join("content")).unwrap();
    ctl()
        .args(["recover", "force-safe-mode", "off", "--store"])
        .arg(&store)
        .assert()
        .success();
    let record = store.join("state.bin");
    assert!(record.exists());
    for json in [false, true] {
        let n = opens_of(&record, || {
            let mut c = ctl();
            c.arg("status").arg("--store").arg(&store);
            if json {
                c.arg("--json");
            }
            c.assert().success();
        });
        assert_eq!(n, 1, "status (json {json}) opened {record:?} {n} times");
    }
}
