//! How the driver opens its store without following a reparse point (issue 19, finding
//! 4): the object attributes and create options of every open of `ContentDirectory` and of
//! what is in it, and the rule that refuses a directory that is a reparse point. The kernel
//! layer takes them from here (`kernel/nt.rs` `open_at`, `kernel/storedir.rs`), so the
//! unit tests below check the flags the driver passes, not a copy of them.
//!
//! The store's files are opened in the system's context: a junction, a symbolic link or an
//! object-manager symbolic link on the way would turn the canary's overwrite and
//! delete-on-close, or a record write, into a truncate or delete of any file. So:
//! - the directory is opened once, by its path, with `FILE_OPEN_REPARSE_POINT` (a final
//!   component that is a reparse point is opened itself, never its target), and refused
//!   when its handle or its name reports `FILE_ATTRIBUTE_REPARSE_POINT` ([`refuses`]). Not
//!   with `OBJ_DONT_REPARSE`: its path starts at `\??\C:`, an object-manager symbolic link
//!   that must be followed;
//! - everything in it is opened relative to that handle with `OBJ_DONT_REPARSE` (parsing
//!   fails with `STATUS_REPARSE_POINT_ENCOUNTERED` at any reparse point) and
//!   `FILE_OPEN_REPARSE_POINT` ([`Child::open`]); a Windows that predates `OBJ_DONT_REPARSE`
//!   refuses the unknown attribute, and the open is repeated with
//!   `FILE_OPEN_REPARSE_POINT` alone ([`Child::open_without_dont_reparse`]).
//!
//! Sources: `OBJ_DONT_REPARSE` 0x00001000, Windows SDK 10.0.22621 `shared/ntdef.h` and
//! Microsoft Learn "OBJECT_ATTRIBUTES structure"; `FILE_OPEN_REPARSE_POINT` 0x00200000,
//! wdm.h and Microsoft Learn "ZwCreateFile function (wdm.h)"; `FILE_ATTRIBUTE_REPARSE_POINT`
//! 0x400, winnt.h and Microsoft Learn "File Attribute Constants". Portable, unit-tested on
//! Linux; what the flags do is Windows' (Wine 8.0 ignores both flags: docs/windows.md).

/// `OBJ_DONT_REPARSE` (ntdef.h): no reparse point is followed while the name is parsed.
pub const OBJ_DONT_REPARSE: u32 = 0x1000;
/// `FILE_OPEN_REPARSE_POINT` (wdm.h): a final reparse point is opened, not its target.
pub const FILE_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
/// `FILE_ATTRIBUTE_REPARSE_POINT` (winnt.h).
pub const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;

/// What the driver opens in its store, relative to the directory it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Child {
    /// `state.bin`, read and written (`kernel/medium.rs`).
    Record,
    /// `content\`, listed (`kernel/store.rs`, and `kernel/storedir.rs` for its entries).
    ContentFolder,
    /// `content\<N>.fsc`, read (`kernel/store.rs`).
    Content,
    /// `canary.tmp`, overwritten and deleted on close as SYSTEM (`kernel/health.rs`).
    Canary,
    /// An entry of the directory or of `content\` whose access list is checked
    /// (`kernel/storedir.rs`).
    Entry,
}

/// Every kind of child open (the tests walk it).
pub const CHILDREN: [Child; 5] = [
    Child::Record,
    Child::ContentFolder,
    Child::Content,
    Child::Canary,
    Child::Entry,
];

/// The extra object attributes and the create options of one `ZwCreateFile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open {
    /// Added to the object attributes (`OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE`).
    pub attributes: u32,
    /// The create options (`FILE_SYNCHRONOUS_IO_NONALERT` is added by `nt::create_shared`).
    pub options: u32,
}

impl Child {
    /// The open of this child, with the create options `options` it needs for itself.
    pub const fn open(self, options: u32) -> Open {
        Open {
            attributes: OBJ_DONT_REPARSE,
            options: options | FILE_OPEN_REPARSE_POINT,
        }
    }

    /// The open repeated on a Windows that refuses `OBJ_DONT_REPARSE` with
    /// `STATUS_INVALID_PARAMETER`: still relative to the held directory and with
    /// `FILE_OPEN_REPARSE_POINT`. It loses a reparse point on an intermediate component
    /// (`content\`), which only a writer of the store could make, and the store's DACL
    /// admits no other writer (`crate::dacl`).
    pub const fn open_without_dont_reparse(self, options: u32) -> Open {
        let o = self.open(options);
        Open {
            attributes: o.attributes & !OBJ_DONT_REPARSE,
            options: o.options,
        }
    }
}

/// The open of the directory itself, by its path (see the module documentation).
pub const fn directory(options: u32) -> Open {
    Open {
        attributes: 0,
        options: options | FILE_OPEN_REPARSE_POINT,
    }
}

