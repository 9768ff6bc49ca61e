//! The in-memory data the pipeline runs on: image sets with their shape
//! and pixel type, and labelled sets. Loaders (`files`, `fashion_mnist`,
//! `synth`) validate what they build, so later stages can index freely.

use std::fmt;

use anyhow::ensure;
use convrfm_core::Shape;
use serde::{Deserialize, Serialize};

/// How pixels were stored in the source file; recorded in models, because
/// a model trained on one kind of pixel is meaningless on the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelType {
    /// Unsigned bytes (IDX type `0x08`), scaled to `[0, 1]` by 1/255.
    U8,
    /// 32-bit floats (IDX type `0x0D`), kept as stored.
    F32,
}

impl PixelType {
    /// A stored byte as a pixel value: `b / 255`.
    pub fn from_byte(b: u8) -> f32 {
        f32::from(b) / 255.0
    }

    /// A pixel value as the byte it was read from: `round(255 v)`,
    /// clamped to `[0, 255]` (exact for values made by [`Self::from_byte`]).
    pub fn to_byte(v: f32) -> u8 {
        (v * 255.0).round().clamp(0.0, 255.0) as u8
    }
}

impl fmt::Display for PixelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelType::U8 => "u8 pixels (scaled to [0, 1])",
            PixelType::F32 => "f32 pixels",
        })
    }
}

/// Channels, height and width: the shape all images of a set share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageDims {
    /// Channels per image.
    pub channels: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
}

impl ImageDims {
    /// The image part of a kernel shape.
    pub fn of(shape: &Shape) -> Self {
        Self {
            channels: shape.channels(),
            height: shape.height(),
            width: shape.width(),
        }
    }

    /// `channels * height * width`.
    pub fn pixels(self) -> usize {
        self.channels * self.height * self.width
    }

    /// The one shape check: `what` (having these dims) must have
    /// `expected`, the dims of `against`.
    pub fn ensure_same(self, expected: ImageDims, what: &str, against: &str) -> anyhow::Result<()> {
        ensure!(self == expected, "{what} are {self}, {against} {expected}");
        Ok(())
    }
}

impl fmt::Display for ImageDims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// A set of equally sized images.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    /// The shape of every image.
    pub dims: ImageDims,
    /// Pixel type of the source.
    pub pixel_type: PixelType,
    /// All pixels, `len() * dims.pixels()`, image after image, each image
    /// channel-major (channel, row, column). Pixels read as bytes are
    /// scaled to `[0, 1]` by 1/255; float pixels are kept as stored.
    pub pixels: Vec<f32>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels
            .len()
            .checked_div(self.pixels_per_image())
            .unwrap_or(0)
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `channels * height * width`.
    pub fn pixels_per_image(&self) -> usize {
        self.dims.pixels()
    }

    /// The shape and pixel-type check every consumer of images makes:
    /// these images (`what`) must match `dims` and `pixel_type`, those of
    /// `against`.
    pub fn ensure_like(
        &self,
        dims: ImageDims,
        pixel_type: PixelType,
        what: &str,
        against: &str,
    ) -> anyhow::Result<()> {
        self.dims.ensure_same(dims, what, against)?;
        ensure!(
            self.pixel_type == pixel_type,
            "{what} have {}, {against} {pixel_type}",
            self.pixel_type
        );
        Ok(())
    }

    /// The pixels of image `i`, channel-major.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.pixels_per_image();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The images at `idx`, in that order (repeats allowed).
    ///
    /// # Panics
    /// If an index is out of range, like slice indexing.
    pub fn select(&self, idx: &[usize]) -> Images {
        let mut pixels = Vec::with_capacity(idx.len() * self.pixels_per_image());
        for &i in idx {
            pixels.extend_from_slice(self.image(i));
        }
        Images {
            dims: self.dims,
            pixel_type: self.pixel_type,
            pixels,
        }
    }
}

/// Images with one class label each.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledImages {
    /// The images.
    pub images: Images,
    /// One label per image, each below `class_names.len()`.
    pub labels: Vec<u8>,
    /// Name of each class, indexed by label.
    pub class_names: Vec<String>,
}

