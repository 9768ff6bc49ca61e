//! Labelled image sets: loading from picture folders, CSV, NumPy and IDX
//! files, Fashion-MNIST (installed or vendored), subsetting and splits.
//!
//! Loaders validate everything the training code relies on (shape, matching
//! counts, finite pixels, nonempty sets), so later stages can index without
//! re-checking; every error names the file and what is wrong with it.
//!
//! - [`images`]: `Images`, `LabelledImages`, their shape and pixel type.
//! - [`source`]: which loader a path calls for, and the inputs of `predict`.
//! - [`pictures`]: one picture file to model input (decode, colour, resize).
//! - [`folder`]: labelled sets from `DIR/<class>/<pictures>`.
//! - [`csv_table`]: labelled sets from `label,pixel,...` CSV rows.
//! - [`numpy`]: labelled sets from `.npy` pairs and `.npz` archives.
//! - [`idx`]: the IDX file format (checked parse, atomic write).
//! - [`files`]: labelled sets from and to IDX files.
//! - [`fashion_mnist`](mod@fashion_mnist): Fashion-MNIST, installed or built in.
//! - [`synth`]: the paper's synthetic local-signal tasks.
//! - [`split`]: train/test splits, the seeded validation split and the
//!   stratified hold-out.

pub mod csv_table;
pub mod fashion_mnist;
pub mod files;
pub mod folder;
pub mod idx;
pub mod images;
pub mod numpy;
pub mod pictures;
pub mod source;
pub mod split;
pub mod synth;

pub use fashion_mnist::{
    DataSource, FASHION_MNIST_CLASSES, FASHION_MNIST_DEBIAN_DIR, fashion_mnist,
    vendored_fashion_mnist,
};
pub use files::{
    CLASS_NAMES_FILE, class_names_beside, load_idx_images, load_idx_pair, save_idx_pair,
    write_class_names,
};
pub use folder::{FolderSet, PictureOptions, load_picture_folder};
pub use images::{ImageDims, Images, LabelledImages, PixelType};
pub use pictures::ResizeFilter;
pub use source::{Like, Loaded, ReadOptions, Source, holds_labels, load_image_file, load_inputs};
pub use split::{Split, stratified_folds, stratified_split};
