//! Fashion-MNIST: Debian's `dataset-fashion-mnist` when installed, else the
//! subset built into this binary; the source is always reported.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};

use super::files::{images_from_idx, labels_from_idx, load_idx_pair, pair};
use super::idx::decode_idx;
use super::images::LabelledImages;
use super::split::Split;

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
    include_bytes!("../../../data/fashion-mnist/train-images-idx3-ubyte.gz");
const VENDORED_TRAIN_LABELS: &[u8] =
    include_bytes!("../../../data/fashion-mnist/train-labels-idx1-ubyte.gz");
const VENDORED_TEST_IMAGES: &[u8] =
    include_bytes!("../../../data/fashion-mnist/t10k-images-idx3-ubyte.gz");
const VENDORED_TEST_LABELS: &[u8] =
    include_bytes!("../../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz");

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

/// [`fashion_mnist()`] with the installed-data directory as a parameter, so
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{IdxData, read_idx};

    #[test]
    fn vendored_subset_loads() {
        for (split, n) in [(Split::Train, 2000), (Split::Test, 1000)] {
            let set = vendored_fashion_mnist(split);
            assert_eq!(set.len(), n);
            assert_eq!(set.images.len(), n);
            let im = &set.images;
            assert_eq!(
                (im.dims.channels, im.dims.height, im.dims.width),
                (1, 28, 28)
            );
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
    #[ignore = "needs Debian's dataset-fashion-mnist; ./scripts/test.sh installs it and runs these"]
    fn vendored_subset_matches_debian_files() {
        let dir = Path::new(FASHION_MNIST_DEBIAN_DIR);
        for split in [Split::Train, Split::Test] {
            let prefix = split.file_prefix();
            let images = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
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
    #[ignore = "needs Debian's dataset-fashion-mnist; ./scripts/test.sh installs it and runs these"]
    fn debian_source_when_installed() {
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
