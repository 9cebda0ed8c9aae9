//! The WDK's structure layouts the double builds and reads, checked at compile time against
//! numbers clang computed from the real headers: WDK 10.0.22621.0 (`T-RN-R/ddk_headers` @
//! 817c426d, km/ and shared/, with SDK 10.0.22621.0's shared/ from
//! `T-RN-R/WindowsPreviewSDKs` @ d44a7842), `probe/probe.sh` on 2026-12-06; WDK 10.0.22000.0
//! (@ 12fb5113) gives the same numbers. The headers are not in the repository.
//!
//! Where windows-sys 0.61.2 (which the driver uses) matches the WDK, the double uses its
//! types and the asserts below pin that. Where it does not, the double has its own mirror:
//! `FLT_PARAMETERS` for `IRP_MJ_CREATE` and `IRP_MJ_SET_INFORMATION` carry
//! `POINTER_ALIGNMENT` (`DECLSPEC_ALIGN(8)` on x64, wdm.h) on `FileAttributes`, `EaLength`
//! and `FileInformationClass`, which windows-sys's generated structs lack. So in the WDK
//! `SetFileInformation.FileInformationClass` is at offset 8 and `InfoBuffer` at 32, while
//! windows-sys puts them at 4 and 24: a driver reading them through windows-sys reads
//! padding and the `ReplaceIfExists`/`DeleteHandle` union instead. [`WINDOWS_SYS_DIFFERS`]
//! states those differences as asserts, so a windows-sys release that fixes them fails
//! this build and the note is re-read.

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

use windows_sys::Wdk::Foundation::IO_STACK_LOCATION;
use windows_sys::Wdk::Foundation::{DRIVER_OBJECT, FILE_OBJECT, IO_SECURITY_CONTEXT, IRP};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_IO_PARAMETER_BLOCK,
    FLT_OPERATION_REGISTRATION, FLT_PARAMETERS, FLT_REGISTRATION, FLT_RELATED_OBJECTS,
    PFLT_INSTANCE,
};
use windows_sys::Wdk::Storage::FileSystem::{FILE_LINK_INFORMATION, FILE_RENAME_INFORMATION};
use windows_sys::Wdk::System::SystemServices::PS_CREATE_NOTIFY_INFO;

/// `FLT_PARAMETERS` for `IRP_MJ_CREATE`, in the WDK's layout (fltKernel.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CreateParams {
    /// `PIO_SECURITY_CONTEXT SecurityContext`.
    pub security_context: *mut IO_SECURITY_CONTEXT,
    /// `ULONG Options`: disposition in the high 8 bits, options in the low 24.
    pub options: u32,
    /// Padding: `FileAttributes` is `POINTER_ALIGNMENT`.
    pub pad0: u32,
    /// `USHORT POINTER_ALIGNMENT FileAttributes`.
    pub file_attributes: u16,
    /// `USHORT ShareAccess`.
    pub share_access: u16,
    /// Padding: `EaLength` is `POINTER_ALIGNMENT`.
    pub pad1: u32,
    /// `ULONG POINTER_ALIGNMENT EaLength`.
    pub ea_length: u32,
    /// Padding before the pointer.
    pub pad2: u32,
    /// `PVOID EaBuffer`.
    pub ea_buffer: *mut c_void,
    /// `LARGE_INTEGER AllocationSize`.
    pub allocation_size: i64,
}

/// `FLT_PARAMETERS` for `IRP_MJ_SET_INFORMATION`, in the WDK's layout (fltKernel.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SetInfoParams {
    /// `ULONG Length`.
    pub length: u32,
    /// Padding: `FileInformationClass` is `POINTER_ALIGNMENT`.
    pub pad0: u32,
    /// `FILE_INFORMATION_CLASS POINTER_ALIGNMENT FileInformationClass`.
    pub class: i32,
    /// Padding before the pointer.
    pub pad1: u32,
    /// `PFILE_OBJECT ParentOfTarget`.
    pub parent_of_target: *mut FILE_OBJECT,
    /// The union of `{ BOOLEAN ReplaceIfExists; BOOLEAN AdvanceOnly; }`, `ULONG
    /// ClusterCount` and `HANDLE DeleteHandle`.
    pub replace_or_handle: usize,
    /// `PVOID InfoBuffer`.
    pub info_buffer: *mut c_void,
}

