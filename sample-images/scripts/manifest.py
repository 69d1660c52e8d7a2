#!/usr/bin/env python3
"""Writes a truth manifest for one image from the source trees that were put
into it (never from the image itself).

  manifest.py OUT.json --image mbr.img --size BYTES --table mbr|gpt|none \
      --vol name=p1,start=BYTES,size=BYTES,type=0x83,fs=ext2,label=L,uuid=U,tree=DIR[,gptName=N][,extended=S:Z:T] ...

A volume without `tree` (unformatted) gets fs null and no entries.
Modes, owners and link counts follow the project's conventions for
filesystems without Unix metadata: directories 0o755, files 0o644 (0o444
when read-only), symlinks 0o777, uid/gid 0.
"""
import argparse
import datetime
import hashlib
import json
import os

from common import MKFS_TIME, pattern

UNIX = {"ext2", "ext3", "ext4"}


def iso(ns):
    sec, rest = divmod(ns, 1_000_000_000)
    d = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=sec)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1_000_000:03d}Z"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def volume_entries(vol, tree, fs):
    with open(tree.rstrip("/") + ".plan.json") as f:
        plan = json.load(f)
    extra = plan.get(fs, {}) if fs == "ntfs" else {}
    junctions = {j["path"]: j["target"] for j in extra.get("junctions", [])}
    winlinks = {w["path"]: w["target"] for w in extra.get("winSymlinks", [])}
    streams = extra.get("streams", {})
    entries = []
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, tree)
            st = os.lstat(full)
            e = {"path": f"/{vol}/{rel}"}
            if rel in junctions or rel in winlinks:
                target = junctions.get(rel) or winlinks[rel]
                e.update(type="symlink", size=len(target.encode()), target=target)
            elif os.path.islink(full):
                target = os.readlink(full)
                e.update(type="symlink", size=len(target.encode()), target=target)
            elif os.path.isdir(full):
                e.update(type="dir", size=0)
            elif os.path.isfile(full):
                e.update(type="file", size=st.st_size, sha256=sha256(full))
            else:
                e.update(type="other", size=0)
            if fs in UNIX:
                e.update(mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)
                if e["type"] == "dir":
                    e["nlink"] = 2 + sum(1 for n in os.listdir(full) if os.path.isdir(os.path.join(full, n)) and not os.path.islink(os.path.join(full, n)))
                else:
                    e["nlink"] = st.st_nlink
            else:
                mode = {"dir": 0o755, "symlink": 0o777}.get(e["type"], 0o644 if st.st_mode & 0o222 else 0o444)
                e.update(mode=mode, uid=0, gid=0)
                if fs == "ntfs" and e["type"] == "file":
                    e["nlink"] = st.st_nlink
            e["mtime"] = iso(st.st_mtime_ns)
            if rel in streams:
                e["streams"] = []
                for s in streams[rel]:
                    data = s["data"].encode() if "data" in s else pattern(s["pattern"], s["size"])
                    e["streams"].append({"name": s["name"], "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            entries.append(e)
    if fs in UNIX:
        # mke2fs makes lost+found itself (mode 0700, stamped with the fake mkfs time).
        entries.append({"path": f"/{vol}/lost+found", "type": "dir", "size": 0, "mode": 0o700, "uid": 0, "gid": 0,
                        "nlink": 2, "mtime": iso(MKFS_TIME * 1_000_000_000)})
    return entries, plan.get("facts", {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--image", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--table", required=True, choices=["mbr", "gpt", "none"])
    ap.add_argument("--vol", action="append", default=[])
    args = ap.parse_args()
    volumes, entries = [], []
    for spec in args.vol:
        v = dict(kv.split("=", 1) for kv in spec.split(","))
        fs = v.get("fs") or None
        vol = {"name": v["name"], "start": int(v["start"]), "size": int(v["size"]), "type": v["type"],
               "fs": fs, "label": v.get("label") or None, "uuid": v.get("uuid") or None}
        facts = {}
        if v.get("tree"):
            ents, facts = volume_entries(v["name"], v["tree"], fs)
            entries += ents
        if v.get("gptName"):
            facts["gptName"] = v["gptName"]
        if v.get("extended"):  # "start:size:type" of the extended partition holding this logical one
            s, z, ty = v["extended"].split(":")
            facts["extendedPartition"] = {"start": int(s), "size": int(z), "type": ty}
        if facts:
            vol["facts"] = facts
        volumes.append(vol)
    entries.sort(key=lambda e: e["path"])
    doc = {"image": args.image, "size": args.size, "table": args.table, "volumes": volumes, "entries": entries}
    # One entry per line: readable, diffable, and a third of indented JSON's size.
    dump = lambda o: json.dumps(o, ensure_ascii=False)
    head = {k: doc[k] for k in ("image", "size", "table")}
    lines = [dump(head)[:-1] + ',\n "volumes": [']
    lines.append(",\n".join("  " + dump(v) for v in volumes))
    lines.append(' ],\n "entries": [')
    lines.append(",\n".join("  " + dump(e) for e in entries))
    lines.append(" ]\n}\n")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    json.loads(open(args.out).read())  # well-formed


if __name__ == "__main__":
    main()
