//! `convrfm-core`: the part of convrfm that also runs on a microcontroller.
//!
//! `no_std`, no `alloc`, no `unsafe`, and no panics: every size derived from
//! input is computed with checked arithmetic and every failure is a value.
//!
//! Today it holds the image and patch-grid geometry shared by the host trainer
//! and the device ([`Shape`]). It is not a training library: kernels in
//! floating point, solvers and data loading live in `convrfm-train`.
#![no_std]

mod shape;

pub use shape::{PATCH, Shape, ShapeError};
