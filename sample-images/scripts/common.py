"""Shared helpers for the sample-image generator: deterministic contents and times.

Everything here is a pure function of its arguments so that two runs of
build.sh put exactly the same bytes into the source trees.
"""
import hashlib

# 2021-03-04T05:06:08Z. Every generated mtime is T0 plus an even number of
# seconds, so FAT's 2-second resolution stores it exactly.
T0 = 1614834368
# The time the filesystems are "made" (mkfs, lost+found, FUSE daemons' clocks).
MKFS_TIME = 1622505600  # 2021-06-01T00:00:00Z

FILLER = (
    b"Loopless sample data. The quick brown fox jumps over the lazy dog; "
    b"pack my box with five dozen liquor jugs. 0123456789 abcdefghijklmnopqrstuvwxyz\n"
) * 16


def pattern(label: str, size: int, block: int = 1024) -> bytes:
    """Compressible text in which every `block` bytes start with a header naming
    the file and the offset, so a misplaced block or cluster is detected by
    content, while zlib/git still pack it to a fraction of its size."""
    out = bytearray()
    off = 0
    while off < size:
        head = f"[{label} @ {off:#012x}]\n".encode()
        out += (head + FILLER)[:block]
        off += block
    del out[size:]
    return bytes(out)


def noise(label: str, size: int) -> bytes:
    """Deterministic incompressible bytes (sha256 in counter mode). Used
    sparingly: only where a test needs data that does not compress."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


def text(label: str, lines: int = 3) -> bytes:
    return "".join(f"{label}: line {i + 1} of {lines}\n" for i in range(lines)).encode()
