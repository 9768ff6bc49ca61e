#!/usr/bin/env bash
# Where the instructions of one inference go, per function: runs the QEMU
# test firmware on Fashion-MNIST test images under a TCG plugin that counts
# every executed instruction by address (scripts/qemu-plugin/pcprof.c), and
# folds the counts into the ELF's functions. Not part of the test command:
# it needs Debian's QEMU source (for the plugin header) and glib headers.
#
#   scripts/firmware-profile.sh [m4|m0] [BLOB] [IMAGES]
#     m4 (default): thumbv7em-none-eabihf on mps2-an386; m0: thumbv6m-none-eabi on microbit
#     BLOB: relative to firmware/ (default blobs/fashion-mnist.blob); IMAGES: default 1
#
# Counts include start-up (blob CRC check, stack painting) and the query's
# preparation; divide by IMAGES for a per-inference figure.
set -euo pipefail
cd "$(dirname "$0")/.."
core=${1:-m4}
blob=${2:-blobs/fashion-mnist.blob}
n=${3:-1}
case "$core" in
  m4) target=thumbv7em-none-eabihf machine="mps2-an386 -cpu cortex-m4" ;;
  m0) target=thumbv6m-none-eabi machine=microbit ;;
  *) echo "usage: $0 [m4|m0] [BLOB] [IMAGES]" >&2; exit 2 ;;
esac
work=firmware/target/profile
mkdir -p "$work"
plugin=$work/libpcprof.so
if [ ! -f "$plugin" ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get install -y -q --no-install-recommends libglib2.0-dev pkg-config dpkg-dev xz-utils >/dev/null
  src=/etc/apt/sources.list.d/debsrc-bookworm.sources
  [ -f "$src" ] || printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' | as_root tee "$src" >/dev/null
  as_root apt-get update -q >/dev/null
  tmp=$(mktemp -d)
  ver=$(dpkg-query -W -f='${source:Version}' qemu-system-arm)
  (cd "$tmp" && apt-get source --download-only -q "qemu=$ver" >/dev/null)
  tar -xJf "$tmp"/qemu_*.orig.tar.xz -C "$tmp" --wildcards '*/include/qemu/qemu-plugin.h'
  inc=$(dirname "$(find "$tmp" -name qemu-plugin.h | head -n 1)")
  # shellcheck disable=SC2046 # pkg-config prints several flags
  gcc -shared -fPIC -O2 -I"$inc" $(pkg-config --cflags glib-2.0) -o "$plugin" \
    scripts/qemu-plugin/pcprof.c $(pkg-config --libs glib-2.0)
  rm -rf "$tmp"
fi
# Whole file first: `head` closing the pipe early would fail the pipeline.
gzip -dc data/fashion-mnist/t10k-images-idx3-ubyte.gz | tail -c +17 >"$work/all-images.bin"
head -c $((n * 784)) "$work/all-images.bin" >"$work/images.bin"
select=()
[ "$blob" = blobs/fashion-mnist.blob ] || select=("CONVRFM_BLOB=$blob")
(cd firmware && env "${select[@]}" cargo build -q --release --target "$target" --target-dir target/profile/build)
elf=firmware/target/profile/build/$target/release/convrfm-firmware
# Semihosting paths are relative to QEMU's working directory, firmware/.
# shellcheck disable=SC2086 # machine holds several words on purpose
(cd firmware && PCPROF_OUT=$(realpath -m "../$work/counts.txt") timeout 3600 \
  qemu-system-arm -machine $machine -nographic \
  -semihosting-config "enable=on,target=native,arg=x,arg=classify,arg=target/profile/images.bin,arg=target/profile/out.bin" \
  -plugin "$(realpath "../$plugin")" -d plugin -kernel "../$elf") >"$work/run.log" 2>&1 ||
  { cat "$work/run.log"; exit 1; }
# Fold address counts into functions (both lists sorted by address, in
# decimal: Debian's awk reads no hexadecimal).
nm -S --size-sort -C "$elf" | while read -r addr size kind sym; do
  case "$kind" in t | T | w | W) echo "$((16#$addr)) $((16#$addr + 16#$size)) $sym" ;; esac
done | sort -n >"$work/syms.txt"
sort -n "$work/counts.txt" | awk -v n="$n" '
  FNR == NR { start[++s] = $1; end[s] = $2; $1 = $2 = ""; name[s] = substr($0, 3); next }
  { pc = $1; c = $2; total += c
    while (i < s && end[i + 1] <= pc) i++
    f = (i + 1 <= s && start[i + 1] <= pc && pc < end[i + 1]) ? name[i + 1] : "(other)"
    by[f] += c }
  END { for (f in by) printf "%10.2f M  %5.1f %%  %s\n", by[f] / n / 1e6, 100 * by[f] / total, f
        printf "%10.2f M  per image in all (%d images, start-up included)\n", total / n / 1e6, n }
' "$work/syms.txt" - | sort -rn | head -n 16
