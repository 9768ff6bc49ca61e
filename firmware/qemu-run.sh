#!/bin/sh
# Cargo runner (see .cargo/config.toml): qemu-run.sh ELF [ARGS...]
#
# - ARGS reach the firmware through semihosting (SYS_GET_CMDLINE), not QEMU.
# - The QEMU machine follows the target in the ELF's path: thumbv6m ->
#   `microbit` (Cortex-M0), anything else -> `mps2-an386` (Cortex-M4F).
#   QEMU_MACHINE overrides it (e.g. "mps2-an500 -cpu cortex-m7").
# - QEMU_TIMEOUT (seconds, default 600) bounds the run, so a hung or faulting
#   firmware fails (status 124; SIGKILL 5 s later if QEMU ignores SIGTERM)
#   instead of blocking CI.
# - QEMU_SERIAL=pty connects the machine's first UART to a new host
#   pseudo-terminal, whose path QEMU prints to stderr ("char device
#   redirected to /dev/pts/N"), for the firmware's `serve` command.
# - QEMU_ICOUNT=1 adds `-icount shift=0`: one instruction = 1 ns of virtual
#   time, so SysTick counts instructions deterministically.
# - stdin is /dev/null: the firmware reads none, and QEMU fails to start
#   when stdin is closed (a CI job without standard input) and leaves a
#   terminal in raw mode when the timeout kills it.
# Exit status: the firmware's (0 success, 1 failure), or timeout's 124.
set -eu
elf="$1"
shift
case "$elf" in
  */thumbv6m-none-eabi/*) machine="microbit" ;;
  *) machine="mps2-an386 -cpu cortex-m4" ;;
esac
args="arg=$elf"
for a in "$@"; do args="$args,arg=$a"; done
# shellcheck disable=SC2086 # QEMU_MACHINE holds several words on purpose
exec timeout -k 5 "${QEMU_TIMEOUT:-600}" qemu-system-arm -machine ${QEMU_MACHINE:-$machine} \
  -nographic ${QEMU_SERIAL:+-serial $QEMU_SERIAL -monitor none} \
  ${QEMU_ICOUNT:+-icount shift=0} \
  -semihosting-config "enable=on,target=native,$args" -kernel "$elf" </dev/null
