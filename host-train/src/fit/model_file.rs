//! The host model file: a [`Model`] on disk, versioned, checksummed,
//! written atomically and validated field by field when read.
//!
//! Layout: the 8-byte magic `CONVRFM\0`, a little-endian `u32` format
//! version, the body (the private `ModelFile` types below, encoded with
//! postcard), then a little-endian CRC-32 (`convrfm_core::crc32`, the
//! blob's) of everything before it. The body has types of its own, tied to
//! [`FORMAT_VERSION`]: changing a training report or an in-memory type
//! cannot change the format unnoticed. Training images are stored in
//! their pixel type (one byte per pixel for `u8` data).
//!
//! Reading checks, in order: magic, version, CRC, that the body is exactly
//! the bytes before the CRC, then every field (`validate`), so a loaded
//! model never panics later. (The compact blob for microcontrollers is a
//! different format, made by `convrfm export`.)

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::features::{ConvLayer, ConvShape};
use super::linalg::symmetric_eigen;
use super::model::{IterationRecord, Model};
use crate::data::{ImageDims, Images, LabelledImages, PixelType, ResizeFilter};
use crate::kernel::{KernelKind, Metric, Precision};
use crate::matrix::Matrix;
use crate::output::write_atomic;

/// First 8 bytes of every model file.
pub const MAGIC: &[u8; 8] = b"CONVRFM\0";
/// Version of the host model format written and read by this build.
pub const FORMAT_VERSION: u32 = 5;
/// Magic and version.
const HEADER_LEN: usize = 12;
/// The CRC-32 trailer.
const CRC_LEN: usize = 4;

#[derive(Serialize, Deserialize)]
struct ModelFile {
    channels: u64,
    height: u64,
    width: u64,
    pixels: Pixels,
    labels: Vec<u8>,
    class_names: Vec<String>,
    features: Vec<FileConvLayer>,
    patch: u64,
    depth: u64,
    kind: FileKernelKind,
    precision: FilePrecision,
    metric: Vec<f64>,
    scale: f64,
    lambda: f64,
    alpha: Vec<f64>,
    history: Vec<FileIteration>,
    resize: FileResize,
}

/// [`ResizeFilter`], in the order of its blob codes.
#[derive(Serialize, Deserialize)]
enum FileResize {
    Nearest,
    Triangle,
    CatmullRom,
    Gaussian,
    Lanczos3,
}

/// Training pixels in the type they were read in.
#[derive(Serialize, Deserialize)]
enum Pixels {
    /// Bytes, `round(255 v)` of pixels in `[0, 1]`.
    U8(Vec<u8>),
    F32(Vec<f32>),
}

#[derive(Serialize, Deserialize)]
struct FileConvLayer {
    in_channels: u64,
    filters: u64,
    weights: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
enum FileKernelKind {
    Ntk,
    Nngp,
}

#[derive(Serialize, Deserialize)]
enum FilePrecision {
    F32,
    F64,
}

#[derive(Serialize, Deserialize)]
struct FileIteration {
    layer: u64,
    iteration: u64,
    lambda: f64,
    selection_accuracy: Option<f64>,
    test_accuracy: Option<f64>,
}

impl Model {
    /// The bytes of the model file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let im = &self.train.images;
        let wide = |v: usize| v as u64;
        let file = ModelFile {
            channels: wide(im.dims.channels),
            height: wide(im.dims.height),
            width: wide(im.dims.width),
            pixels: match im.pixel_type {
                PixelType::U8 => {
                    Pixels::U8(im.pixels.iter().map(|&v| PixelType::to_byte(v)).collect())
                }
                PixelType::F32 => Pixels::F32(im.pixels.clone()),
            },
            labels: self.train.labels.clone(),
            class_names: self.train.class_names.clone(),
            features: self
                .features
                .iter()
                .map(|l| FileConvLayer {
                    in_channels: wide(l.in_channels()),
                    filters: wide(l.filters()),
                    weights: l.weights().to_vec(),
                })
                .collect(),
            patch: wide(self.patch),
            depth: wide(self.depth),
            kind: match self.kind {
                KernelKind::Ntk => FileKernelKind::Ntk,
                KernelKind::Nngp => FileKernelKind::Nngp,
            },
            precision: match self.precision {
                Precision::F32 => FilePrecision::F32,
                Precision::F64 => FilePrecision::F64,
            },
            metric: self.metric.rows().to_vec(),
            scale: self.scale,
            lambda: self.lambda,
            alpha: self.alpha.as_slice().to_vec(),
            history: self
                .history
                .iter()
                .map(|r| FileIteration {
                    layer: wide(r.layer),
                    iteration: wide(r.iteration),
                    lambda: r.lambda,
                    selection_accuracy: r.selection_accuracy,
                    test_accuracy: r.test_accuracy,
                })
                .collect(),
            resize: match self.resize {
                ResizeFilter::Nearest => FileResize::Nearest,
                ResizeFilter::Triangle => FileResize::Triangle,
                ResizeFilter::CatmullRom => FileResize::CatmullRom,
                ResizeFilter::Gaussian => FileResize::Gaussian,
                ResizeFilter::Lanczos3 => FileResize::Lanczos3,
            },
        };
        framed(&file)
    }

