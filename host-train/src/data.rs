//! Labelled image sets: loading from IDX files, Fashion-MNIST (installed or
//! vendored), subsetting and the fit/validation split.
//!
//! Loaders validate everything the training code relies on (shape, matching
//! counts, finite pixels, nonempty sets), so later stages can index without
//! re-checking; every error names the file and what is wrong with it.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail, ensure};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::idx::{IdxArray, IdxData, decode_idx, read_idx, write_idx};

/// Class names of Fashion-MNIST, indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Where the Debian package `dataset-fashion-mnist` installs the data.
pub const FASHION_MNIST_DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// How pixels were stored in the source file; recorded in models, because
/// a model trained on one kind of pixel is meaningless on the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelType {
    /// Unsigned bytes (IDX type `0x08`), scaled to `[0, 1]` by 1/255.
    U8,
    /// 32-bit floats (IDX type `0x0D`), kept as stored.
    F32,
}

impl fmt::Display for PixelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelType::U8 => "u8 pixels (scaled to [0, 1])",
            PixelType::F32 => "f32 pixels",
        })
    }
}

/// A set of equally sized images.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    /// Channels per image.
    pub channels: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
    /// Pixel type of the source.
    pub pixel_type: PixelType,
    /// All pixels, `len() * channels * height * width`, image after image,
    /// each image channel-major (channel, row, column). Pixels read as bytes
    /// are scaled to `[0, 1]` by 1/255; float pixels are kept as stored.
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
        self.channels * self.height * self.width
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
            channels: self.channels,
            height: self.height,
            width: self.width,
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

    /// The first `n` images (all of them if there are fewer).
    pub fn take(&self, n: usize) -> LabelledImages {
        let n = n.min(self.len());
        LabelledImages {
            images: Images {
                channels: self.images.channels,
                height: self.images.height,
                width: self.images.width,
                pixel_type: self.images.pixel_type,
                pixels: self.images.pixels[..n * self.images.pixels_per_image()].to_vec(),
            },
            labels: self.labels[..n].to_vec(),
            class_names: self.class_names.clone(),
        }
    }
}

/// Converts a rank-3 `(n, H, W)` or rank-4 `(n, C, H, W)` IDX array to
/// images; `name` identifies its origin in error messages.
fn images_from_idx(array: IdxArray, name: &str) -> anyhow::Result<Images> {
    let (n, channels, height, width) = match *array.dims.as_slice() {
        [n, h, w] => (n, 1, h, w),
        [n, c, h, w] => (n, c, h, w),
        _ => bail!(
            "{name}: expected images of rank 3 (count, height, width) or 4 \
             (count, channels, height, width), found rank {} with dimensions {:?}",
            array.dims.len(),
            array.dims
        ),
    };
    // The IDX reader rejects zero dimensions; checked again because an empty
    // set would otherwise surface much later as a confusing training error.
    ensure!(n > 0, "{name}: contains no images");
    let (pixel_type, pixels) = match array.data {
        IdxData::U8(bytes) => (
            PixelType::U8,
            bytes.into_iter().map(|b| f32::from(b) / 255.0).collect(),
        ),
        IdxData::F32(values) => {
            let per_image = channels * height * width;
            if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
                let (image, within) = (pos / per_image, pos % per_image);
                let (c, y, x) = (
                    within / (height * width),
                    within / width % height,
                    within % width,
                );
                bail!(
                    "{name}: image {image} has a non-finite pixel ({}) at channel {c}, row {y}, column {x}",
                    values[pos]
                );
            }
            (PixelType::F32, values)
        }
    };
    Ok(Images {
        channels,
        height,
        width,
        pixel_type,
        pixels,
    })
}

/// Converts a rank-1 `u8` IDX array to labels; `name` identifies its origin
/// in error messages.
fn labels_from_idx(array: IdxArray, name: &str) -> anyhow::Result<Vec<u8>> {
    ensure!(
        array.dims.len() == 1,
        "{name}: expected labels of rank 1 (count), found rank {} with dimensions {:?}",
        array.dims.len(),
        array.dims
    );
    match array.data {
        IdxData::U8(labels) if !labels.is_empty() => Ok(labels),
        IdxData::U8(_) => bail!("{name}: contains no labels"),
        IdxData::F32(_) => {
            bail!("{name}: labels must be unsigned bytes (IDX type 0x08), found floats (0x0d)")
        }
    }
}