/// `FLT_PARAMETERS` as far as the double fills it (its size is the WDK's, 48 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub union Params {
    /// `IRP_MJ_CREATE`.
    pub create: CreateParams,
    /// `IRP_MJ_SET_INFORMATION`.
    pub set_info: SetInfoParams,
    /// The whole union.
    pub raw: [u64; 6],
}

impl core::fmt::Debug for Params {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Params(..)")
    }
}

/// `FLT_IO_PARAMETER_BLOCK` in the WDK's layout, with [`Params`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Iopb {
    /// `ULONG IrpFlags`.
    pub irp_flags: u32,
    /// `UCHAR MajorFunction`.
    pub major: u8,
    /// `UCHAR MinorFunction`.
    pub minor: u8,
    /// `UCHAR OperationFlags` (`SL_*`).
    pub operation_flags: u8,
    /// `UCHAR Reserved`.
    pub reserved: u8,
    /// `PFILE_OBJECT TargetFileObject`.
    pub target_file_object: *mut FILE_OBJECT,
    /// `PFLT_INSTANCE TargetInstance`.
    pub target_instance: PFLT_INSTANCE,
    /// `FLT_PARAMETERS Parameters`.
    pub params: Params,
}

/// Offsets, sizes and constants from clang over the WDK 10.0.22621.0 headers
/// (`probe/probe.sh`'s output, `name value`).
pub mod wdk {
    pub const FLT_CALLBACK_DATA_SIZE: usize = 88;
    pub const CBD_FLAGS: usize = 0;
    pub const CBD_THREAD: usize = 8;
    pub const CBD_IOPB: usize = 16;
    pub const CBD_IO_STATUS: usize = 24;
    pub const CBD_TAG_DATA: usize = 40;
    pub const CBD_QUEUE_LINKS: usize = 48;
    pub const CBD_REQUESTOR_MODE: usize = 80;
    pub const IOPB_SIZE: usize = 72;
    pub const IOPB_IRP_FLAGS: usize = 0;
    pub const IOPB_MAJOR: usize = 4;
    pub const IOPB_MINOR: usize = 5;
    pub const IOPB_OPERATION_FLAGS: usize = 6;
    pub const IOPB_TARGET_FILE_OBJECT: usize = 8;
    pub const IOPB_TARGET_INSTANCE: usize = 16;
    pub const IOPB_PARAMETERS: usize = 24;
    pub const FLT_PARAMETERS_SIZE: usize = 48;
    pub const CREATE_SECURITY_CONTEXT: usize = 0;
    pub const CREATE_OPTIONS: usize = 8;
    pub const CREATE_FILE_ATTRIBUTES: usize = 16;
    pub const CREATE_SHARE_ACCESS: usize = 18;
    pub const CREATE_EA_LENGTH: usize = 24;
    pub const CREATE_EA_BUFFER: usize = 32;
    pub const CREATE_ALLOCATION_SIZE: usize = 40;
    pub const SFI_LENGTH: usize = 0;
    pub const SFI_CLASS: usize = 8;
    pub const SFI_PARENT_OF_TARGET: usize = 16;
    pub const SFI_REPLACE_IF_EXISTS: usize = 24;
    pub const SFI_INFO_BUFFER: usize = 32;
    pub const RELATED_SIZE: usize = 48;
    pub const RELATED_SIZE_FIELD: usize = 0;
    pub const RELATED_TRANSACTION_CONTEXT: usize = 2;
    pub const RELATED_FILTER: usize = 8;
    pub const RELATED_VOLUME: usize = 16;
    pub const RELATED_INSTANCE: usize = 24;
    pub const RELATED_FILE_OBJECT: usize = 32;
    pub const RELATED_TRANSACTION: usize = 40;
    pub const NAME_INFO_SIZE: usize = 120;
    pub const NAME_SIZE: usize = 0;
    pub const NAME_NAMES_PARSED: usize = 2;
    pub const NAME_FORMAT: usize = 4;
    pub const NAME_NAME: usize = 8;
    pub const NAME_VOLUME: usize = 24;
    pub const NAME_SHARE: usize = 40;
    pub const NAME_EXTENSION: usize = 56;
    pub const NAME_STREAM: usize = 72;
    pub const NAME_FINAL_COMPONENT: usize = 88;
    pub const NAME_PARENT_DIR: usize = 104;
    pub const REGISTRATION_SIZE: usize = 112;
    pub const REG_VERSION: usize = 2;
    pub const REG_FLAGS: usize = 4;
    pub const REG_CONTEXT_REGISTRATION: usize = 8;
    pub const REG_OPERATION_REGISTRATION: usize = 16;
    pub const REG_FILTER_UNLOAD: usize = 24;
    pub const REG_INSTANCE_SETUP: usize = 32;
    pub const REG_INSTANCE_QUERY_TEARDOWN: usize = 40;
    pub const REG_INSTANCE_TEARDOWN_START: usize = 48;
    pub const REG_INSTANCE_TEARDOWN_COMPLETE: usize = 56;
    pub const REG_GENERATE_FILE_NAME: usize = 64;
    pub const REG_NORMALIZE_NAME_COMPONENT: usize = 72;
    pub const REG_NORMALIZE_CONTEXT_CLEANUP: usize = 80;
    pub const REG_TRANSACTION_NOTIFICATION: usize = 88;
    pub const REG_NORMALIZE_NAME_COMPONENT_EX: usize = 96;
    pub const REG_SECTION_NOTIFICATION: usize = 104;
    pub const OPREG_SIZE: usize = 32;
    pub const OPREG_MAJOR: usize = 0;
    pub const OPREG_FLAGS: usize = 4;
    pub const OPREG_PRE: usize = 8;
    pub const OPREG_POST: usize = 16;
    pub const OPREG_RESERVED1: usize = 24;
    pub const SECURITY_CONTEXT_SIZE: usize = 24;
    pub const SECURITY_CONTEXT_DESIRED_ACCESS: usize = 16;
    pub const RENAME_SIZE: usize = 24;
    pub const RENAME_ROOT_DIRECTORY: usize = 8;
    pub const RENAME_FILE_NAME_LENGTH: usize = 16;
    pub const RENAME_FILE_NAME: usize = 20;
    pub const LINK_SIZE: usize = 24;
    pub const DISPOSITION_SIZE: usize = 1;
    pub const DISPOSITION_EX_SIZE: usize = 4;
    pub const PS_CREATE_NOTIFY_INFO_SIZE: usize = 72;
    pub const PS_IMAGE_FILE_NAME: usize = 48;
    pub const DRIVER_OBJECT_SIZE: usize = 336;
    pub const DRIVER_DEVICE_OBJECT: usize = 8;
    pub const DRIVER_START: usize = 24;
    pub const DRIVER_SIZE: usize = 32;
    pub const DRIVER_UNLOAD: usize = 104;
    pub const DRIVER_MAJOR_FUNCTION: usize = 112;
    pub const IRP_SIZE: usize = 208;
    pub const IRP_ASSOCIATED_IRP: usize = 24;
    pub const IRP_IO_STATUS: usize = 48;
    pub const IRP_CURRENT_STACK_LOCATION: usize = 184;
    pub const STACK_SIZE: usize = 72;
    pub const STACK_IOCTL_OUTPUT_LENGTH: usize = 8;
    pub const STACK_IOCTL_INPUT_LENGTH: usize = 16;
    pub const STACK_IOCTL_CODE: usize = 24;
    pub const FLT_REGISTRATION_VERSION: u32 = 515;
    pub const IRP_MJ_OPERATION_END: u32 = 128;
    pub const FLT_PREOP: [i32; 7] = [0, 1, 2, 3, 4, 5, 6];
    pub const FLT_POSTOP: [i32; 3] = [0, 1, 2];
    pub const STATUS_FLT_INVALID_NAME_REQUEST: i32 = -1_071_906_811;
    pub const STATUS_FLT_DO_NOT_ATTACH: i32 = -1_071_906_801;
    pub const STATUS_FLT_DO_NOT_DETACH: i32 = -1_071_906_800;
    pub const FLT_FSTYPE_NTFS: u32 = 2;
    pub const FLT_FSTYPE_REFS: u32 = 28;
    pub const FLT_FSTYPE_FAT: u32 = 3;
    pub const FILE_DEVICE_DISK_FILE_SYSTEM: u32 = 8;
    pub const FILE_DEVICE_NETWORK_FILE_SYSTEM: u32 = 20;
    pub const SL_OPEN_PAGING_FILE: u8 = 2;
    pub const SL_OPEN_TARGET_DIRECTORY: u8 = 4;
    pub const FILE_OPEN_BY_FILE_ID: u32 = 0x2000;
    pub const FILE_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    pub const FILE_DELETE_ON_CLOSE: u32 = 0x1000;
}

