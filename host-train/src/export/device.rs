//! The device's arithmetic, mirrored on the host: how pixels, `W` and
//! alpha are quantised for the blob, the float kernel that computes with
//! exactly those quantised values, and the encoding into
//! `convrfm_core::blob`. The one place on the host that knows the device's
//! number formats (`docs/blob-format.md`); the integer kernel itself runs
//! only in `convrfm-core` (see [`super::run`]).

use anyhow::{Context, Result};
use convrfm_core::blob::{self, BlobParts, KernelKind as BlobKind};

use super::compact::{low_rank, padded_metric};
use crate::data::{ImageDims, Images, ResizeFilter};
use crate::fit::Model;
use crate::kernel::{Kernel, KernelKind, extract_patch};
use crate::matrix::Matrix;

/// Fixed-point shift of the `u` requantisation multiplier on the device.
const U_MULT_SHIFT: u32 = 24;
/// Largest `|uq|` the device's `u` requantisation targets (i8).
const UQ_MAX: i64 = 127;

/// A pixel in `[0, 1]` as the device's byte.
pub fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Pixels in `[0, 1]` rounded to `bits` (4 or 8) bits, as the device stores
/// them: 8-bit `round(255 v)`, 4-bit `round(15 v)` (expanded on the device
/// to `17 round(15 v)` of 255, the same value).
pub fn quantise_pixels(pixels: &[f32], bits: u8) -> Vec<f32> {
    let levels = ((1u32 << bits) - 1) as f32;
    pixels
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * levels).round() / levels)
        .collect()
}

/// The device's patch projection for one rank: `W` quantised to i8, the
/// multiplier that requantises `u = P . W` to i8, and the float kernel
/// that mirrors both (quantised `W`, `u` rounded as the device rounds it).
pub struct DeviceMetric {
    /// The float kernel with the quantised low-rank metric.
    pub kernel: Kernel,
    /// `W` quantised, `d x r` row-major.
    pub w: Vec<i8>,
    /// Requantisation multiplier of `u = P . W`.
    pub u_mult: u32,
    /// `W = W_q * w_scale` in float.
    pub w_scale: f64,
}

impl DeviceMetric {
    /// The projection of `model`'s metric at `rank`, with `u_mult` chosen
    /// so that the largest `|P . W|` over `images` maps to 127.
    pub fn new(model: &Model, rank: usize, images: &Images) -> Result<Self> {
        let shape = model.shape()?;
        let w = low_rank(&model.metric, rank)?;
        let wmax = w.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-300);
        let w_scale = wmax / 127.0;
        let wq: Vec<i8> = w.iter().map(|v| (v / w_scale).round() as i8).collect();
        let deq: Vec<f64> = wq.iter().map(|&v| f64::from(v) * w_scale).collect();
        // Largest |u| = |P . W| over all patches of `images`, in device
        // units (u8 pixels times i8 weights; exact in f64, far below 2^53).
        let dims = ImageDims::of(&shape);
        let (rows, cols) = shape.grid(1);
        let d = shape.patch_dim();
        let mut patch = vec![0.0f64; d];
        let mut max_u = 1.0f64;
        for img in images.pixels.chunks_exact(shape.pixels()) {
            let px: Vec<f64> = img.iter().map(|v| f64::from(to_u8(*v))).collect();
            for i in 0..rows {
                for j in 0..cols {
                    extract_patch(dims, shape.patch(), &px, i, j, &mut patch);
                    for col in 0..rank {
                        let u: f64 = (0..d)
                            .map(|k| patch[k] * f64::from(wq[k * rank + col]))
                            .sum();
                        max_u = max_u.max(u.abs());
                    }
                }
            }
        }
        let u_mult = u32::try_from((UQ_MAX << U_MULT_SHIFT) / max_u as i64)
            .unwrap_or(u32::MAX)
            .max(1);
        let step = w_scale * f64::from(1u32 << U_MULT_SHIFT) / (255.0 * f64::from(u_mult));
        let kernel =
            Kernel::new(shape, model.kind, padded_metric(&deq, d, rank)?).with_u_step(step);
        Ok(Self {
            kernel,
            w: wq,
            u_mult,
            w_scale,
        })
    }
}

/// Everything of a compact model that the blob holds, in float, with
/// pixels and `W` already quantised.
pub struct BlobContent<'a> {
    /// The patch projection.
    pub metric: &'a DeviceMetric,
    /// Centre pixel bits (4 or 8).
    pub pixel_bits: u8,
    /// Centre images, quantised pixels in `[0, 1]`.
    pub centres: &'a Images,
    /// `m x classes`, for the kernel divided by `scale`.
    pub alpha: &'a Matrix,
    /// Kernel normaliser of the float model.
    pub scale: f64,
    /// Class names.
    pub class_names: &'a [String],
    /// How pictures of another size are resized (header record).
    pub resize: ResizeFilter,
    /// Validation accuracy written into the header, if known.
    pub expected_accuracy: Option<f64>,
}

