//! `FLT_PARAMETERS` members in the WDK's layout where windows-sys 0.61.2's generated structs
//! differ from it. fltKernel.h marks `SetFileInformation.FileInformationClass`,
//! `Create.FileAttributes` and `Create.EaLength` `POINTER_ALIGNMENT` (`DECLSPEC_ALIGN(8)`
//! on 64-bit, wdm.h); windows-sys's `FLT_PARAMETERS_6` and `FLT_PARAMETERS_0` do not, so
//! through them `FileInformationClass` is read at offset 4 (padding) instead of 8 and
//! `InfoBuffer` at 24 (the `ReplaceIfExists` / `DeleteHandle` union) instead of 32. The
//! offsets below are clang's over the WDK 10.0.22621 and 10.0.22000 headers
//! (driver/hosted/double/probe, whose layout.rs asserts windows-sys's differences); the
//! hosted drill's Filter Manager double builds the callback data in the WDK's layout.
//! Read the members through these views; windows-sys's agree for `Create.SecurityContext`,
//! `Create.Options` and `SetFileInformation.Length` only.

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{FLT_IO_PARAMETER_BLOCK, FLT_PARAMETERS};

/// `FLT_PARAMETERS` for `IRP_MJ_SET_INFORMATION` (fltKernel.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SetInformation {
    /// `ULONG Length`.
    pub length: u32,
    pad0: u32,
    /// `FILE_INFORMATION_CLASS POINTER_ALIGNMENT FileInformationClass`.
    pub class: i32,
    pad1: u32,
    /// `PFILE_OBJECT ParentOfTarget`.
    pub parent_of_target: *mut c_void,
    /// The union of `ReplaceIfExists`/`AdvanceOnly`, `ClusterCount`, `DeleteHandle`.
    pub replace_or_handle: usize,
    /// `PVOID InfoBuffer`.
    pub info_buffer: *mut c_void,
}

const _: () = assert!(offset_of!(SetInformation, length) == 0);
const _: () = assert!(offset_of!(SetInformation, class) == 8);
const _: () = assert!(offset_of!(SetInformation, parent_of_target) == 16);
const _: () = assert!(offset_of!(SetInformation, replace_or_handle) == 24);
const _: () = assert!(offset_of!(SetInformation, info_buffer) == 32);
const _: () = assert!(size_of::<SetInformation>() <= size_of::<FLT_PARAMETERS>());
const _: () = assert!(align_of::<SetInformation>() <= align_of::<FLT_PARAMETERS>());

/// The set-information parameters of `iopb` (an `IRP_MJ_SET_INFORMATION` operation's).
pub fn set_information(iopb: &FLT_IO_PARAMETER_BLOCK) -> SetInformation {
    let p = core::ptr::from_ref(&iopb.Parameters).cast::<SetInformation>();
    // SAFETY: `Parameters` is a union of at least the view's size and alignment (asserted
    // above), initialized by the Filter Manager; every member of the view is an integer or
    // a raw pointer, for which any bit pattern is valid.
    unsafe { p.read() }
}
