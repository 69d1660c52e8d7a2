#!/usr/bin/env bash
# Rebuilds the sample images and their truth manifests with real tools.
#
#   sudo bash sample-images/build.sh        (or: npm run samples, as root)
#
# Needs root (owners and setuid bits in the source trees, FUSE mounts, one
# loop device for exfat-fuse) and the Debian packages: fdisk gdisk e2fsprogs
# dosfstools mtools exfatprogs exfat-fuse ntfs-3g sleuthkit faketime python3.
#
# Every filesystem is built as a file of its own, populated, checked with
# peer tools, and then copied into its disk image at its partition offset.
# The manifests are written from the source trees (scripts/make_trees.py),
# not read back from the images. See README.md.
set -euo pipefail
export TZ=UTC LC_ALL=C.UTF-8 MTOOLS_SKIP_CHECK=1 PYTHONDONTWRITEBYTECODE=1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S="$HERE/scripts"
[ "$(id -u)" = 0 ] || { echo "build.sh: run as root" >&2; exit 1; }
for tool in sfdisk sgdisk mke2fs debugfs e2fsck mkfs.fat mcopy mshowfat fsck.fat mkfs.exfat tune.exfat fsck.exfat \
            mount.exfat-fuse mkntfs ntfslabel ntfs-3g ntfsfix istat ifind losetup python3; do
  command -v "$tool" >/dev/null || { echo "build.sh: missing $tool" >&2; exit 1; }
