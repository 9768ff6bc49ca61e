//! QEMU test firmware: the board-agnostic [`convrfm_firmware::app`] with
//! semihosting files as its image source and result sink, plus what the
//! test script measures (SysTick instruction counts, stack high-water
//! mark) and provokes (a fault, a hang).
//!
//! Commands (after the ELF on QEMU's semihosting command line, which
//! `qemu-run.sh` builds from `cargo run --release -- ARGS`):
//!
//! - *(none)*: print the embedded model and this usage;
//! - `classify IMAGES OUT`: classify every image of the host file `IMAGES`
//!   (raw `c*H*W`-byte images back to back), write the records of
//!   `app` to `OUT`, print the SysTick ticks per inference and the stack
//!   high-water mark;
//! - `serve`: answer `convrfm serial` on UART0 (`wire` protocol of
//!   `app::Classifier::serve`), for QEMU `-serial pty`; runs until QEMU is
//!   stopped. Cortex-M4F build (mps2-an386) only;
//! - `calibrate`: print SysTick ticks for a loop of known instruction
//!   count, so the script converts ticks to instructions on any machine;
//! - `fault`: execute an undefined instruction (the HardFault handler must
//!   end the run with a failure);
//! - `hang`: spin forever (the runner's timeout must end the run).
//!
//! Exit status: 0 on success, 1 on any error, panic or fault.
#![no_std]
#![no_main]

mod semihosting;
#[cfg(target_abi = "eabihf")]
mod uart;

use core::sync::atomic::{AtomicU32, Ordering};

use convrfm_core::Model;
use convrfm_firmware::app::{Classifier, Clock};
use convrfm_firmware::model::{self, Buffers};
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{heprintln, hprintln};
use panic_semihosting as _;

use crate::semihosting::HostFile;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns `static mut` locals of the entry function into safe
    // `&'static mut` references (it is called once): the buffers live in
    // `.bss`, where the linker counts them against RAM, not on the stack.
    static mut BUFFERS: Buffers = Buffers::new();
    static mut CMDLINE: [u8; 256] = [0; 256];

    let ok = match semihosting::cmdline(CMDLINE) {
        Some(cmdline) => run(cmdline, BUFFERS).is_ok(),
        None => {
            heprintln!(
                "error: the command line is longer than {} bytes",
                CMDLINE.len()
            );
            false
        }
    };
    semihosting::exit(ok)
}

/// A command failed; the reason has already been printed to stderr.
struct Failed;

/// Prints `error: ...` to the host's stderr and yields [`Failed`].
macro_rules! fail {
    ($($arg:tt)*) => {{
        heprintln!("error: {}", format_args!($($arg)*));
        Failed
    }};
}

/// Runs the command of `cmdline` (`"ELF COMMAND ARGS..."`).
fn run(cmdline: &str, buffers: &mut Buffers) -> Result<(), Failed> {
    // Validate the blob once (CRC and every field); the model is then
    // infallible and reads the blob in place. build.rs validated these very
    // bytes, so a failure here means corrupt flash. The reason is not
    // printed: `BlobError`'s messages format an f32, and float formatting
    // would take tens of KB of flash.
    let model = Model::from_bytes(model::BLOB)
        .map_err(|_| fail!("the embedded blob failed validation (corrupt flash?)"))?;
    let peripherals = cortex_m::Peripherals::take().ok_or_else(|| fail!("peripherals taken"))?;
    let mut args = cmdline.split_ascii_whitespace().skip(1);
    match (args.next(), args.next(), args.next(), args.next()) {
        (None, ..) => {
            describe(&model);
            hprintln!("usage: classify IMAGES OUT | serve | calibrate | fault | hang");
            Ok(())
        }
        (Some("classify"), Some(images), Some(out), None) => {
            let mut classifier = buffers
                .classifier(model)
                .map_err(|e| fail!("buffers: {e:?}"))?;
            classify(&mut classifier, images, out, peripherals.SYST)
        }
        (Some("serve"), None, ..) => {
            let mut classifier = buffers
                .classifier(model)
                .map_err(|e| fail!("buffers: {e:?}"))?;
            serve(&mut classifier, peripherals.SYST)
        }
        (Some("calibrate"), None, ..) => {
            calibrate(peripherals.SYST);
            Ok(())
        }
        (Some("fault"), None, ..) => cortex_m::asm::udf(),
        (Some("hang"), None, ..) => loop {
            cortex_m::asm::nop();
        },
        _ => Err(fail!(
            "bad command line `{cmdline}`; no arguments prints usage"
        )),
    }
}

fn describe(m: &Model<'_>) {
    let s = m.shape();
    hprintln!(
        "model: {}x{}x{}, depth {}, {} centres at {}-bit, rank {}, {} classes, {:?}",
        s.channels(),
        s.height(),
        s.width(),
        s.depth(),
        m.centres(),
        m.pixel_bits(),
        m.rank(),
        m.classes(),
        m.kind()
    );
    hprintln!(
        "memory: blob={} scratch={}",
        model::BLOB_LEN,
        m.scratch_len()
    );
}