/// Asserts `$left == $right` at compile time.
macro_rules! same {
    ($left:expr, $right:expr) => {
        const _: () = assert!($left == $right);
    };
}

// The double's own mirrors against the WDK.
same!(size_of::<Iopb>(), wdk::IOPB_SIZE);
same!(offset_of!(Iopb, irp_flags), wdk::IOPB_IRP_FLAGS);
same!(offset_of!(Iopb, major), wdk::IOPB_MAJOR);
same!(offset_of!(Iopb, minor), wdk::IOPB_MINOR);
same!(offset_of!(Iopb, operation_flags), wdk::IOPB_OPERATION_FLAGS);
same!(
    offset_of!(Iopb, target_file_object),
    wdk::IOPB_TARGET_FILE_OBJECT
);
same!(offset_of!(Iopb, target_instance), wdk::IOPB_TARGET_INSTANCE);
same!(offset_of!(Iopb, params), wdk::IOPB_PARAMETERS);
same!(size_of::<Params>(), wdk::FLT_PARAMETERS_SIZE);
same!(
    offset_of!(CreateParams, security_context),
    wdk::CREATE_SECURITY_CONTEXT
);
same!(offset_of!(CreateParams, options), wdk::CREATE_OPTIONS);
same!(
    offset_of!(CreateParams, file_attributes),
    wdk::CREATE_FILE_ATTRIBUTES
);
same!(
    offset_of!(CreateParams, share_access),
    wdk::CREATE_SHARE_ACCESS
);
same!(offset_of!(CreateParams, ea_length), wdk::CREATE_EA_LENGTH);
same!(offset_of!(CreateParams, ea_buffer), wdk::CREATE_EA_BUFFER);
same!(
    offset_of!(CreateParams, allocation_size),
    wdk::CREATE_ALLOCATION_SIZE
);
same!(offset_of!(SetInfoParams, length), wdk::SFI_LENGTH);
same!(offset_of!(SetInfoParams, class), wdk::SFI_CLASS);
same!(
    offset_of!(SetInfoParams, parent_of_target),
    wdk::SFI_PARENT_OF_TARGET
);
same!(
    offset_of!(SetInfoParams, replace_or_handle),
    wdk::SFI_REPLACE_IF_EXISTS
);
same!(offset_of!(SetInfoParams, info_buffer), wdk::SFI_INFO_BUFFER);

