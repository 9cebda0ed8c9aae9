//! The store's access list (issue 19, finding 3): who may touch `ContentDirectory` and what
//! is in it. The record and the rules are the driver's: a standard user who can open
//! `state.bin` (with share mode 0, or a byte-range lock) fails the driver's health write,
//! and one who can write the directory can make the driver's system-context opens truncate
//! or delete files elsewhere. So the directory and its files carry a *protected* DACL that
//! grants SYSTEM and Administrators everything and nobody else anything:
//! SDDL `D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)` ([`STORE_DESCRIPTOR`]).
//!
//! This module reads the self-relative security descriptor `ZwQuerySecurityObject` returns
//! (winnt.h layouts: `SECURITY_DESCRIPTOR_RELATIVE`, `ACL`, `ACE_HEADER`,
//! `ACCESS_ALLOWED_ACE`, `SID`; Microsoft Learn, "SECURITY_DESCRIPTOR_CONTROL",
//! "ACE_HEADER", "ACCESS_ALLOWED_ACE") and judges it ([`judge`]): already [`Verdict::Strict`];
//! [`Verdict::Loose`] (others may read, or the DACL is not protected from inheritance: the
//! driver applies its own); or an error when someone other than SYSTEM, Administrators or
//! TrustedInstaller may write or owns it (the driver refuses the directory: files an
//! untrusted writer put there, hard links included, cannot be made safe by a new DACL).
//! Portable and unit-tested here, with a model of the DACL walk; every read is
//! bounds-checked.

use core::fmt;

use crate::wire::le_u32;

/// `SE_DACL_PRESENT` (winnt.h `SECURITY_DESCRIPTOR_CONTROL`).
const SE_DACL_PRESENT: u16 = 0x0004;
/// `SE_DACL_PROTECTED`: the DACL does not take inheritable ACEs from the parent.
const SE_DACL_PROTECTED: u16 = 0x1000;
/// `SE_SELF_RELATIVE`: offsets, not pointers.
const SE_SELF_RELATIVE: u16 = 0x8000;
/// `ACCESS_ALLOWED_ACE_TYPE` (winnt.h). The other granting types (compound 0x4, object 0x5,
/// callback 0x9, callback object 0xB) carry their SID elsewhere and are refused unread.
const ACCESS_ALLOWED: u8 = 0x0;
/// ACE types that only deny (winnt.h): they never widen access.
const DENY_TYPES: [u8; 4] = [0x1, 0x6, 0xA, 0xC];
/// `INHERIT_ONLY_ACE`: the ACE applies to children created later, not to this object.
const INHERIT_ONLY_ACE: u8 = 0x08;
/// `FILE_ALL_ACCESS` (winnt.h).
pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
/// Rights that change the directory, a file in it, or who may (winnt.h): write data / add
/// file, append / add subdirectory, write EA, delete child, write attributes, DELETE,
/// WRITE_DAC, WRITE_OWNER, GENERIC_WRITE, GENERIC_ALL.
pub const WRITE_RIGHTS: u32 = 0x0000_0002
    | 0x0000_0004
    | 0x0000_0010
    | 0x0000_0040
    | 0x0000_0100
    | 0x0001_0000
    | 0x0004_0000
    | 0x0008_0000
    | 0x4000_0000
    | 0x1000_0000;

/// `S-1-5-18`, LocalSystem.
const SY: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
/// `S-1-5-32-544`, BUILTIN\Administrators.
const BA: [u8; 16] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0];
/// `S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464`, NT
/// SERVICE\TrustedInstaller, which a folder under `%SystemRoot%` inherits with full
/// control: trusted as a writer, dropped when the driver applies its own DACL.
const TRUSTED_INSTALLER: [u8; 32] = [
    1, 6, 0, 0, 0, 0, 0, 5, 80, 0, 0, 0, 0xB5, 0x2D, 0x03, 0x39, 0x19, 0xC5, 0xBD, 0xCB, 0x5C,
    0x75, 0x22, 0x6D, 0x57, 0x8D, 0x78, 0x6E, 0xC0, 0xA3, 0x6C, 0x87,
];

