#!/usr/bin/env bash
# Firmware checks (docs/firmware.md): builds convrfm-firmware for the
# Cortex-M4F and the Cortex-M0, runs it in QEMU on Fashion-MNIST test
# images, asserts that its classes and scores are byte-identical to
# convrfm-core on the host, checks that oversized blobs fail the build and
# that a faulting or hung firmware fails within a timeout, runs the C
# firmware (firmware/c), cross-builds and sizes the board examples
# (firmware/boards), drives the `serve` command with `convrfm serial` over
# a QEMU pseudo-terminal, and prints the footprint table (flash, RAM,
# stack, instructions per inference).
#
#   scripts/firmware-test.sh          all checks + table (1,000 images)
#   scripts/firmware-test.sh report   the table only (100 images by default)
#
# Environment: FW_IMAGES (images per configuration, default 1000 / 100 for
# report; every configuration runs the same images). Installs what
# it needs on a bare Debian machine (Rust targets, qemu-system-arm).
# Scratch files go to firmware/target/fw-test/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fw=$root/firmware
work=$fw/target/fw-test
mode=${1:-test}
case "$mode" in
  test) images=${FW_IMAGES:-1000} ;;
  report) images=${FW_IMAGES:-100} ;;
  *) echo "usage: $0 [test|report]" >&2; exit 2 ;;
esac
pixels=784 # Fashion-MNIST: 1x28x28

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok      %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAILED  %s\n' "$*"; }
step() { printf '\n-- %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "setup: Rust targets, QEMU, Arm GCC and newlib"
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi
missing=()
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v size >/dev/null || missing+=(binutils)
command -v gzip >/dev/null || missing+=(gzip)
# The C example firmware (firmware/c): Debian's Arm GCC, newlib, make.
command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib/thumb/v7e-m+fp/hard/librdimon.a ] ||
  missing+=(libnewlib-arm-none-eabi)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
qemu-system-arm --version | head -n 1

step "test data: first $images Fashion-MNIST test images, raw"
mkdir -p "$work"
gzip -dc data/fashion-mnist/t10k-images-idx3-ubyte.gz | tail -c +17 >"$work/all-images.bin"
gzip -dc data/fashion-mnist/t10k-labels-idx1-ubyte.gz | tail -c +9 >"$work/all-labels.bin"
available=$(($(stat -c %s "$work/all-images.bin") / pixels))
if [ "$images" -gt "$available" ]; then
  echo "only $available test images are vendored, $images asked for" >&2
  exit 1
fi

host=$(rustc -vV | sed -n 's/^host: //p')
step "host reference: firmware/host-check (convrfm-core on $host)"
# Its .cargo/config.toml builds for the host tuple, hence target/$host/.
(cd "$fw/host-check" && cargo build --release -q)
host_check=$fw/host-check/target/$host/release/convrfm-host-check

# Firmware configurations: NAME TARGET BLOB TARGET_DIR IMAGES SECONDS_PER_IMAGE
# (the last is a generous bound for the QEMU timeout, several times the
# at most ~0.3 s per image measured). m0-r9: the largest scratch of a
# 28x28 model (rank 9) must fit the micro:bit's RAM. Each blob has its own
# target dir so that switching blobs never rebuilds another configuration.
configs=(
  "m4-default thumbv7em-none-eabihf blobs/fashion-mnist.blob target $images 2"
  "m4-64k thumbv7em-none-eabihf blobs/fashion-mnist-64k.blob target/64k-blob $images 2"
  "m0-small thumbv6m-none-eabi blobs/fashion-mnist-m0.blob target/m0-blob $images 2"
  "m0-r9 thumbv6m-none-eabi blobs/fashion-mnist-r9.blob target/r9-blob $images 2"
  "m0-default thumbv6m-none-eabi blobs/fashion-mnist.blob target $images 2"
)