// windows-sys 0.61.2 against the WDK, where they agree (the double and the driver use
// these types as they are).
same!(size_of::<FLT_CALLBACK_DATA>(), wdk::FLT_CALLBACK_DATA_SIZE);
same!(offset_of!(FLT_CALLBACK_DATA, Flags), wdk::CBD_FLAGS);
same!(offset_of!(FLT_CALLBACK_DATA, Thread), wdk::CBD_THREAD);
same!(offset_of!(FLT_CALLBACK_DATA, Iopb), wdk::CBD_IOPB);
same!(offset_of!(FLT_CALLBACK_DATA, IoStatus), wdk::CBD_IO_STATUS);
same!(offset_of!(FLT_CALLBACK_DATA, TagData), wdk::CBD_TAG_DATA);
same!(
    offset_of!(FLT_CALLBACK_DATA, Anonymous),
    wdk::CBD_QUEUE_LINKS
);
same!(
    offset_of!(FLT_CALLBACK_DATA, RequestorMode),
    wdk::CBD_REQUESTOR_MODE
);
same!(size_of::<FLT_IO_PARAMETER_BLOCK>(), wdk::IOPB_SIZE);
same!(
    offset_of!(FLT_IO_PARAMETER_BLOCK, IrpFlags),
    wdk::IOPB_IRP_FLAGS
);
same!(
    offset_of!(FLT_IO_PARAMETER_BLOCK, MajorFunction),
    wdk::IOPB_MAJOR
);
same!(
    offset_of!(FLT_IO_PARAMETER_BLOCK, MinorFunction),
    wdk::IOPB_MINOR
);
same!(
    offset_of!(FLT_IO_PARAMETER_BLOCK, OperationFlags),
    wdk::IOPB_OPERATION_FLAGS
);
same!(
    offset_of!(FLT_IO_PARAMETER_BLOCK, TargetFileObject),
    wdk::IOPB_TARGET_FILE_OBJECT
);
same!(
    offset_of!(FLT_IO_PARAMETER_BLOCK, TargetInstance),
    wdk::IOPB_TARGET_INSTANCE
);
same!(
    offset_of!(FLT_IO_PARAMETER_BLOCK, Parameters),
    wdk::IOPB_PARAMETERS
);
same!(size_of::<FLT_PARAMETERS>(), wdk::FLT_PARAMETERS_SIZE);
same!(size_of::<FLT_RELATED_OBJECTS>(), wdk::RELATED_SIZE);
same!(
    offset_of!(FLT_RELATED_OBJECTS, Size),
    wdk::RELATED_SIZE_FIELD
);
same!(
    offset_of!(FLT_RELATED_OBJECTS, TransactionContext),
    wdk::RELATED_TRANSACTION_CONTEXT
);
same!(offset_of!(FLT_RELATED_OBJECTS, Filter), wdk::RELATED_FILTER);
same!(offset_of!(FLT_RELATED_OBJECTS, Volume), wdk::RELATED_VOLUME);
same!(
    offset_of!(FLT_RELATED_OBJECTS, Instance),
    wdk::RELATED_INSTANCE
);
same!(
    offset_of!(FLT_RELATED_OBJECTS, FileObject),
    wdk::RELATED_FILE_OBJECT
);
same!(
    offset_of!(FLT_RELATED_OBJECTS, Transaction),
    wdk::RELATED_TRANSACTION
);
same!(size_of::<FLT_FILE_NAME_INFORMATION>(), wdk::NAME_INFO_SIZE);
same!(offset_of!(FLT_FILE_NAME_INFORMATION, Size), wdk::NAME_SIZE);
same!(
    offset_of!(FLT_FILE_NAME_INFORMATION, NamesParsed),
    wdk::NAME_NAMES_PARSED
);
same!(
    offset_of!(FLT_FILE_NAME_INFORMATION, Format),
    wdk::NAME_FORMAT
);
same!(offset_of!(FLT_FILE_NAME_INFORMATION, Name), wdk::NAME_NAME);
same!(
    offset_of!(FLT_FILE_NAME_INFORMATION, Volume),
    wdk::NAME_VOLUME
);
same!(
    offset_of!(FLT_FILE_NAME_INFORMATION, Share),
    wdk::NAME_SHARE
);
same!(
    offset_of!(FLT_FILE_NAME_INFORMATION, Extension),
    wdk::NAME_EXTENSION
);
same!(
    offset_of!(FLT_FILE_NAME_INFORMATION, Stream),
    wdk::NAME_STREAM
);
same!(
    offset_of!(FLT_FILE_NAME_INFORMATION, FinalComponent),
    wdk::NAME_FINAL_COMPONENT
);
same!(
    offset_of!(FLT_FILE_NAME_INFORMATION, ParentDir),
    wdk::NAME_PARENT_DIR
);
same!(size_of::<FLT_REGISTRATION>(), wdk::REGISTRATION_SIZE);
same!(offset_of!(FLT_REGISTRATION, Version), wdk::REG_VERSION);
same!(offset_of!(FLT_REGISTRATION, Flags), wdk::REG_FLAGS);
same!(
    offset_of!(FLT_REGISTRATION, ContextRegistration),
    wdk::REG_CONTEXT_REGISTRATION
);
same!(
    offset_of!(FLT_REGISTRATION, OperationRegistration),
    wdk::REG_OPERATION_REGISTRATION
);
same!(
    offset_of!(FLT_REGISTRATION, FilterUnloadCallback),
    wdk::REG_FILTER_UNLOAD
);
same!(
    offset_of!(FLT_REGISTRATION, InstanceSetupCallback),
    wdk::REG_INSTANCE_SETUP
);
same!(
    offset_of!(FLT_REGISTRATION, InstanceQueryTeardownCallback),
    wdk::REG_INSTANCE_QUERY_TEARDOWN
);
same!(
    offset_of!(FLT_REGISTRATION, InstanceTeardownStartCallback),
    wdk::REG_INSTANCE_TEARDOWN_START
);
same!(
    offset_of!(FLT_REGISTRATION, InstanceTeardownCompleteCallback),
    wdk::REG_INSTANCE_TEARDOWN_COMPLETE
);
same!(
    offset_of!(FLT_REGISTRATION, GenerateFileNameCallback),
    wdk::REG_GENERATE_FILE_NAME
);
same!(
    offset_of!(FLT_REGISTRATION, NormalizeNameComponentCallback),
    wdk::REG_NORMALIZE_NAME_COMPONENT
);
same!(
    offset_of!(FLT_REGISTRATION, NormalizeContextCleanupCallback),
    wdk::REG_NORMALIZE_CONTEXT_CLEANUP
);
same!(
    offset_of!(FLT_REGISTRATION, TransactionNotificationCallback),
    wdk::REG_TRANSACTION_NOTIFICATION
);
same!(
    offset_of!(FLT_REGISTRATION, NormalizeNameComponentExCallback),
    wdk::REG_NORMALIZE_NAME_COMPONENT_EX
);
same!(
    offset_of!(FLT_REGISTRATION, SectionNotificationCallback),
    wdk::REG_SECTION_NOTIFICATION
);
same!(size_of::<FLT_OPERATION_REGISTRATION>(), wdk::OPREG_SIZE);
same!(
    offset_of!(FLT_OPERATION_REGISTRATION, MajorFunction),
    wdk::OPREG_MAJOR
);
same!(
    offset_of!(FLT_OPERATION_REGISTRATION, Flags),
    wdk::OPREG_FLAGS
);
same!(
    offset_of!(FLT_OPERATION_REGISTRATION, PreOperation),
    wdk::OPREG_PRE
);
same!(
    offset_of!(FLT_OPERATION_REGISTRATION, PostOperation),
    wdk::OPREG_POST
);
same!(
    offset_of!(FLT_OPERATION_REGISTRATION, Reserved1),
    wdk::OPREG_RESERVED1
);
same!(size_of::<IO_SECURITY_CONTEXT>(), wdk::SECURITY_CONTEXT_SIZE);
same!(
    offset_of!(IO_SECURITY_CONTEXT, DesiredAccess),
    wdk::SECURITY_CONTEXT_DESIRED_ACCESS
);
same!(size_of::<FILE_RENAME_INFORMATION>(), wdk::RENAME_SIZE);
same!(
    offset_of!(FILE_RENAME_INFORMATION, RootDirectory),
    wdk::RENAME_ROOT_DIRECTORY
);
same!(
    offset_of!(FILE_RENAME_INFORMATION, FileNameLength),
    wdk::RENAME_FILE_NAME_LENGTH
);
same!(
    offset_of!(FILE_RENAME_INFORMATION, FileName),
    wdk::RENAME_FILE_NAME
);
same!(size_of::<FILE_LINK_INFORMATION>(), wdk::LINK_SIZE);
same!(
    size_of::<PS_CREATE_NOTIFY_INFO>(),
    wdk::PS_CREATE_NOTIFY_INFO_SIZE
);
same!(
    offset_of!(PS_CREATE_NOTIFY_INFO, ImageFileName),
    wdk::PS_IMAGE_FILE_NAME
);
same!(size_of::<DRIVER_OBJECT>(), wdk::DRIVER_OBJECT_SIZE);
same!(
    offset_of!(DRIVER_OBJECT, DeviceObject),
    wdk::DRIVER_DEVICE_OBJECT
);
same!(offset_of!(DRIVER_OBJECT, DriverStart), wdk::DRIVER_START);
same!(offset_of!(DRIVER_OBJECT, DriverSize), wdk::DRIVER_SIZE);
same!(offset_of!(DRIVER_OBJECT, DriverUnload), wdk::DRIVER_UNLOAD);
same!(
    offset_of!(DRIVER_OBJECT, MajorFunction),
    wdk::DRIVER_MAJOR_FUNCTION
);
same!(size_of::<IRP>(), wdk::IRP_SIZE);
same!(offset_of!(IRP, AssociatedIrp), wdk::IRP_ASSOCIATED_IRP);
same!(offset_of!(IRP, IoStatus), wdk::IRP_IO_STATUS);
same!(
    offset_of!(IRP, Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation),
    wdk::IRP_CURRENT_STACK_LOCATION
);
same!(size_of::<IO_STACK_LOCATION>(), wdk::STACK_SIZE);
same!(offset_of!(IO_STACK_LOCATION, MajorFunction), 0);
same!(
    offset_of!(
        IO_STACK_LOCATION,
        Parameters.DeviceIoControl.OutputBufferLength
    ),
    wdk::STACK_IOCTL_OUTPUT_LENGTH
);

