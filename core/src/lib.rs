//! `convrfm-core`: the part of convrfm that also runs on a microcontroller.
//!
//! It reads a ConvRFM model blob in place and classifies images with an
//! integer-only kernel, so the host and every target (Cortex-M4F, M0+,
//! x86-64) compute bit-identical scores:
//!
//! - [`Model::from_bytes`] validates a blob once (magic, version, CRC-32,
//!   every size, offset and field); the [`Model`] it returns cannot fail
//!   afterwards. [`encode`] writes blobs (used by the host exporter), so
//!   the format lives in one module ([`blob`]; specified in
//!   `docs/blob-format.md`).
//! - [`Model::predict`] runs the convolutional NTK/NNGP recursion in fixed
//!   point ([`fixed`]) against every centre, in a caller-provided scratch
//!   buffer of [`Model::scratch_len`] bytes that does not grow with the
//!   number of centres; its size is computed in one `const` place
//!   ([`scratch_len_for_dims`], [`scratch_len_for_blob`]) so firmware can
//!   size a `static` buffer at compile time.
//! - [`Shape`] is the image and patch-grid geometry shared with the host
//!   trainer.
//! - [`wire`] is the byte protocol between a host and a device running a
//!   blob (result records, the serial link's requests and info reply).
//!
//! `no_std`, no `alloc`, no `unsafe` (the scratch bytes are viewed as
//! aligned words through `bytemuck`'s safe API), no floats in the inference
//! path, and no panics: every size derived from input is computed with
//! checked arithmetic and every failure is a value.
//!
//! What it is not for: training, gradients, AGOP, solvers, data loading and
//! the float kernels live in `convrfm-train`; this crate never allocates,
//! so it cannot build models, and it does not evaluate the float kernel
//! (its integer kernel follows it to within 0.5 % in the tests, see
//! `docs/blob-format.md`).
//! It is not a general neural-network runtime either: one model family,
//! one blob format.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn core::error::Error>> {
//! // A blob made by `convrfm export` (this one ships with the firmware).
//! let blob = include_bytes!("../../firmware/blobs/fashion-mnist-m0.blob");
//! let model = convrfm_core::Model::from_bytes(blob)?;
//! let mut scratch = [0u8; 16 << 10];
//! let image = [0u8; 28 * 28]; // c * H * W pixels, channel-major
//! let prediction = model.predict(&image, &mut scratch[..model.scratch_len()])?;
//! assert!(usize::from(prediction.class) < model.classes());
//! # Ok(())
//! # }
//! ```
#![no_std]
#![deny(missing_docs)]

pub mod blob;
mod crc;
pub mod fixed;
mod predict;
mod scratch;
mod shape;
pub mod wire;

pub use blob::{
    BlobError, BlobParts, ClassNames, EncodeError, KernelKind, Model, NameError, ResizeFilter,
    Section, Sizes, declared_len, encode, encoded_len, encoded_len_for, image_bytes, kernel_fits,
    pack_pixels, pixel_to_4bit, scratch_len_for_blob,
};
pub use crc::{Crc32, crc32};
pub use predict::{PredictError, Prediction};
pub use scratch::{QZ_STORE_LIMIT, scratch_len_for_dims};
pub use shape::{PATCH, Shape, ShapeError};
