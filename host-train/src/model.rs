//! The host model file: everything needed to predict with a trained
//! ConvRFM (metric, training images, alpha, depth, scale, lambda, class
//! names, image shape), versioned and written atomically.
//!
//! Layout: the 8-byte magic `CONVRFM\0`, a little-endian `u32` format
//! version, then the [`Model`] encoded with postcard (serde). Loading checks
//! the magic, the version and every size before the model is used.
//! (The compact, checksummed blob for microcontrollers is a different
//! format, made by `convrfm export`.)

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use convrfm_core::Shape;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::data::{Images, LabelledImages};
use crate::kernel::{Kernel, KernelKind, Metric};
use crate::progress::Progress;
use crate::real::Real;
use crate::rfm::{IterationReport, Precision, TrainParams, argmax_rows, scores, share_correct};
use crate::train_set::TrainSet;

const MAGIC: &[u8; 8] = b"CONVRFM\0";
/// Version of the host model format written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// A trained ConvRFM predictor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Model {
    /// Image channels.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Kernel depth.
    pub depth: usize,
    /// NTK or NNGP.
    pub kind: KernelKind,
    /// Float type the kernel is evaluated in.
    pub precision: Precision,
    /// Learned patch metric `S`.
    pub metric: Metric,
    /// The kernel is divided by this (max of `K(X, X)` at fit time).
    pub scale: f64,
    /// Ridge used for `alpha`.
    pub lambda: f64,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    /// Training images, `n x c*H*W`.
    pub train_images: Vec<f32>,
    /// Training labels.
    pub train_labels: Vec<u8>,
    /// `n x classes`, row-major.
    pub alpha: Vec<f64>,
    /// Per-iteration history of the training run.
    pub history: Vec<IterationReport>,
}

impl Model {
    /// Assembles a model from a finished fit on `data`.
    pub fn new(
        shape: Shape,
        params: &TrainParams,
        metric: Metric,
        scale: f64,
        lambda: f64,
        data: &LabelledImages,
        alpha: Vec<f64>,
    ) -> Self {
        Self {
            channels: shape.channels(),
            height: shape.height(),
            width: shape.width(),
            depth: shape.depth(),
            kind: params.kind,
            precision: params.precision,
            metric,
            scale,
            lambda,
            class_names: data.class_names.clone(),
            train_images: data.images.pixels.clone(),
            train_labels: data.labels.clone(),
            alpha,
            history: Vec::new(),
        }
    }

    /// The training images and labels the model holds.
    pub fn training_data(&self) -> LabelledImages {
        LabelledImages {
            images: Images {
                channels: self.channels,
                height: self.height,
                width: self.width,
                pixels: self.train_images.clone(),
            },
            labels: self.train_labels.clone(),
            class_names: self.class_names.clone(),
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// Image shape and kernel depth.
    pub fn shape(&self) -> Result<Shape> {
        Shape::new(self.channels, self.height, self.width, self.depth)
            .map_err(|e| anyhow::anyhow!("model shape: {e}"))
    }

    /// The model's kernel.
    pub fn kernel(&self) -> Result<Kernel> {
        Ok(Kernel::new(self.shape()?, self.kind, self.metric.clone()))
    }

    /// Class scores (`m x classes`, row-major) for `images`.
    pub fn scores(&self, images: &Images, progress: Progress) -> Result<Vec<f64>> {
        ensure!(
            (images.channels, images.height, images.width)
                == (self.channels, self.height, self.width),
            "images are {}x{}x{}, the model expects {}x{}x{}",
            images.channels,
            images.height,
            images.width,
            self.channels,
            self.height,
            self.width
        );
        let kernel = self.kernel()?;
        let mut k = match self.precision {
            Precision::F32 => self.cross::<f32>(&kernel, images, progress),
            Precision::F64 => self.cross::<f64>(&kernel, images, progress),
        };
        k.iter_mut().for_each(|v| *v /= self.scale);
        Ok(scores(&k, &self.alpha, self.classes()))
    }

    fn cross<R: Real>(&self, kernel: &Kernel, images: &Images, progress: Progress) -> Vec<f64> {
        let set = TrainSet::<R>::new(kernel, &self.train_images);
        let bar = progress.bar("Kernel", (images.len() * set.len()) as u64);
        let k = set.cross(&images.pixels, &bar);
        bar.finish_and_clear();
        k
    }

    /// Predicted class of each image.
    pub fn predict(&self, images: &Images, progress: Progress) -> Result<Vec<usize>> {
        Ok(argmax_rows(&self.scores(images, progress)?, self.classes()))
    }

    /// Share of `data` predicted right.
    pub fn accuracy(&self, data: &LabelledImages, progress: Progress) -> Result<f64> {
        Ok(share_correct(
            self.predict(&data.images, progress)?,
            &data.labels,
        ))
    }

    /// Writes the model to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let body = postcard::to_stdvec(self).context("encoding the model")?;
        write_atomic(path, |w: &mut dyn Write| {
            w.write_all(MAGIC)?;
            w.write_all(&FORMAT_VERSION.to_le_bytes())?;
            w.write_all(&body)
        })
        .with_context(|| format!("writing model {}", path.display()))
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("model {}", path.display()))
    }

    /// Decodes and validates a model from the bytes of a model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        ensure!(
            bytes.len() >= 12 && &bytes[..8] == MAGIC,
            "not a convrfm model file (bad magic; blobs made by `convrfm export` are read with --blob)"
        );
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        ensure!(
            version == FORMAT_VERSION,
            "model format version {version}, this build reads version {FORMAT_VERSION}"
        );
        let model: Self =
            postcard::from_bytes(&bytes[12..]).context("corrupt or truncated model")?;
        model.validate()?;
        Ok(model)
    }

    fn validate(&self) -> Result<()> {
        let shape = self.shape()?;
        let n = self.train_labels.len();
        let classes = self.classes();
        ensure!(classes >= 2, "model has {classes} classes");
        ensure!(n >= 1, "model has no training images");
        ensure!(
            self.metric.dim() == shape.patch_dim(),
            "metric is {0}x{0}, patches have {1} values",
            self.metric.dim(),
            shape.patch_dim()
        );
        ensure!(
            self.train_images.len() == n * shape.pixels(),
            "{} pixel values for {n} images of {} pixels",
            self.train_images.len(),
            shape.pixels()
        );
        ensure!(
            self.alpha.len() == n * classes,
            "alpha has {} values, expected {n} x {classes}",
            self.alpha.len()
        );
        if let Some(&l) = self
            .train_labels
            .iter()
            .find(|&&l| usize::from(l) >= classes)
        {
            bail!("training label {l} out of range for {classes} classes");
        }
        ensure!(
            self.scale.is_finite() && self.scale > 0.0,
            "kernel scale {} is not positive",
            self.scale
        );
        if let Some(i) = self.alpha.iter().position(|v| !v.is_finite()) {
            bail!("alpha[{i}] is not finite");
        }
        if let Some(i) = self.train_images.iter().position(|v| !v.is_finite()) {
            bail!("training pixel {i} is not finite");
        }
        Ok(())
    }
}