// Constants windows-sys and the WDK agree on.
mod constants {
    use super::wdk;
    use windows_sys::Wdk::Storage::FileSystem::Minifilters as m;
    use windows_sys::Win32::Foundation as f;
    same!(m::FLT_REGISTRATION_VERSION, wdk::FLT_REGISTRATION_VERSION);
    same!(m::IRP_MJ_OPERATION_END, 128u16);
    same!(wdk::IRP_MJ_OPERATION_END, 128u32);
    same!(m::FLT_PREOP_SUCCESS_WITH_CALLBACK, wdk::FLT_PREOP[0]);
    same!(m::FLT_PREOP_SUCCESS_NO_CALLBACK, wdk::FLT_PREOP[1]);
    same!(m::FLT_PREOP_PENDING, wdk::FLT_PREOP[2]);
    same!(m::FLT_PREOP_DISALLOW_FASTIO, wdk::FLT_PREOP[3]);
    same!(m::FLT_PREOP_COMPLETE, wdk::FLT_PREOP[4]);
    same!(m::FLT_PREOP_SYNCHRONIZE, wdk::FLT_PREOP[5]);
    same!(m::FLT_PREOP_DISALLOW_FSFILTER_IO, wdk::FLT_PREOP[6]);
    same!(m::FLT_POSTOP_FINISHED_PROCESSING, wdk::FLT_POSTOP[0]);
    same!(m::FLT_POSTOP_MORE_PROCESSING_REQUIRED, wdk::FLT_POSTOP[1]);
    same!(m::FLT_POSTOP_DISALLOW_FSFILTER_IO, wdk::FLT_POSTOP[2]);
    same!(
        f::STATUS_FLT_INVALID_NAME_REQUEST,
        wdk::STATUS_FLT_INVALID_NAME_REQUEST
    );
    same!(f::STATUS_FLT_DO_NOT_ATTACH, wdk::STATUS_FLT_DO_NOT_ATTACH);
    same!(f::STATUS_FLT_DO_NOT_DETACH, wdk::STATUS_FLT_DO_NOT_DETACH);
}

