//! Deep ConvRFM's feature layers, built as the paper's authors build them.
//!
//! After ConvRFM converges on one layer, its learned patch metric
//! `S = M^{1/2}` becomes a `Q x Q` VALID convolution (`Q` the patch side)
//! with `k` filters
//! `W = Z S` (`Z` a `k x d` standard normal matrix, seeded): no bias, no
//! nonlinearity (the kernel holds the nonlinearity). Each filter's response
//! at a patch `P` is `z_i . (P S)`, a random projection of the transformed
//! patch the kernel saw, so the next layer's ConvRFM starts from the
//! features the previous one learned.

use std::borrow::Cow;

use anyhow::{Result, bail, ensure};
use faer::MatRef;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::data::{ImageDims, Images, PixelType};
use crate::kernel::{Metric, add_patch, extract_patch};

/// The sizes of a feature layer: input channels, filter side, filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Channels of the layer's input.
    pub in_channels: usize,
    /// Side of each (square) filter: the kernel's patch side.
    pub side: usize,
    /// Number of filters: the channels of the layer's output.
    pub filters: usize,
}

impl ConvShape {
    /// Values per filter: `in_channels * side * side`.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.side * self.side
    }
}

/// One `side x side` VALID convolution, `filters x (in_channels * side *
/// side)` weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvLayer {
    shape: ConvShape,
    /// Row `i` is filter `i` in patch order (channel, row, column).
    weights: Vec<f32>,
}

impl ConvLayer {
    /// `W = Z S` for a learned metric `S` on the layer's input patches,
    /// with `Z` drawn from ChaCha8 seeded by `seed`.
    pub fn from_metric(metric: &Metric, shape: ConvShape, seed: u64) -> Result<Self> {
        let ConvShape {
            in_channels,
            side,
            filters,
        } = shape;
        let d = shape.patch_dim();
        ensure!(
            metric.dim() == d,
            "a {0}x{0} metric does not act on {in_channels}-channel {side}x{side} patches \
             ({d} values)",
            metric.dim()
        );
        ensure!(filters >= 1, "a feature layer needs at least 1 filter");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z: Vec<f64> = (0..filters * d)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        let w = MatRef::from_row_major_slice(&z, filters, d)
            * MatRef::from_row_major_slice(metric.rows(), d, d);
        let weights = (0..filters * d)
            .map(|fk| w[(fk / d, fk % d)] as f32)
            .collect();
        Self::from_weights(shape, weights)
    }

    /// A layer from its weights (as stored in a model); checks the size and
    /// that every weight is finite.
    pub fn from_weights(shape: ConvShape, weights: Vec<f32>) -> Result<Self> {
        let layer = Self { shape, weights };
        layer.validate()?;
        Ok(layer)
    }

    /// Checks what [`ConvLayer::from_weights`] checks (for deserialised layers).
    pub fn validate(&self) -> Result<()> {
        let ConvShape {
            in_channels,
            side,
            filters,
        } = self.shape;
        ensure!(
            in_channels >= 1 && filters >= 1 && side % 2 == 1,
            "feature layer has {in_channels} input channels, {filters} filters of side {side} \
             (at least 1, 1 and an odd side are needed)"
        );
        // Checked here, so every later product of the sizes is bounded by
        // the weight count.
        let needed = in_channels
            .checked_mul(side)
            .and_then(|v| v.checked_mul(side))
            .and_then(|d| d.checked_mul(filters));
        ensure!(
            needed == Some(self.weights.len()),
            "feature layer has {} weights, {filters} filters of {in_channels}x{side}x{side} \
             values need {}",
            self.weights.len(),
            needed.map_or("more than can be addressed".into(), |n| n.to_string())
        );
        if let Some(i) = self.weights.iter().position(|w| !w.is_finite()) {
            let d = self.patch_dim();
            bail!(
                "feature layer weight {} of filter {} is not finite",
                i % d,
                i / d
            );
        }
        Ok(())
    }

    /// The layer's sizes.
    pub fn shape(&self) -> ConvShape {
        self.shape
    }

    /// Channels of the layer's input.
    pub fn in_channels(&self) -> usize {
        self.shape.in_channels
    }

    /// Side of each filter.
    pub fn side(&self) -> usize {
        self.shape.side
    }

    /// Number of filters: the channels of the layer's output.
    pub fn filters(&self) -> usize {
        self.shape.filters
    }