impl BlobContent<'_> {
    /// Real score per unit of integer score: the device kernel is
    /// `g^2 c P_L` times the float kernel (`g` the requantisation gain of
    /// `u`, `1/c` and the readout mean dropped), and the float model divides
    /// its kernel by `scale` (`docs/blob-format.md` §9).
    fn alpha_scale(&self, a_scale: f64) -> f64 {
        let shape = self.metric.kernel.shape();
        let g = f64::from(self.metric.u_mult) / f64::from(1u32 << U_MULT_SHIFT) * 255.0
            / self.metric.w_scale;
        let p_last = shape.positions(shape.depth()) as f64;
        a_scale / (g * g * shape.channels() as f64 * p_last * self.scale)
    }

    /// Encodes the blob, quantising alpha to i16 (per-tensor scale).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let shape = self.metric.kernel.shape();
        let amax = self
            .alpha
            .as_slice()
            .iter()
            .fold(0.0f64, |a, v| a.max(v.abs()))
            .max(1e-300);
        let a_scale = amax / 32767.0;
        let alpha: Vec<i16> = self
            .alpha
            .as_slice()
            .iter()
            .map(|v| (v / a_scale).round() as i16)
            .collect();
        let bits = self.pixel_bits;
        let per = shape.pixels();
        let img_bytes = blob::image_bytes(bits, per).context("pixel bits")?;
        let mut centres = vec![0u8; self.centres.len() * img_bytes];
        for (img, out) in self
            .centres
            .pixels
            .chunks_exact(per)
            .zip(centres.chunks_exact_mut(img_bytes))
        {
            let values: Vec<u8> = img
                .iter()
                .map(|v| match bits {
                    4 => blob::pixel_to_4bit(to_u8(*v)),
                    _ => to_u8(*v),
                })
                .collect();
            blob::pack_pixels(bits, &values, out).context("packing centres")?;
        }
        let names: Vec<&str> = self.class_names.iter().map(String::as_str).collect();
        let parts = BlobParts {
            channels: u16::try_from(shape.channels())?,
            height: u16::try_from(shape.height())?,
            width: u16::try_from(shape.width())?,
            depth: u8::try_from(shape.depth())?,
            pixel_bits: bits,
            rank: u8::try_from(self.metric.w.len() / shape.patch_dim())?,
            kind: match self.metric.kernel.kind() {
                KernelKind::Ntk => BlobKind::Ntk,
                KernelKind::Nngp => BlobKind::Nngp,
            },
            resize: self.resize.to_core(),
            u_mult: self.metric.u_mult,
            alpha_scale: self.alpha_scale(a_scale) as f32,
            expected_accuracy_bp: self
                .expected_accuracy
                .map_or(0, |a| (a * 10_000.0).round() as u16),
            centre_count: u16::try_from(self.centres.len())?,
            w: &self.metric.w,
            centres: &centres,
            alpha: &alpha,
            class_names: &names,
        };
        let len = blob::encoded_len(&parts).context("blob size")?;
        let mut out = vec![0u8; len];
        blob::encode(&parts, &mut out).context("encoding the blob")?;
        Ok(out)
    }
}

/// Exact blob size of `m` centres at `bits` and `rank` for `model`,
/// without building anything (the core computes it from dimensions).
pub fn blob_bytes(model: &Model, m: usize, rank: usize, bits: u8) -> Result<usize> {
    let dims = model.dims();
    let names: Vec<&str> = model.class_names().iter().map(String::as_str).collect();
    blob::encoded_len_for(
        blob::Sizes {
            channels: u16::try_from(dims.channels)?,
            height: u16::try_from(dims.height)?,
            width: u16::try_from(dims.width)?,
            pixel_bits: bits,
            rank: u8::try_from(rank)?,
            centre_count: u16::try_from(m)?,
        },
        &names,
    )
    .context("blob size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_pixels_are_what_the_device_stores() {
        let px = [0.0, 1.0, 0.5, 0.2, 7.0 / 255.0];
        assert_eq!(
            quantise_pixels(&px, 8),
            [0.0, 1.0, 128.0 / 255.0, 51.0 / 255.0, 7.0 / 255.0]
        );
        // 4-bit: round(15 v) / 15, the device's 17 v of 255.
        assert_eq!(
            quantise_pixels(&px, 4),
            [0.0, 1.0, 8.0 / 15.0, 3.0 / 15.0, 0.0]
        );
        assert_eq!([to_u8(-1.0), to_u8(0.5), to_u8(2.0)], [0, 128, 255]);
    }
}
