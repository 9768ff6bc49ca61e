//! `convrfm-train`: train convolutional Recursive Feature Machines on a workstation.
pub mod agop;
pub mod atomic;
pub mod bench;
pub mod compact;
pub mod data;
pub mod export;
pub mod idx;
pub mod kernel;
pub mod linalg;
pub mod model;
pub mod peak;
pub mod progress;
pub mod real;
pub mod rfm;
pub mod train_set;
