//! `convrfm-firmware`: runs an exported ConvRFM blob on a Cortex-M.
//!
//! The library is board-agnostic and allocation-free:
//! - [`model`] embeds the blob chosen at build time (`CONVRFM_BLOB`) in
//!   flash, 4-byte aligned, with the buffer sizes it needs as constants;
//! - [`app`] is the classification loop over `embedded-io` byte streams:
//!   files ([`app::Classifier::run`]) or a serial link
//!   ([`app::Classifier::serve`]);
//! - [`led`] shows a class on an LED through `embedded-hal`;
//! - [`nb_serial`] adapts an `embedded-hal-nb` UART receiver to
//!   `embedded-io`.
//!
//! The binary (`src/main.rs`, feature `qemu`) is the QEMU test harness
//! that plugs semihosting files and QEMU's UART into [`app`]; the board
//! examples (`boards/`) plug in a HAL's UART, an LED and a cycle counter
//! (`docs/boards.md`).
#![no_std]

pub mod app;
pub mod led;
pub mod model;
pub mod nb_serial;