/// Pairs images with labels, checking the counts agree; classes are named
/// `"0"` to `"k-1"`, with `k` one more than the largest label.
fn pair(
    images: Images,
    labels: Vec<u8>,
    images_name: &str,
    labels_name: &str,
) -> anyhow::Result<LabelledImages> {
    ensure!(
        images.len() == labels.len(),
        "{images_name} has {} images but {labels_name} has {} labels",
        images.len(),
        labels.len()
    );
    let num_classes = labels
        .iter()
        .copied()
        .max()
        .map_or(0, |m| usize::from(m) + 1);
    Ok(LabelledImages {
        images,
        labels,
        class_names: (0..num_classes).map(|k| k.to_string()).collect(),
    })
}

/// Loads an image file and a label file in IDX format (gzip or raw).
///
/// Images are rank 3 `(n, H, W)` (one channel) or rank 4 `(n, C, H, W)`, `u8`
/// (scaled to `[0, 1]`) or `f32` (kept as stored, but must be finite); labels
/// are rank 1 `u8`. Classes are named `"0"` to `"k-1"`, `k` being one more
/// than the largest label.
pub fn load_idx_pair(images: &Path, labels: &Path) -> anyhow::Result<LabelledImages> {
    let images_name = images.display().to_string();
    let labels_name = labels.display().to_string();
    let image_set = images_from_idx(read_idx(images)?, &images_name)?;
    let label_set = labels_from_idx(read_idx(labels)?, &labels_name)?;
    pair(image_set, label_set, &images_name, &labels_name)
}

/// Writes a labelled set as an IDX image file and an IDX label file (gzip
/// when the name ends in `.gz`), each atomically.
///
/// Images keep their pixel type: `u8` sets are written back as bytes
/// (`round(255 v)`), `f32` sets as floats; rank 3 for one channel, rank 4
/// `(n, C, H, W)` otherwise.
pub fn save_idx_pair(set: &LabelledImages, images: &Path, labels: &Path) -> anyhow::Result<()> {
    let im = &set.images;
    let dims = if im.channels == 1 {
        vec![im.len(), im.height, im.width]
    } else {
        vec![im.len(), im.channels, im.height, im.width]
    };
    let data = match im.pixel_type {
        PixelType::U8 => IdxData::U8(
            im.pixels
                .iter()
                .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect(),
        ),
        PixelType::F32 => IdxData::F32(im.pixels.clone()),
    };
    let gz = |p: &Path| p.extension().is_some_and(|e| e == "gz");
    write_idx(images, &IdxArray { dims, data }, gz(images))
        .with_context(|| format!("writing {}", images.display()))?;
    let labels_array = IdxArray {
        dims: vec![set.len()],
        data: IdxData::U8(set.labels.clone()),
    };
    write_idx(labels, &labels_array, gz(labels))
        .with_context(|| format!("writing {}", labels.display()))
}

/// Reads unlabelled images from one IDX file (gz or raw).
pub fn load_idx_images(images: &Path) -> anyhow::Result<Images> {
    let name = images.display().to_string();
    images_from_idx(read_idx(images)?, &name)
}

/// Which part of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set (Fashion-MNIST: 60,000 images).
    Train,
    /// The test set (Fashion-MNIST: 10,000 images, files named `t10k`).
    Test,
}

impl Split {
    /// File name prefix used by the MNIST family.
    fn file_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    /// Image count of the full Fashion-MNIST split.
    fn full_size(self) -> usize {
        match self {
            Split::Train => 60_000,
            Split::Test => 10_000,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Where a data set was loaded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// Files of the Debian package `dataset-fashion-mnist`.
    Debian {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
    },
    /// The subset embedded in this binary.
    Vendored {
        /// Images in the vendored split.
        count: usize,
    },
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Debian { images, .. } => write!(
                f,
                "Debian package dataset-fashion-mnist ({})",
                images.display()
            ),
            DataSource::Vendored { count } => write!(
                f,
                "vendored subset of {count} images (data/fashion-mnist, built into this binary)"
            ),
        }
    }
}

