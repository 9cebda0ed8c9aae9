//! Name information from the Filter Manager (`FltGetFileNameInformation`,
//! `FltGetTunneledName`, parsed with `FltParseFileNameInformation`), released on drop on
//! every path, or handed from pre-create to post-create as the completion context and
//! released there. IRQL ≤ APC_LEVEL.

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED,
    FLT_FILE_NAME_QUERY_DEFAULT, FltGetFileNameInformation, FltGetTunneledName,
    FltParseFileNameInformation, FltReleaseFileNameInformation,
};
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

use crate::event::without_stream;

pub(super) const NAME_OPTIONS: u32 = FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT;

/// A name from the Filter Manager, released on drop.
pub(super) struct NameInfo(*mut FLT_FILE_NAME_INFORMATION);

impl NameInfo {
    pub(super) fn from_raw(status: NTSTATUS, p: *mut FLT_FILE_NAME_INFORMATION) -> Option<Self> {
        if status < 0 || p.is_null() {
            return None;
        }
        let n = NameInfo(p);
        // SAFETY: `p` is a valid name information structure from the Filter Manager. A
        // parse failure leaves the components empty; `path` then keeps the whole name.
        let _ = unsafe { FltParseFileNameInformation(p) };
        Some(n)
    }

    fn units(s: &UNICODE_STRING) -> &[u16] {
        if s.Buffer.is_null() {
            return &[];
        }
        // SAFETY: a UNICODE_STRING from the Filter Manager describes `Length` bytes at
        // `Buffer`, valid while the name information is referenced (until drop).
        unsafe { core::slice::from_raw_parts(s.Buffer, usize::from(s.Length) / 2) }
    }

    /// The normalized name without an alternate data stream suffix.
    pub(super) fn path(&self) -> &[u16] {
        // SAFETY: non-null (checked in from_raw) and referenced until drop.
        let info = unsafe { &*self.0 };
        without_stream(Self::units(&info.Name), usize::from(info.Stream.Length) / 2)
    }
}

impl NameInfo {
    /// Hands the reference to post-create as its completion context (released there by
    /// [`NameInfo::from_context`]'s value).
    pub(super) fn into_context(self) -> *mut core::ffi::c_void {
        let p = self.0;
        core::mem::forget(self);
        p.cast()
    }

    /// Takes back a reference [`NameInfo::into_context`] handed over (null: none).
    ///
    /// # Safety
    /// `context` is null or the completion context pre-create set from `into_context`,
    /// taken back once.
    pub(super) unsafe fn from_context(context: *const core::ffi::c_void) -> Option<Self> {
        (!context.is_null()).then(|| NameInfo(context.cast_mut().cast()))
    }

    /// The name the file system gave the new file in place of this one, if the name was
    /// tunneled (`FltGetTunneledName`, fltKernel.h: `(PFLT_CALLBACK_DATA,
    /// PFLT_FILE_NAME_INFORMATION, PFLT_FILE_NAME_INFORMATION*)`, IRQL ≤ APC_LEVEL; checked
    /// against the WDK 10.0.22621 fltKernel.h and windows-sys 0.61.2; Microsoft Learn,
    /// "FltGetTunneledName": to be called in post-create, post-rename and post-link on a
    /// normalized name obtained in the pre-operation; NULL when not tunneled).
    pub(super) fn tunneled(&self, data: *mut FLT_CALLBACK_DATA) -> Option<NameInfo> {
        let mut raw = core::ptr::null_mut();
        // SAFETY: the post-create's callback data; `self` is the normalized name its
        // pre-create obtained, still referenced; the out pointer is a local.
        let status = unsafe { FltGetTunneledName(data, self.0, &mut raw) };
        NameInfo::from_raw(status, raw)
    }
}

impl Drop for NameInfo {
    fn drop(&mut self) {
        // SAFETY: obtained from FltGet*FileNameInformation, released exactly once.
        unsafe { FltReleaseFileNameInformation(self.0) };
    }
}

/// The operation's normalized name (released when the result is dropped).
pub(super) fn name_of(data: *mut FLT_CALLBACK_DATA) -> Option<NameInfo> {
    let mut raw = core::ptr::null_mut();
    // SAFETY: valid callback data (the callers' contract); the out pointer is a local.
    let status = unsafe { FltGetFileNameInformation(data, NAME_OPTIONS, &mut raw) };
    NameInfo::from_raw(status, raw)
}
