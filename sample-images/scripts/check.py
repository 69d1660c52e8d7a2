#!/usr/bin/env python3
"""Build-time checks, with peer tools, that the special properties the plan
asked for really happened (a fragmented file has several runs, a compressed
file is compressed...). build.sh stops if one fails.

  check.py fat-runs   FSFILE PATH MIN      mshowfat: cluster runs >= MIN
  check.py tsk-runs   FSFILE PATH MIN MAX  istat: runs in [MIN, MAX] (exFAT, NTFS)
  check.py ntfs-flag  FSFILE PATH FLAG     istat: $STANDARD_INFORMATION flag present
  check.py ext-flag   FSFILE PATH HEXFLAG  debugfs stat: inode flag bit set
"""
import os
import re
import subprocess
import sys


def out(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def fat_runs(fsfile, path, minimum):
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C.UTF-8")
    runs = out(["mshowfat", "-i", fsfile, f"::/{path}"], env=env).count("<")
    print(f"  {path}: {runs} cluster runs (mshowfat)")
    assert runs >= int(minimum), f"{path} is not fragmented"


def inode(fsfile, path):
    return out(["ifind", "-n", path, fsfile]).strip()


def tsk_runs(fsfile, path, minimum, maximum):
    text = out(["istat", fsfile, inode(fsfile, path)])
    # The unnamed $DATA of NTFS, or the "Sectors:" list of exFAT.
    m = re.search(r"Type: \$DATA \(128-\d+\)   Name: N/A[^\n]*\n(.*?)(?:\nType:|\Z)", text, re.S) or re.search(r"Sectors:\n(.*)", text, re.S)
    nums = [int(x) for x in m.group(1).split() if x.isdigit() and x != "0"]
    runs = 1 + sum(1 for a, b in zip(nums, nums[1:]) if b != a + 1)
    print(f"  {path}: {runs} runs (istat)")
    assert int(minimum) <= runs <= int(maximum), f"{path}: {runs} runs, wanted {minimum}..{maximum}"


def ntfs_flag(fsfile, path, flag):
    text = out(["istat", fsfile, inode(fsfile, path)])
    si = text.split("$STANDARD_INFORMATION Attribute Values:")[1].split("\n\n")[0]
    print(f"  {path}: {si.splitlines()[1].strip()}")
    assert flag in si, f"{path} lacks {flag}"


def ext_flag(fsfile, path, flag):
    text = out(["debugfs", "-R", f'stat "/{path}"', fsfile])
    flags = int(re.search(r"Flags: (0x[0-9a-f]+)", text).group(1), 16)
    print(f"  {path}: inode flags {flags:#x}")
    assert flags & int(flag, 16), f"{path} lacks inode flag {flag}"


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"fat-runs": fat_runs, "tsk-runs": tsk_runs, "ntfs-flag": ntfs_flag, "ext-flag": ext_flag}[cmd](*args)
