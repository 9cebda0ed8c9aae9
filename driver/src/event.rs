//! Building the core's `Event` from what the Filter Manager reports. Portable and tested
//! here: the kernel layer only copies raw values out of `FLT_CALLBACK_DATA` into these
//! structs, so the mapping to the schema's field order is checked on Linux.

use failsafe_loader::text::split_path;
use failsafe_loader::{Event, EventType, Input};

/// `FILE_DIRECTORY_FILE` (ntifs.h / wdm.h; windows-sys `Wdk::Storage::FileSystem`).
pub const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
/// `FileRenameInformation` (wdm.h `FILE_INFORMATION_CLASS`).
pub const FILE_RENAME_INFORMATION: i32 = 10;
/// `FileDispositionInformation`.
pub const FILE_DISPOSITION_INFORMATION: i32 = 13;
/// `FileDispositionInformationEx`.
pub const FILE_DISPOSITION_INFORMATION_EX: i32 = 64;
/// `FileRenameInformationEx`.
pub const FILE_RENAME_INFORMATION_EX: i32 = 65;
/// `FileLinkInformation` (a new hard link; same layout as a rename).
pub const FILE_LINK_INFORMATION: i32 = 11;
/// `FileLinkInformationEx`.
pub const FILE_LINK_INFORMATION_EX: i32 = 72;
/// `FILE_DISPOSITION_DELETE` flag of `FILE_DISPOSITION_INFORMATION_EX`.
pub const FILE_DISPOSITION_DELETE: u32 = 0x1;
/// `FILE_DELETE_ON_CLOSE` create option (wdm.h).
pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
/// `FILE_OPEN_BY_FILE_ID` create option (wdm.h): the name is a file ID, not a path.
pub const FILE_OPEN_BY_FILE_ID: u32 = 0x0000_2000;
/// Create dispositions (wdm.h), in the high 8 bits of `Parameters.Create.Options`.
pub const FILE_SUPERSEDE: u32 = 0;
pub const FILE_CREATE: u32 = 2;
pub const FILE_OPEN_IF: u32 = 3;
pub const FILE_OVERWRITE_IF: u32 = 5;

/// A create that deletes a file: `FILE_DELETE_ON_CLOSE`, or the `FILE_SUPERSEDE`
/// disposition (an existing file is replaced by a new one). Besides its `file-create`
/// event it is evaluated as a `file-set-info` event with `is-delete`, so delete rules see
/// it (issue 19, section 4). Whether a superseded file existed is known only after the
/// file system ran, when it is already gone: decided before, as a delete.
pub fn create_deletes(options: u32) -> bool {
    options & FILE_DELETE_ON_CLOSE != 0 || options >> 24 == FILE_SUPERSEDE
}

/// A create whose disposition may make a new file (supersede, create, open-if,
/// overwrite-if): the only ones whose name the file system can tunnel.
pub fn create_may_create(options: u32) -> bool {
    matches!(
        options >> 24,
        FILE_SUPERSEDE | FILE_CREATE | FILE_OPEN_IF | FILE_OVERWRITE_IF
    )
}

/// The last component of `path` looks like an 8.3 short name (`PROGRA~1`): a name the file
/// system may replace with a tunneled long name when it creates the file (Microsoft Learn,
/// "FltGetTunneledName"). Only `~` is looked for: a long name with `~` costs a post-create
/// and nothing else.
pub fn short_name_candidate(path: &[u16]) -> bool {
    let name = path
        .iter()
        .rposition(|&u| u == 0x5C)
        .and_then(|p| path.get(p.saturating_add(1)..))
        .unwrap_or(path);
    name.contains(&0x7E)
}

/// Which set-information classes the sensor evaluates; others pass without a lookup.
/// Hard links are evaluated like renames (the new name is the `target` input, the class
/// tells them apart): otherwise a link would reach a protected path under a name no rule
/// sees.
pub fn set_info_class_of_interest(class: i32) -> bool {
    matches!(
        class,
        FILE_RENAME_INFORMATION
            | FILE_RENAME_INFORMATION_EX
            | FILE_LINK_INFORMATION
            | FILE_LINK_INFORMATION_EX
            | FILE_DISPOSITION_INFORMATION
            | FILE_DISPOSITION_INFORMATION_EX
    )
}

/// Strips an alternate data stream (`name:stream[:type]`) reported by
/// `FltParseFileNameInformation` (its `Stream` length) from a normalized name.
pub fn without_stream(name: &[u16], stream_units: usize) -> &[u16] {
    name.get(..name.len().saturating_sub(stream_units))
        .unwrap_or(name)
}

