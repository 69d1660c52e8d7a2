#!/usr/bin/env python3
"""Generates the source trees the sample filesystems are built from.

Usage: make_trees.py OUTDIR        (run as root: owners, setuid bits, fifos)

For every volume it writes OUTDIR/<image>/<volume>/ (the tree) and
OUTDIR/<image>/<volume>.plan.json: what cannot live in a plain tree (NTFS
alternate data streams, junctions, compressed directories, FAT attributes,
the fragmentation recipe) plus "facts" for the tests. The truth manifests are
written from these trees and plans (manifest.py), never read back from the
images.

Deterministic: fixed contents (common.py), fixed modes and owners, and mtimes
that are whole even seconds in UTC.
"""
import json
import os
import sys

from common import T0, noise, pattern, text

UNI_DIR = "Ünïcødé"
UNI_FILE = "日本語.txt"
EMOJI = "emoji-😀-smile.txt"
LONG200 = ("long-name-" + "abcdefghij" * 20)[:196] + ".txt"
assert len(LONG200) == 200
NEST = [f"nest-{i}" for i in range(1, 9)]  # 8 directory levels
DEEPEST = "/".join(NEST) + "/deepest.txt"


class Ns:
    """An exact mtime in nanoseconds (a float would lose the digits)."""

    def __init__(self, ns):
        self.ns = ns


class Tree:
    """One volume's source tree. Entries are created at once; owners, modes
    and times are applied in finish(), deepest first, so that creating a child
    never disturbs a parent's recorded mtime."""

    def __init__(self, out, image, vol, fs):
        self.root = os.path.join(out, image, vol)
        self.vol = vol
        self.fs = fs
        self.k = 0
        self.meta = {}  # rel -> (mode|None, uid, gid, mtime_ns)
        self.plan = {"fs": fs, "facts": {}}
        os.makedirs(self.root)

    # -- helpers -----------------------------------------------------------
    def p(self, rel):
        """The manifest path of a tree-relative path."""
        return f"/{self.vol}/{rel}"

    def when(self, mtime):
        """mtime: whole seconds, an Ns(nanoseconds), or None for the next
        generated time."""
        if isinstance(mtime, Ns):
            return mtime.ns
        if mtime is not None:
            return mtime * 1_000_000_000
        self.k += 1
        return (T0 + self.k * 7202) * 1_000_000_000  # 2 h 0 min 2 s apart: dates, hours and minutes vary

    def abs(self, rel):
        return os.path.join(self.root, rel)

    def _parents(self, rel):
        parent = os.path.dirname(rel)
        if parent and parent not in self.meta:
            self.dir(parent)

    def fact(self, key, value):
        self.plan["facts"][key] = value

    # -- entries -----------------------------------------------------------
    def dir(self, rel, mode=0o755, uid=0, gid=0, mtime=None):
        if rel in self.meta:
            return
        self._parents(rel)
        os.mkdir(self.abs(rel))
        self.meta[rel] = (mode, uid, gid, self.when(mtime))

    def file(self, rel, data=b"", mode=0o644, uid=0, gid=0, mtime=None):
        self._parents(rel)
        with open(self.abs(rel), "wb") as f:
            f.write(data)
        self.meta[rel] = (mode, uid, gid, self.when(mtime))

    def sparse(self, rel, size, segments, mode=0o644, uid=0, gid=0, mtime=None):
        """A file of `size` bytes that holds data only in `segments`
        [(offset, bytes)]; the rest is holes in the source tree too."""
        self._parents(rel)
        with open(self.abs(rel), "wb") as f:
            for off, data in segments:
                f.seek(off)
                f.write(data)
            f.truncate(size)
        self.meta[rel] = (mode, uid, gid, self.when(mtime))

    def symlink(self, rel, target, uid=0, gid=0, mtime=None):
        self._parents(rel)
        os.symlink(target, self.abs(rel))
        self.meta[rel] = (None, uid, gid, self.when(mtime))

    def hardlink(self, rel, existing):
        self._parents(rel)
        os.link(self.abs(existing), self.abs(rel))
        self.meta[rel] = self.meta[existing]

    def fifo(self, rel, mode=0o644, uid=0, gid=0, mtime=None):
        self._parents(rel)
        os.mkfifo(self.abs(rel))
        self.meta[rel] = (mode, uid, gid, self.when(mtime))

    def finish(self):
        for rel in sorted(self.meta, key=lambda r: (-r.count("/"), r)):
            mode, uid, gid, t = self.meta[rel]
            path = self.abs(rel)
            os.chown(path, uid, gid, follow_symlinks=False)
            if mode is not None:
                os.chmod(path, mode)  # after chown, which clears setuid
            os.utime(path, ns=(t, t), follow_symlinks=False)
        with open(self.root + ".plan.json", "w") as f:
            json.dump(self.plan, f, indent=1, ensure_ascii=False, sort_keys=True)
            f.write("\n")


