//! The model blob embedded in flash, and the buffer sizes it needs, all
//! fixed at compile time.
//!
//! `build.rs` copies the blob (`CONVRFM_BLOB`, default
//! `blobs/fashion-mnist.blob`) into `OUT_DIR` after validating it with
//! `convrfm_core::Model::from_bytes` and checking it against the memory
//! layout, and writes its class count and image size to `model_dims.rs`.
//! So a bad or oversized blob fails the build, not the device.

use convrfm_core::Model;

use crate::app::{Classifier, SetupError};

/// 4-byte alignment for the blob. `convrfm-core` reads words with
/// `from_le_bytes`, so it would work unaligned, but the format lays its
/// sections out on 4-byte boundaries (`docs/blob-format.md` §1) so that
/// flash can be read word-wise; `include_bytes!` alone only guarantees
/// byte alignment.
#[repr(C, align(4))]
struct Aligned<T: ?Sized>(T);

/// Blob length in bytes.
pub const BLOB_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/model.blob")).len();

static ALIGNED_BLOB: Aligned<[u8; BLOB_LEN]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.blob")));

/// The embedded blob, in flash (`.rodata`), 4-byte aligned. Pass it to
/// `convrfm_core::Model::from_bytes` once at start-up.
pub static BLOB: &[u8] = &ALIGNED_BLOB.0;

/// Scratch bytes `Model::predict` needs for the embedded blob, computed
/// from its header at compile time so the buffer can be a `static`.
pub const SCRATCH_LEN: usize = match convrfm_core::scratch_len_for_blob(include_bytes!(concat!(
    env!("OUT_DIR"),
    "/model.blob"
))) {
    Some(n) => n,
    // build.rs validated the blob, so this only fires if it is bypassed.
    None => panic!("the embedded blob's header has an invalid geometry"),
};

// `CLASSES` and `IMAGE_LEN`, read from the blob by build.rs with
// convrfm-core's own accessors (no second copy of the header layout here).
include!(concat!(env!("OUT_DIR"), "/model_dims.rs"));

/// Every buffer one classifier needs, sized for the embedded blob: put one
/// in a `static` (e.g. a `static mut` local of cortex-m-rt's `#[entry]`,
/// which it hands out as a safe `&'static mut`) so that the RAM it takes
/// is counted by the linker against the memory layout's `RAM`.
pub struct Buffers {
    /// `Model::predict` work area.
    pub scratch: [u8; SCRATCH_LEN],
    /// One image, `c * H * W` bytes.
    pub image: [u8; IMAGE_LEN],
    /// One score per class.
    pub scores: [i64; CLASSES],
}

impl Buffers {
    /// All-zero buffers (so a `static` of them lands in `.bss`, not flash).
    pub const fn new() -> Self {
        Self {
            scratch: [0; SCRATCH_LEN],
            image: [0; IMAGE_LEN],
            scores: [0; CLASSES],
        }
    }

    /// A classifier for `model` over these buffers (checked against the
    /// model once, see `Classifier::new`).
    pub fn classifier<'a>(&'a mut self, model: Model<'a>) -> Result<Classifier<'a>, SetupError> {
        Classifier::new(model, &mut self.scratch, &mut self.image, &mut self.scores)
    }
}

/// Logs what a board runs, once at start-up: image shape, classes,
/// centres, blob and scratch bytes.
#[cfg(feature = "defmt")]
pub fn log_model(model: &Model<'_>) {
    let shape = model.shape();
    defmt::info!(
        "convrfm: {}x{}x{} images, {} classes, {} centres, blob {} bytes, scratch {} bytes",
        shape.channels(),
        shape.height(),
        shape.width(),
        model.classes(),
        model.centres(),
        BLOB_LEN,
        model.scratch_len()
    );
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}