/// What a pre-create callback knows.
#[derive(Clone, Copy, Debug)]
pub struct CreateFacts<'a> {
    /// Normalized path without stream, in drive-letter form when its volume has a DOS name
    /// (`volumes::VolumeTable::dos_path`; ADR 0013).
    pub path: &'a [u16],
    /// Requesting process image path (empty when unknown).
    pub process: &'a [u16],
    /// Requesting process id.
    pub pid: u64,
    /// `Parameters.Create.SecurityContext->DesiredAccess`.
    pub desired_access: u32,
    /// `Parameters.Create.Options`: disposition in the high 8 bits, options in the low 24.
    pub options: u32,
    /// `Data->RequestorMode == KernelMode`.
    pub kernel_mode: bool,
}

/// What a pre-set-information callback knows.
#[derive(Clone, Copy, Debug)]
pub struct SetInfoFacts<'a> {
    /// Normalized path of the file renamed or deleted, without stream, in drive-letter form
    /// when its volume has a DOS name.
    pub path: &'a [u16],
    /// Requesting process image path (empty when unknown).
    pub process: &'a [u16],
    /// Requesting process id.
    pub pid: u64,
    /// `FILE_INFORMATION_CLASS`.
    pub class: i32,
    /// Rename target (normalized, drive-letter form as `path`), empty for delete.
    pub target: &'a [u16],
    /// The operation deletes the file.
    pub delete: bool,
    /// `Data->RequestorMode == KernelMode`.
    pub kernel_mode: bool,
}

/// The inputs of a `file-create` event, in schema order (arity 11).
pub fn create_inputs<'a>(f: &CreateFacts<'a>) -> [Input<'a>; 11] {
    let (parent, name, ext) = split_path(f.path);
    [
        Input::Str(f.path),
        Input::Str(name),
        Input::Str(ext),
        Input::Str(parent),
        Input::Str(f.process),
        Input::Int(f.pid),
        Input::Int(u64::from(f.desired_access)),
        Input::Int(u64::from(f.options >> 24)),
        Input::Int(u64::from(f.options & 0x00FF_FFFF)),
        Input::Flag(f.options & FILE_DIRECTORY_FILE != 0),
        Input::Flag(f.kernel_mode),
    ]
}

/// The inputs of a `file-set-info` event, in schema order (arity 10).
pub fn set_info_inputs<'a>(f: &SetInfoFacts<'a>) -> [Input<'a>; 10] {
    let (parent, name, ext) = split_path(f.path);
    [
        Input::Str(f.path),
        Input::Str(name),
        Input::Str(ext),
        Input::Str(parent),
        Input::Str(f.process),
        Input::Int(f.pid),
        Input::Int(u64::try_from(f.class).unwrap_or(0)),
        Input::Str(f.target),
        Input::Flag(f.delete),
        Input::Flag(f.kernel_mode),
    ]
}