    /// Writes the model to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, |w: &mut dyn Write| w.write_all(&bytes))
            .with_context(|| format!("writing model {}", path.display()))
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("model {}", path.display()))
    }

    /// Decodes and validates a model from the bytes of a model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (Some(magic), Some(version)) = (bytes.get(..8), bytes.get(8..HEADER_LEN)) else {
            bail!("not a convrfm model file: {} bytes, too short", bytes.len());
        };
        if magic != MAGIC {
            if magic == convrfm_core::blob::MAGIC {
                bail!(
                    "this is a device blob made by `convrfm export`, not a model file: \
                     give it with --blob"
                );
            }
            bail!("not a convrfm model file (bad magic)");
        }
        let version = u32::from_le_bytes(version.try_into().context("header")?);
        ensure!(
            version == FORMAT_VERSION,
            "model format version {version}, this build reads version {FORMAT_VERSION} only \
             (re-train the model with this build)"
        );
        ensure!(
            bytes.len() >= HEADER_LEN + CRC_LEN,
            "truncated model file: {} bytes",
            bytes.len()
        );
        let (covered, stored) = bytes.split_at(bytes.len() - CRC_LEN);
        let stored = u32::from_le_bytes(stored.try_into().context("CRC")?);
        let computed = convrfm_core::crc32(covered);
        ensure!(
            stored == computed,
            "CRC-32 mismatch (stored {stored:08x}, computed {computed:08x}): the file is \
             corrupt, truncated or has bytes appended"
        );
        let (file, rest): (ModelFile, _) =
            postcard::take_from_bytes(&covered[HEADER_LEN..]).context("corrupt model body")?;
        ensure!(
            rest.is_empty(),
            "{} bytes after the model body, before the CRC",
            rest.len()
        );
        let model = from_file(file)?;
        validate(&model)?;
        Ok(model)
    }
}

