"""The driver image and its link map: the PE entry point and image size, the build
identity the image carries, lld-link's /MAP code symbols (demangled) and the one owning
an address."""

import re
import struct
from pathlib import Path

from .common import Fail


def pe_entry_rva(image: Path) -> int:
    data = image.read_bytes()
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    return struct.unpack_from("<I", data, pe + 24 + 16)[0]  # AddressOfEntryPoint


def pe_image_size(image: Path) -> int:
    data = image.read_bytes()
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    return struct.unpack_from("<I", data, pe + 24 + 56)[0]  # SizeOfImage (PE32+)


def demangle(sym: str) -> str:
    """Rust's legacy `_ZN...E` names, enough for a table (hash dropped)."""
    if not sym.startswith("_ZN"):
        return sym
    s, i, parts = sym[3:], 0, []
    while i < len(s) and s[i].isdigit():
        j = i
        while s[j].isdigit():
            j += 1
        n = int(s[i:j])
        parts.append(s[j : j + n])
        i = j + n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    out = "::".join(parts)
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("..", "::")):
        out = out.replace(a, b)
    return out


def build_identity(image: Path) -> str:
    """The build identity the image carries (driver/src/build_id.rs: `FSBUILD1`, version
    u64, digest), as `failsafectl boot --build` takes it."""
    data = image.read_bytes()
    at = data.find(b"FSBUILD1")
    if at < 0 or data.find(b"FSBUILD1", at + 1) >= 0:
        raise Fail(f"{image}: no single FSBUILD1 marker")
    version, digest = struct.unpack_from("<Q", data, at + 8)[0], data[at + 16:at + 48]
    return f"{version >> 32}.{(version >> 16) & 0xFFFF}.{version & 0xFFFF}+{digest.hex()}"


def read_map(path: Path):
    """(address, name) of every code symbol in lld-link's /MAP output, sorted."""
    syms = []
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^\s*0001:[0-9a-f]+\s+(\S+)\s+([0-9a-f]{16})\s", line)
        if m:
            syms.append((int(m.group(2), 16), demangle(m.group(1))))
    syms.sort()
    return syms


def owner(syms, addr):
    lo, hi, best = 0, len(syms), None
    while lo < hi:
        mid = (lo + hi) // 2
        if syms[mid][0] <= addr:
            best, lo = syms[mid], mid + 1
        else:
            hi = mid
    return best[1] if best else "?"
