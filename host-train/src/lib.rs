//! `convrfm-train`: train convolutional Recursive Feature Machines on a workstation.
pub mod agop;
pub mod atomic;
pub mod data;
pub mod idx;
pub mod kernel;
pub mod real;
pub mod train_set;
