//! What every stage writes: files all-or-nothing ([`atomic`]), and
//! progress bars on the terminal ([`progress`]).

pub mod atomic;
pub mod progress;

pub use atomic::{check_writable, replace_dir, write_atomic};
pub use progress::{Phase, Progress};