/// Magic, version, the encoded body and its CRC-32.
fn framed(file: &ModelFile) -> Result<Vec<u8>> {
    let mut out = Vec::from(MAGIC.as_slice());
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    postcard::to_io(file, &mut out).context("encoding the model")?;
    let crc = convrfm_core::crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The in-memory model of a decoded body: sizes converted, layers and
/// metric built by their checked constructors.
fn from_file(f: ModelFile) -> Result<Model> {
    let size = |v: u64, what: &str| usize::try_from(v).with_context(|| format!("{what} {v}"));
    let dims = ImageDims {
        channels: size(f.channels, "channels")?,
        height: size(f.height, "height")?,
        width: size(f.width, "width")?,
    };
    let (pixel_type, pixels) = match f.pixels {
        Pixels::U8(b) => (
            PixelType::U8,
            b.into_iter().map(PixelType::from_byte).collect(),
        ),
        Pixels::F32(v) => (PixelType::F32, v),
    };
    let patch = size(f.patch, "patch size")?;
    let features = f
        .features
        .into_iter()
        .enumerate()
        .map(|(l, layer)| {
            let shape = ConvShape {
                in_channels: size(layer.in_channels, "in_channels")?,
                side: patch,
                filters: size(layer.filters, "filters")?,
            };
            ConvLayer::from_weights(shape, layer.weights)
                .with_context(|| format!("feature layer {}", l + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    let (n, classes, values) = (f.labels.len(), f.class_names.len(), f.alpha.len());
    let alpha = Matrix::from_row_major(n, classes, f.alpha).with_context(|| {
        format!("alpha has {values} values, expected {n} images x {classes} classes")
    })?;
    let d = (f.metric.len() as f64).sqrt().round() as usize;
    let metric = Metric::from_rows(d, f.metric).context("metric")?;
    let history = f
        .history
        .into_iter()
        .map(|r| {
            Ok(IterationRecord {
                layer: size(r.layer, "layer")?,
                iteration: size(r.iteration, "iteration")?,
                lambda: r.lambda,
                selection_accuracy: r.selection_accuracy,
                test_accuracy: r.test_accuracy,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Model {
        train: LabelledImages {
            images: Images {
                dims,
                pixel_type,
                pixels,
            },
            labels: f.labels,
            class_names: f.class_names,
        },
        features,
        patch,
        depth: size(f.depth, "depth")?,
        kind: match f.kind {
            FileKernelKind::Ntk => KernelKind::Ntk,
            FileKernelKind::Nngp => KernelKind::Nngp,
        },
        precision: match f.precision {
            FilePrecision::F32 => Precision::F32,
            FilePrecision::F64 => Precision::F64,
        },
        metric,
        scale: f.scale,
        lambda: f.lambda,
        alpha,
        history,
        resize: match f.resize {
            FileResize::Nearest => ResizeFilter::Nearest,
            FileResize::Triangle => ResizeFilter::Triangle,
            FileResize::CatmullRom => ResizeFilter::CatmullRom,
            FileResize::Gaussian => ResizeFilter::Gaussian,
            FileResize::Lanczos3 => ResizeFilter::Lanczos3,
        },
    })
}

/// Every rule a model's later use relies on, checked once at load.
fn validate(m: &Model) -> Result<()> {
    let dims = m.dims();
    ensure!(
        dims.channels >= 1 && dims.height >= 1 && dims.width >= 1,
        "image shape {dims} has a zero dimension"
    );
    let shape = m.shape()?;
    let n = m.train.labels.len();
    let classes = m.classes();
    ensure!(classes >= 2, "model has {classes} classes");
    ensure!(n >= 1, "model has no training images");
    let pixels = dims
        .pixels()
        .checked_mul(n)
        .context("training pixel count overflows")?;
    ensure!(
        m.train.images.pixels.len() == pixels,
        "{} pixel values for {n} images of {}",
        m.train.images.pixels.len(),
        dims
    );
    if let Some(i) = m.train.images.pixels.iter().position(|v| !v.is_finite()) {
        bail!("training pixel {i} is not finite");
    }
    if let Some(&l) = m.train.labels.iter().find(|&&l| usize::from(l) >= classes) {
        bail!("training label {l} out of range for {classes} classes");
    }
    let d = shape.patch_dim();
    ensure!(
        m.metric.dim() == d,
        "metric is {0}x{0}, patches have {d} values",
        m.metric.dim()
    );
    check_metric(&m.metric)?;
    ensure!(
        m.scale.is_finite() && m.scale > 0.0,
        "kernel scale {} is not positive",
        m.scale
    );
    ensure!(
        m.lambda.is_finite() && m.lambda >= 0.0,
        "lambda {} is not finite and non-negative",
        m.lambda
    );
    for (i, r) in m.history.iter().enumerate() {
        let share = |a: Option<f64>| a.is_none_or(|a| (0.0..=1.0).contains(&a));
        ensure!(
            r.layer >= 1
                && r.lambda.is_finite()
                && r.lambda >= 0.0
                && share(r.selection_accuracy)
                && share(r.test_accuracy),
            "history entry {i} is not a training record (layer {}, lambda {}, accuracies {:?} {:?})",
            r.layer,
            r.lambda,
            r.selection_accuracy,
            r.test_accuracy
        );
    }
    if let Some(i) = m.alpha.as_slice().iter().position(|v| !v.is_finite()) {
        bail!("alpha[{i}] is not finite");
    }
    Ok(())
}

/// A learned metric is a symmetric PSD square root with unit Frobenius
/// norm, or a multiple of the identity: refuse what is not (within
/// rounding), so a corrupt metric cannot pass as a model.
fn check_metric(metric: &Metric) -> Result<()> {
    let d = metric.dim();
    let s = metric.rows();
    let largest = s.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    ensure!(largest > 0.0, "metric is zero");
    for i in 0..d {
        for j in 0..i {
            let (a, b) = (s[i * d + j], s[j * d + i]);
            ensure!(
                (a - b).abs() <= 1e-9 * largest,
                "metric is not symmetric: ({i}, {j}) is {a}, ({j}, {i}) is {b}"
            );
        }
    }
    let (values, _) = symmetric_eigen("metric", s, d)?;
    let top = values.first().copied().unwrap_or(0.0);
    if let Some(low) = values.last().filter(|&&v| v < -1e-9 * top.abs()) {
        bail!("metric is not positive semidefinite (eigenvalue {low:e})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] = include_bytes!("../../tests/data/tiny-fashion.convrfm");

    fn body() -> ModelFile {
        let covered = &FILE[..FILE.len() - CRC_LEN];
        postcard::from_bytes(&covered[HEADER_LEN..]).unwrap()
    }

    /// A crafted file: valid framing and CRC around a body edited by `edit`.
    fn crafted(edit: impl FnOnce(&mut ModelFile)) -> String {
        let mut f = body();
        edit(&mut f);
        let bytes = framed(&f).unwrap();
        format!("{:#}", Model::from_bytes(&bytes).unwrap_err())
    }

    #[test]
    fn every_field_of_a_crafted_body_is_validated() {
        assert!(Model::from_bytes(&framed(&body()).unwrap()).is_ok());
        let d = 9;
        type Edit = Box<dyn FnOnce(&mut ModelFile)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "metric is 10x10",
                Box::new(move |f| f.metric = vec![0.1; 100]),
            ),
            (
                "metric entry (0, 0) is not finite",
                Box::new(move |f| f.metric[0] = f64::NAN),
            ),
            (
                "metric is zero",
                Box::new(move |f| f.metric = vec![0.0; d * d]),
            ),
            ("not symmetric", Box::new(move |f| f.metric[1] += 0.5)),
            (
                "not positive semidefinite",
                Box::new(move |f| {
                    f.metric = (0..d * d)
                        .map(|t| if t % (d + 1) == 0 { -1.0 } else { 0.0 })
                        .collect();
                    f.metric[0] = 1.0;
                }),
            ),
            (
                "kernel scale 0 is not positive",
                Box::new(move |f| f.scale = 0.0),
            ),
            ("kernel scale NaN", Box::new(move |f| f.scale = f64::NAN)),
            ("lambda -1", Box::new(move |f| f.lambda = -1.0)),
            (
                "history entry 0",
                Box::new(move |f| f.history[0].selection_accuracy = Some(f64::NAN)),
            ),
            (
                "alpha has 239 values",
                Box::new(move |f| {
                    f.alpha.pop();
                }),
            ),
            (
                "alpha[3] is not finite",
                Box::new(move |f| f.alpha[3] = f64::INFINITY),
            ),
            (
                "training label 10 out of range",
                Box::new(move |f| f.labels[0] = 10),
            ),
            (
                "model has 1 classes",
                Box::new(move |f| {
                    f.class_names.truncate(1);
                    f.labels.iter_mut().for_each(|l| *l = 0);
                    f.alpha = vec![0.1; f.labels.len()];
                }),
            ),
            (
                "pixel values for 24 images",
                Box::new(move |f| match &mut f.pixels {
                    Pixels::U8(p) => {
                        p.pop();
                    }
                    Pixels::F32(p) => {
                        p.pop();
                    }
                }),
            ),
            ("has a zero dimension", Box::new(move |f| f.width = 0)),
            ("depth", Box::new(move |f| f.depth = 40)),
            ("patch size 4 is not an odd", Box::new(move |f| f.patch = 4)),
            (
                "a depth-2 kernel on 29x29 patches needs images of at least 57x57",
                Box::new(move |f| f.patch = 29),
            ),
            (
                "metric is 9x9, patches have 25 values",
                Box::new(move |f| f.patch = 5),
            ),
            (
                "image size overflows",
                Box::new(move |f| f.channels = u64::MAX),
            ),
            (
                "feature layer 1",
                Box::new(move |f| {
                    f.features.push(FileConvLayer {
                        in_channels: 1,
                        filters: 2,
                        weights: vec![0.0; 17],
                    })
                }),
            ),
        ];
        for (needle, edit) in cases {
            let msg = crafted(edit);
            assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
        }
    }
}