/// The DACL the store carries, as a self-relative security descriptor with no owner, group
/// or SACL (what `ZwSetSecurityObject` with `DACL_SECURITY_INFORMATION` applies, and what
/// `ZwCreateFile` gives a directory it creates): `D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)`.
#[rustfmt::skip]
pub const STORE_DESCRIPTOR: [u8; 72] = [
    // SECURITY_DESCRIPTOR_RELATIVE: revision 1, Sbz1, control 0x9004 (self-relative, DACL
    // protected, DACL present); owner, group, SACL offsets 0; DACL at 20.
    1, 0, 0x04, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0,
    // ACL: revision 2, Sbz1, size 52, two ACEs, Sbz2.
    2, 0, 52, 0, 2, 0, 0, 0,
    // ACCESS_ALLOWED_ACE: type 0, OBJECT_INHERIT | CONTAINER_INHERIT, size 20,
    // FILE_ALL_ACCESS (0x001F01FF), S-1-5-18.
    0, 0x03, 20, 0, 0xFF, 0x01, 0x1F, 0, 1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0,
    // The same for S-1-5-32-544 (size 24).
    0, 0x03, 24, 0, 0xFF, 0x01, 0x1F, 0, 1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0,
];

/// What the store's descriptor allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Protected; owned by SYSTEM or Administrators; only they are granted anything.
    Strict,
    /// Nobody else may write, but the DACL is not [`Verdict::Strict`]: why. The driver
    /// applies [`STORE_DESCRIPTOR`].
    Loose(Loose),
}

/// Why a descriptor that nobody else can write through is not strict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loose {
    /// The DACL takes inheritable ACEs from the parent.
    NotProtected,
    /// ACE `ace` grants `mask` (no write right) to a SID other than SYSTEM and
    /// Administrators.
    OthersMayRead { ace: u16, mask: u32 },
    /// ACE `ace` grants TrustedInstaller (inherited under `%SystemRoot%`).
    TrustedInstaller { ace: u16 },
}

/// A descriptor the store must not be used under, or one this module cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsafe {
    /// Fewer bytes than the structure at `at` needs (`what`).
    Truncated { at: usize, what: &'static str },
    /// Not a self-relative descriptor of revision 1 (`control`, `revision` found).
    NotSelfRelative { revision: u8, control: u16 },
    /// No DACL (`SE_DACL_PRESENT` clear) or a NULL DACL: everyone has every right.
    NoDacl,
    /// No owner in the descriptor (the query asked for it).
    NoOwner,
    /// The owner is not SYSTEM, Administrators or TrustedInstaller: owners may always
    /// change the DACL. `authority` and `first` identify the SID (its identifier
    /// authority and first sub-authority; `S-1-5-21-...` is a user or domain account).
    Owner { authority: u8, first: u32 },
    /// ACE `ace` grants write rights `mask` to a SID other than SYSTEM, Administrators and
    /// TrustedInstaller (identified as for `Owner`).
    Writer {
        ace: u16,
        mask: u32,
        authority: u8,
        first: u32,
    },
    /// ACE `ace` is a granting type this check does not read (`kind`): it could grant
    /// anyone anything.
    UnknownGrant { ace: u16, kind: u8 },
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Unsafe::Truncated { at, what } => {
                write!(
                    f,
                    "security descriptor truncated at byte {at}: expected {what}"
                )
            }
            Unsafe::NotSelfRelative { revision, control } => write!(
                f,
                "not a self-relative security descriptor of revision 1: revision {revision}, control {control:#06x}"
            ),
            Unsafe::NoDacl => f.write_str("no DACL or a NULL DACL: everyone has every right"),
            Unsafe::NoOwner => f.write_str("no owner in the security descriptor"),
            Unsafe::Owner { authority, first } => write!(
                f,
                "owned by S-1-{authority}-{first}-..., not SYSTEM or Administrators: its owner can change the DACL"
            ),
            Unsafe::Writer {
                ace,
                mask,
                authority,
                first,
            } => write!(
                f,
                "ACE {ace} grants write rights {mask:#010x} to S-1-{authority}-{first}-..., expected SYSTEM and Administrators only"
            ),
            Unsafe::UnknownGrant { ace, kind } => write!(
                f,
                "ACE {ace} is of granting type {kind:#04x}, which the check does not read"
            ),
        }
    }
}

