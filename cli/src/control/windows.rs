//! The driver's control device: `CreateFileW` on `\\.\FailsafeFlt`, then one
//! `DeviceIoControl` (METHOD_BUFFERED): the 16-byte request as the input buffer, the
//! response written into the output buffer. Least privilege: query and read events open
//! the device for reading only and send [`IOCTL_CONTROL_READ`]; changes open it for
//! reading and writing and send `IOCTL_CONTROL`. The device's security descriptor admits
//! Administrators and SYSTEM only; anyone else gets access denied.

use std::ffi::c_void;

use failsafe_loader::control::{CONTROL_DEVICE, IOCTL_CONTROL_READ, MAX_RESPONSE};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_BUSY, ERROR_FILE_NOT_FOUND, GENERIC_READ,
    GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_NONE, OPEN_EXISTING,
};
use windows_sys::Win32::System::IO::DeviceIoControl;

use super::CallError;

/// An open handle, closed on drop.
struct Device(HANDLE);

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a handle `CreateFileW` returned (not INVALID_HANDLE_VALUE),
        // owned by this value and closed exactly once, here.
        unsafe {
            CloseHandle(self.0);
        }
    }
}

/// Opens the device, for reading only unless `write`.
fn open(write: bool) -> Result<Device, CallError> {
    let name: Vec<u16> = CONTROL_DEVICE.encode_utf16().chain([0]).collect();
    // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the call; the
    // security attributes and template handle may be null.
    let h = unsafe {
        CreateFileW(
            name.as_ptr(),
            if write {
                GENERIC_READ | GENERIC_WRITE
            } else {
                GENERIC_READ
            },
            FILE_SHARE_NONE,
            std::ptr::null(),
            OPEN_EXISTING,
            FILE_ATTRIBUTE_NORMAL,
            std::ptr::null_mut(),
        )
    };
    if h == INVALID_HANDLE_VALUE {
        let e = std::io::Error::last_os_error();
        let code = e.raw_os_error().and_then(|c| u32::try_from(c).ok());
        return Err(match code {
            Some(ERROR_FILE_NOT_FOUND) => CallError::NotRunning(format!(
                "no control device {CONTROL_DEVICE} ({e}): the Failsafe driver is not running"
            )),
            Some(ERROR_ACCESS_DENIED) => CallError::Io(format!(
                "cannot open {CONTROL_DEVICE} ({e}): it admits Administrators and SYSTEM only; run from an elevated prompt"
            )),
            _ => CallError::Io(format!("cannot open {CONTROL_DEVICE}: {e}")),
        });
    }
    Ok(Device(h))
}

/// Times a request turned away busy is sent again (20 ms apart: a second in all).
const BUSY_RETRIES: u32 = 50;

/// Sends one request with `ioctl` (`control::ioctl_for`): on a read-write handle for
/// `IOCTL_CONTROL`, a read-only one for [`IOCTL_CONTROL_READ`]. Returns the response
/// bytes the driver wrote.
pub fn exchange(req: &[u8], ioctl: u32) -> Result<Vec<u8>, CallError> {
    let dev = open(ioctl != IOCTL_CONTROL_READ)?;
    let mut out = vec![0u8; MAX_RESPONSE];
    let mut returned: u32 = 0;
    let in_len = u32::try_from(req.len()).unwrap_or(u32::MAX);
    let out_len = u32::try_from(out.len()).unwrap_or(u32::MAX);
    // The driver answers one request at a time and turns a second away with
    // STATUS_DEVICE_BUSY (ERROR_BUSY here): another console's request, or this one's
    // previous request still finishing. Each takes milliseconds, so wait and send again.
    let busy = i32::try_from(ERROR_BUSY).ok();
    for attempt in 0..=BUSY_RETRIES {
        // SAFETY: the input and output pointers are valid for `in_len` and `out_len`
        // bytes for the whole (synchronous, non-overlapped) call; `returned` is a valid
        // u32.
        let ok = unsafe {
            DeviceIoControl(
                dev.0,
                ioctl,
                req.as_ptr().cast::<c_void>(),
                in_len,
                out.as_mut_ptr().cast::<c_void>(),
                out_len,
                &mut returned,
                std::ptr::null_mut(),
            )
        };
        if ok != 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != busy || attempt == BUSY_RETRIES {
            return Err(CallError::Io(format!(
                "control request to {CONTROL_DEVICE} failed: {e}"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    out.truncate(usize::try_from(returned).unwrap_or(0).min(MAX_RESPONSE));
    Ok(out)
}
