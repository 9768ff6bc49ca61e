//! Where a data set comes from, recognised from its path, and the one
//! loader every command uses for it: a folder of pictures, a CSV file, a
//! NumPy `.npy` pair or `.npz` archive, or an IDX pair (the default).
//! Also the unlabelled inputs of `predict`: picture files, `.npy` and IDX
//! image files.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use super::csv_table::load_csv;
use super::files::{class_names_beside, load_idx_images, load_idx_pair};
use super::folder::{PictureOptions, load_picture_folder};
use super::images::{ImageDims, Images, LabelledImages, PixelType};
use super::numpy::{NumpyOptions, load_npy_images, load_npy_pair, load_npz};
use super::pictures::{PictureFormat, ResizeFilter, has_extension, is_picture, read_picture};
use crate::output::Progress;

/// A labelled set's files, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// IDX images and labels (gzip or raw).
    Idx {
        /// Image file.
        images: PathBuf,
        /// Label file.
        labels: PathBuf,
    },
    /// `DIR/<class name>/<pictures>`.
    Folder(PathBuf),
    /// `label,pixel1,...,pixelN` rows.
    Csv(PathBuf),
    /// Two `.npy` files.
    Npy {
        /// Image array.
        images: PathBuf,
        /// Label array.
        labels: PathBuf,
    },
    /// A `.npz` archive holding images and labels.
    Npz(PathBuf),
}

/// Whether the set at `path` holds its own labels: a picture folder, a
/// CSV file or a `.npz` archive (`.npy` and IDX images need a labels file).
pub fn holds_labels(path: &Path) -> bool {
    path.is_dir() || has_extension(path, "csv") || has_extension(path, "npz")
}

impl Source {
    /// The source named by an images path and an optional labels path: a
    /// folder, `.csv` or `.npz` holds its own labels; `.npy` and IDX
    /// images need a labels file.
    pub fn detect(images: &Path, labels: Option<&Path>) -> Result<Source> {
        let own_labels = |kind: &str| -> Result<()> {
            if let Some(l) = labels {
                bail!(
                    "{}: {kind} holds its own labels; leave out the labels file {}",
                    images.display(),
                    l.display()
                );
            }
            Ok(())
        };
        let need_labels = |kind: &str| {
            labels.map(Path::to_path_buf).with_context(|| {
                format!(
                    "{}: {kind} images need a labels file (--labels, --train-labels or \
                     --test-labels)",
                    images.display()
                )
            })
        };
        if images.is_dir() {
            own_labels("a picture folder")?;
            return Ok(Source::Folder(images.to_path_buf()));
        }
        if has_extension(images, "csv") {
            own_labels("a CSV file")?;
            return Ok(Source::Csv(images.to_path_buf()));
        }
        if has_extension(images, "npz") {
            own_labels("a .npz archive")?;
            return Ok(Source::Npz(images.to_path_buf()));
        }
        if has_extension(images, "npy") {
            return Ok(Source::Npy {
                images: images.to_path_buf(),
                labels: need_labels(".npy")?,
            });
        }
        ensure!(
            !is_picture(images),
            "{}: a single picture is not a data set; give a folder of class folders \
             (DIR/<class>/<pictures>)",
            images.display()
        );
        Ok(Source::Idx {
            images: images.to_path_buf(),
            labels: need_labels("IDX")?,
        })
    }

    /// The path the set is named by.
    pub fn path(&self) -> &Path {
        match self {
            Source::Idx { images, .. } | Source::Npy { images, .. } => images,
            Source::Folder(p) | Source::Csv(p) | Source::Npz(p) => p,
        }
    }

    /// The file the labels come from (for messages about labels).
    pub fn labels_path(&self) -> &Path {
        match self {
            Source::Idx { labels, .. } | Source::Npy { labels, .. } => labels,
            Source::Folder(p) | Source::Csv(p) | Source::Npz(p) => p,
        }
    }

