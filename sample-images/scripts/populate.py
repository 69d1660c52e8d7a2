#!/usr/bin/env python3
"""Puts a source tree (from make_trees.py) into a filesystem with real tools.

  populate.py ext-fixup TREE FSFILE        times via debugfs after mkfs.ext* -d
  populate.py fat       TREE FSFILE        mtools (mmd, mcopy -m, mattrib, mdel)
  populate.py mounted   TREE MOUNTPOINT    exFAT (exfat-fuse) or NTFS (ntfs-3g)

The plan next to the tree (TREE.plan.json) says what a plain tree cannot:
fragmentation recipe, attributes, streams, reparse points.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

from common import MKFS_TIME, pattern

MiB = 1024 * 1024


def load_plan(tree):
    with open(tree.rstrip("/") + ".plan.json") as f:
        return json.load(f)


def walk(tree):
    """Tree-relative paths in pre-order, names sorted by code point."""
    out = []

    def rec(rel):
        full = os.path.join(tree, rel) if rel else tree
        for name in sorted(os.listdir(full)):
            r = f"{rel}/{name}" if rel else name
            out.append(r)
            if os.path.isdir(os.path.join(tree, r)) and not os.path.islink(os.path.join(tree, r)):
                rec(r)

    rec("")
    return out


def run(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


# -- ext: times ---------------------------------------------------------------
def ext_fixup(tree, fsfile):
    """mke2fs -d copies ctime from the source (the time the generator ran),
    truncates times to 32 bits and drops nanoseconds. Set atime, ctime and
    mtime of every entry to the source mtime with debugfs instead."""
    dump = subprocess.run(["dumpe2fs", "-h", fsfile], check=True, capture_output=True, text=True).stdout
    inode_size = int(next(l for l in dump.splitlines() if l.startswith("Inode size:")).split()[-1])
    cmds = []
    for rel in walk(tree):
        assert '"' not in rel and "\\" not in rel, rel  # debugfs cannot quote these
        st = os.lstat(os.path.join(tree, rel))
        sec, ns = divmod(st.st_mtime_ns, 1_000_000_000)
        for field in ("mtime", "atime", "ctime"):
            cmds.append(f'sif "/{rel}" {field} @{sec}')
        if ns and inode_size > 128:
            epoch = ((sec - ((sec + 2**31) % 2**32 - 2**31)) >> 32) & 3
            cmds.append(f'sif "/{rel}" mtime_extra {(ns << 2) | epoch}')
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as f:
        f.write("\n".join(cmds) + "\n")
    try:
        res = subprocess.run(["debugfs", "-w", "-f", f.name, fsfile], capture_output=True, text=True)
        errors = [l for l in res.stderr.splitlines() if l and not l.startswith("debugfs ")]
        if res.returncode or errors:
            sys.exit(f"debugfs failed: {errors[:5]}")
    finally:
        os.unlink(f.name)


# -- FAT: mtools ----------------------------------------------------------------
def fat(tree, fsfile):
    plan = load_plan(tree)
    fatplan = plan.get("fat", {})
    frag = fatplan.get("fragment")
    env = dict(os.environ, TZ="UTC", LC_ALL="C.UTF-8", MTOOLS_SKIP_CHECK="1", SOURCE_DATE_EPOCH=str(MKFS_TIME))
    rc = tempfile.NamedTemporaryFile("w", suffix=".mtoolsrc", delete=False)
    rc.write("default_codepage=437\n")  # short names in the OEM code page 437 (US)
    rc.close()
    env["MTOOLSRC"] = rc.name
    img = ["-i", fsfile]

    def m(*args, **kw):
        run(list(args[:1]) + img + list(args[1:]), env=kw.get("env", env))

    entries = walk(tree)
    fragdir = frag["dir"] if frag else None
    dirs = [""] + [r for r in entries if os.path.isdir(os.path.join(tree, r))]
    # The fragmentation recipe runs last, when the rest of the volume is in place.
    dirs.sort(key=lambda d: (d == fragdir, ))
    for d in dirs:
        if d:
            mt = os.lstat(os.path.join(tree, d)).st_mtime_ns // 1_000_000_000
            # mmd stamps the new directory with SOURCE_DATE_EPOCH; nothing later changes it.
            m("mmd", f"::/{d}", env=dict(env, SOURCE_DATE_EPOCH=str(mt)))
        if d == fragdir:
            continue
        files = [r for r in entries if os.path.dirname(r) == d and os.path.isfile(os.path.join(tree, r))]
        assert all(not os.path.islink(os.path.join(tree, r)) for r in files)
        if files:
            m("mcopy", "-m", *[os.path.join(tree, f) for f in files], f"::/{d}/" if d else "::/")
    if frag:
        fat_fragment(tree, frag, m, fsfile, env)
    for rel in entries:
        st = os.lstat(os.path.join(tree, rel))
        if os.path.isfile(os.path.join(tree, rel)) and not st.st_mode & 0o222:
            m("mattrib", "+r", f"::/{rel}")
    for rel in fatplan.get("hidden", []):
        m("mattrib", "+h", f"::/{rel}")
    os.unlink(rc.name)


def fat_fragment(tree, frag, m, fsfile, env):
    """keep-00, tmp-00, keep-01, tmp-01 ... then a filler over all the
    remaining space; delete the temporaries and the filler; then copy the
    big file. mtools allocates first-fit (FAT12/16) or next-fit from the
    FAT32 FSInfo hint, which after the filler points at the end and wraps
    around: either way the big file has to fill the gaps first."""
    d = frag["dir"]
    with tempfile.TemporaryDirectory() as tmp:
        temps = []
        for i, k in enumerate(frag["keepers"]):
            m("mcopy", "-m", os.path.join(tree, d, k), f"::/{d}/")
            t = os.path.join(tmp, f"tmp-{i:02d}.bin")
            with open(t, "wb") as f:
                f.write(pattern(f"deleted temporary {i}", frag["tempSize"]))
            m("mcopy", t, f"::/{d}/")
            temps.append(f"::/{d}/tmp-{i:02d}.bin")
        free = fat_free_bytes(fsfile, env)
        filler = os.path.join(tmp, "filler.bin")
        with open(filler, "wb") as f:
            f.write(pattern("deleted filler", max(0, free - 64 * 1024)))
        m("mcopy", filler, f"::/{d}/")
        m("mdel", *temps, f"::/{d}/filler.bin")
    m("mcopy", "-m", os.path.join(tree, d, frag["big"]), f"::/{d}/")


def fat_free_bytes(fsfile, env):
    # mdir's last line: "1 455 104 bytes free".
    out = subprocess.run(["mdir", "-i", fsfile, "::/"], check=True, capture_output=True, text=True, env=env).stdout
    line = next(l for l in out.splitlines() if l.strip().endswith("bytes free"))
    return int("".join(line.split()[:-2]))


# -- exFAT and NTFS: through a FUSE mount ------------------------------------------
def copy_file(src, dst, sparse):
    """Copy data; with `sparse`, copy only the data regions and leave holes."""
    size = os.path.getsize(src)
    with open(src, "rb") as s, open(dst, "wb") as d:
        if not sparse:
            while chunk := s.read(MiB):
                d.write(chunk)
            return
        fd = s.fileno()
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            s.seek(start)
            d.seek(start)
            d.write(s.read(end - start))
            pos = end
        d.truncate(size)


def reparse_buffer(tag, substitute, printname, flags=None):
    """A REPARSE_DATA_BUFFER: mount point (junction) layout without flags,
    symbolic link layout with them."""
    s, p = substitute.encode("utf-16le"), printname.encode("utf-16le")
    if flags is None:  # junction: substitute\0 print\0
        body = struct.pack("<HHHH", 0, len(s), len(s) + 2, len(p)) + s + b"\0\0" + p + b"\0\0"
    else:  # symlink: print then substitute, no terminators
        body = struct.pack("<HHHHI", len(p), len(s), 0, len(p), flags) + p + s
    return struct.pack("<IHH", tag, len(body), 0) + body


def ntfs_attrib(path, set_bits):
    cur = struct.unpack(">I", os.getxattr(path, "system.ntfs_attrib_be"))[0]
    os.setxattr(path, "system.ntfs_attrib_be", struct.pack(">I", cur | set_bits))


def mounted(tree, mnt):
    plan = load_plan(tree)
    fs = plan["fs"]
    extra = plan.get(fs, {})
    frag = extra.get("fragment")
    fragdir = frag["dir"] if frag else None
    junctions = {j["path"]: j for j in extra.get("junctions", [])}
    winlinks = {w["path"]: w for w in extra.get("winSymlinks", [])}
    compressed = set(extra.get("compressedDirs", []))
    entries = walk(tree)
    seen_inodes = {}

    def mtime_of(rel):
        return os.lstat(os.path.join(tree, rel)).st_mtime_ns

    for rel in entries:
        src, dst = os.path.join(tree, rel), os.path.join(mnt, rel)
        if fragdir and os.path.dirname(rel) == fragdir:
            continue  # written by the recipe below
        st = os.lstat(src)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)  # ntfs-3g: an Interix symlink
        elif os.path.isdir(src):
            os.mkdir(dst)
            if rel in compressed:
                ntfs_attrib(dst, 0x800)  # FILE_ATTRIBUTE_COMPRESSED: new files inside get compressed
        elif st.st_nlink > 1 and st.st_ino in seen_inodes:
            os.link(os.path.join(mnt, seen_inodes[st.st_ino]), dst)
        else:
            seen_inodes[st.st_ino] = rel
            copy_file(src, dst, sparse=(fs == "ntfs"))
    if frag:
        (ntfs_fragment if fs == "ntfs" else exfat_fragment)(tree, mnt, frag)
    for rel, streams in extra.get("streams", {}).items():
        for s in streams:
            data = s["data"].encode() if "data" in s else pattern(s["pattern"], s["size"])
            os.setxattr(os.path.join(mnt, rel), "user." + s["name"], data)
    # Times, deepest first. Reparse points get theirs before they become
    # reparse points (ntfs-3g may not resolve them afterwards).
    for rel in sorted(entries, key=lambda r: (-r.count("/"), r)):
        t = mtime_of(rel)
        os.utime(os.path.join(mnt, rel), ns=(t, t), follow_symlinks=False)
    for rel, j in junctions.items():
        os.setxattr(os.path.join(mnt, rel), "system.ntfs_reparse_data",
                    reparse_buffer(0xA0000003, j["substituteName"], j["printName"]))
    for rel, w in winlinks.items():
        os.setxattr(os.path.join(mnt, rel), "system.ntfs_reparse_data",
                    reparse_buffer(0xA000000C, w["substituteName"], w["printName"], 1 if w["relative"] else 0))
    for rel in extra.get("readonly", []):
        ntfs_attrib(os.path.join(mnt, rel), 0x1)  # FILE_ATTRIBUTE_READONLY


def exfat_fragment(tree, mnt, frag):
    """keep/temporary pairs, temporaries deleted, then the big file: exfat-fuse
    allocates a new file's clusters first-fit from the start, so the big file
    runs through every gap and becomes FAT-chained; the keepers, each written
    in one go, stay contiguous (NoFatChain)."""
    d = os.path.join(mnt, frag["dir"])
    temps = []
    for i, k in enumerate(frag["keepers"]):
        copy_file(os.path.join(tree, frag["dir"], k), os.path.join(d, k), sparse=False)
        t = os.path.join(d, f"tmp-{i:02d}.bin")
        with open(t, "wb") as f:
            f.write(pattern(f"deleted temporary {i}", frag["tempSize"]))
        temps.append(t)
    for t in temps:
        os.unlink(t)
    copy_file(os.path.join(tree, frag["dir"], frag["big"]), os.path.join(d, frag["big"]), sparse=False)


def ntfs_fragment(tree, mnt, frag):
    """The big file is written in chunks, each followed by a whole keeper:
    ntfs-3g allocates at write time, so the big file's runlist alternates
    with the keepers' clusters."""
    d = os.path.join(mnt, frag["dir"])
    with open(os.path.join(tree, frag["dir"], frag["big"]), "rb") as f:
        big = f.read()
    n = len(frag["keepers"])
    step = -(-len(big) // (n + 1))
    with open(os.path.join(d, frag["big"]), "wb") as out:
        for i, k in enumerate(frag["keepers"]):
            out.write(big[i * step:(i + 1) * step])
            out.flush()
            os.fsync(out.fileno())
            copy_file(os.path.join(tree, frag["dir"], k), os.path.join(d, k), sparse=False)
        out.write(big[n * step:])


if __name__ == "__main__":
    cmd, tree, target = sys.argv[1:4]
    {"ext-fixup": ext_fixup, "fat": fat, "mounted": mounted}[cmd](tree, target)
