//! The one way every command loads labelled data: a source named on the
//! command line (picture folder, CSV, NumPy or IDX; an optional limit), or
//! else Fashion-MNIST (Debian's package when installed, the built-in subset
//! otherwise), with where it came from printed; and unlabelled images
//! (`predict`, `serial`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use convrfm_train::data::numpy::NumpyOptions;
use convrfm_train::data::pictures::PictureFormat;
use convrfm_train::data::{
    Images, LabelledImages, Like, PixelType, ReadOptions, Source, Split, fashion_mnist, load_inputs,
};
use convrfm_train::output::Progress;

/// Pixels per picture above which a folder gets a hint to resize.
const LARGE_PICTURE: usize = 96 * 96;

/// Where one labelled set comes from.
pub struct DataSpec<'a> {
    /// The files; `None`: Fashion-MNIST's `split`.
    pub source: Option<Source>,
    /// Which Fashion-MNIST split stands in for missing files.
    pub split: Split,
    /// Keep only the first N images.
    pub limit: Option<usize>,
    /// The flag that sets `limit`, for messages.
    pub limit_flag: &'a str,
    /// What the set is for ("train data", "test data", ...), printed with
    /// its source.
    pub what: &'a str,
    /// How files are read.
    pub read: &'a ReadOptions,
    /// What a picture folder must fit (a model's or training set's shape,
    /// classes and filter).
    pub like: Option<Like<'a>>,
}

/// The source of a pair of optional path flags: images (or a folder, CSV
/// or `.npz` file) and labels.
pub fn source(images: &Option<PathBuf>, labels: &Option<PathBuf>) -> Result<Option<Source>> {
    match (images, labels) {
        (Some(i), l) => Source::detect(i, l.as_deref()).map(Some),
        (None, Some(l)) => bail!(
            "labels {} given without images: give the images too",
            l.display()
        ),
        (None, None) => Ok(None),
    }
}

/// Loads the set `spec` describes.
pub fn labelled(spec: DataSpec<'_>, progress: Progress) -> Result<LabelledImages> {
    let Some(source) = spec.source else {
        let (set, source) = fashion_mnist(spec.split, spec.limit)?;
        say!("{}: {source}", spec.what);
        return Ok(set);
    };
    if spec.limit == Some(0) {
        bail!(
            "{} 0: at least one image is needed (leave the flag out for all)",
            spec.limit_flag
        );
    }
    let loaded = source.load(spec.read, spec.like.as_ref(), progress)?;
    if let Some((file, why)) = loaded.skipped.first() {
        say!(
            "left out {} unreadable file(s) (--skip-unreadable); the first: {}: {why}",
            loaded.skipped.len(),
            file.display()
        );
    }
    let set = loaded.set;
    let set = match spec.limit {
        Some(l) if l > set.len() => bail!(
            "{}: {} {l}, but only {} images",
            source.path().display(),
            spec.limit_flag,
            set.len()
        ),
        // A folder is stored class by class: its first N would be one class.
        Some(l) if matches!(source, Source::Folder(_)) => set.take_spread(l),
        Some(l) => set.take(l),
        None => set,
    };
    say!(
        "{}: {source}: {} images {} ({}), {} classes",
        spec.what,
        set.len(),
        set.images.dims,
        set.images.pixel_type,
        set.num_classes()
    );
    let d = set.images.dims;
    if matches!(source, Source::Folder(_)) && d.height * d.width > LARGE_PICTURE {
        say!(
            "note: {}x{} pictures: kernel time grows with the square of the pixel count, and a \
             microcontroller blob holds whole centre images; --size 32x32 (or 28x28) is the \
             usual choice",
            d.height,
            d.width
        );
    }
    Ok(set)
}

/// Unlabelled images at `path` (a picture file, converted to `like`'s
/// channels, size and filter, or an IDX / `.npy` image file), checked to
/// have `like`'s shape and `pixel_type`.
pub fn unlabelled(
    path: &Path,
    like: &Like<'_>,
    pixel_type: PixelType,
    numpy: &NumpyOptions,
) -> Result<Images> {
    let format = PictureFormat {
        channels: like.dims.channels,
        height: like.dims.height,
        width: like.dims.width,
        filter: like.filter,
    };
    let set = load_inputs(path, &format, numpy)?;
    let what = format!("{}: images", path.display());
    set.ensure_like(like.dims, pixel_type, &what, like.what)?;
    Ok(set)
}
