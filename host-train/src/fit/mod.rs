//! The ConvRFM fit: kernel ridge regression, the patch-AGOP metric update,
//! the iteration chosen on training data, Deep ConvRFM feature layers, and
//! the model file that holds the result.
//!
//! - [`params`]: training parameters, checked once.
//! - [`train`]: the loop (per layer: iterate, choose, re-fit).
//! - [`selection`]: choosing on training data: leave-one-out, k-fold, split.
//! - [`linalg`]: the regularised solve and the AGOP square root.
//! - [`readout`]: scores `K alpha`, predicted classes, accuracy.
//! - [`report`]: what a run reports per lambda, iteration and layer.
//! - [`features`]: Deep ConvRFM conv layers built from a learned metric.
//! - [`model`]: the trained predictor.
//! - [`model_file`]: its versioned, checksummed, validated file.
//! - [`experiment`]: the paper's CNTK / ConvRFM / Deep ConvRFM comparison.

pub mod experiment;
pub mod features;
pub mod linalg;
pub mod model;
pub mod model_file;
pub mod params;
pub mod readout;
pub mod report;
pub mod selection;
pub mod train;

pub use model::Model;
pub use params::{CheckedParams, Protocol, TrainParams};
pub use selection::Selection;
pub use train::TrainOutcome;