# -- building blocks shared by several volumes ------------------------------

def common(t: Tree, title: str, emoji=True):
    """Names every filesystem must get right: Unicode, emoji, a 200-character
    name, 8-deep nesting, an empty file and an empty directory. No emoji on
    FAT: mtools 4.0.32 truncates characters outside the BMP to 16 bits
    (U+1F600 is stored as U+F600) instead of writing a surrogate pair."""
    t.file("readme.txt", text(f"{title} readme", 4))
    t.file(f"{UNI_DIR}/{UNI_FILE}", "こんにちは、世界。Ünïcødé directory, Japanese file name.\n".encode())
    t.file(f"{UNI_DIR}/Ελληνικά και кириллица.txt", "Greek and Cyrillic in one name.\n".encode())
    if emoji:
        t.file(EMOJI, "😀 an emoji outside the Basic Multilingual Plane (UTF-16 surrogate pair).\n".encode())
    t.file(LONG200, text("200-character name", 2))
    for i in range(len(NEST)):
        t.dir("/".join(NEST[: i + 1]))
        t.file("/".join(NEST[: i + 1]) + f"/at-depth-{i + 1}.txt", text(f"depth {i + 1}", 1))
    t.file(DEEPEST, text("the deepest file", 2))
    t.file("empty.txt", b"")
    t.dir("empty-dir")
    t.fact("unicode", [t.p(f"{UNI_DIR}/{UNI_FILE}")] + ([t.p(EMOJI)] if emoji else []))
    t.fact("longName", t.p(LONG200))
    t.fact("deepest", t.p(DEEPEST))
    t.fact("emptyFile", t.p("empty.txt"))
    t.fact("emptyDir", t.p("empty-dir"))


def unix_extras(t: Tree):
    """Links, a fifo, varied modes and owners: only where the filesystem has them."""
    t.symlink("fast-link", "readme.txt")
    t.symlink("slow-link", DEEPEST)  # > 60 bytes: stored in a block, not the inode
    assert len(DEEPEST) > 60
    t.symlink("dangling-link", "no/such/target.txt")
    t.symlink("dir-link", NEST[0])
    t.file("hardlink-a.txt", text("one inode, two names", 2))
    t.hardlink("hardlink-b.txt", "hardlink-a.txt")
    t.fifo("fifo", mode=0o644)
    t.dir("home", mode=0o755)
    t.dir("home/ana", mode=0o750, uid=1000, gid=1000)
    t.file("home/ana/secret.txt", text("ana's secret", 2), mode=0o600, uid=1000, gid=1000)
    t.file("home/ana/shared.txt", text("readable by group users", 2), mode=0o640, uid=1000, gid=100)
    t.dir("bin", mode=0o755)
    t.file("bin/script.sh", b"#!/bin/sh\necho hello from loopless\n", mode=0o755)
    t.file("bin/suid-tool", b"#!/bin/sh\nid\n", mode=0o4755)
    t.file("bin/sgid-sticky", b"mode 02775 with sticky 01000\n", mode=0o3775)
    t.fact("symlinks", {"fast": t.p("fast-link"), "slow": t.p("slow-link"), "dangling": t.p("dangling-link"), "toDir": t.p("dir-link")})
    t.fact("hardlinks", [[t.p("hardlink-a.txt"), t.p("hardlink-b.txt")]])
    t.fact("fifo", t.p("fifo"))
    t.fact("setuid", t.p("bin/suid-tool"))