/// The vendored files, embedded so the demo and tests work offline and from
/// any working directory. See `data/fashion-mnist/README.md`.
const VENDORED_TRAIN_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist/train-images-idx3-ubyte.gz");
const VENDORED_TRAIN_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist/train-labels-idx1-ubyte.gz");
const VENDORED_TEST_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist/t10k-images-idx3-ubyte.gz");
const VENDORED_TEST_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz");

/// Decodes one embedded image/label pair.
fn decode_vendored(split: Split) -> anyhow::Result<LabelledImages> {
    let (images, labels) = match split {
        Split::Train => (VENDORED_TRAIN_IMAGES, VENDORED_TRAIN_LABELS),
        Split::Test => (VENDORED_TEST_IMAGES, VENDORED_TEST_LABELS),
    };
    let prefix = split.file_prefix();
    let images_name = format!("vendored {prefix}-images-idx3-ubyte.gz");
    let labels_name = format!("vendored {prefix}-labels-idx1-ubyte.gz");
    let image_set = images_from_idx(
        decode_idx(images).with_context(|| images_name.clone())?,
        &images_name,
    )?;
    let label_set = labels_from_idx(
        decode_idx(labels).with_context(|| labels_name.clone())?,
        &labels_name,
    )?;
    let set = pair(image_set, label_set, &images_name, &labels_name)?;
    fashion_names(set, &labels_name)
}

/// Replaces numeric class names by the Fashion-MNIST ones, checking every
/// label is one of the ten classes.
fn fashion_names(mut set: LabelledImages, labels_name: &str) -> anyhow::Result<LabelledImages> {
    if let Some(pos) = set
        .labels
        .iter()
        .position(|&l| usize::from(l) >= FASHION_MNIST_CLASSES.len())
    {
        bail!(
            "{labels_name}: label {pos} is {}, but Fashion-MNIST has only {} classes",
            set.labels[pos],
            FASHION_MNIST_CLASSES.len()
        );
    }
    set.class_names = FASHION_MNIST_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    Ok(set)
}

/// The vendored Fashion-MNIST subset (2,000 train / 1,000 test images),
/// regardless of what is installed: for deterministic tests and examples.
///
/// # Panics
/// Only if the embedded files are corrupt, which is a build defect that the
/// unit tests catch.
pub fn vendored_fashion_mnist(split: Split) -> LabelledImages {
    match decode_vendored(split) {
        Ok(set) => set,
        Err(e) => panic!("embedded Fashion-MNIST subset is corrupt: {e:#}"),
    }
}

/// Fashion-MNIST from the Debian package `dataset-fashion-mnist` when it is
/// installed (60,000 train / 10,000 test images), otherwise the vendored
/// subset (2,000 / 1,000). `limit` keeps only the first `limit` images.
///
/// The returned [`DataSource`] says which was used, so runs can report it.
/// Installed files that exist but are unreadable are an error, not a silent
/// fall-back to the subset.
pub fn fashion_mnist(
    split: Split,
    limit: Option<usize>,
) -> anyhow::Result<(LabelledImages, DataSource)> {
    fashion_mnist_from(Path::new(FASHION_MNIST_DEBIAN_DIR), split, limit)
}

/// [`fashion_mnist`] with the installed-data directory as a parameter, so
/// tests can exercise the vendored fall-back on machines with the package.
fn fashion_mnist_from(
    dir: &Path,
    split: Split,
    limit: Option<usize>,
) -> anyhow::Result<(LabelledImages, DataSource)> {
    if limit == Some(0) {
        bail!("asked for 0 Fashion-MNIST {split} images; the limit must be at least 1");
    }
    let prefix = split.file_prefix();
    let images = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let labels = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let (set, source) = if images.exists() || labels.exists() {
        let set = load_idx_pair(&images, &labels)?;
        let labels_name = labels.display().to_string();
        (
            fashion_names(set, &labels_name)?,
            DataSource::Debian { images, labels },
        )
    } else {
        let set = decode_vendored(split)?;
        let count = set.len();
        (set, DataSource::Vendored { count })
    };
    match limit {
        Some(n) if n > set.len() => Err(anyhow!(
            "asked for {n} Fashion-MNIST {split} images, but only {} are available ({source}); \
             install the Debian package dataset-fashion-mnist for the full {}",
            set.len(),
            split.full_size()
        )),
        Some(n) => Ok((set.take(n), source)),
        None => Ok((set, source)),
    }
}