/// An event over `inputs` (checked against nothing: the core's accessor does the checking).
pub fn event<'a>(kind: EventType, inputs: &'a [Input<'a>]) -> Event<'a> {
    Event::new(kind, inputs)
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
    use failsafe_loader::{EventType, FieldKind};

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    /// Each input has the type its schema field declares.
    fn assert_types(inputs: &[Input<'_>], kind: EventType) {
        assert_eq!(inputs.len(), kind.arity());
        for (input, field) in inputs.iter().zip(kind.fields()) {
            let found = match input {
                Input::Str(_) => FieldKind::Str,
                Input::Int(_) => FieldKind::Int,
                Input::Flag(_) => FieldKind::Flag,
            };
            assert_eq!(found, field.kind, "field {}", field.name);
        }
    }

    #[test]
    fn create_inputs_follow_the_schema() {
        let path = w("\\Device\\HarddiskVolume3\\Users\\bob\\a.LOCKY");
        let process = w("\\Device\\HarddiskVolume3\\x.exe");
        // FILE_OVERWRITE_IF (5) << 24 | FILE_DIRECTORY_FILE | FILE_NON_DIRECTORY_FILE (0x40)
        let f = CreateFacts {
            path: &path,
            process: &process,
            pid: 7,
            desired_access: 0x12_0116,
            options: (5 << 24) | 0x41,
            kernel_mode: false,
        };
        let inputs = create_inputs(&f);
        assert_eq!(inputs.len(), EventType::FileCreate.arity());
        assert_types(&inputs, EventType::FileCreate);
        assert_eq!(inputs[2], Input::Str(&w("LOCKY")));
        assert_eq!(
            inputs[3],
            Input::Str(&w("\\Device\\HarddiskVolume3\\Users\\bob"))
        );
        assert_eq!(inputs[7], Input::Int(5));
        assert_eq!(inputs[8], Input::Int(0x41));
        assert_eq!(inputs[9], Input::Flag(true));
    }

    #[test]
    fn set_info_inputs_follow_the_schema() {
        let path = w("\\Device\\HarddiskVolume3\\Windows\\Failsafe\\content\\7.fsc");
        let f = SetInfoFacts {
            path: &path,
            process: &[],
            pid: 4,
            class: FILE_DISPOSITION_INFORMATION_EX,
            target: &[],
            delete: true,
            kernel_mode: true,
        };
        let inputs = set_info_inputs(&f);
        assert_eq!(inputs.len(), EventType::FileSetInfo.arity());
        assert_types(&inputs, EventType::FileSetInfo);
        assert_eq!(inputs[6], Input::Int(64));
        assert_eq!(inputs[8], Input::Flag(true));
    }

    /// The path form of ADR 0013: what the Filter Manager reports under a volume's device
    /// name reaches the rules as `C:\...`, and name, extension and parent follow it, so
    /// `C:\Windows\System32\drivers\*.sys` matches on the machine.
    #[test]
    fn paths_reach_the_rules_in_drive_letter_form() {
        use crate::volumes::{MAX_PATH_UNITS, VolumeTable};
        use failsafe_loader::{Action, Content, Criterion, Op, Rule, RuleSet, Values, encode};
        let mut vols = VolumeTable::try_new().unwrap();
        assert!(vols.insert(1, &w("\\Device\\HarddiskVolume3"), &w("C:")));
        let raw = w("\\Device\\HarddiskVolume3\\Windows\\System32\\drivers\\evil.sys");
        let mut buf = [0u16; MAX_PATH_UNITS];
        let path = vols.dos_path(&raw, &mut buf);
        let f = CreateFacts {
            path,
            process: &[],
            pid: 7,
            desired_access: 2,
            options: 0,
            kernel_mode: false,
        };
        let inputs = create_inputs(&f);
        assert_eq!(
            inputs[0],
            Input::Str(&w("C:\\Windows\\System32\\drivers\\evil.sys"))
        );
        assert_eq!(inputs[3], Input::Str(&w("C:\\Windows\\System32\\drivers")));
        let content = Content {
            version: 1,
            rules: vec![Rule {
                id: 1,
                event: EventType::FileCreate,
                action: Action::Block,
                criteria: vec![Criterion {
                    field: 0,
                    op: Op::Wildcard,
                    negate: false,
                    values: Values::Strs(vec![w("C:\\Windows\\System32\\drivers\\*.sys")]),
                }],
                exceptions: vec![],
            }],
        };
        let rs = RuleSet::load(&encode(&content).unwrap()).unwrap();
        let m = rs.evaluate(&event(EventType::FileCreate, &inputs)).unwrap();
        assert_eq!(m.action, Action::Block);
    }

    #[test]
    fn creates_that_delete_create_or_may_be_tunneled() {
        let with = |disposition: u32, options: u32| (disposition << 24) | options;
        assert!(create_deletes(with(1, FILE_DELETE_ON_CLOSE))); // FILE_OPEN + delete-on-close
        assert!(create_deletes(with(FILE_SUPERSEDE, 0)));
        assert!(!create_deletes(with(1, 0))); // FILE_OPEN
        assert!(!create_deletes(with(FILE_OVERWRITE_IF, 0))); // truncates, keeps the file
        assert!(
            create_may_create(with(FILE_CREATE, 0)) && create_may_create(with(FILE_OPEN_IF, 0))
        );
        assert!(
            create_may_create(with(FILE_SUPERSEDE, 0))
                && create_may_create(with(FILE_OVERWRITE_IF, 0))
        );
        assert!(!create_may_create(with(1, 0)) && !create_may_create(with(4, 0))); // open, overwrite
        assert!(short_name_candidate(&w(
            "\\Device\\HarddiskVolume3\\t\\LONGNA~1.TXT"
        )));
        assert!(!short_name_candidate(&w(
            "\\Device\\HarddiskVolume3\\a~b\\long.txt"
        )));
        assert!(short_name_candidate(&w("X~1")));
    }

    #[test]
    fn streams_and_classes() {
        let n = w("\\Device\\HarddiskVolume3\\a.txt:zone:$DATA");
        assert_eq!(
            without_stream(&n, 11),
            w("\\Device\\HarddiskVolume3\\a.txt").as_slice()
        );
        assert_eq!(without_stream(&n, 999), &[] as &[u16]);
        assert!(set_info_class_of_interest(10) && set_info_class_of_interest(64));
        // Hard links (FileLinkInformation, FileLinkInformationEx) are evaluated too.
        assert!(set_info_class_of_interest(11) && set_info_class_of_interest(72));
        assert!(!set_info_class_of_interest(4)); // FileBasicInformation
    }
}