# cargo in firmware/ with the configuration's blob and target. The default
# blob is selected by leaving CONVRFM_BLOB unset, as a plain `cargo build`
# does, so that the two share one build instead of rebuilding each other.
fw_cargo() { # BLOB TARGET TARGET_DIR CARGO_COMMAND ARGS...
  local blob=$1 target=$2 tdir=$3 select=()
  shift 3
  [ "$blob" = blobs/fashion-mnist.blob ] || select=("CONVRFM_BLOB=$blob")
  (cd "$fw" && env -u CONVRFM_BLOB -u CONVRFM_MEMORY_X "${select[@]}" \
    cargo "$1" -q --release --target "$target" --target-dir "$tdir" "${@:2}")
}

step "build: firmware for each configuration"
for c in "${configs[@]}"; do
  read -r name target blob tdir n _ <<<"$c"
  if fw_cargo "$blob" "$target" "$tdir" build; then
    ok "$name: builds for $target with $blob"
  else
    fail "$name: build for $target with $blob"
  fi
done

step "run: classify in QEMU (in parallel, -icount shift=0), host reference meanwhile"
declare -A pid
for c in "${configs[@]}"; do
  read -r name target blob tdir n secs <<<"$c"
  d=$work/$name
  mkdir -p "$d"
  head -c $((n * pixels)) "$work/all-images.bin" >"$d/images.bin"
  head -c "$n" "$work/all-labels.bin" >"$d/labels.bin"
  # Semihosting paths are relative to QEMU's cwd, firmware/ (short, to fit
  # the firmware's 256-byte command line).
  rel=${d#"$fw"/}
  (
    export QEMU_ICOUNT=1 QEMU_TIMEOUT=$((60 + n * secs))
    fw_cargo "$blob" "$target" "$tdir" run -- calibrate >"$d/calibrate.log" 2>&1
    fw_cargo "$blob" "$target" "$tdir" run -- classify "$rel/images.bin" "$rel/firmware.out"
  ) >"$d/firmware.log" 2>&1 &
  pid[$name]=$!
done
for c in "${configs[@]}"; do
  read -r name target blob _ <<<"$c"
  d=$work/$name
  "$host_check" "$fw/$blob" "$d/images.bin" "$d/host.out" "$d/labels.bin" >"$d/host.log"
done

if [ "$mode" = test ]; then
  step "fault, hang, bad input: the firmware fails, within the timeout"
  read -r _ target blob tdir _ <<<"${configs[0]}"
  t0=$(date +%s)
  set +e
  QEMU_TIMEOUT=30 fw_cargo "$blob" "$target" "$tdir" run -- fault >"$work/fault.log" 2>&1
  status=$?
  set -e
  t=$(($(date +%s) - t0))
  if [ "$status" = 1 ] && grep -q HardFault "$work/fault.log"; then
    ok "fault: HardFault handler exits with status 1 after ${t} s"
  else
    fail "fault: status $status after ${t} s (want 1 from the HardFault handler): $(cat "$work/fault.log")"
  fi
  t0=$(date +%s)
  set +e
  QEMU_TIMEOUT=3 fw_cargo "$blob" "$target" "$tdir" run -- hang >"$work/hang.log" 2>&1
  status=$?
  set -e
  t=$(($(date +%s) - t0))
  if [ "$status" = 124 ] && [ "$t" -le 10 ]; then
    ok "hang: the runner's timeout ends it with status 124 after ${t} s"
  else
    fail "hang: status $status after ${t} s (want 124 within 10 s)"
  fi

  # An image cut short must be an error, not a silently dropped image.
  head -c $((pixels + 100)) "$work/all-images.bin" >"$work/truncated-images.bin"
  set +e
  QEMU_TIMEOUT=60 fw_cargo "$blob" "$target" "$tdir" run -- classify \
    target/fw-test/truncated-images.bin target/fw-test/truncated.out >"$work/truncated.log" 2>&1
  status=$?
  set -e
  if [ "$status" = 1 ] && grep -q "TruncatedImage { got: 100, expected: $pixels }" "$work/truncated.log"; then
    ok "truncated input: $(grep -o 'TruncatedImage[^)]*}' "$work/truncated.log"), status 1"
  else
    fail "truncated input: status $status: $(cat "$work/truncated.log")"
  fi

  step "memory budget: blobs that do not fit fail the build with a readable message"
  # In their own target dir, so the configurations above are not rebuilt.
  b=$work/budget
  mkdir -p "$b"
  blob_bytes=$(stat -c %s "$fw/blobs/fashion-mnist.blob")
  static_ram=$(size -A "$fw/target/thumbv7em-none-eabihf/release/convrfm-firmware" |
    awk '$1 == ".data" || $1 == ".bss" || $1 == ".uninit" { s += $2 } END { print s }')
  # memory-m4.x with FLASH and RAM lengths replaced (bytes).
  layout() {
    sed -e "s/^\( *FLASH *:.*LENGTH *= *\)[0-9A-Za-z]*/\1$1/" \
      -e "s/^\( *RAM *:.*LENGTH *= *\)[0-9A-Za-z]*/\1$2/" "$fw/memory-m4.x" >"$3"
  }
  expect_build_failure() { # NAME MEMORY_X BLOB EXPECTED_TEXT
    local log
    log=$b/$(printf '%s' "$1" | tr -cs 'a-zA-Z0-9' '-').log
    if (cd "$fw" && CONVRFM_MEMORY_X=$2 CONVRFM_BLOB=$3 cargo build -q --release \
      --target thumbv7em-none-eabihf --target-dir target/budget) >"$log" 2>&1; then
      fail "$1: the build succeeded"
    elif grep -qF "$4" "$log"; then
      ok "$1: $(grep -F "$4" "$log" | head -n 1 | sed 's/^ *//' | cut -c 1-150)"
    else
      fail "$1: the build failed without \"$4\":"
      cat "$log"
    fi
  }
  layout $((blob_bytes / 2)) 64K "$b/flash-half-blob.x"
  expect_build_failure "blob larger than FLASH (build.rs)" "$b/flash-half-blob.x" \
    blobs/fashion-mnist.blob "does not fit the memory layout"
  layout $((blob_bytes + 1024)) 64K "$b/flash-blob-only.x"
  expect_build_failure "blob + code larger than FLASH (linker)" "$b/flash-blob-only.x" \
    blobs/fashion-mnist.blob "will not fit in region 'FLASH'"
  layout 256K $((static_ram + 1024)) "$b/ram-no-stack.x"
  expect_build_failure "statics leave less than the minimum stack (linker)" "$b/ram-no-stack.x" \
    blobs/fashion-mnist.blob "convrfm: static RAM"
  head -c 4096 "$fw/blobs/fashion-mnist.blob" >"$b/truncated.blob"
  expect_build_failure "invalid blob (build.rs)" "$fw/memory-m4.x" "$b/truncated.blob" \
    "is not a valid convrfm blob"

  step "firmware code: rustfmt and clippy (warnings are errors)"
  if (cd "$fw" && cargo fmt --check) && (cd "$fw/host-check" && cargo fmt --check); then
    ok "cargo fmt --check (firmware, host-check)"
  else
    fail "cargo fmt --check (firmware, host-check)"
  fi
  if (cd "$fw" && cargo clippy -q --release -- -D warnings) &&
    (cd "$fw" && cargo clippy -q --release --target thumbv6m-none-eabi -- -D warnings) &&
    (cd "$fw/host-check" && cargo clippy -q --release -- -D warnings); then
    ok "cargo clippy -D warnings (firmware for both targets, host-check)"
  else
    fail "cargo clippy -D warnings"
  fi
fi

step "compare: firmware output vs host reference"
# key=value from the firmware's output lines.
field() { sed -n "s/.*[ :]$2=\([0-9]*\).*/\1/p" "$1" | head -n 1; }
# `convrfm cost` (export's --max-instructions model) is checked against
# every configuration's measured mean below.
(cd "$root" && cargo build -q --release -p convrfm-train --bin convrfm)
convrfm=$root/target/release/convrfm
rows=()
for c in "${configs[@]}"; do
  read -r name target blob tdir n _ <<<"$c"
  d=$work/$name
  if ! wait "${pid[$name]}"; then
    fail "$name: firmware run failed: $(tail -n 5 "$d/firmware.log" | tr '\n' ' ')"
    continue
  fi
  classes=$(sed -n 's/.* \([0-9]*\) classes.*/\1/p' "$d/firmware.log" | head -n 1)
  record=$((1 + 8 * classes))
  if cmp -s "$d/firmware.out" "$d/host.out"; then
    ok "$name: $n/$n predictions (class + $classes i64 scores) bit-identical to the host"
  else
    differing=$(cmp -l "$d/firmware.out" "$d/host.out" 2>/dev/null |
      awk -v r="$record" '{ print int(($1 - 1) / r) }' | uniq | wc -l)
    fail "$name: $differing of $n records differ from the host (sizes $(stat -c %s "$d/firmware.out") vs $(stat -c %s "$d/host.out"))"
  fi

  # Footprint row.
  elf=$fw/$tdir/$target/release/convrfm-firmware
  read -r flash ram < <(size -A "$elf" | awk '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".data" { f += $2 }
    $1 == ".data" || $1 == ".bss" || $1 == ".uninit" { r += $2 }
    END { print f, r }')
  memory_x=$fw/memory-m4.x
  [ "$target" = thumbv6m-none-eabi ] && memory_x=$fw/memory-m0.x
  budget() { sed -n "s/^ *$1 *:.*LENGTH *= *\([0-9]*[KM]*\).*/\1/p" "$memory_x"; }
  blob_bytes=$(stat -c %s "$fw/$blob")
  stack=$(field "$d/firmware.log" used)
  scratch=$(field "$d/firmware.log" scratch)
  accuracy=$(sed -n 's/^host accuracy: \([0-9.]*\) %.*/\1/p' "$d/host.log")
  # Mean instructions per inference: SysTick ticks times the calibrated
  # instructions per tick.
  mean=$(awk -v ci="$(field "$d/calibrate.log" insns)" -v ct="$(field "$d/calibrate.log" ticks)" \
    -v tt="$(field "$d/firmware.log" ticks_total)" -v n="$n" 'BEGIN { printf "%.0f", tt / n * ci / ct }')
  cpu=cortex-m4f
  [ "$target" = thumbv6m-none-eabi ] && cpu=cortex-m0
  predicted=$("$convrfm" --quiet cost --cpu "$cpu" "$fw/$blob")
  cost_check=$(awk -v p="$predicted" -v m="$mean" 'BEGIN {
    e = (p - m) / m * 100; printf "%s %.1f M predicted, %.1f M measured (%+.1f %%)", (e < 10 && e > -10) ? "ok" : "bad", p / 1e6, m / 1e6, e }')
  if [ "${cost_check%% *}" = ok ]; then
    ok "$name: cost model within 10 %: ${cost_check#* }"
  else
    fail "$name: cost model off by more than 10 %: ${cost_check#* }"
  fi
  rows+=("$(awk -v name="$name" -v blob="$blob_bytes" -v flash="$flash" -v ram="$ram" \
    -v stack="$stack" -v scratch="$scratch" -v fb="$(budget FLASH)" -v rb="$(budget RAM)" \
    -v ci="$(field "$d/calibrate.log" insns)" -v ct="$(field "$d/calibrate.log" ticks)" \
    -v mean="$mean" -v tmin="$(field "$d/firmware.log" ticks_min)" \
    -v tmax="$(field "$d/firmware.log" ticks_max)" -v n="$n" -v acc="$accuracy" 'BEGIN {
      k = ci / ct
      printf "| %s | %d | %d | %d / %s | %d | %d | %d | %d / %s | %.1f M (%.1f-%.1f) | %.0f | %.0f | %s %% (%d) |",
        name, blob, flash - blob, flash, fb, scratch, ram, stack, ram + stack, rb,
        mean / 1e6, tmin * k / 1e6, tmax * k / 1e6, mean / 80e3, mean / 170e3, acc, n
    }')")
done

if [ "$mode" = test ]; then
  step "C example firmware (firmware/c: C over libconvrfm_ffi.a, Arm GCC + newlib) vs host"
  # The same images and blob as m4-default, so its host reference serves.
  d=$work/c
  ref=$work/m4-default
  mkdir -p "$d"
  if (cd "$root" && cargo build -q -p convrfm-ffi --release --target thumbv7em-none-eabihf) &&
    make -s -C "$fw/c" BLOB="$fw/blobs/fashion-mnist.blob" >"$d/build.log" 2>&1; then
    cp "$ref/images.bin" "$d/images.bin"
    rm -f "$d/records.bin"
    set +e
    (cd "$d" && timeout -k 5 $((60 + images)) qemu-system-arm -machine mps2-an386 -cpu cortex-m4 \
      -nographic -semihosting-config enable=on,target=native \
      -kernel "$fw/c/build/convrfm-c.elf" </dev/null >"$d/run.log" 2>&1)
    status=$?
    set -e
    if [ "$status" != 0 ]; then
      fail "C firmware: exit status $status: $(tail -n 3 "$d/run.log" | tr '\n' ' ')"
    elif cmp -s "$d/records.bin" "$ref/host.out"; then
      ok "C firmware: $images/$images records (class + i64 scores) bit-identical to the host"
      size -A "$fw/c/build/convrfm-c.elf" | awk '$1 == ".text" || $1 == ".data" || $1 == ".bss" { printf "        %s %d B\n", $1, $2 }'
    else
      fail "C firmware: records differ from the host (sizes $(stat -c %s "$d/records.bin" 2>/dev/null || echo 0) vs $(stat -c %s "$ref/host.out"))"
    fi
  else
    fail "C firmware: build failed: $(tail -n 5 "$d/build.log" | tr '\n' ' ')"
  fi
fi

if [ "$mode" = test ]; then
  step "board examples (boards/): cross builds, rustfmt, clippy, flash and RAM against the board"
  # They need the hardware to run (docs/boards.md); here they must build
  # for their target, lint clean and fit their part. NAME TARGET FLASH RAM
  # (the part's bytes: STM32F401RE 512 KiB / 96 KiB; the Pico's 2 MiB flash
  # chip, boot2 included / RP2040's 256 KiB of striped SRAM).
  for b in "stm32f4 thumbv7em-none-eabihf 524288 98304" "rp2040 thumbv6m-none-eabi 2097152 262144"; do
    read -r board target flash_total ram_total <<<"$b"
    dir=$fw/boards/$board
    elf=$dir/target/$target/release/convrfm-board-$board
    if ! (cd "$dir" && env -u CONVRFM_BLOB cargo build -q --release) >"$work/board-$board.log" 2>&1; then
      fail "board $board: build for $target: $(tail -n 5 "$work/board-$board.log" | tr '\n' ' ')"
      continue
    fi
    if (cd "$dir" && cargo fmt --check && cargo clippy -q --release -- -D warnings) >>"$work/board-$board.log" 2>&1; then
      ok "board $board: cargo fmt --check, cargo clippy -D warnings"
    else
      fail "board $board: fmt or clippy: $(tail -n 5 "$work/board-$board.log" | tr '\n' ' ')"
    fi
    read -r flash ram < <(size -A "$elf" | awk '
      $1 == ".boot2" || $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".data" { f += $2 }
      $1 == ".data" || $1 == ".bss" || $1 == ".uninit" { r += $2 }
      END { print f, r }')
    stack_min=8192
    if [ "$flash" -le "$flash_total" ] && [ $((ram + stack_min)) -le "$ram_total" ]; then
      ok "board $board ($target): flash $flash of $flash_total B, static RAM $ram B + $stack_min B stack of $ram_total B (default blob)"
    else
      fail "board $board: flash $flash of $flash_total B, RAM $ram + $stack_min of $ram_total B"
    fi
  done
fi

if [ "$mode" = test ]; then
  step "serial link: convrfm serial through the firmware's UART on a pseudo-terminal"
  # The m4-64k firmware's `serve` command on QEMU's UART0 (-serial pty);
  # `convrfm serial` talks to the pseudo-terminal as to a board's port.
  d=$work/serial
  ref=$work/m4-64k
  serial_images=$((images < 100 ? images : 100))
  mkdir -p "$d"
  read -r _ target _ tdir _ <<<"${configs[1]}"
  elf=$fw/$tdir/$target/release/convrfm-firmware
  # qemu-run.sh execs timeout, so $! is timeout's pid, and a TERM to it
  # reaches QEMU.
  (cd "$fw" && exec env QEMU_SERIAL=pty QEMU_TIMEOUT=$((120 + 2 * serial_images)) \
    ./qemu-run.sh "$elf" serve) >"$d/qemu.log" 2>&1 &
  qemu=$!
  pty=""
  for _ in $(seq 200); do
    pty=$(sed -n 's|.*char device redirected to \(/dev/[^ ]*\) .*|\1|p' "$d/qemu.log")
    [ -n "$pty" ] && grep -q "serving on UART0" "$d/qemu.log" && break
    sleep 0.1
  done
  if [ -z "$pty" ]; then
    fail "serial: QEMU printed no pseudo-terminal: $(tr '\n' ' ' <"$d/qemu.log")"
  elif "$convrfm" --quiet serial --port "$pty" \
    --images "$root/data/fashion-mnist/t10k-images-idx3-ubyte.gz" \
    --labels "$root/data/fashion-mnist/t10k-labels-idx1-ubyte.gz" \
    --limit "$serial_images" --timeout 30 --out "$d/records.bin" >"$d/serial.log" 2>&1; then
    record_bytes=$(($(stat -c %s "$d/records.bin") / serial_images))
    head -c $((serial_images * record_bytes)) "$ref/host.out" >"$d/host.out"
    if cmp -s "$d/records.bin" "$d/host.out"; then
      ok "serial: $serial_images/$serial_images records over $pty identical to the host's; $(tail -n 1 "$d/serial.log")"
    else
      fail "serial: the records over $pty differ from the host's"
    fi
  else
    fail "serial: convrfm serial failed: $(tail -n 3 "$d/serial.log" | tr '\n' ' ')"
  fi
  kill "$qemu" 2>/dev/null || true
  wait "$qemu" 2>/dev/null || true
fi

step "footprint (QEMU 7.2; instructions counted with -icount shift=0 + SysTick)"
echo "| build | blob B | code B | flash B / budget | scratch B | static RAM B | stack B | RAM B / budget | insns/inference mean (min-max) | ms @80 MHz | ms @170 MHz | host accuracy (images) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo "m4-*: thumbv7em-none-eabihf on mps2-an386 (Cortex-M4F), memory-m4.x; m0-*: thumbv6m-none-eabi on microbit (Cortex-M0), memory-m0.x."
echo "code = flash - blob; scratch = convrfm-core's prediction buffer (part of static RAM);"
echo "RAM = static (.data+.bss) + stack high-water mark; ms = instructions / clock,"
echo "an estimate that assumes one cycle per instruction (no wait states, multi-cycle loads, or multiplies)."

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
