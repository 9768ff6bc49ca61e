//! A trained ConvRFM predictor: the training images it holds, the learned
//! metric, alpha, kernel depth, scale and, for Deep ConvRFM, the feature
//! layers. Its file format is [`super::model_file`].

use anyhow::{Context, Result, ensure};
use convrfm_core::Shape;

use super::features::{ConvLayer, featurise};
use super::readout::{argmax_rows, scores, share_correct};
use crate::data::{ImageDims, Images, LabelledImages, PixelType, ResizeFilter};
use crate::kernel::{Kernel, KernelBlocks, KernelKind, Metric, Precision, Real};
use crate::matrix::Matrix;
use crate::output::Progress;

/// What one ConvRFM iteration chose and scored, as a model keeps it (for
/// the accuracy chart of `convrfm inspect`).
#[derive(Clone, Debug, PartialEq)]
pub struct IterationRecord {
    /// 1-based Deep ConvRFM layer (1 for plain ConvRFM).
    pub layer: usize,
    /// 0-based iteration; 0 is the plain convolutional kernel.
    pub iteration: usize,
    /// The ridge the iteration chose.
    pub lambda: f64,
    /// Its accuracy on training data under the run's selection (held-out
    /// images, leave-one-out or k-fold; standard protocol).
    pub selection_accuracy: Option<f64>,
    /// Its test accuracy, when a test set was given.
    pub test_accuracy: Option<f64>,
}

/// A trained ConvRFM predictor.
///
/// Input images pass through `features` (empty for single-layer ConvRFM)
/// before the kernel; training images are kept as input images, so the
/// file stays small and the features are recomputed when needed.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Training input images, labels and class names.
    pub train: LabelledImages,
    /// Deep ConvRFM feature layers, applied in order before the kernel.
    pub features: Vec<ConvLayer>,
    /// Patch side `Q` of the kernel (and of every feature layer's filters).
    pub patch: usize,
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
    /// `n x classes`.
    pub alpha: Matrix,
    /// Per-iteration record of the training run.
    pub history: Vec<IterationRecord>,
    /// How a picture of another size is resized to the model's (recorded
    /// here and in the blob; applied by every command that reads pictures).
    pub resize: ResizeFilter,
}

impl Model {
    /// The shape of the input images.
    pub fn dims(&self) -> ImageDims {
        self.train.images.dims
    }

    /// The pixel type inputs must have.
    pub fn pixel_type(&self) -> PixelType {
        self.train.images.pixel_type
    }

    /// The training images (as input images) and labels the model holds.
    pub fn training_data(&self) -> &LabelledImages {
        &self.train
    }

    /// Class names, indexed by label.
    pub fn class_names(&self) -> &[String] {
        &self.train.class_names
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.train.class_names.len()
    }

    /// The shapes of the images entering each feature layer, then of the
    /// kernel's input: one entry more than there are layers.
    pub fn feature_dims(&self) -> Result<Vec<ImageDims>> {
        let mut dims = vec![self.dims()];
        for (l, layer) in self.features.iter().enumerate() {
            ensure!(
                layer.side() == self.patch,
                "feature layer {} has {s}x{s} filters, the kernel {p}x{p} patches",
                l + 1,
                s = layer.side(),
                p = self.patch
            );
            let next = layer
                .output_dims(dims[dims.len() - 1])
                .with_context(|| format!("feature layer {} on {} images", l + 1, self.dims()))?;
            dims.push(next);
        }
        Ok(dims)
    }

    /// The kernel's shape: the image shape after the feature layers, and
    /// the kernel depth.
    pub fn shape(&self) -> Result<Shape> {
        let dims = self.feature_dims()?;
        let d = dims[dims.len() - 1];
        kernel_shape(d, self.patch, self.depth)
    }

    /// Checks `images` are what the model was trained on: same shape and
    /// pixel type.
    pub fn check_inputs(&self, images: &Images) -> Result<()> {
        images.ensure_like(
            self.dims(),
            self.pixel_type(),
            "images",
            "the model expects",
        )
    }

    /// The model's kernel.
    pub fn kernel(&self) -> Result<Kernel> {
        Ok(Kernel::new(self.shape()?, self.kind, self.metric.clone()))
    }

    /// Class scores (`m x classes`) for `images`.
    pub fn scores(&self, images: &Images, progress: Progress) -> Result<Matrix> {
        self.check_inputs(images)?;
        let kernel = self.kernel()?;
        let train = featurise(&self.features, &self.train.images)?;
        let queries = featurise(&self.features, images)?;
        let mut k = match self.precision {
            Precision::F32 => cross::<f32>(&kernel, &train, &queries, progress),
            Precision::F64 => cross::<f64>(&kernel, &train, &queries, progress),
        };
        k.divide(self.scale);
        Ok(scores(&k, &self.alpha))
    }

    /// Predicted class of each image.
    pub fn predict(&self, images: &Images, progress: Progress) -> Result<Vec<usize>> {
        Ok(argmax_rows(&self.scores(images, progress)?))
    }

    /// Share of `data` predicted right.
    pub fn accuracy(&self, data: &LabelledImages, progress: Progress) -> Result<f64> {
        Ok(share_correct(
            self.predict(&data.images, progress)?,
            &data.labels,
        ))
    }
}

/// The kernel's shape for `dims` images, or an error that names the
/// images, patch side and depth.
pub(crate) fn kernel_shape(dims: ImageDims, patch: usize, depth: usize) -> Result<Shape> {
    Shape::with_patch(dims.channels, dims.height, dims.width, patch, depth)
        .with_context(|| format!("{dims} images, patch size {patch}, depth {depth}"))
}

/// `K(queries, train)` of feature-space images, `m x n`.
fn cross<R: Real>(kernel: &Kernel, train: &Images, queries: &Images, progress: Progress) -> Matrix {
    let blocks = KernelBlocks::<R>::new(kernel, &train.pixels);
    let phase = progress.bar("Kernel", (queries.len() * blocks.len()) as u64);
    blocks.cross(&queries.pixels, &phase)
}
