//! The one way every command loads labelled data: an explicit IDX image
//! and label file (with an optional limit), or else Fashion-MNIST
//! (Debian's package when installed, the built-in subset otherwise), with
//! where it came from printed.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use convrfm_train::data::{LabelledImages, Split, fashion_mnist, load_idx_pair};

/// Where one labelled set comes from.
pub struct DataSpec<'a> {
    /// IDX images and labels; `None`: Fashion-MNIST's `split`.
    pub files: Option<(&'a Path, &'a Path)>,
    /// Which Fashion-MNIST split stands in for missing files.
    pub split: Split,
    /// Keep only the first N images.
    pub limit: Option<usize>,
    /// The flag that sets `limit`, for messages.
    pub limit_flag: &'a str,
    /// What the set is for ("train data", "test data", ...), printed with
    /// its source.
    pub what: &'a str,
}

/// The files of a pair of optional path flags, when both are given (clap
/// makes each require the other).
pub fn files<'a>(
    images: &'a Option<PathBuf>,
    labels: &'a Option<PathBuf>,
) -> Option<(&'a Path, &'a Path)> {
    images.as_deref().zip(labels.as_deref())
}

/// Loads the set `spec` describes.
pub fn labelled(spec: DataSpec<'_>) -> Result<LabelledImages> {
    match spec.files {
        Some((images, labels)) => {
            let set = load_idx_pair(images, labels)?;
            match spec.limit {
                Some(0) => bail!(
                    "{} 0: at least one image is needed (leave the flag out for all)",
                    spec.limit_flag
                ),
                Some(l) if l > set.len() => bail!(
                    "{}: {} {l}, but only {} images",
                    images.display(),
                    spec.limit_flag,
                    set.len()
                ),
                Some(l) => Ok(set.take(l)),
                None => Ok(set),
            }
        }
        None => {
            let (set, source) = fashion_mnist(spec.split, spec.limit)?;
            say!("{}: {source}", spec.what);
            Ok(set)
        }
    }
}