/// The SID at `at` and its length: revision 1, its sub-authorities within `sd`.
fn sid_at(sd: &[u8], at: usize) -> Result<&[u8], Unsafe> {
    let count = *sd.get(at.saturating_add(1)).ok_or(Unsafe::Truncated {
        at,
        what: "a SID header",
    })?;
    let len = 8usize.saturating_add(usize::from(count).saturating_mul(4));
    sd.get(at..at.saturating_add(len)).ok_or(Unsafe::Truncated {
        at,
        what: "a SID's sub-authorities",
    })
}

/// SYSTEM or Administrators.
fn admin(sid: &[u8]) -> bool {
    sid == SY || sid == BA
}

/// SYSTEM, Administrators or TrustedInstaller.
fn trusted_writer(sid: &[u8]) -> bool {
    admin(sid) || sid == TRUSTED_INSTALLER
}

/// A SID's identifier authority (its last byte: all well-known authorities fit) and first
/// sub-authority, for messages.
fn sid_id(sid: &[u8]) -> (u8, u32) {
    (
        sid.get(7).copied().unwrap_or(0),
        le_u32(sid, 8).unwrap_or(0),
    )
}

fn u16_at(sd: &[u8], at: usize, what: &'static str) -> Result<u16, Unsafe> {
    sd.get(at..at.saturating_add(2))
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(Unsafe::Truncated { at, what })
}

fn u32_at(sd: &[u8], at: usize, what: &'static str) -> Result<u32, Unsafe> {
    le_u32(sd, at).ok_or(Unsafe::Truncated { at, what })
}