    /// All weights, filter after filter (as stored in a model file).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Values per filter: `in_channels * side * side`.
    pub fn patch_dim(&self) -> usize {
        self.shape.patch_dim()
    }

    /// The weights of filter `i` in patch order (channel, row, column).
    ///
    /// # Panics
    /// If `i >= self.filters()`, like slice indexing.
    pub fn filter(&self, i: usize) -> &[f32] {
        let d = self.patch_dim();
        &self.weights[i * d..(i + 1) * d]
    }

    /// The shape of this layer's output for `input` images, or why they do
    /// not fit.
    pub fn output_dims(&self, input: ImageDims) -> Result<ImageDims> {
        let side = self.side();
        ensure!(
            input.channels == self.in_channels(),
            "feature layer expects {}-channel images, got {} channels",
            self.in_channels(),
            input.channels
        );
        ensure!(
            input.height >= side && input.width >= side,
            "{}x{} images are smaller than a {side}x{side} filter",
            input.height,
            input.width
        );
        Ok(ImageDims {
            channels: self.filters(),
            height: input.height + 1 - side,
            width: input.width + 1 - side,
        })
    }

    /// The feature maps of `images`: `filters x (H-Q+1) x (W-Q+1)` per
    /// image, as f32 pixels.
    pub fn apply(&self, images: &Images) -> Result<Images> {
        let dims = self.output_dims(images.dims)?;
        let (oh, ow) = (dims.height, dims.width);
        let per_out = dims.channels * oh * ow;
        let mut pixels = vec![0.0f32; images.len() * per_out];
        let d = self.patch_dim();
        pixels
            .par_chunks_mut(per_out.max(1))
            .enumerate()
            .for_each(|(n, out)| {
                let image = images.image(n);
                let mut patch = vec![0.0f32; d];
                for i in 0..oh {
                    for j in 0..ow {
                        extract_patch(images.dims, self.side(), image, i, j, &mut patch);
                        for (f, weights) in self.weights.chunks_exact(d).enumerate() {
                            out[(f * oh + i) * ow + j] =
                                weights.iter().zip(&patch).map(|(a, b)| a * b).sum();
                        }
                    }
                }
            });
        Ok(Images {
            dims,
            pixel_type: PixelType::F32,
            pixels,
        })
    }

    /// The adjoint of [`ConvLayer::apply`] on one `height x width` input
    /// image: from the gradient with respect to the output maps
    /// (`filters x (height-Q+1) x (width-Q+1)`), the gradient with respect
    /// to the input pixels (`in_channels x height x width`).
    pub fn adjoint(&self, grad_out: &[f64], height: usize, width: usize) -> Vec<f64> {
        let side = self.side();
        let (oh, ow) = (
            height.saturating_sub(side - 1),
            width.saturating_sub(side - 1),
        );
        let d = self.patch_dim();
        let mut grad_in = vec![0.0; self.in_channels() * height * width];
        let mut patch = vec![0.0; d];
        for i in 0..oh {
            for j in 0..ow {
                // The patch's gradient: sum over filters of g_f w_f.
                patch.fill(0.0);
                for (f, weights) in self.weights.chunks_exact(d).enumerate() {
                    let g = grad_out[(f * oh + i) * ow + j];
                    for (p, &w) in patch.iter_mut().zip(weights) {
                        *p += g * f64::from(w);
                    }
                }
                add_patch(
                    ImageDims {
                        channels: self.in_channels(),
                        height,
                        width,
                    },
                    side,
                    &patch,
                    (i, j),
                    &mut grad_in,
                );
            }
        }
        grad_in
    }
}

