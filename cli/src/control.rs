//! The console's end of the control protocol (`failsafe_loader::control`): one request
//! out, one response back. On Linux the responder is `failsafectl serve`, over a Unix
//! socket (default `STORE/control.sock`); on Windows it is the driver's control device
//! (`\\.\FailsafeFlt`), opened for reading only with the read IOCTL
//! ([`failsafe_loader::control::IOCTL_CONTROL_READ`]) for query and read events, and for
//! reading and writing with [`failsafe_loader::control::IOCTL_CONTROL`] for changes.
//!
//! Socket framing: the console connects, writes the 16-byte request and shuts its write
//! side; the host writes one response and closes. One request per connection, so a
//! `watch --follow` never holds the host up.

use std::path::{Path, PathBuf};

use failsafe_loader::control::{
    ProtoError, Reply, Request, Response, decode_response, encode_request,
};

#[cfg(windows)]
mod windows;

use crate::fail::Fail;

/// Where the live responder is.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// `failsafectl serve`'s socket.
    #[cfg_attr(windows, allow(dead_code))]
    Socket(PathBuf),
    /// The driver's control device.
    #[cfg_attr(not(windows), allow(dead_code))]
    Device,
}

impl Endpoint {
    /// `--socket PATH`, else (Windows) the driver's device, else `STORE/control.sock`.
    pub fn resolve(socket: Option<&Path>, store: &Path) -> Endpoint {
        match socket {
            Some(p) => Endpoint::Socket(p.to_path_buf()),
            None if cfg!(windows) => Endpoint::Device,
            None => Endpoint::Socket(default_socket(store)),
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Socket(p) => format!("the host process at {}", p.display()),
            Endpoint::Device => format!(
                "the driver's control device {}",
                failsafe_loader::control::CONTROL_DEVICE
            ),
        }
    }
}

/// Whether a host process answers on the socket at `path` (never on Windows, where the
/// host is the driver).
pub fn host_answers(path: &Path) -> bool {
    #[cfg(unix)]
    {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// The socket `serve` listens on when `--socket` is not given.
pub fn default_socket(store: &Path) -> PathBuf {
    store.join("control.sock")
}

/// Why a request got no decoded answer.
#[derive(Debug)]
pub enum CallError {
    /// Nothing listens there (no host process, driver not loaded).
    NotRunning(String),
    /// The exchange failed.
    Io(String),
}

impl CallError {
    pub fn into_fail(self) -> Fail {
        match self {
            CallError::NotRunning(m) => Fail::new(2, "not-running", m),
            CallError::Io(m) => Fail::io(m),
        }
    }
}

/// Sends `req`; returns the raw response.
pub fn exchange(ep: &Endpoint, req: &Request) -> Result<Vec<u8>, CallError> {
    let bytes = encode_request(req);
    match ep {
        Endpoint::Socket(path) => socket_exchange(path, &bytes),
        #[cfg(windows)]
        Endpoint::Device => windows::exchange(&bytes, failsafe_loader::control::ioctl_for(req)),
        #[cfg(not(windows))]
        Endpoint::Device => Err(CallError::Io(
            "the driver's control device exists only on Windows".into(),
        )),
    }
}

#[cfg(unix)]
fn socket_exchange(path: &Path, req: &[u8]) -> Result<Vec<u8>, CallError> {
    use std::io::{ErrorKind, Read as _, Write as _};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;
    let mut s = UnixStream::connect(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => CallError::NotRunning(format!(
            "no host process listens at {} ({e}): start `failsafectl serve`",
            path.display()
        )),
        _ => CallError::Io(format!("cannot connect to {}: {e}", path.display())),
    })?;
    let io = |what: &str, e: std::io::Error| {
        CallError::Io(format!(
            "{what} the host process at {}: {e}",
            path.display()
        ))
    };
    let limit = Some(Duration::from_secs(30));
    s.set_read_timeout(limit)
        .map_err(|e| io("cannot talk to", e))?;
    s.set_write_timeout(limit)
        .map_err(|e| io("cannot talk to", e))?;
    s.write_all(req).map_err(|e| io("cannot send to", e))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let cap = failsafe_loader::control::MAX_RESPONSE as u64 + 1;
    (&mut s)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| io("no answer from", e))?;
    Ok(out)
}

#[cfg(not(unix))]
fn socket_exchange(path: &Path, _req: &[u8]) -> Result<Vec<u8>, CallError> {
    Err(CallError::Io(format!(
        "--socket {}: Unix sockets are the Linux host's channel; on Windows the console talks to the driver's control device (omit --socket)",
        path.display()
    )))
}

/// Sends `req` and hands the decoded answer to `f`. A malformed answer, or one to another
/// kind of request, is an error naming what was wrong.
pub fn ask<T>(ep: &Endpoint, req: &Request, f: impl FnOnce(Reply<'_>) -> T) -> Result<T, Fail> {
    let bytes = exchange(ep, req).map_err(CallError::into_fail)?;
    answer(ep, req, &bytes, f)
}

/// Decodes the answer `bytes` to `req` and hands it to `f` (see [`ask`]).
pub fn answer<T>(
    ep: &Endpoint,
    req: &Request,
    bytes: &[u8],
    f: impl FnOnce(Reply<'_>) -> T,
) -> Result<T, Fail> {
    let resp: Response<'_> = decode_response(bytes).map_err(|e: ProtoError| {
        Fail::io(format!(
            "malformed answer from {} ({} bytes): {e}",
            ep.describe(),
            bytes.len()
        ))
    })?;
    if resp.kind != req.kind() && resp.kind != 0 {
        return Err(Fail::io(format!(
            "answer from {} is for request kind {}, expected {}",
            ep.describe(),
            resp.kind,
            req.kind()
        )));
    }
    Ok(f(resp.reply))
}

/// A refusal as the console reports it: the responder's message and code, exit 1 (a
/// protocol error, code 1000 and up, exits 2).
pub fn refusal(ep: &Endpoint, what: &str, code: u16, message: &str) -> Fail {
    let name = if code >= failsafe_loader::control::wire::PROTO_ERROR_BASE {
        "protocol-error"
    } else {
        "refused"
    };
    let f = Fail::new(
        if name == "refused" { 1 } else { 2 },
        if name == "refused" {
            "live-refused"
        } else {
            "protocol-error"
        },
        format!(
            "{what} refused by {} (code {code}): {message}",
            ep.describe()
        ),
    );
    f.with(
        "refusal",
        serde_json::json!({"code": code, "message": message, "kind": name}),
    )
}