impl LabelledImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes (not all need occur in a subset).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The classes of a set whose class count was inferred from its labels
    /// (`"0"` to `"k-1"`, `k` one more than the largest label): every class
    /// must have an image, or one stray label would make a set of 256
    /// classes; `declared` states the count instead (labels must be below
    /// it, and classes without images are then kept on purpose).
    pub fn with_class_count(mut self, declared: Option<usize>) -> anyhow::Result<Self> {
        if let Some(k) = declared {
            anyhow::ensure!(
                (2..=256).contains(&k),
                "--classes {k}: between 2 and 256 classes (labels are bytes)"
            );
            self.ensure_labels_below(k, "--classes")?;
            self.class_names = (0..k).map(|c| c.to_string()).collect();
            return Ok(self);
        }
        let mut seen = vec![false; self.num_classes()];
        for &l in &self.labels {
            if let Some(s) = seen.get_mut(usize::from(l)) {
                *s = true;
            }
        }
        let missing: Vec<usize> = (0..seen.len()).filter(|&c| !seen[c]).collect();
        if let Some(&first) = missing.first() {
            anyhow::bail!(
                "labels go up to {}, but {} of those {} classes have no image (the first: \
                 class {first}); a stray label? give --classes N to state the class count",
                seen.len() - 1,
                missing.len(),
                seen.len()
            );
        }
        Ok(self)
    }

    /// Checks every label names one of `classes` classes (those of
    /// `against`, e.g. "the model").
    pub fn ensure_labels_below(&self, classes: usize, against: &str) -> anyhow::Result<()> {
        match self.labels.iter().position(|&l| usize::from(l) >= classes) {
            Some(i) => anyhow::bail!(
                "label {} of image {i} is out of range: {against} has {classes} classes",
                self.labels[i]
            ),
            None => Ok(()),
        }
    }

    /// The images and labels at `idx`, in that order; the classes stay the
    /// same even if some no longer occur.
    ///
    /// # Panics
    /// If an index is out of range, like slice indexing.
    pub fn select(&self, idx: &[usize]) -> LabelledImages {
        LabelledImages {
            images: self.images.select(idx),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        }
    }

    /// `n` images spread over the classes in proportion to their counts
    /// (largest remainders first, ties to the lower class), the first of
    /// each class, in set order: a limit for sets stored class by class
    /// (picture folders), where the first `n` would be one class.
    pub fn take_spread(&self, n: usize) -> LabelledImages {
        let total = self.len();
        if n >= total {
            return self.clone();
        }
        let mut counts = vec![0usize; 256];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        let mut quota: Vec<usize> = counts.iter().map(|&c| c * n / total).collect();
        let mut order: Vec<usize> = (0..256).filter(|&c| counts[c] > 0).collect();
        // Largest remainder c * n mod total first.
        order.sort_by_key(|&c| std::cmp::Reverse(counts[c] * n % total));
        let short = n - quota.iter().sum::<usize>();
        for &c in order.iter().take(short) {
            quota[c] += 1;
        }
        let idx: Vec<usize> = (0..total)
            .filter(|&i| {
                let q = &mut quota[usize::from(self.labels[i])];
                let keep = *q > 0;
                *q = q.saturating_sub(1);
                keep
            })
            .collect();
        self.select(&idx)
    }

    /// The first `n` images (all of them if there are fewer).
    pub fn take(&self, n: usize) -> LabelledImages {
        let n = n.min(self.len());
        LabelledImages {
            images: Images {
                dims: ImageDims {
                    channels: self.images.dims.channels,
                    height: self.images.dims.height,
                    width: self.images.dims.width,
                },
                pixel_type: self.images.pixel_type,
                pixels: self.images.pixels[..n * self.images.pixels_per_image()].to_vec(),
            },
            labels: self.labels[..n].to_vec(),
            class_names: self.class_names.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_take() {
        let set = LabelledImages {
            images: Images {
                dims: ImageDims {
                    channels: 1,
                    height: 1,
                    width: 2,
                },
                pixel_type: PixelType::F32,
                pixels: vec![0.0, 0.1, 1.0, 1.1, 2.0, 2.1],
            },
            labels: vec![0, 1, 2],
            class_names: vec!["a".into(), "b".into(), "c".into()],
        };
        let s = set.select(&[2, 0, 2]);
        assert_eq!(s.images.pixels, [2.0, 2.1, 0.0, 0.1, 2.0, 2.1]);
        assert_eq!(s.labels, [2, 0, 2]);
        assert_eq!(s.num_classes(), 3);
        let t = set.take(2);
        assert_eq!(t.images.pixels, [0.0, 0.1, 1.0, 1.1]);
        assert_eq!(t.labels, [0, 1]);
        assert_eq!(set.take(10), set);
        assert!(set.take(0).is_empty() && set.take(0).images.is_empty());
    }

    #[test]
    fn take_spread_keeps_class_shares() {
        let labels: Vec<u8> = [vec![0; 6], vec![1; 3], vec![2; 1]].concat();
        let set = LabelledImages {
            images: Images {
                dims: ImageDims {
                    channels: 1,
                    height: 1,
                    width: 1,
                },
                pixel_type: PixelType::F32,
                pixels: (0..10).map(|v| v as f32).collect(),
            },
            labels,
            class_names: vec!["a".into(), "b".into(), "c".into()],
        };
        let s = set.take_spread(5);
        assert_eq!(s.labels, [0, 0, 0, 1, 1]);
        assert_eq!(s.images.pixels, [0.0, 1.0, 2.0, 6.0, 7.0]);
        assert_eq!(set.take_spread(9).len(), 9);
        assert_eq!(set.take_spread(20), set);
        assert_eq!(set.take_spread(1).labels, [0]);
    }
}