/// Splits `0..n` into (fit, validation) index sets by a seeded shuffle
/// (ChaCha8, so the split is the same on every platform and release).
///
/// Validation gets `round(n * val_fraction)` indices, clamped to `[1, n-1]`
/// when `n >= 2` so that neither side is empty (a NaN fraction counts as 0);
/// for `n < 2` everything goes to fit. Both lists are returned sorted, so
/// selecting with them keeps the original order. Not stratified.
pub fn train_val_split(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    if n < 2 {
        return (order, Vec::new());
    }
    // `as` saturates (NaN becomes 0), and the clamp does the rest.
    let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut val = order[..n_val].to_vec();
    let mut fit = order[n_val..].to_vec();
    val.sort_unstable();
    fit.sort_unstable();
    (fit, val)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::write_idx;

    fn write(dir: &Path, name: &str, dims: Vec<usize>, data: IdxData) -> PathBuf {
        let path = dir.join(name);
        write_idx(&path, &IdxArray { dims, data }, name.ends_with(".gz")).expect("write");
        path
    }

    fn err_string(r: anyhow::Result<LabelledImages>) -> String {
        format!("{:#}", r.expect_err("should fail"))
    }

    #[test]
    fn loads_u8_rank3_scaled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = write(
            dir.path(),
            "img.gz",
            vec![2, 1, 2],
            IdxData::U8(vec![0, 255, 51, 102]),
        );
        let lab = write(dir.path(), "lab", vec![2], IdxData::U8(vec![3, 0]));
        let set = load_idx_pair(&img, &lab).expect("load");
        assert_eq!(set.len(), 2);
        assert_eq!(
            (set.images.channels, set.images.height, set.images.width),
            (1, 1, 2)
        );
        assert_eq!(set.images.image(0), &[0.0, 1.0]);
        assert_eq!(set.images.image(1), &[0.2, 0.4]);
        assert_eq!(set.num_classes(), 4);
        assert_eq!(set.class_names, ["0", "1", "2", "3"]);
    }

    #[test]
    fn loads_f32_rank4_as_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let px: Vec<f32> = (0..2 * 3 * 2 * 2).map(|i| i as f32 - 5.5).collect();
        let img = write(
            dir.path(),
            "img",
            vec![2, 3, 2, 2],
            IdxData::F32(px.clone()),
        );
        let lab = write(dir.path(), "lab", vec![2], IdxData::U8(vec![1, 1]));
        let set = load_idx_pair(&img, &lab).expect("load");
        assert_eq!(set.images.channels, 3);
        assert_eq!(set.images.pixels_per_image(), 12);
        assert_eq!(set.images.pixels, px);
        assert_eq!(set.images.image(1), &px[12..]);
    }

    #[test]
    fn non_finite_pixel_names_image_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut px = vec![0.5f32; 3 * 4];
        px[4 + 3] = f32::NAN; // image 1, row 1, column 1
        let img = write(dir.path(), "feat.idx", vec![3, 2, 2], IdxData::F32(px));
        let lab = write(dir.path(), "lab", vec![3], IdxData::U8(vec![0, 1, 2]));
        let msg = err_string(load_idx_pair(&img, &lab));
        assert!(msg.contains("feat.idx"), "{msg}");
        assert!(msg.contains("image 1 "), "{msg}");
        assert!(
            msg.contains("NaN") && msg.contains("row 1, column 1"),
            "{msg}"
        );
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = write(dir.path(), "img", vec![2, 1, 1], IdxData::U8(vec![0, 0]));
        let lab = write(dir.path(), "lab", vec![3], IdxData::U8(vec![0, 1, 2]));
        let msg = err_string(load_idx_pair(&img, &lab));
        assert!(
            msg.contains("img has 2 images") && msg.contains("lab has 3 labels"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_ranks_and_label_type_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let flat = write(dir.path(), "flat", vec![4], IdxData::U8(vec![0; 4]));
        let img = write(dir.path(), "img", vec![4, 1, 1], IdxData::U8(vec![0; 4]));
        let lab = write(dir.path(), "lab", vec![4], IdxData::U8(vec![0; 4]));
        let lab2 = write(dir.path(), "lab2", vec![2, 2], IdxData::U8(vec![0; 4]));
        let labf = write(dir.path(), "labf", vec![4], IdxData::F32(vec![0.0; 4]));
        let msg = err_string(load_idx_pair(&flat, &lab));
        assert!(msg.contains("flat: expected images of rank 3"), "{msg}");
        let msg = err_string(load_idx_pair(&img, &lab2));
        assert!(msg.contains("lab2: expected labels of rank 1"), "{msg}");
        let msg = err_string(load_idx_pair(&img, &labf));
        assert!(msg.contains("labf: labels must be unsigned bytes"), "{msg}");
    }

    #[test]
    fn empty_and_corrupt_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lab = write(dir.path(), "lab", vec![1], IdxData::U8(vec![0]));
        let empty = dir.path().join("empty-set");
        // An IDX file with zero images.
        std::fs::write(&empty, [0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]).expect("write");
        let msg = err_string(load_idx_pair(&empty, &lab));
        assert!(msg.contains("empty-set: dimension 0 is zero"), "{msg}");
        let short = dir.path().join("short.gz");
        std::fs::write(&short, b"\x1f\x8b\x08garbage").expect("write");
        let msg = err_string(load_idx_pair(&short, &lab));
        assert!(msg.contains("short.gz: corrupt gzip"), "{msg}");
        let missing = dir.path().join("missing");
        let img = write(dir.path(), "img", vec![1, 1, 1], IdxData::U8(vec![0]));
        let msg = err_string(load_idx_pair(&img, &missing));
        assert!(msg.contains("missing: I/O error"), "{msg}");
    }

    #[test]
    fn float_and_multichannel_sets_round_trip_through_idx() {
        let dir = tempfile::tempdir().expect("tempdir");
        let float = crate::synth::star(5, 3, Split::Train);
        let bytes = LabelledImages {
            images: Images {
                channels: 2,
                height: 3,
                width: 4,
                pixel_type: PixelType::U8,
                pixels: (0..3 * 24).map(|i| (i * 7 % 256) as f32 / 255.0).collect(),
            },
            labels: vec![0, 2, 1],
            class_names: vec!["0".into(), "1".into(), "2".into()],
        };
        for (set, ext) in [(&float, "idx.gz"), (&bytes, "idx"), (&float, "idx")] {
            let (i, l) = (
                dir.path().join(format!("i.{ext}")),
                dir.path().join(format!("l.{ext}")),
            );
            save_idx_pair(set, &i, &l).expect("writes");
            let back = load_idx_pair(&i, &l).expect("reads");
            assert_eq!(back.images, set.images);
            assert_eq!(back.labels, set.labels);
        }
        // A rank-4 float file is read as multi-channel float images.
        let i = dir.path().join("i.idx.gz");
        save_idx_pair(&float, &i, &dir.path().join("l.idx.gz")).expect("writes");
        let array = read_idx(&i).expect("reads");
        assert_eq!(
            (array.dims.as_slice(), array.data.type_code()),
            (&[5, 3, 32, 32][..], 0x0D)
        );
    }

    #[test]
    fn select_and_take() {
        let set = LabelledImages {
            images: Images {
                channels: 1,
                height: 1,
                width: 2,
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
    fn split_is_seeded_disjoint_and_sized() {
        let (fit, val) = train_val_split(100, 0.2, 7);
        assert_eq!((fit.len(), val.len()), (80, 20));
        assert!(fit.is_sorted() && val.is_sorted());
        let mut all: Vec<usize> = fit.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(train_val_split(100, 0.2, 7), (fit.clone(), val.clone()));
        assert_ne!(train_val_split(100, 0.2, 8).1, val);
        // Clamping keeps both sides nonempty.
        assert_eq!(train_val_split(10, 0.0, 1).1.len(), 1);
        assert_eq!(train_val_split(10, 1.0, 1).0.len(), 1);
        assert_eq!(train_val_split(10, f64::NAN, 1).1.len(), 1);
        assert_eq!(train_val_split(2, 0.5, 1).1.len(), 1);
        assert_eq!(train_val_split(1, 0.5, 1), (vec![0], vec![]));
        assert_eq!(train_val_split(0, 0.5, 1), (vec![], vec![]));
    }

    #[test]
    fn vendored_subset_loads() {
        for (split, n) in [(Split::Train, 2000), (Split::Test, 1000)] {
            let set = vendored_fashion_mnist(split);
            assert_eq!(set.len(), n);
            assert_eq!(set.images.len(), n);
            let im = &set.images;
            assert_eq!((im.channels, im.height, im.width), (1, 28, 28));
            assert_eq!(set.num_classes(), 10);
            assert_eq!(set.class_names[9], "Ankle boot");
            // A subset this size has every class.
            for class in 0..10u8 {
                assert!(
                    set.labels.contains(&class),
                    "{split}: class {class} missing"
                );
            }
            assert!(im.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
        }
    }

    #[test]
    fn vendored_subset_matches_debian_files() {
        let dir = Path::new(FASHION_MNIST_DEBIAN_DIR);
        for split in [Split::Train, Split::Test] {
            let prefix = split.file_prefix();
            let images = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
            if !images.exists() {
                println!(
                    "note: {} absent (install dataset-fashion-mnist); skipping",
                    images.display()
                );
                return;
            }
            let full = read_idx(&images).expect("read Debian images");
            let labels = read_idx(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")))
                .expect("read Debian labels");
            let (IdxData::U8(full_px), IdxData::U8(full_labels)) = (full.data, labels.data) else {
                panic!("Debian files are not u8");
            };
            let set = vendored_fashion_mnist(split);
            // First image and label, then the whole subset: unchanged bytes.
            let first: Vec<f32> = full_px[..784]
                .iter()
                .map(|&b| f32::from(b) / 255.0)
                .collect();
            assert_eq!(set.images.image(0), first.as_slice());
            assert_eq!(set.labels[0], full_labels[0]);
            let n = set.len();
            let all: Vec<f32> = full_px[..n * 784]
                .iter()
                .map(|&b| f32::from(b) / 255.0)
                .collect();
            assert!(set.images.pixels == all, "{split}: vendored pixels differ");
            assert_eq!(set.labels, full_labels[..n]);
        }
    }

    #[test]
    fn fallback_to_vendored_and_limit_errors() {
        let nowhere = Path::new("/nonexistent/fashion-mnist");
        let (set, source) = fashion_mnist_from(nowhere, Split::Test, None).expect("vendored");
        assert_eq!(source, DataSource::Vendored { count: 1000 });
        assert_eq!(set.len(), 1000);
        assert!(
            source.to_string().contains("vendored subset of 1000"),
            "{source}"
        );
        let (set, _) = fashion_mnist_from(nowhere, Split::Train, Some(50)).expect("limit");
        assert_eq!(set.len(), 50);
        assert_eq!(
            set.labels,
            vendored_fashion_mnist(Split::Train).labels[..50]
        );
        let msg = format!(
            "{:#}",
            fashion_mnist_from(nowhere, Split::Train, Some(2001)).expect_err("too many")
        );
        assert!(msg.contains("only 2000 are available"), "{msg}");
        assert!(msg.contains("dataset-fashion-mnist"), "{msg}");
        assert!(fashion_mnist_from(nowhere, Split::Train, Some(0)).is_err());
    }

    #[test]
    fn debian_source_when_installed() {
        if !Path::new(FASHION_MNIST_DEBIAN_DIR).exists() {
            println!(
                "note: {FASHION_MNIST_DEBIAN_DIR} absent (install dataset-fashion-mnist); skipping"
            );
            return;
        }
        let (set, source) = fashion_mnist(Split::Test, Some(1000)).expect("Debian test set");
        assert!(matches!(source, DataSource::Debian { .. }), "{source}");
        assert!(
            source.to_string().contains("t10k-images-idx3-ubyte.gz"),
            "{source}"
        );
        assert_eq!(set, vendored_fashion_mnist(Split::Test));
        let msg = format!(
            "{:#}",
            fashion_mnist(Split::Test, Some(10_001)).expect_err("too many")
        );
        assert!(msg.contains("only 10000 are available"), "{msg}");
    }

    #[test]
    fn corrupt_installed_files_are_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), b"junk").expect("write");
        let msg = format!(
            "{:#}",
            fashion_mnist_from(dir.path(), Split::Test, None).expect_err("junk")
        );
        assert!(
            msg.contains("t10k-images-idx3-ubyte.gz: not an IDX file"),
            "{msg}"
        );
    }
}