/// The attributes `attributes` are those of a reparse point.
pub const fn is_reparse_point(attributes: u32) -> bool {
    attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0
}

/// The directory is refused when its handle's attributes (`FileAttributeTagInformation`)
/// or its name's (`ZwQueryFullAttributesFile`) show a reparse point. On Windows the two
/// agree (both describe the link, opened with `FILE_OPEN_REPARSE_POINT`); Wine 8.0 reports a
/// symbolic link to a directory only by name (0x410 by name, 0x10 by handle: probed, and its
/// `dlls/ntdll/unix/file.c` `get_file_info`).
pub const fn refuses(by_handle: u32, by_name: u32) -> bool {
    is_reparse_point(by_handle) || is_reparse_point(by_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    // wdm.h create options the kernel passes for itself.
    const FILE_DIRECTORY_FILE: u32 = 0x1;
    const FILE_WRITE_THROUGH: u32 = 0x2;
    const FILE_NON_DIRECTORY_FILE: u32 = 0x40;
    const FILE_DELETE_ON_CLOSE: u32 = 0x1000;

    /// The options each kind is opened with in `kernel/` (medium, store, health, storedir).
    fn own_options(c: Child) -> &'static [u32] {
        match c {
            Child::Record => &[
                FILE_NON_DIRECTORY_FILE,
                FILE_NON_DIRECTORY_FILE | FILE_WRITE_THROUGH,
            ],
            Child::ContentFolder => &[FILE_DIRECTORY_FILE],
            Child::Content => &[FILE_NON_DIRECTORY_FILE],
            Child::Canary => &[FILE_NON_DIRECTORY_FILE | FILE_WRITE_THROUGH | FILE_DELETE_ON_CLOSE],
            Child::Entry => &[0],
        }
    }

    #[test]
    fn every_child_open_follows_no_reparse_point_and_keeps_its_own_options() {
        for c in CHILDREN {
            for &own in own_options(c) {
                let o = c.open(own);
                assert_eq!(o.attributes & OBJ_DONT_REPARSE, OBJ_DONT_REPARSE, "{c:?}");
                assert_eq!(
                    o.options & FILE_OPEN_REPARSE_POINT,
                    FILE_OPEN_REPARSE_POINT,
                    "{c:?}"
                );
                assert_eq!(
                    o.options & !FILE_OPEN_REPARSE_POINT,
                    own,
                    "{c:?}: options changed"
                );
            }
        }
        // The dangerous one, spelled out: overwrite + delete-on-close as SYSTEM.
        let canary =
            Child::Canary.open(FILE_NON_DIRECTORY_FILE | FILE_WRITE_THROUGH | FILE_DELETE_ON_CLOSE);
        assert_eq!(
            canary,
            Open {
                attributes: 0x1000,
                options: 0x0020_1042
            }
        );
    }

    #[test]
    fn the_retry_without_obj_dont_reparse_still_opens_a_reparse_point_itself() {
        for c in CHILDREN {
            for &own in own_options(c) {
                let o = c.open_without_dont_reparse(own);
                assert_eq!(o.attributes, 0, "{c:?}");
                assert_eq!(o.options, own | FILE_OPEN_REPARSE_POINT, "{c:?}");
            }
        }
    }

    #[test]
    fn the_directory_is_opened_itself_and_its_path_may_cross_the_dos_device_link() {
        let d = directory(FILE_DIRECTORY_FILE);
        assert_eq!(d.options, FILE_DIRECTORY_FILE | FILE_OPEN_REPARSE_POINT);
        // `\??\C:` is an object-manager symbolic link: OBJ_DONT_REPARSE would refuse every
        // path the registry can give.
        assert_eq!(d.attributes & OBJ_DONT_REPARSE, 0);
    }

    #[test]
    fn a_directory_that_is_a_reparse_point_by_handle_or_by_name_is_refused() {
        const DIRECTORY: u32 = 0x10;
        // A plain directory (Windows and Wine agree).
        assert!(!refuses(DIRECTORY, DIRECTORY));
        // A junction or directory symbolic link on Windows: both answers carry 0x400.
        assert!(refuses(DIRECTORY | 0x400, DIRECTORY | 0x400));
        // Wine 8.0's Unix symbolic link to a directory: only the name says so.
        assert!(refuses(DIRECTORY, DIRECTORY | 0x400));
        // Either alone is enough.
        assert!(refuses(DIRECTORY | 0x400, DIRECTORY));
        // Other attributes (archive, hidden, system) are not a reparse point.
        assert!(!refuses(0x10 | 0x20 | 0x2 | 0x4, 0x10 | 0x20));
    }
}
