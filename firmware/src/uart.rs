//! UART0 of QEMU's `mps2-an386` (an Arm CMSDK APB UART, Application Note
//! AN386) as an `embedded-io` byte stream, for the `serve` command: QEMU
//! connects it to a host pseudo-terminal with `-serial pty`, where
//! `convrfm serial` talks to it as it would to a board's UART.
//!
//! Polled, one byte per register access: the CMSDK UART has a one-byte
//! buffer each way. Only the Cortex-M4F build runs on that machine.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

/// UART0's registers (AN386, memory map: APB at 0x4000_4000).
const BASE: usize = 0x4000_4000;
/// Received / transmitted byte.
const DATA: usize = BASE;
/// Bit 0: transmit buffer full; bit 1: receive buffer full.
const STATE: usize = BASE + 0x04;
/// Bit 0: transmit enable; bit 1: receive enable.
const CTRL: usize = BASE + 0x08;
/// Baud-rate divider (at least 16).
const BAUDDIV: usize = BASE + 0x10;

const TX_FULL: u32 = 1 << 0;
const RX_FULL: u32 = 1 << 1;
const TX_ENABLE: u32 = 1 << 0;
const RX_ENABLE: u32 = 1 << 1;

/// mps2-an386's peripheral clock; QEMU ignores the divider's rate (the
/// pseudo-terminal has none) but checks it is valid.
const CLOCK_HZ: u32 = 25_000_000;

/// UART0's receiving half.
pub struct Rx(());

/// UART0's transmitting half.
pub struct Tx(());

/// Sets the divider for `baud`, enables the transmitter and receiver and
/// splits them (each half touches only its own buffer). Call once: `main`
/// does, for the `serve` command.
pub fn enable(baud: u32) -> (Rx, Tx) {
    let divider = (CLOCK_HZ / baud.max(1)).max(16);
    // SAFETY: the addresses are UART0's registers on this machine (module
    // doc); word writes are how the device is programmed.
    unsafe {
        write_volatile(BAUDDIV as *mut u32, divider);
        write_volatile(CTRL as *mut u32, TX_ENABLE | RX_ENABLE);
    }
    (Rx(()), Tx(()))
}

fn state() -> u32 {
    // SAFETY: a read of UART0's status register (module doc).
    unsafe { read_volatile(STATE as *const u32) }
}

impl embedded_io::ErrorType for Rx {
    type Error = Infallible;
}

impl embedded_io::ErrorType for Tx {
    type Error = Infallible;
}

impl embedded_io::Read for Rx {
    /// Waits for one byte, then takes what else has arrived, as
    /// `embedded_io::Read` asks.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            if n > 0 && state() & RX_FULL == 0 {
                break;
            }
            while state() & RX_FULL == 0 {}
            // SAFETY: reading DATA takes the received byte (module doc).
            *slot = unsafe { read_volatile(DATA as *const u32) } as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &byte in buf {
            while state() & TX_FULL != 0 {}
            // SAFETY: writing DATA sends a byte once the buffer is free.
            unsafe { write_volatile(DATA as *mut u32, u32::from(byte)) };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while state() & TX_FULL != 0 {}
        Ok(())
    }
}
