//! The host model file: everything needed to predict with a trained
//! ConvRFM (metric, training images, alpha, depth, scale, lambda, class
//! names, image shape and pixel type, and for Deep ConvRFM the feature
//! layers), versioned and written atomically.
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
use convrfm_core::{PATCH, Shape};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::data::{Images, LabelledImages, PixelType};
use crate::features::{ConvLayer, featurise};
use crate::kernel::{Kernel, KernelKind, Metric};
use crate::progress::Progress;
use crate::real::Real;
use crate::rfm::{IterationReport, Precision, TrainParams, argmax_rows, scores, share_correct};
use crate::train_set::TrainSet;

const MAGIC: &[u8; 8] = b"CONVRFM\0";
/// Version of the host model format written by this build.
pub const FORMAT_VERSION: u32 = 2;

/// A trained ConvRFM predictor.
///
/// Input images pass through `features` (empty for single-layer ConvRFM)
/// before the kernel; training images are stored as input images, so the
/// file stays small and the features are recomputed on load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Model {
    /// Input image channels.
    pub channels: usize,
    /// Input image height.
    pub height: usize,
    /// Input image width.
    pub width: usize,
    /// Pixel type of the training images; inputs must have the same.
    pub pixel_type: PixelType,
    /// Deep ConvRFM feature layers, applied in order before the kernel.
    pub features: Vec<ConvLayer>,
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
    /// Training input images, `n x c*H*W`.
    pub train_images: Vec<f32>,
    /// Training labels.
    pub train_labels: Vec<u8>,
    /// `n x classes`, row-major.
    pub alpha: Vec<f64>,
    /// Per-iteration history of the training run.
    pub history: Vec<IterationReport>,
}

impl Model {
    /// Assembles a model from a finished fit on `data` (input images) seen
    /// through `features`, with a kernel of `depth`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        data: &LabelledImages,
        features: Vec<ConvLayer>,
        depth: usize,
        params: &TrainParams,
        metric: Metric,
        scale: f64,
        lambda: f64,
        alpha: Vec<f64>,
    ) -> Self {
        Self {
            channels: data.images.channels,
            height: data.images.height,
            width: data.images.width,
            pixel_type: data.images.pixel_type,
            features,
            depth,
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

    /// The training images (as input images) and labels the model holds.
    pub fn training_data(&self) -> LabelledImages {
        LabelledImages {
            images: Images {
                channels: self.channels,
                height: self.height,
                width: self.width,
                pixel_type: self.pixel_type,
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

    /// `(channels, height, width)` of the images entering each feature
    /// layer, then of the kernel's input: one entry more than there are
    /// layers.
    pub fn feature_dims(&self) -> Result<Vec<(usize, usize, usize)>> {
        let mut dims = vec![(self.channels, self.height, self.width)];
        for layer in &self.features {
            let (c, h, w) = dims[dims.len() - 1];
            ensure!(
                layer.in_channels() == c && h >= PATCH && w >= PATCH,
                "feature layers do not fit {}x{}x{} images",
                self.channels,
                self.height,
                self.width
            );
            dims.push((layer.filters(), h - PATCH + 1, w - PATCH + 1));
        }
        Ok(dims)
    }

    /// The kernel's shape: the image shape after the feature layers, and
    /// the kernel depth.
    pub fn shape(&self) -> Result<Shape> {
        let dims = self.feature_dims()?;
        let (c, h, w) = dims[dims.len() - 1];
        Shape::new(c, h, w, self.depth).map_err(|e| anyhow::anyhow!("model shape: {e}"))
    }

    /// Checks `images` are what the model was trained on: same shape and
    /// pixel type.
    pub fn check_inputs(&self, images: &Images) -> Result<()> {
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
        ensure!(
            images.pixel_type == self.pixel_type,
            "images have {}, the model was trained on {}",
            images.pixel_type,
            self.pixel_type
        );
        Ok(())
    }

    /// The model's kernel.
    pub fn kernel(&self) -> Result<Kernel> {
        Ok(Kernel::new(self.shape()?, self.kind, self.metric.clone()))
    }

    /// Class scores (`m x classes`, row-major) for `images`.
    pub fn scores(&self, images: &Images, progress: Progress) -> Result<Vec<f64>> {
        self.check_inputs(images)?;
        let kernel = self.kernel()?;
        let train = featurise(&self.features, &self.training_data().images)?;
        let queries = featurise(&self.features, images)?;
        let mut k = match self.precision {
            Precision::F32 => cross::<f32>(&kernel, &train, &queries, progress),
            Precision::F64 => cross::<f64>(&kernel, &train, &queries, progress),
        };
        k.iter_mut().for_each(|v| *v /= self.scale);
        Ok(scores(&k, &self.alpha, self.classes()))
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
        for (l, layer) in self.features.iter().enumerate() {
            layer
                .validate()
                .with_context(|| format!("feature layer {}", l + 1))?;
        }
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
        let pixels = self.channels * self.height * self.width;
        ensure!(
            self.train_images.len() == n * pixels,
            "{} pixel values for {n} images of {pixels} pixels",
            self.train_images.len(),
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

/// `K(queries, train)` of feature-space images, `m x n` row-major.
fn cross<R: Real>(
    kernel: &Kernel,
    train: &Images,
    queries: &Images,
    progress: Progress,
) -> Vec<f64> {
    let set = TrainSet::<R>::new(kernel, &train.pixels);
    let bar = progress.bar("Kernel", (queries.len() * set.len()) as u64);
    let k = set.cross(&queries.pixels, &bar);
    bar.finish_and_clear();
    k
}
