//! `convrfm-train`: train convolutional Recursive Feature Machines
//! (ConvRFM, arXiv 2309.00570) on a workstation and export them for
//! microcontrollers.
//!
//! The folders are the stages of the data path, each importing only from
//! the ones before it (`tests/layout.rs` checks this):
//!
//! | stage | what it holds |
//! |---|---|
//! | [`output`] | all-or-nothing file writes, progress bars (used by every stage) |
//! | [`params`] | the parameter error and the rules every `check` shares |
//! | [`matrix`] | a dense matrix that carries its shape, with faer views |
//! | [`limits`] | what an input may make us allocate, checked first |
//! | [`data`] | images and labels: picture folders, CSV, NumPy, IDX, Fashion-MNIST, synthetic tasks, splits |
//! | [`kernel`] | the convolutional NTK/NNGP on metric-transformed patches, kernel blocks, patch gradients and AGOP |
//! | [`fit`] | the ConvRFM loop: ridge solves, metric updates, Deep ConvRFM features, reports, the model file |
//! | [`export`] | a model compressed to a blob within a flash budget: centres, low-rank metric, the device mirror, running a blob |
//! | [`link`] | a board running a blob, over a serial port: its info, an image out, a record back |
//! | [`inspect`] | figures of a model (metric, filters, gradient maps, accuracy) and of a data set |
//! | [`bench`](mod@bench) | seconds per training phase and the machine's peak |
//!
//! The `convrfm` command (`src/bin/convrfm/`) is the user's face of these.
//!
//! Not for: inference on a device (that is `convrfm-core`, `no_std`, which
//! this crate uses to run and check blobs), training by backpropagation,
//! or data that does not fit in memory (kernel matrices are dense, `n^2`).

pub mod bench;
pub mod data;
pub mod export;
pub mod fit;
pub mod inspect;
pub mod kernel;
pub mod limits;
pub mod link;
pub mod matrix;
pub mod output;
pub mod params;