    /// Loads the set. `like`, when given, is the model or training set the
    /// data must fit: a picture folder is then read at its shape with its
    /// filter, and class folders are matched to its classes by name.
    pub fn load(
        &self,
        opts: &ReadOptions,
        like: Option<&Like<'_>>,
        progress: Progress,
    ) -> Result<Loaded> {
        let set = match self {
            Source::Idx { images, labels } => {
                let mut set = load_idx_pair(images, labels)?;
                if let Some(names) = class_names_beside(images, set.num_classes())? {
                    set.class_names = names;
                }
                set
            }
            Source::Csv(path) => load_csv(path, opts.shape)?,
            Source::Npy { images, labels } => load_npy_pair(images, labels, &opts.numpy)?,
            Source::Npz(path) => load_npz(path, &opts.numpy)?,
            Source::Folder(dir) => {
                let (pictures, classes) = match like {
                    Some(l) => {
                        // Pictures are read as the model was trained: a
                        // flag that says otherwise is an error, not ignored.
                        let p = &opts.pictures;
                        if let Some(c) = p.channels.filter(|&c| c != l.dims.channels) {
                            bail!(
                                "--channels {c}: {} takes {} channel(s)",
                                l.what,
                                l.dims.channels
                            );
                        }
                        if let Some((h, w)) = p.size.filter(|&s| s != (l.dims.height, l.dims.width))
                        {
                            bail!(
                                "--size {h}x{w}: {} takes {}x{} pictures",
                                l.what,
                                l.dims.height,
                                l.dims.width
                            );
                        }
                        if let Some(f) = p.filter.filter(|&f| f != l.filter) {
                            bail!(
                                "--resize-filter {f}: {} records {} (pictures are read as it \
                                 was trained)",
                                l.what,
                                l.filter
                            );
                        }
                        (
                            PictureOptions::for_dims(
                                l.dims,
                                l.filter,
                                opts.pictures.skip_unreadable,
                            ),
                            Some(l.class_names),
                        )
                    }
                    None => (opts.pictures, None),
                };
                let f = load_picture_folder(dir, classes, &pictures, progress)?;
                return Ok(Loaded {
                    set: f.set,
                    skipped: f.skipped,
                });
            }
        };
        Ok(Loaded {
            set,
            skipped: Vec::new(),
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Idx { images, labels } => {
                write!(f, "IDX {} + {}", images.display(), labels.display())
            }
            Source::Folder(p) => write!(f, "picture folder {}", p.display()),
            Source::Csv(p) => write!(f, "CSV {}", p.display()),
            Source::Npy { images, labels } => {
                write!(f, "NumPy {} + {}", images.display(), labels.display())
            }
            Source::Npz(p) => write!(f, "NumPy archive {}", p.display()),
        }
    }
}

/// How files are read, besides what their paths say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Picture folders.
    pub pictures: PictureOptions,
    /// CSV: the image shape (default: square, one channel).
    pub shape: Option<ImageDims>,
    /// NumPy arrays.
    pub numpy: NumpyOptions,
}

/// What data must fit: a model's (or a training set's) image shape,
/// classes and resize filter.
#[derive(Clone, Copy, Debug)]
pub struct Like<'a> {
    /// The image shape.
    pub dims: ImageDims,
    /// The class names, indexed by label.
    pub class_names: &'a [String],
    /// How pictures of another size are resized.
    pub filter: ResizeFilter,
    /// Names it in messages ("the model", "the blob", "the training set").
    pub what: &'a str,
}

/// A loaded set and the files left out of it (`--skip-unreadable`).
#[derive(Debug)]
pub struct Loaded {
    /// The set.
    pub set: LabelledImages,
    /// Files left out, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Unlabelled images to classify: a picture file (one image, converted to
/// `format`), or an IDX or `.npy` image file (many images, which must have
/// the model's shape already).
pub fn load_inputs(path: &Path, format: &PictureFormat, numpy: &NumpyOptions) -> Result<Images> {
    if is_picture(path) {
        let bytes = read_picture(path, format)?;
        return Ok(Images {
            dims: ImageDims {
                channels: format.channels,
                height: format.height,
                width: format.width,
            },
            pixel_type: PixelType::U8,
            pixels: bytes.into_iter().map(PixelType::from_byte).collect(),
        });
    }
    if path.is_dir() {
        bail!(
            "{}: a folder; give the picture files (e.g. {}/*.png)",
            path.display(),
            path.display()
        );
    }
    load_image_file(path, numpy)
}

/// Unlabelled images from an image file: `.npy`, else IDX.
pub fn load_image_file(path: &Path, numpy: &NumpyOptions) -> Result<Images> {
    if has_extension(path, "npy") {
        return load_npy_images(path, numpy);
    }
    load_idx_images(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let l = Path::new("l.idx");
        assert_eq!(Source::detect(d, None).unwrap(), Source::Folder(d.into()));
        assert!(Source::detect(d, Some(l)).is_err());
        assert_eq!(
            Source::detect(Path::new("a.CSV"), None).unwrap(),
            Source::Csv("a.CSV".into())
        );
        assert_eq!(
            Source::detect(Path::new("a.npz"), None).unwrap(),
            Source::Npz("a.npz".into())
        );
        assert_eq!(
            Source::detect(Path::new("a.npy"), Some(Path::new("b.npy"))).unwrap(),
            Source::Npy {
                images: "a.npy".into(),
                labels: "b.npy".into()
            }
        );
        assert!(Source::detect(Path::new("a.npy"), None).is_err());
        assert!(Source::detect(Path::new("x.idx.gz"), None).is_err());
        assert!(Source::detect(Path::new("x.png"), Some(l)).is_err());
        assert_eq!(
            Source::detect(Path::new("x-ubyte.gz"), Some(l)).unwrap(),
            Source::Idx {
                images: "x-ubyte.gz".into(),
                labels: l.into()
            }
        );
    }
}
