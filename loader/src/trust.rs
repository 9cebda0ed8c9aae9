//! Content authenticity: the trusted public keys and the signature check that runs before
//! any structural parsing of a content file (docs/boot-safety.md, "Trust";
//! docs/content-format.md, "Signature"; crate choice in docs/decisions/0011-signatures.md).
//!
//! A signed file names its key by an 8-byte key id in the header and carries one Ed25519
//! signature in a 64-byte block after the string table. The signature is over
//! [`CONTEXT`] followed by the 80 header bytes, which hold the content version, the counts,
//! the key id and the SHA-256 digest of the rule and string tables: so it covers every byte
//! of the file but itself. [`verify`] checks, in this order and before anything of the
//! body is parsed: the header's fields and sizes, that a signature is present, that its key
//! is trusted (and, for a test key, that test signing is on), the signature, then the
//! digest. Its only allocation is the curve arithmetic's 1.8 KiB of working memory (fallible,
//! on the heap: kernel stacks are 24 KiB); no frame holds a large buffer.

use alloc::vec::Vec;
use ed25519_compact::{PublicKey, Signature, VerifyScratch};
use sha2::{Digest as _, Sha256};

use crate::error::{AllocError, ContentError, ErrorKind, Location};
use crate::format::{self, Header, field};
use crate::mem;

/// Length of a key id.
pub const KEY_ID_LEN: usize = 8;
/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature (the signature block).
pub const SIGNATURE_LEN: usize = 64;
/// Most keys a [`Trust`] holds (release and test keys together).
pub const MAX_KEYS: usize = 8;
/// What is signed comes after this context string, so a signature made for content can
/// never be taken for a signature over anything else made with the same key.
pub const CONTEXT: &[u8] = b"failsafe content signature v1\0";
/// What a key id is derived from, before the public key.
const KEY_ID_CONTEXT: &[u8] = b"failsafe key id v1\0";

/// A key's id: the first 8 bytes of SHA-256 over a context string and the public key.
pub type KeyId = [u8; KEY_ID_LEN];

/// The release keys compiled into the core: every build trusts them, with or without test
/// signing. A public key is not a secret; the release pipeline lists the vendor's current
/// and next key here (rotation: ship the next key in a driver update before signing with
/// it). None exists yet, so a build of this repository trusts no release key: content must
/// be signed by a test key and the driver started with test signing on.
pub const RELEASE_KEYS: &[[u8; PUBLIC_KEY_LEN]] = &[];

/// The id of a public key.
pub fn key_id(public: &[u8; PUBLIC_KEY_LEN]) -> KeyId {
    let mut h = Sha256::new();
    h.update(KEY_ID_CONTEXT);
    h.update(public);
    let d: [u8; 32] = h.finalize().into();
    let mut id = [0u8; KEY_ID_LEN];
    for (o, b) in id.iter_mut().zip(d.iter()) {
        *o = *b;
    }
    id
}

/// What a key may sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A release key: trusted always.
    Release,
    /// A development (test) key: trusted only while test signing is on.
    Test,
}

impl KeyKind {
    /// Name as the console shows it.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Release => "release",
            KeyKind::Test => "test",
        }
    }
}

/// A trusted public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// Its id (derived from `public`).
    pub id: KeyId,
    /// Ed25519 public key.
    pub public: [u8; PUBLIC_KEY_LEN],
    /// Release or test.
    pub kind: KeyKind,
}

/// Why a key list was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustError {
    /// More than [`MAX_KEYS`] keys.
    Full,
    /// A key blob whose length is not a multiple of 32 bytes.
    BadLength {
        /// Its length.
        len: usize,
    },
}

impl core::fmt::Display for TrustError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            TrustError::Full => write!(f, "more than {MAX_KEYS} trusted keys"),
            TrustError::BadLength { len } => write!(
                f,
                "key list of {len} bytes is not a whole number of {PUBLIC_KEY_LEN}-byte public keys"
            ),
        }
    }
}

/// The keys content may be signed with, and the test-signing switch. Fixed size (about
/// 400 bytes), no allocation; built once at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trust {
    keys: [Option<TrustedKey>; MAX_KEYS],
    test_signing: bool,
}

impl Default for Trust {
    fn default() -> Self {
        Trust::EMPTY
    }
}

impl Trust {
    /// No key at all, test signing off: every file is refused.
    pub const EMPTY: Trust = Trust {
        keys: [None; MAX_KEYS],
        test_signing: false,
    };

    /// The compiled-in release keys ([`RELEASE_KEYS`]), test signing off: what a release
    /// driver trusts.
    pub fn builtin() -> Trust {
        let mut t = Trust::EMPTY;
        for k in RELEASE_KEYS {
            let _ = t.add(*k, KeyKind::Release);
        }
        t
    }

    /// Turns test signing on or off: only with it on does a [`KeyKind::Test`] key verify.
    pub fn set_test_signing(&mut self, on: bool) {
        self.test_signing = on;
    }

    /// Whether test signing is on.
    pub fn test_signing(&self) -> bool {
        self.test_signing
    }

