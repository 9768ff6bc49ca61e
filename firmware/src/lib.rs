//! `convrfm-firmware`: runs an exported ConvRFM blob on a Cortex-M.
//!
//! The library is board-agnostic and allocation-free:
//! - [`model`] embeds the blob chosen at build time (`CONVRFM_BLOB`) in
//!   flash, 4-byte aligned, with the buffer sizes it needs as constants;
//! - [`app`] is the classification loop over `embedded-io` byte streams.
//!
//! The binary (`src/main.rs`) is the QEMU test harness that plugs
//! semihosting files into [`app`]; on a board, plug a UART in instead
//! (`docs/firmware.md`).
#![no_std]

pub mod app;
pub mod model;