fn classify(
    classifier: &mut Classifier<'_>,
    images: &str,
    out: &str,
    syst: SYST,
) -> Result<(), Failed> {
    describe(classifier.model());
    let mut input = HostFile::open_read(images).map_err(|_| fail!("cannot open {images}"))?;
    let mut output = HostFile::create(out).map_err(|_| fail!("cannot create {out}"))?;
    let mut clock = SysTickClock::start(syst);
    let stats = classifier
        .run(&mut input, &mut output, &mut clock)
        .map_err(|e| fail!("classifying {images}: {e:?}"))?;
    if stats.images == 0 {
        return Err(fail!("{images} holds no image"));
    }
    hprintln!(
        "inference: images={} ticks_total={} ticks_min={} ticks_max={}",
        stats.images,
        stats.total,
        stats.min,
        stats.max
    );
    let (used, size) = stack_usage();
    hprintln!("stack: used={used} size={size}");
    if used >= size {
        // No paint left: the stack reached the statics below it (no MPU
        // guard here), so the results cannot be trusted.
        return Err(fail!("stack overflow: all {size} bytes of stack were used"));
    }
    Ok(())
}

/// Serves the serial link on UART0 until QEMU is stopped: the UART never
/// ends and cannot fail, so this returns only on an inference error.
#[cfg(target_abi = "eabihf")]
fn serve(classifier: &mut Classifier<'_>, syst: SYST) -> Result<(), Failed> {
    describe(classifier.model());
    let mut clock = SysTickClock::start(syst);
    let (mut rx, mut tx) = uart::enable(115_200);
    hprintln!("serving on UART0");
    match classifier.serve(&mut rx, &mut tx, &mut clock, |_, _| {}) {
        Ok(_) => Err(fail!("UART0 ended")),
        Err(e) => Err(fail!("serving: {e:?}")),
    }
}

/// The Cortex-M0 build runs on QEMU's `microbit`, whose nRF51 UART this
/// firmware does not drive.
#[cfg(not(target_abi = "eabihf"))]
fn serve(_: &mut Classifier<'_>, _: SYST) -> Result<(), Failed> {
    Err(fail!(
        "serve drives mps2-an386's UART: build for thumbv7em-none-eabihf"
    ))
}

/// Counts SysTick ticks over a loop of exactly `2 * LOOPS` instructions.
fn calibrate(syst: SYST) {
    const LOOPS: u32 = 10_000_000;
    let mut clock = SysTickClock::start(syst);
    let start = clock.ticks();
    // SAFETY: a countdown in one register: `subs` + `bne` per iteration,
    // no stack. Not `nomem`: that would let the compiler move the loop
    // across the clock's volatile reads.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, #1",
            "bne 2b",
            n = inout(reg) LOOPS => _,
            options(nostack)
        );
    }
    let ticks = clock.ticks().saturating_sub(start);
    hprintln!("calibrate: insns={} ticks={ticks}", 2 * LOOPS);
}

/// SysTick wraps (every 2^24 ticks), counted by the [`SysTick`] handler.
static WRAPS: AtomicU32 = AtomicU32::new(0);

const SYST_RELOAD: u32 = 0x00FF_FFFF;

/// SysTick on the core clock, extended to 64 bits by counting wraps. Under
/// QEMU with `-icount shift=0` one instruction takes 1 ns of virtual time,
/// so ticks are a deterministic instruction count (x40 on mps2-an386's
/// 25 MHz clock); `calibrate` measures the ratio.
struct SysTickClock;

impl SysTickClock {
    fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYST_RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // The counter holds the cleared 0 until its first reload, which
        // `ticks` would read as a full period: wait for the reload.
        while SYST::get_current() == 0 {}
        Self
    }
}

impl Clock for SysTickClock {
    fn ticks(&mut self) -> u64 {
        loop {
            let wraps = WRAPS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            // A wrap between the two reads: read again.
            if WRAPS.load(Ordering::Relaxed) == wraps {
                return (u64::from(wraps) << 24) | u64::from(SYST_RELOAD - current);
            }
        }
    }
}

#[exception]
fn SysTick() {
    // The only writer, so load + store is atomic enough; thumbv6m has no
    // atomic read-modify-write instructions.
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Stack bytes ever used and the stack's size: cortex-m-rt's `paint-stack`
/// fills `_stack_end.._stack_start` with a pattern at reset; the lowest
/// word that lost it is the high-water mark.
fn stack_usage() -> (usize, usize) {
    unsafe extern "C" {
        static mut _stack_end: u32;
        static mut _stack_start: u32;
    }
    let end = (&raw const _stack_end).cast::<u32>();
    let start = (&raw const _stack_start).cast::<u32>();
    let mut p = end;
    // SAFETY: every word between the two linker symbols is RAM reserved
    // for the stack; reading it (even while in use above `p`) is sound.
    while p < start && unsafe { p.read_volatile() } == cortex_m_rt::STACK_PAINT_VALUE {
        p = p.wrapping_add(1);
    }
    (start as usize - p as usize, start as usize - end as usize)
}

/// Any fault ends the run with a failure instead of spinning forever in
/// cortex-m-rt's default handler (which would only end at the timeout).
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    heprintln!("HardFault at pc={:#010x}", frame.pc());
    semihosting::exit(false)
}