    /// Adds a key (a key already present keeps the stronger kind: release).
    pub fn add(
        &mut self,
        public: [u8; PUBLIC_KEY_LEN],
        kind: KeyKind,
    ) -> Result<KeyId, TrustError> {
        let id = key_id(&public);
        if let Some(k) = self.keys.iter_mut().flatten().find(|k| k.public == public) {
            if kind == KeyKind::Release {
                k.kind = KeyKind::Release;
            }
            return Ok(id);
        }
        let slot = self
            .keys
            .iter_mut()
            .find(|k| k.is_none())
            .ok_or(TrustError::Full)?;
        *slot = Some(TrustedKey { id, public, kind });
        Ok(id)
    }

    /// Adds every key of a blob of concatenated 32-byte public keys (the driver's
    /// `TestSigningKeys` `REG_BINARY` value). Nothing is added unless all fit.
    pub fn add_keys(&mut self, blob: &[u8], kind: KeyKind) -> Result<usize, TrustError> {
        if !blob.len().is_multiple_of(PUBLIC_KEY_LEN) {
            return Err(TrustError::BadLength { len: blob.len() });
        }
        let mut next = *self;
        let mut n = 0usize;
        for chunk in blob.chunks_exact(PUBLIC_KEY_LEN) {
            let mut k = [0u8; PUBLIC_KEY_LEN];
            k.copy_from_slice(chunk);
            next.add(k, kind)?;
            n = n.saturating_add(1);
        }
        *self = next;
        Ok(n)
    }

    /// The key with this id.
    pub fn find(&self, id: &KeyId) -> Option<&TrustedKey> {
        self.keys.iter().flatten().find(|k| k.id == *id)
    }

    /// The keys, in the order added.
    pub fn keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.iter().flatten()
    }
}

/// A file whose signature and digest verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Its header.
    pub header: Header,
    /// The key that signed it.
    pub key: TrustedKey,
}

fn at(offset: usize, kind: ErrorKind) -> ContentError {
    ContentError {
        at: Location {
            offset,
            ..Location::default()
        },
        kind,
    }
}

/// The signature block of a file whose header [`format::read_header`] accepted.
fn signature_block<'a>(bytes: &'a [u8], header: &Header) -> (usize, Option<&'a [u8]>) {
    let start = format::HEADER_LEN.saturating_add(header.tables_len());
    let end = start.saturating_add(SIGNATURE_LEN);
    (start, bytes.get(start..end))
}

/// Checks that `key` signed `header80` (the file's first 80 bytes) with `signature`:
/// `Ok(false)` when it did not, `Err` when the curve arithmetic's working memory (1.8 KiB,
/// kept on the heap: kernel stacks are 24 KiB) could not be allocated. Its own frame.
#[inline(never)]
pub fn check_signature(
    header80: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    public: &[u8; PUBLIC_KEY_LEN],
) -> Result<bool, AllocError> {
    let mut scratch: Vec<VerifyScratch> = mem::with_capacity(1)?;
    // The explicit check lets the compiler drop `push`'s growth path (proof/); ZERO is a
    // constant, copied straight to the heap.
    if scratch.len() < scratch.capacity() {
        scratch.push(VerifyScratch::ZERO);
    }
    let s = scratch.first_mut().ok_or(AllocError)?;
    let pk = PublicKey::new(*public);
    let sig = Signature::new(*signature);
    Ok(match pk.verify_incremental(&sig) {
        Ok(mut st) => {
            st.absorb(CONTEXT);
            st.absorb(header80);
            st.verify_with(s).is_ok()
        }
        Err(_) => false,
    })
}

/// Checks a content file's authenticity before anything of its body is parsed: its header
/// and sizes ([`format::read_header`]), then that it is signed (`unsigned`), by a key in
/// `trust` (`unknown-key`), which is a release key or test signing is on
/// (`test-signing-off`), that the signature verifies over the header (`bad-signature`),
/// and that the digest in the header matches the tables (`digest-mismatch`). The first
/// failing check is reported. Allocates only the curve arithmetic's 1.8 KiB of working
/// memory, fallibly (`out-of-memory`, which the start treats as "not read this start").
#[inline(never)]
pub fn verify(bytes: &[u8], trust: &Trust) -> Result<Verified, ContentError> {
    let header = format::read_header(bytes)?;
    if !header.is_signed() {
        return Err(at(field::SIGNATURE_LEN.start, ErrorKind::Unsigned));
    }
    let id = header.key_id;
    let key = *trust
        .find(&id)
        .ok_or(at(field::KEY_ID.start, ErrorKind::UnknownKey { id }))?;
    if key.kind == KeyKind::Test && !trust.test_signing {
        return Err(at(field::KEY_ID.start, ErrorKind::TestSigningOff { id }));
    }
    let (sig_at, block) = signature_block(bytes, &header);
    let mut sig = [0u8; SIGNATURE_LEN];
    match block {
        Some(b) if b.len() == SIGNATURE_LEN => sig.copy_from_slice(b),
        _ => {
            // read_header checked the sizes; kept as an error, never a panic.
            return Err(at(
                sig_at,
                ErrorKind::Truncated {
                    what: "signature block",
                    needed: 64,
                    remaining: 0,
                },
            ));
        }
    }
    let header80 = bytes.get(..format::HEADER_LEN).unwrap_or(&[]);
    match check_signature(header80, &sig, &key.public) {
        Ok(true) => {}
        Ok(false) => return Err(at(sig_at, ErrorKind::BadSignature { id })),
        Err(AllocError) => return Err(at(sig_at, ErrorKind::OutOfMemory)),
    }
    format::check_digest(bytes, &header)?;
    Ok(Verified { header, key })
}