def many(t: Tree, rel, count, content_every, width=5):
    """A big directory. Most entries are empty (no data blocks/clusters, so
    the image stays small); every `content_every`-th holds one line. Every
    7th name is longer, so directory records vary in length."""
    t.dir(rel)
    base = t.when(None)
    for i in range(count):
        name = f"entry-{i:0{width}d}" + ("-with-a-longer-name" if i % 7 == 3 else "") + ".txt"
        data = text(f"{rel}/{name}", 1) if i % content_every == 0 else b""
        t.file(f"{rel}/{name}", data, mtime=base // 1_000_000_000 + 2 * i)
    t.fact("largeDir", {"path": t.p(rel), "entries": count})


def fat_names(t: Tree):
    """8.3 names stored with the NT lowercase flags (no LFN), an OEM
    (code page 437) short name without LFN, and long names."""
    t.dir("lower")
    t.file("lower/inner.txt", text("inside lower/", 1))
    t.file("UPPER.TXT", text("plain upper-case 8.3 name", 1))
    t.file("notes.TXT", text("lower-case base, upper-case extension", 1))
    t.file("CAPS.txt", text("upper-case base, lower-case extension", 1))
    t.file("ÉTÉ.TXT", text("short name in code page 437, no long name", 1))
    t.file("A long file name with spaces.txt", text("long file name", 1))
    t.file("Mixed Case Dir/MixedCase.Txt", text("mixed case needs a long name", 1))
    t.fact("lowercase83", {"bothLower": t.p("readme.txt"), "dirLower": t.p("lower"), "baseLower": t.p("notes.TXT"), "extLower": t.p("CAPS.txt"), "upper": t.p("UPPER.TXT")})
    t.fact("cp437ShortName", t.p("ÉTÉ.TXT"))


def fat_attrs(t: Tree):
    t.file("readonly.txt", text("read-only attribute set", 1), mode=0o444)
    t.file("hidden.txt", text("hidden attribute set; still listed", 1))
    t.plan.setdefault("fat", {})["hidden"] = ["hidden.txt"]
    t.fact("readOnly", t.p("readonly.txt"))
    t.fact("hidden", t.p("hidden.txt"))


def fragmented(t: Tree, big_size, keepers, keeper_size, temp_size, key="fat"):
    """A recipe for a fragmented file (carried out by populate.py): write
    frag/keep-NN and a temporary file after each, delete the temporaries,
    then write frag/big-fragmented.bin, which has to fill the gaps."""
    t.dir("frag")
    for i in range(keepers):
        t.file(f"frag/keep-{i:02d}.bin", pattern(f"{t.vol}/frag/keep-{i:02d}.bin", keeper_size + 100 * i))
    t.file("frag/big-fragmented.bin", pattern(f"{t.vol}/frag/big-fragmented.bin", big_size))
    t.plan.setdefault(key, {})["fragment"] = {
        "dir": "frag", "keepers": [f"keep-{i:02d}.bin" for i in range(keepers)],
        "tempSize": temp_size, "big": "big-fragmented.bin",
    }
    t.fact("fragmented", t.p("frag/big-fragmented.bin"))


# -- the volumes -------------------------------------------------------------
KiB, MiB = 1024, 1024 * 1024


def mbr_p1_ext2(out):
    t = Tree(out, "mbr", "p1", "ext2")
    common(t, "mbr p1 ext2")
    unix_extras(t)
    t.file("indirect/single.bin", pattern("p1/indirect/single.bin", 100 * KiB))
    t.file("indirect/double.bin", pattern("p1/indirect/double.bin", 1 * MiB + 123))
    # 1 KiB blocks: 12 direct, 256 single, 65536 double-indirect blocks, so
    # anything past 12 + 256 + 65536 KiB (about 64.3 MiB) needs triple indirection.
    size = 66 * MiB + 4113
    t.sparse("sparse-triple.bin", size, [
        (0, pattern("p1/sparse-triple.bin", 1500)),
        (5 * MiB, pattern("p1/sparse-triple.bin@5M", 2048)),
        (65 * MiB + 512, pattern("p1/sparse-triple.bin@65M", 3000)),
        (size - 17, b"end of the file.\n"),
    ])
    t.fact("blockSize", 1024)
    t.fact("inodeSize", 128)
    t.fact("singleIndirect", t.p("indirect/single.bin"))
    t.fact("doubleIndirect", t.p("indirect/double.bin"))
    t.fact("tripleIndirect", t.p("sparse-triple.bin"))
    t.fact("sparse", [t.p("sparse-triple.bin")])
    t.finish()


def mbr_p2_ext3(out):
    t = Tree(out, "mbr", "p2", "ext3")
    common(t, "mbr p2 ext3")
    unix_extras(t)
    t.file("indirect/double.bin", pattern("p2/indirect/double.bin", 300 * KiB + 7))
    t.sparse("sparse.bin", 2 * MiB, [(0, b"start\n"), (1 * MiB, pattern("p2/sparse.bin@1M", 4096))])
    t.fact("blockSize", 1024)
    t.fact("journal", True)
    t.fact("doubleIndirect", t.p("indirect/double.bin"))
    t.fact("sparse", [t.p("sparse.bin")])
    t.finish()


def mbr_p5_ext4(out):
    t = Tree(out, "mbr", "p5", "ext4")
    common(t, "mbr p5 ext4 (logical)")
    unix_extras(t)
    t.file("data/medium.bin", pattern("p5/data/medium.bin", 200 * KiB + 1))
    t.sparse("sparse.bin", 1 * MiB, [(64 * KiB, pattern("p5/sparse.bin@64K", 5000))])
    t.fact("sparse", [t.p("sparse.bin")])
    t.finish()


def gpt_p1_ext4(out):
    t = Tree(out, "gpt", "p1", "ext4")
    common(t, "gpt p1 ext4")
    unix_extras(t)
    many(t, "many", 3200, 100)
    big = 16 * MiB + 100 * KiB + 1234
    t.file("big/big.bin", pattern("p1/big/big.bin", big))
    # Twelve separate data extents: more than the inode's four, so the
    # extent tree gets an index level (depth 1).
    segs = [(i * 96 * KiB, pattern(f"p1/sparse-extents.bin#{i}", 8 * KiB)) for i in range(12)]
    t.sparse("sparse-extents.bin", 12 * 96 * KiB + 10, segs + [(12 * 96 * KiB, b"last bytes")])
    t.file("after-2038.txt", text("mtime in 2040: needs the extra epoch bits", 1), mtime=2208988800)
    t.file("nanoseconds.txt", text("mtime with a fraction of a second", 1), mtime=Ns(T0 * 1_000_000_000 + 123456789))
    t.file("big-ids.txt", text("uid 100000 gid 100001 need the high 16 bits", 1), uid=100000, gid=100001)
    t.fact("big", t.p("big/big.bin"))
    t.fact("extentTreeDepth1", t.p("sparse-extents.bin"))
    t.fact("sparse", [t.p("sparse-extents.bin")])
    t.fact("after2038", t.p("after-2038.txt"))
    t.fact("nanoseconds", {"path": t.p("nanoseconds.txt"), "mtimeNs": str(T0 * 1_000_000_000 + 123456789)})
    t.fact("bigIds", t.p("big-ids.txt"))
    t.fact("htree", t.p("many"))
    t.finish()


def gpt_p3_inline(out):
    t = Tree(out, "gpt", "p3", "ext4")
    # 256-byte inodes: 60 bytes fit in i_block, more goes to the
    # system.data extended attribute in the inode's extra space.
    for n in (1, 59, 60, 61, 100):
        t.file(f"inline-{n}.txt", pattern(f"inline {n}", n))
    t.file("too-big-for-inline-200.txt", pattern("not inline 200", 200))  # > 60 + the extra space
    t.file("empty.txt", b"")
    t.dir("inline-dir")
    for n in ("a.txt", "b.txt", "c"):
        t.file(f"inline-dir/{n}", text(f"inline-dir/{n}", 1))
    many(t, "not-inline-dir", 60, 1, width=3)
    t.file("not-inline.bin", pattern("p3/not-inline.bin", 10 * KiB))
    t.file(f"{UNI_DIR}/{UNI_FILE}", "inline Unicode\n".encode())
    t.symlink("fast-link", "inline-60.txt")
    t.symlink("slow-link", "inline-dir/" + "x" * 70)  # dangling, > 60 bytes: inline data
    t.fact("inlineFiles", [t.p(f"inline-{n}.txt") for n in (1, 59, 60, 61, 100)])
    t.fact("inlineDir", t.p("inline-dir"))
    t.finish()


def bare_ext4(out):
    t = Tree(out, "ext4-bare", "fs", "ext4")
    common(t, "table-less ext4")
    unix_extras(t)
    t.sparse("sparse.bin", 3 * MiB, [(1 * MiB, pattern("fs/sparse.bin@1M", 3000))])
    t.fact("sparse", [t.p("sparse.bin")])
    t.finish()


def mbr_p3_fat32(out):
    t = Tree(out, "mbr", "p3", "fat32")
    common(t, "mbr p3 FAT32", emoji=False)
    fat_names(t)
    fat_attrs(t)
    many(t, "many", 1100, 50, width=4)
    fragmented(t, 16 * MiB + 100 * KiB + 333, 6, 40 * KiB, 64 * KiB)
    t.file("dates/fat-epoch-1980.txt", text("1980-01-01 00:00:00, the first FAT date", 1), mtime=315532800)
    t.file("dates/y2099.txt", text("2099-12-31 23:59:58", 1), mtime=4102444798)
    t.fact("big", t.p("frag/big-fragmented.bin"))
    t.finish()


def mbr_p6_fat16(out):
    t = Tree(out, "mbr", "p6", "fat16")
    common(t, "mbr p6 FAT16 (logical)", emoji=False)
    fat_names(t)
    fat_attrs(t)
    many(t, "many", 1050, 50, width=4)
    fragmented(t, 1 * MiB + 77, 5, 20 * KiB, 32 * KiB)
    t.finish()


def floppy_fat12(out):
    t = Tree(out, "fat12-floppy", "fs", "fat12")
    common(t, "FAT12 floppy", emoji=False)
    fat_names(t)
    fat_attrs(t)
    t.file("multi-cluster.bin", pattern("fs/multi-cluster.bin", 300 * KiB + 5))
    fragmented(t, 120 * KiB + 9, 4, 6 * KiB, 5 * KiB)
    t.finish()


def gpt_p4_exfat(out):
    t = Tree(out, "gpt", "p4", "exfat")
    common(t, "gpt p4 exFAT")
    t.file("A long file name with spaces and a.much.longer.extension", text("long name", 1))
    many(t, "many", 1100, 50, width=4)
    fragmented(t, 16 * MiB + 100 * KiB + 555, 6, 40 * KiB, 64 * KiB, key="exfat")
    t.file("contiguous.bin", pattern("p4/contiguous.bin", 1 * MiB + 3))
    t.file("dates/y2099.txt", text("2099-12-31 23:59:58", 1), mtime=4102444798)
    t.fact("big", t.p("frag/big-fragmented.bin"))
    t.fact("contiguous", [t.p("contiguous.bin")] + [t.p(f"frag/keep-{i:02d}.bin") for i in range(6)])
    t.finish()


def ntfs(out, image, vol, many_count):
    t = Tree(out, image, vol, "ntfs")
    common(t, f"{image} {vol} NTFS")
    plan = t.plan.setdefault("ntfs", {})
    # Fragmented: written in chunks interleaved with the keepers.
    t.dir("frag")
    keepers = [f"keep-{i:02d}.bin" for i in range(8)]
    for i, k in enumerate(keepers):
        t.file(f"frag/{k}", pattern(f"{vol}/frag/{k}", 48 * KiB + 1000 * i))
    t.file("frag/big-fragmented.bin", pattern(f"{vol}/frag/big-fragmented.bin", 16 * MiB + 100 * KiB + 999))
    plan["fragment"] = {"dir": "frag", "keepers": keepers, "big": "big-fragmented.bin"}
    t.fact("fragmented", t.p("frag/big-fragmented.bin"))
    t.fact("big", t.p("frag/big-fragmented.bin"))
    # Compressed: a directory with the compressed attribute; files made in it
    # are compressed by ntfs-3g (-o compression, clusters <= 4 KiB).
    t.dir("compressed")
    comp = (pattern(f"{vol}/compressed/mixed.bin", 256 * KiB)
            + noise(f"{vol}/compressed/mixed.bin", 64 * KiB)  # incompressible: a unit stored raw
            + bytes(128 * KiB)  # zeros: a sparse compression unit
            + pattern(f"{vol}/compressed/mixed.bin tail", 10 * KiB + 11))
    t.file("compressed/mixed.bin", comp)
    t.file("compressed/text.txt", text(f"{vol} compressed text", 4000))
    t.file("compressed/small.txt", text("small enough to stay resident", 2))
    plan["compressedDirs"] = ["compressed"]
    t.fact("compressed", [t.p("compressed/mixed.bin"), t.p("compressed/text.txt")])
    t.fact("compressedResident", t.p("compressed/small.txt"))
    # Sparse: written with holes.
    t.sparse("sparse.bin", 6 * MiB + 100, [(0, pattern(f"{vol}/sparse.bin", 64 * KiB)),
                                           (3 * MiB, pattern(f"{vol}/sparse.bin@3M", 100 * KiB)),
                                           (6 * MiB, pattern(f"{vol}/sparse.bin@6M", 100))])
    t.fact("sparse", [t.p("sparse.bin")])
    # Alternate data streams (through streams_interface=xattr).
    t.file("ads.txt", text("a file with two alternate data streams", 2))
    zone = b"[ZoneTransfer]\r\nZoneId=3\r\nReferrerUrl=https://example.com/\r\n"
    plan["streams"] = {"ads.txt": [
        {"name": "Zone.Identifier", "data": zone.decode()},
        {"name": "big.stream", "pattern": f"{vol}/ads.txt:big.stream", "size": 9000},
    ]}
    t.fact("streams", t.p("ads.txt"))
    t.file("hardlink-a.txt", text("one MFT record, two names", 2))
    t.hardlink("hardlink-b.txt", "hardlink-a.txt")
    t.fact("hardlinks", [[t.p("hardlink-a.txt"), t.p("hardlink-b.txt")]])
    t.symlink("interix-link", "ads.txt")  # ntfs-3g stores it as an Interix symlink (IntxLNK)
    t.fact("interixSymlink", t.p("interix-link"))
    t.dir("Target")
    t.file("Target/in.txt", text("inside the junction's target", 1))
    # A junction and a Windows relative symlink, made by writing reparse
    # buffers through system.ntfs_reparse_data. In the tree they are an empty
    # directory and an empty file; the manifest shows them as symlinks.
    t.dir("junction")
    t.file("winlink", b"")
    # Manifest targets are shown the way Loopless renders reparse targets for
    # a Unix reader (parsers/fs/ntfs/reparse.ts): an absolute NT path loses
    # its \\??\\ prefix and names the drive, a relative one gets '/'. The raw
    # names are in the facts.
    plan["junctions"] = [{"path": "junction", "substituteName": "\\??\\C:\\Target", "printName": "C:\\Target",
                          "target": "/C:/Target"}]
    plan["winSymlinks"] = [{"path": "winlink", "substituteName": "Target\\in.txt", "printName": "Target\\in.txt",
                            "relative": True, "target": "Target/in.txt"}]
    t.fact("junction", {"path": t.p("junction"), "tag": "0xa0000003", "substituteName": "\\??\\C:\\Target", "printName": "C:\\Target"})
    t.fact("windowsSymlink", {"path": t.p("winlink"), "tag": "0xa000000c", "flags": 1, "substituteName": "Target\\in.txt", "printName": "Target\\in.txt"})
    t.file("readonly.txt", text("FILE_ATTRIBUTE_READONLY", 1), mode=0o444)
    plan["readonly"] = ["readonly.txt"]
    t.fact("readOnly", t.p("readonly.txt"))
    t.file("resident.txt", text("small: data lives in the MFT record", 1))
    t.fact("resident", t.p("resident.txt"))
    many(t, "many", many_count, 1, width=5)  # every entry a small resident file
    t.finish()


def main():
    out = sys.argv[1]
    os.umask(0)
    os.makedirs(out, exist_ok=True)
    for build in (mbr_p1_ext2, mbr_p2_ext3, mbr_p5_ext4, gpt_p1_ext4, gpt_p3_inline, bare_ext4,
                  mbr_p3_fat32, mbr_p6_fat16, floppy_fat12, gpt_p4_exfat):
        build(out)
    ntfs(out, "mbr", "p7", 400)
    ntfs(out, "gpt", "p5", 5000)


if __name__ == "__main__":
    main()
