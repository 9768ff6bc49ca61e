//! Labelled image sets: loading from IDX files, Fashion-MNIST (installed or
//! vendored), subsetting and the fit/validation split.
//!
//! Loaders validate everything the training code relies on (shape, matching
//! counts, finite pixels, nonempty sets), so later stages can index without
//! re-checking; every error names the file and what is wrong with it.
//!
//! - [`images`]: `Images`, `LabelledImages`, their shape and pixel type.
//! - [`idx`]: the IDX file format (checked parse, atomic write).
//! - [`files`]: labelled sets from and to IDX files.
//! - [`fashion_mnist`](mod@fashion_mnist): Fashion-MNIST, installed or built in.
//! - [`synth`]: the paper's synthetic local-signal tasks.
//! - [`split`]: train/test splits and the seeded validation split.

pub mod fashion_mnist;
pub mod files;
pub mod idx;
pub mod images;
pub mod pictures;
pub mod split;
pub mod synth;

pub use fashion_mnist::{
    DataSource, FASHION_MNIST_CLASSES, FASHION_MNIST_DEBIAN_DIR, fashion_mnist,
    vendored_fashion_mnist,
};
pub use files::{load_idx_images, load_idx_pair, save_idx_pair};
pub use images::{ImageDims, Images, LabelledImages, PixelType};
pub use pictures::ResizeFilter;
pub use split::{Split, train_val_split};