done
FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -1)
[ -n "$FAKETIME_LIB" ] || { echo "build.sh: missing libfaketime (Debian package faketime)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/loopless-samples.XXXXXX)
MNT="$WORK/mnt"
OUT="$WORK/out"
mkdir -p "$MNT" "$OUT" "$WORK/fs"
LOOP=""
cleanup() {
  if mountpoint -q "$MNT"; then umount "$MNT" || true; fi
  if [ -n "$LOOP" ]; then losetup -d "$LOOP" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# One fixed "now" for every tool that stamps times of its own.
MKFS_TIME=$(cd "$S" && python3 -c 'import common; print(common.MKFS_TIME)')
MKFS_DATE=$(date -u -d "@$MKFS_TIME" '+%Y-%m-%d %H:%M:%S')
export E2FSPROGS_FAKE_TIME=$MKFS_TIME E2FSCK_TIME=$MKFS_TIME SOURCE_DATE_EPOCH=$MKFS_TIME
faked() { LD_PRELOAD="$FAKETIME_LIB" FAKETIME="$MKFS_DATE" "$@"; }

MiB=1048576
KiB=1024
step() { printf '\n== %s\n' "$*"; }

echo "building in $WORK"
TREES="$WORK/trees"
python3 "$S/make_trees.py" "$TREES"

# ---------------------------------------------------------------- builders
# mkext FSFILE SIZE_MiB TREE UUID mke2fs-options...
mkext() {
  local file=$1 size=$2 tree=$3 uuid=$4; shift 4
  mke2fs -q -F -U "$uuid" -E "hash_seed=$uuid" -d "$tree" "$@" "$file" "${size}M"
}
# ext_finish FSFILE TREE: exact times via debugfs, then a read-only fsck.
ext_finish() {
  python3 "$S/populate.py" ext-fixup "$2" "$1"
  e2fsck -fn "$1" >/dev/null
}
# mkfat FSFILE SIZE_KiB TREE mkfs.fat-options...
mkfat() {
  local file=$1 size=$2 tree=$3; shift 3
  rm -f "$file"
  mkfs.fat "$@" -C "$file" "$size" >/dev/null
  python3 "$S/populate.py" fat "$tree" "$file"
  fsck.fat -n "$file" >/dev/null
}
# mkexfat FSFILE SIZE_MiB TREE LABEL SERIAL: exfat-fuse refuses plain files
# when run as root (it mounts as fuseblk), so it gets a loop device.
mkexfat() {
  local file=$1 size=$2 tree=$3 label=$4 serial=$5
  rm -f "$file"; truncate -s "${size}M" "$file"
  mkfs.exfat -L "$label" "$file" >/dev/null
  tune.exfat -I "$serial" "$file" >/dev/null
  LOOP=$(losetup --find --show "$file")
  faked mount.exfat-fuse -o noatime "$LOOP" "$MNT"
  python3 "$S/populate.py" mounted "$tree" "$MNT"
  umount "$MNT"  # fuseblk: returns once the daemon has flushed
  losetup -d "$LOOP"; LOOP=""
  fsck.exfat -n "$file" >/dev/null
}
# mkntfs_ FSFILE SIZE_MiB TREE LABEL SERIAL CLUSTER START_SECTOR
mkntfs_() {
  local file=$1 size=$2 tree=$3 label=$4 serial=$5 cluster=$6 start=$7
  rm -f "$file"; truncate -s "${size}M" "$file"
  faked mkntfs -F -q -L "$label" -c "$cluster" -s 512 -p "$start" -H 255 -S 63 "$file" >/dev/null 2>&1
  ntfslabel --new-serial="$serial" "$file" >/dev/null
  # no_detach: keep ntfs-3g as our child, so we can wait until it has written everything.
  faked ntfs-3g -o compression,streams_interface=xattr,big_writes,noatime,no_detach "$file" "$MNT" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
  mountpoint -q "$MNT" || { echo "ntfs-3g did not mount $file" >&2; exit 1; }
  python3 "$S/populate.py" mounted "$tree" "$MNT"
  umount "$MNT"
  wait "$pid"
  ntfsfix -n "$file" >/dev/null
}
check() { python3 "$S/check.py" "$@"; }

# ---------------------------------------------------------------- mbr.img
# Layout in MiB (start size): p1 ext2, p2 ext3, p3 FAT32, p4 extended holding
# p5 ext4, p6 FAT16, p7 NTFS; each logical partition's EBR 1 MiB before it.
M1=(1 2) M2=(3 3) M3=(6 33) M4=(39 31) M5=(40 2) M6=(43 5) M7=(49 21)
MBR_MIB=70
F="$WORK/fs"; T="$TREES"
step "mbr p1: ext2, 1 KiB blocks, 128-byte inodes"
U_M1=3f1e2d4c-5b6a-4798-8a7b-6c5d4e3f2a11
mkext "$F/m1" ${M1[1]} "$T/mbr/p1" $U_M1 -t ext2 -b 1024 -I 128 -L mbr-ext2
ext_finish "$F/m1" "$T/mbr/p1"
step "mbr p2: ext3, journal"
U_M2=7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c22
mkext "$F/m2" ${M2[1]} "$T/mbr/p2" $U_M2 -t ext3 -b 1024 -L mbr-ext3
ext_finish "$F/m2" "$T/mbr/p2"
step "mbr p3: FAT32, 512-byte clusters"
mkfat "$F/m3" $((M3[1] * 1024)) "$T/mbr/p3" -F 32 -s 1 -n MBR-FAT32 --invariant -i 1A2B3C4D -h $((M3[0] * 2048))
check fat-runs "$F/m3" frag/big-fragmented.bin 3
step "mbr p5: ext4 (logical), 1 KiB blocks, journal"
U_M5=0b1c2d3e-4f50-4617-a8b9-cadbecfd0e33
mkext "$F/m5" ${M5[1]} "$T/mbr/p5" $U_M5 -t ext4 -b 1024 -L mbr-ext4
ext_finish "$F/m5" "$T/mbr/p5"
step "mbr p6: FAT16 (logical), 1 KiB clusters"
mkfat "$F/m6" $((M6[1] * 1024)) "$T/mbr/p6" -F 16 -s 2 -n MBR-FAT16 --invariant -i 5E6F7081 -h $((M6[0] * 2048))
check fat-runs "$F/m6" frag/big-fragmented.bin 3
step "mbr p7: NTFS (logical), 1 KiB clusters"
mkntfs_ "$F/m7" ${M7[1]} "$T/mbr/p7" MBR-NTFS 0123456789ABCDEF 1024 $((M7[0] * 2048))
check tsk-runs "$F/m7" frag/big-fragmented.bin 3 1000
check ntfs-flag "$F/m7" compressed/mixed.bin Compressed
check ntfs-flag "$F/m7" sparse.bin Sparse
check ntfs-flag "$F/m7" junction "Reparse Point"
check ntfs-flag "$F/m7" readonly.txt "Read Only"

step "assemble mbr.img"
IMG="$OUT/mbr.img"
truncate -s $((MBR_MIB * MiB)) "$IMG"
part() { local -n p=$1; echo "start=$((p[0] * 2048)), size=$((p[1] * 2048)), type=$2"; }
sfdisk -q "$IMG" <<EOF
label: dos
label-id: 0x4c4f4f50
unit: sectors

$(part M1 83)
$(part M2 83)
$(part M3 c)
$(part M4 5)
$(part M5 83)
$(part M6 e)
$(part M7 7)
EOF
put() { local -n p=$3; dd if="$2" of="$1" bs=1M seek="${p[0]}" conv=notrunc,sparse status=none; }
put "$IMG" "$F/m1" M1; put "$IMG" "$F/m2" M2; put "$IMG" "$F/m3" M3
put "$IMG" "$F/m5" M5; put "$IMG" "$F/m6" M6; put "$IMG" "$F/m7" M7
vol() { # name layout-array type fs label uuid tree
  local -n p=$2
  echo "name=$1,start=$((p[0] * MiB)),size=$((p[1] * MiB)),type=$3,fs=$4,label=$5,uuid=$6,tree=$7"
}
# The extended partition (p4) is a container, not a volume: the volume list
# has p1-p3 and p5-p7, as Loopless lists them; p5's facts record p4.
python3 "$S/manifest.py" "$OUT/mbr.manifest.json" --image mbr.img --size $((MBR_MIB * MiB)) --table mbr \
  --vol "$(vol p1 M1 0x83 ext2 mbr-ext2 $U_M1 "$T/mbr/p1")" \
  --vol "$(vol p2 M2 0x83 ext3 mbr-ext3 $U_M2 "$T/mbr/p2")" \
  --vol "$(vol p3 M3 0x0c fat32 MBR-FAT32 1A2B-3C4D "$T/mbr/p3")" \
  --vol "$(vol p5 M5 0x83 ext4 mbr-ext4 $U_M5 "$T/mbr/p5"),extended=$((M4[0] * MiB)):$((M4[1] * MiB)):0x05" \
  --vol "$(vol p6 M6 0x0e fat16 MBR-FAT16 5E6F-7081 "$T/mbr/p6")" \
  --vol "$(vol p7 M7 0x07 ntfs MBR-NTFS 0123456789ABCDEF "$T/mbr/p7")"

# ---------------------------------------------------------------- gpt.img
# Layout in MiB (start size): p1 ext4, p2 unformatted, p3 ext4 inline_data,
# p4 exFAT, p5 NTFS; the backup GPT right after p5.
G1=(1 22) G2=(23 1) G3=(24 1) G4=(25 20) G5=(45 26)
GPT_END=$(((G5[0] + G5[1]) * 2048))  # first sector after p5
GPT_SIZE=$(((GPT_END + 34) * 512))    # + backup entries (32 sectors), header, one spare
step "gpt p1: ext4, extents, 64bit, metadata_csum, flex_bg; htree via e2fsck -D"
U_G1=9d8c7b6a-5f4e-4d3c-b2a1-0f9e8d7c6b44
mkext "$F/g1" ${G1[1]} "$T/gpt/p1" $U_G1 -t ext4 -b 4096 -N 3600 -O extents,64bit,metadata_csum,flex_bg,dir_index -L gpt-ext4
rc=0; e2fsck -fyD "$F/g1" >/dev/null || rc=$?
[ $rc -le 1 ] || { echo "e2fsck -D failed ($rc)" >&2; exit 1; }
ext_finish "$F/g1" "$T/gpt/p1"
check ext-flag "$F/g1" many 0x1000
check ext-flag "$F/g1" big/big.bin 0x80000
step "gpt p3: ext4 with inline_data"
U_G3=1a2b3c4d-5e6f-4071-8293-a4b5c6d7e855
mkext "$F/g3" ${G3[1]} "$T/gpt/p3" $U_G3 -t ext4 -b 4096 -N 128 -O inline_data,^has_journal -L gpt-inline
ext_finish "$F/g3" "$T/gpt/p3"
for f in inline-1.txt inline-60.txt inline-61.txt inline-100.txt inline-dir; do check ext-flag "$F/g3" $f 0x10000000; done
step "gpt p4: exFAT through exfat-fuse"
mkexfat "$F/g4" ${G4[1]} "$T/gpt/p4" 'ExFAT-Ünï' 0x4C4F4F50
check tsk-runs "$F/g4" frag/big-fragmented.bin 3 1000
check tsk-runs "$F/g4" frag/keep-00.bin 1 1
check tsk-runs "$F/g4" contiguous.bin 1 1
step "gpt p5: NTFS, 4 KiB clusters, 5000-entry directory"
mkntfs_ "$F/g5" ${G5[1]} "$T/gpt/p5" GPT-NTFS FEDCBA9876543210 4096 $((G5[0] * 2048))
check tsk-runs "$F/g5" frag/big-fragmented.bin 3 1000
check ntfs-flag "$F/g5" compressed/mixed.bin Compressed
check ntfs-flag "$F/g5" sparse.bin Sparse
check ntfs-flag "$F/g5" junction "Reparse Point"

step "assemble gpt.img"
IMG="$OUT/gpt.img"
truncate -s $GPT_SIZE "$IMG"
LINUX=0fc63daf-8483-4772-8e79-3d69d8477de4
BASIC=ebd0a0a2-b9e5-4433-87c0-68b6b72699c7
gpart() { local -n p=$2; echo "-n $1:$((p[0] * 2048)):$(((p[0] + p[1]) * 2048 - 1)) -t $1:$3 -c $1:$4 -u $1:4c4f4f50-0000-4000-8000-00000000000$1"; }
# (no -q: with it this sgdisk silently writes nothing)
sgdisk -U 4c4f4f50-4c45-5353-8000-000000000000 \
  $(gpart 1 G1 $LINUX linux-ext4) $(gpart 2 G2 $LINUX unformatted) $(gpart 3 G3 $LINUX inline-data) \
  $(gpart 4 G4 $BASIC exfat) $(gpart 5 G5 $BASIC ntfs) "$IMG" >/dev/null
sgdisk -v "$IMG" | grep -q 'No problems found' || { echo "sgdisk did not write a valid GPT" >&2; exit 1; }
[ "$(sgdisk -p "$IMG" | grep -c '^ *[0-9]  ')" = 5 ] || { echo "gpt.img: expected 5 partitions" >&2; exit 1; }
put "$IMG" "$F/g1" G1; put "$IMG" "$F/g3" G3; put "$IMG" "$F/g4" G4; put "$IMG" "$F/g5" G5
python3 "$S/manifest.py" "$OUT/gpt.manifest.json" --image gpt.img --size $GPT_SIZE --table gpt \
  --vol "$(vol p1 G1 $LINUX ext4 gpt-ext4 $U_G1 "$T/gpt/p1"),gptName=linux-ext4" \
  --vol "$(vol p2 G2 $LINUX '' '' '' ''),gptName=unformatted" \
  --vol "$(vol p3 G3 $LINUX ext4 gpt-inline $U_G3 "$T/gpt/p3"),gptName=inline-data" \
  --vol "$(vol p4 G4 $BASIC exfat 'ExFAT-Ünï' 4C4F-4F50 "$T/gpt/p4"),gptName=exfat" \
  --vol "$(vol p5 G5 $BASIC ntfs GPT-NTFS FEDCBA9876543210 "$T/gpt/p5"),gptName=ntfs"

# ---------------------------------------------------------------- table-less images
step "ext4-bare.img: one ext4 filesystem, no partition table"
U_B=c0ffee00-1234-4abc-9def-0123456789ab
mkext "$OUT/ext4-bare.img" 1 "$T/ext4-bare/fs" $U_B -t ext4 -b 4096 -N 128 -O ^has_journal -L bare-ext4
ext_finish "$OUT/ext4-bare.img" "$T/ext4-bare/fs"
python3 "$S/manifest.py" "$OUT/ext4-bare.manifest.json" --image ext4-bare.img --size $((1 * MiB)) --table none \
  --vol "name=fs,start=0,size=$((1 * MiB)),type=none,fs=ext4,label=bare-ext4,uuid=$U_B,tree=$T/ext4-bare/fs"

step "fat12-floppy.img: 1.44 MB FAT12 floppy"
mkfat "$OUT/fat12-floppy.img" 1440 "$T/fat12-floppy/fs" -F 12 -n FLOPPY144 --invariant -i 0F10BB12
check fat-runs "$OUT/fat12-floppy.img" frag/big-fragmented.bin 3
python3 "$S/manifest.py" "$OUT/fat12-floppy.manifest.json" --image fat12-floppy.img --size $((1440 * KiB)) --table none \
  --vol "name=fs,start=0,size=$((1440 * KiB)),type=none,fs=fat12,label=FLOPPY144,uuid=0F10-BB12,tree=$T/fat12-floppy/fs"

# ---------------------------------------------------------------- install
step "install into $HERE"
rm -f "$HERE"/*.img "$HERE"/*.manifest.json
for f in "$OUT"/*; do cp --sparse=always "$f" "$HERE/"; done
(cd "$HERE" && sha256sum -- *.img > SHA256SUMS && cat SHA256SUMS && du -ch --apparent-size -- *.img | tail -1)