/// Judges the self-relative security descriptor `sd` (owner and DACL queried) of the store
/// or a file in it.
pub fn judge(sd: &[u8]) -> Result<Verdict, Unsafe> {
    let revision = *sd.first().ok_or(Unsafe::Truncated {
        at: 0,
        what: "a security descriptor header",
    })?;
    let control = u16_at(sd, 2, "the descriptor's control")?;
    if revision != 1 || control & SE_SELF_RELATIVE == 0 {
        return Err(Unsafe::NotSelfRelative { revision, control });
    }
    let owner_at = usize::try_from(u32_at(sd, 4, "the owner's offset")?).unwrap_or(usize::MAX);
    let dacl_at = usize::try_from(u32_at(sd, 16, "the DACL's offset")?).unwrap_or(usize::MAX);
    if owner_at == 0 {
        return Err(Unsafe::NoOwner);
    }
    let owner = sid_at(sd, owner_at)?;
    if !trusted_writer(owner) {
        let (authority, first) = sid_id(owner);
        return Err(Unsafe::Owner { authority, first });
    }
    if control & SE_DACL_PRESENT == 0 || dacl_at == 0 {
        return Err(Unsafe::NoDacl);
    }
    let acl_size = usize::from(u16_at(sd, dacl_at.saturating_add(2), "the ACL's size")?);
    let count = u16_at(sd, dacl_at.saturating_add(4), "the ACL's ACE count")?;
    let acl = sd
        .get(dacl_at..dacl_at.saturating_add(acl_size))
        .ok_or(Unsafe::Truncated {
            at: dacl_at,
            what: "the whole ACL its header declares",
        })?;
    // The first reason found of each kind; others reading is the one reported first.
    let (mut reader, mut installer) = (None, None);
    let mut at = 8usize; // within `acl`, after its header
    for ace in 0..count {
        let kind = *acl.get(at).ok_or(Unsafe::Truncated {
            at: dacl_at.saturating_add(at),
            what: "an ACE header",
        })?;
        let flags = acl.get(at.saturating_add(1)).copied().unwrap_or(0);
        let size = usize::from(u16_at(acl, at.saturating_add(2), "an ACE's size")?);
        let body = acl
            .get(at..at.saturating_add(size))
            .filter(|_| size >= 8)
            .ok_or(Unsafe::Truncated {
                at: dacl_at.saturating_add(at),
                what: "the ACE its header declares",
            })?;
        at = at.saturating_add(size);
        if DENY_TYPES.contains(&kind) || flags & INHERIT_ONLY_ACE != 0 {
            continue; // denies, or applies to later children only
        }
        if kind != ACCESS_ALLOWED {
            return Err(Unsafe::UnknownGrant { ace, kind });
        }
        let mask = u32_at(body, 4, "an ACE's access mask")?;
        let sid = sid_at(body, 8)?;
        if admin(sid) || mask == 0 {
            continue;
        }
        if sid == TRUSTED_INSTALLER {
            installer = installer.or(Some(Loose::TrustedInstaller { ace }));
            continue;
        }
        if mask & WRITE_RIGHTS != 0 {
            let (authority, first) = sid_id(sid);
            return Err(Unsafe::Writer {
                ace,
                mask,
                authority,
                first,
            });
        }
        reader = reader.or(Some(Loose::OthersMayRead { ace, mask }));
    }
    let unprotected = (control & SE_DACL_PROTECTED == 0).then_some(Loose::NotProtected);
    Ok(reader
        .or(installer)
        .or(unprotected)
        .map_or(Verdict::Strict, Verdict::Loose))
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
    use alloc::vec::Vec;

    /// `S-1-5-21-1-2-3-1001`: a standard user.
    const USER: [u8; 28] = [
        1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0xE9, 3, 0, 0,
    ];
    /// `S-1-5-32-545`, BUILTIN\Users.
    const USERS: [u8; 16] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 0x02, 0, 0];
    /// `S-1-1-0`, Everyone.
    const EVERYONE: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    /// `S-1-5-11`, Authenticated Users.
    const AUTHENTICATED: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0];
    /// `S-1-3-0`, CREATOR OWNER.
    const CREATOR_OWNER: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0];

    /// A standard user's token: the user, Everyone, Users, Authenticated Users.
    fn standard_user() -> Vec<&'static [u8]> {
        vec![&USER, &EVERYONE, &USERS, &AUTHENTICATED]
    }

    /// A model of the DACL walk (Microsoft Learn, "How DACLs Control Access to an
    /// Object"): ACEs in order; a deny ACE matching one of `sids` and any still-wanted bit
    /// refuses; allow ACEs grant their bits; inherit-only ACEs are skipped; the owner is
    /// granted READ_CONTROL and WRITE_DAC implicitly. Whether `desired` is granted.
    fn granted(sd: &[u8], sids: &[&[u8]], desired: u32) -> bool {
        let owner_at = le_u32(sd, 4).unwrap() as usize;
        let mut have = 0u32;
        if owner_at != 0 && sids.contains(&sid_at(sd, owner_at).unwrap()) {
            have |= 0x0002_0000 | 0x0004_0000;
        }
        let dacl_at = le_u32(sd, 16).unwrap() as usize;
        let count = u16::from_le_bytes([sd[dacl_at + 4], sd[dacl_at + 5]]);
        let mut at = dacl_at + 8;
        for _ in 0..count {
            let (kind, flags) = (sd[at], sd[at + 1]);
            let size = u16::from_le_bytes([sd[at + 2], sd[at + 3]]) as usize;
            let mask = le_u32(sd, at + 4).unwrap();
            let sid = sid_at(sd, at + 8).unwrap();
            at += size;
            if flags & INHERIT_ONLY_ACE != 0 || !sids.contains(&sid) {
                continue;
            }
            match kind {
                1 if mask & desired & !have != 0 => return false,
                0 => have |= mask,
                _ => {}
            }
            if have & desired == desired {
                return true;
            }
        }
        have & desired == desired
    }

    /// `OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE`.
    const OICI: u8 = 0x03;

    /// A self-relative descriptor: owner, DACL flags, ACEs `(type, flags, mask, sid)`.
    fn descriptor(owner: &[u8], protected: bool, aces: &[(u8, u8, u32, &[u8])]) -> Vec<u8> {
        let mut acl = vec![2u8, 0, 0, 0, aces.len() as u8, 0, 0, 0];
        for &(kind, flags, mask, sid) in aces {
            acl.extend_from_slice(&[kind, flags]);
            acl.extend_from_slice(&((8 + sid.len()) as u16).to_le_bytes());
            acl.extend_from_slice(&mask.to_le_bytes());
            acl.extend_from_slice(sid);
        }
        let acl_len = (acl.len() as u16).to_le_bytes();
        acl[2..4].copy_from_slice(&acl_len);
        let control =
            SE_SELF_RELATIVE | SE_DACL_PRESENT | if protected { SE_DACL_PROTECTED } else { 0 };
        let mut d = vec![1u8, 0];
        d.extend_from_slice(&control.to_le_bytes());
        d.extend_from_slice(&20u32.to_le_bytes()); // owner
        d.extend_from_slice(&0u32.to_le_bytes()); // group
        d.extend_from_slice(&0u32.to_le_bytes()); // SACL
        d.extend_from_slice(&((20 + owner.len()) as u32).to_le_bytes()); // DACL
        d.extend_from_slice(owner);
        d.extend_from_slice(&acl);
        d
    }

    /// What `ZwQuerySecurityObject` returns for the store once the driver applied
    /// [`STORE_DESCRIPTOR`] (owner added by the object's existing owner, here SYSTEM).
    fn applied(owner: &[u8]) -> Vec<u8> {
        descriptor(
            owner,
            true,
            &[
                (0, OICI, FILE_ALL_ACCESS, &SY),
                (0, OICI, FILE_ALL_ACCESS, &BA),
            ],
        )
    }

    /// A folder an administrator created under `%SystemRoot%`: what it inherits there
    /// (TrustedInstaller, SYSTEM, Administrators full; Users read and execute; CREATOR
    /// OWNER full on children only), not protected.
    fn inherited_under_windows() -> Vec<u8> {
        descriptor(
            &BA,
            false,
            &[
                (0, 0x10, FILE_ALL_ACCESS, &TRUSTED_INSTALLER),
                (0, 0x10 | OICI, FILE_ALL_ACCESS, &SY),
                (0, 0x10 | OICI, FILE_ALL_ACCESS, &BA),
                (0, 0x10 | OICI, 0x0012_00A9, &USERS),
                (
                    0,
                    0x10 | OICI | INHERIT_ONLY_ACE,
                    0x1000_0000,
                    &CREATOR_OWNER,
                ),
            ],
        )
    }

    #[test]
    fn the_store_descriptor_is_the_documented_sddl() {
        // D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA), byte for byte.
        let d = STORE_DESCRIPTOR;
        assert_eq!(&d[..4], &[1, 0, 0x04, 0x90]); // revision 1; DACL present, protected, self-relative
        assert_eq!(
            &d[4..20],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0]
        );
        assert_eq!(&d[20..28], &[2, 0, 52, 0, 2, 0, 0, 0]);
        assert_eq!(&d[28..36], &[0, 3, 20, 0, 0xFF, 0x01, 0x1F, 0]);
        assert_eq!(&d[36..48], &SY);
        assert_eq!(&d[48..56], &[0, 3, 24, 0, 0xFF, 0x01, 0x1F, 0]);
        assert_eq!(&d[56..72], &BA);
        // With its owner as the object keeps it, the check calls it strict.
        assert_eq!(judge(&applied(&SY)), Ok(Verdict::Strict));
        assert_eq!(judge(&applied(&BA)), Ok(Verdict::Strict));
    }

    /// The review's finding 3: the store inherited its parent's ACL, so a standard user
    /// could open `state.bin` (and hold it with share mode 0) and read the rules. Under
    /// the applied DACL the user gets nothing; an administrator everything.
    #[test]
    fn a_standard_user_is_refused_under_the_applied_dacl_and_was_not_before() {
        let read = 0x0012_0089; // FILE_GENERIC_READ
        let before = inherited_under_windows();
        assert!(
            granted(&before, &standard_user(), read),
            "the inherited DACL let a standard user read (the finding)"
        );
        assert_eq!(
            judge(&before),
            Ok(Verdict::Loose(Loose::OthersMayRead {
                ace: 3,
                mask: 0x0012_00A9
            })),
            "reported as needing the driver's DACL"
        );
        let after = applied(&SY);
        for want in [read, 0x0002_0000, 0x0000_0001, 0x0000_0080] {
            assert!(
                !granted(&after, &standard_user(), want),
                "a standard user granted {want:#x}"
            );
        }
        let admin: Vec<&[u8]> = vec![&USER, &EVERYONE, &BA, &AUTHENTICATED];
        assert!(granted(&after, &admin, FILE_ALL_ACCESS));
    }

    #[test]
    fn loose_descriptors_are_tightened_and_unsafe_ones_refused_with_the_reason() {
        // Users may read (protected otherwise): loose.
        let d = descriptor(
            &SY,
            true,
            &[(0, 0, FILE_ALL_ACCESS, &SY), (0, 0, 0x0012_0089, &USERS)],
        );
        assert_eq!(
            judge(&d),
            Ok(Verdict::Loose(Loose::OthersMayRead {
                ace: 1,
                mask: 0x0012_0089
            }))
        );
        // Only administrators, but inheriting: loose.
        let d = descriptor(&BA, false, &[(0, 0, FILE_ALL_ACCESS, &BA)]);
        assert_eq!(judge(&d), Ok(Verdict::Loose(Loose::NotProtected)));
        // Users may add files: refused, with the ACE, the rights and the SID.
        let d = descriptor(
            &SY,
            true,
            &[(0, 0, FILE_ALL_ACCESS, &SY), (0, 0, 0x0000_0002, &USERS)],
        );
        let e = judge(&d).unwrap_err();
        assert_eq!(
            e,
            Unsafe::Writer {
                ace: 1,
                mask: 2,
                authority: 5,
                first: 32
            }
        );
        assert_eq!(
            e.to_string(),
            "ACE 1 grants write rights 0x00000002 to S-1-5-32-..., expected SYSTEM and Administrators only"
        );
        // A user owns it: refused (the owner can rewrite the DACL).
        let e = judge(&applied(&USER)).unwrap_err();
        assert_eq!(
            e,
            Unsafe::Owner {
                authority: 5,
                first: 21
            }
        );
        assert!(e.to_string().contains("S-1-5-21-"));
        // A deny ACE and an inherit-only grant change nothing; GENERIC_ALL counts as write.
        let d = descriptor(
            &SY,
            true,
            &[
                (1, 0, FILE_ALL_ACCESS, &EVERYONE),
                (0, INHERIT_ONLY_ACE | OICI, 0x1000_0000, &CREATOR_OWNER),
                (0, 0, FILE_ALL_ACCESS, &BA),
            ],
        );
        assert_eq!(judge(&d), Ok(Verdict::Strict));
        let d = descriptor(&SY, true, &[(0, 0, 0x1000_0000, &EVERYONE)]);
        assert!(matches!(judge(&d), Err(Unsafe::Writer { ace: 0, .. })));
        // An object ACE that grants: not read, so refused.
        let d = descriptor(&SY, true, &[(5, 0, 1, &EVERYONE)]);
        assert_eq!(judge(&d), Err(Unsafe::UnknownGrant { ace: 0, kind: 5 }));
    }

    #[test]
    fn malformed_and_missing_parts_are_errors_never_panics() {
        assert_eq!(
            judge(&[]),
            Err(Unsafe::Truncated {
                at: 0,
                what: "a security descriptor header"
            })
        );
        // Absolute (not self-relative) form.
        let mut d = applied(&SY);
        d[3] &= 0x7F;
        assert!(matches!(judge(&d), Err(Unsafe::NotSelfRelative { .. })));
        // No owner; no DACL; a NULL DACL (present, offset 0).
        let mut d = applied(&SY);
        d[4..8].copy_from_slice(&[0; 4]);
        assert_eq!(judge(&d), Err(Unsafe::NoOwner));
        let mut d = applied(&SY);
        d[2] &= !0x04;
        assert_eq!(judge(&d), Err(Unsafe::NoDacl));
        let mut d = applied(&SY);
        d[16..20].copy_from_slice(&[0; 4]);
        assert_eq!(judge(&d), Err(Unsafe::NoDacl));
        // Every truncation of a valid descriptor is an error, and so is an ACE that claims
        // more bytes than the ACL has.
        let d = applied(&SY);
        for n in 0..d.len() {
            assert!(judge(&d[..n]).is_err(), "{n} bytes accepted");
        }
        // The DACL is at 32 (after a 12-byte owner): its size, its ACE count, an ACE's size.
        let mut d = applied(&SY);
        d[34] = 200;
        assert!(matches!(judge(&d), Err(Unsafe::Truncated { .. })));
        let mut d = applied(&SY);
        d[36] = 9;
        assert!(matches!(judge(&d), Err(Unsafe::Truncated { .. })));
        let mut d = applied(&SY);
        d[42] = 200;
        assert!(matches!(judge(&d), Err(Unsafe::Truncated { .. })));
        let mut d = applied(&SY);
        d[42] = 4; // shorter than an ACE's fixed part
        assert!(matches!(judge(&d), Err(Unsafe::Truncated { .. })));
    }
}