/// `images` passed through every layer of `layers` in turn; borrowed, not
/// copied, when there is no layer (plain ConvRFM).
pub fn featurise<'a>(layers: &[ConvLayer], images: &'a Images) -> Result<Cow<'a, Images>> {
    let mut out = Cow::Borrowed(images);
    for (l, layer) in layers.iter().enumerate() {
        out = Cow::Owned(
            layer
                .apply(&out)
                .map_err(|e| e.context(format!("feature layer {}", l + 1)))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(in_channels: usize, side: usize, filters: usize) -> ConvShape {
        ConvShape {
            in_channels,
            side,
            filters,
        }
    }

    fn images(channels: usize, h: usize, w: usize, n: usize) -> Images {
        Images {
            dims: ImageDims {
                channels,
                height: h,
                width: w,
            },
            pixel_type: PixelType::F32,
            pixels: (0..n * channels * h * w)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
                .collect(),
        }
    }

    #[test]
    fn identity_metric_gives_the_gaussian_filters_and_a_valid_convolution() {
        let layer = ConvLayer::from_metric(&Metric::identity(18), conv(2, 3, 4), 5).expect("fits");
        assert_eq!(
            layer,
            ConvLayer::from_metric(&Metric::identity(18), conv(2, 3, 4), 5).expect("fits")
        );
        let (mean, sq) = layer.weights.iter().fold((0.0, 0.0), |(m, s), &w| {
            (m + f64::from(w), s + f64::from(w * w))
        });
        assert!((mean / 72.0).abs() < 0.4 && (sq / 72.0 - 1.0).abs() < 0.5);

        let x = images(2, 5, 6, 3);
        let y = layer.apply(&x).expect("applies");
        assert_eq!(
            (y.dims.channels, y.dims.height, y.dims.width, y.len()),
            (4, 3, 4, 3)
        );
        // Direct correlation sum for one output value.
        let (n, f, i, j) = (2, 3, 1, 2);
        let image = x.image(n);
        let mut want = 0.0f32;
        for ch in 0..2 {
            for a in 0..3 {
                for b in 0..3 {
                    want +=
                        layer.filter(f)[ch * 9 + a * 3 + b] * image[(ch * 5 + i + a) * 6 + j + b];
                }
            }
        }
        let got = y.image(n)[(f * 3 + i) * 4 + j];
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn adjoint_is_the_transpose_of_apply() {
        // <apply(x), y> = <x, adjoint(y)> for any x, y.
        for side in [1, 3, 5] {
            let layer =
                ConvLayer::from_metric(&Metric::identity(2 * side * side), conv(2, side, 3), 1)
                    .expect("fits");
            let x = images(2, 5, 6, 1);
            check_adjoint(&layer, &x);
        }
    }

    fn check_adjoint(layer: &ConvLayer, x: &Images) {
        let fx = layer.apply(x).expect("applies");
        let y: Vec<f64> = (0..fx.pixels.len()).map(|i| (i % 7) as f64 - 3.0).collect();
        let lhs: f64 = fx
            .pixels
            .iter()
            .zip(&y)
            .map(|(a, b)| f64::from(*a) * b)
            .sum();
        let aty = layer.adjoint(&y, x.dims.height, x.dims.width);
        let rhs: f64 = x
            .pixels
            .iter()
            .zip(&aty)
            .map(|(a, b)| f64::from(*a) * b)
            .sum();
        assert!(
            (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }

    #[test]
    fn filters_are_z_times_the_metric() {
        let d = 9;
        let rows: Vec<f64> = (0..d * d)
            .map(|i| if i % (d + 1) == 0 { 2.0 } else { 0.0 })
            .collect();
        let two = Metric::from_rows(d, rows).expect("ok");
        assert!(two.is_scaled_identity() && Metric::identity(d).is_scaled_identity());
        let mut off = two.rows().to_vec();
        off[1] = 0.1;
        assert!(!Metric::from_rows(d, off).expect("ok").is_scaled_identity());
        let scaled = ConvLayer::from_metric(&two, conv(1, 3, 3), 9).expect("fits");
        let plain = ConvLayer::from_metric(&Metric::identity(d), conv(1, 3, 3), 9).expect("fits");
        for (a, b) in scaled.weights.iter().zip(&plain.weights) {
            assert!((a - 2.0 * b).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_layers_are_refused() {
        let msg = ConvLayer::from_metric(&Metric::identity(9), conv(2, 3, 4), 0)
            .expect_err("dims")
            .to_string();
        assert!(msg.contains("2-channel 3x3 patches (18 values)"), "{msg}");
        assert!(ConvLayer::from_weights(conv(1, 3, 2), vec![0.0; 17]).is_err());
        let msg = ConvLayer::from_weights(conv(1, 3, 2), {
            let mut w = vec![0.0; 18];
            w[10] = f32::NAN;
            w
        })
        .expect_err("nan")
        .to_string();
        assert!(msg.contains("weight 1 of filter 1"), "{msg}");
        let layer = ConvLayer::from_metric(&Metric::identity(9), conv(1, 3, 2), 0).expect("ok");
        let msg = featurise(&[layer.clone(), layer], &images(1, 8, 8, 1))
            .expect_err("channels")
            .to_string();
        assert!(msg.contains("feature layer 2"), "{msg}");
    }
}