/// Where windows-sys 0.61.2 differs from the WDK (see the module documentation): the
/// offsets windows-sys gives, next to the WDK's. A driver that reads
/// `Parameters.SetFileInformation.FileInformationClass` or `.InfoBuffer`, or
/// `Parameters.Create.FileAttributes` / `.ShareAccess` / `.EaLength` / `.EaBuffer`, through
/// windows-sys reads the wrong bytes of what Filter Manager built.
pub const WINDOWS_SYS_DIFFERS: [(&str, usize, usize); 8] = {
    use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
        FLT_PARAMETERS_0 as CREATE, FLT_PARAMETERS_6 as SET_INFO,
    };
    [
        // wdm.h IO_STACK_LOCATION.Parameters.DeviceIoControl: `ULONG POINTER_ALIGNMENT
        // InputBufferLength; ULONG POINTER_ALIGNMENT IoControlCode;` (the double reads its
        // own IOCTLs at the WDK's offsets, `device::ioctl_parameters`).
        (
            "IO_STACK_LOCATION DeviceIoControl.InputBufferLength",
            offset_of!(
                IO_STACK_LOCATION,
                Parameters.DeviceIoControl.InputBufferLength
            ),
            wdk::STACK_IOCTL_INPUT_LENGTH,
        ),
        (
            "IO_STACK_LOCATION DeviceIoControl.IoControlCode",
            offset_of!(IO_STACK_LOCATION, Parameters.DeviceIoControl.IoControlCode),
            wdk::STACK_IOCTL_CODE,
        ),
        (
            "SetFileInformation.FileInformationClass",
            offset_of!(SET_INFO, FileInformationClass),
            wdk::SFI_CLASS,
        ),
        (
            "SetFileInformation.ParentOfTarget",
            offset_of!(SET_INFO, ParentOfTarget),
            wdk::SFI_PARENT_OF_TARGET,
        ),
        (
            "SetFileInformation.InfoBuffer",
            offset_of!(SET_INFO, InfoBuffer),
            wdk::SFI_INFO_BUFFER,
        ),
        (
            "Create.FileAttributes",
            offset_of!(CREATE, FileAttributes),
            wdk::CREATE_FILE_ATTRIBUTES,
        ),
        (
            "Create.EaLength",
            offset_of!(CREATE, EaLength),
            wdk::CREATE_EA_LENGTH,
        ),
        (
            "Create.EaBuffer",
            offset_of!(CREATE, EaBuffer),
            wdk::CREATE_EA_BUFFER,
        ),
    ]
};
same!(WINDOWS_SYS_DIFFERS[0].1, 12);
same!(WINDOWS_SYS_DIFFERS[1].1, 16);
same!(WINDOWS_SYS_DIFFERS[2].1, 4);
same!(WINDOWS_SYS_DIFFERS[3].1, 8);
same!(WINDOWS_SYS_DIFFERS[4].1, 24);
same!(WINDOWS_SYS_DIFFERS[5].1, 12);
same!(WINDOWS_SYS_DIFFERS[6].1, 16);
same!(WINDOWS_SYS_DIFFERS[7].1, 20);
// The fields the driver reads today that agree: Create.SecurityContext and .Options,
// SetFileInformation.Length.
mod agree {
    use super::*;
    use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
        FLT_PARAMETERS_0 as CREATE, FLT_PARAMETERS_6 as SET_INFO,
    };
    same!(
        offset_of!(CREATE, SecurityContext),
        wdk::CREATE_SECURITY_CONTEXT
    );
    same!(offset_of!(CREATE, Options), wdk::CREATE_OPTIONS);
    same!(offset_of!(SET_INFO, Length), wdk::SFI_LENGTH);
}
