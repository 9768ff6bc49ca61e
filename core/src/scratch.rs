//! The scratch layout's size: how many bytes one prediction needs for a
//! model of given dimensions (the layout itself is described in
//! `predict`'s module doc and `docs/blob-format.md`, section 8).
//!
//! Sizes only, `const`, and apart from the blob and the kernel, so the
//! blob parser, the prediction and firmware (sizing a `static` buffer at
//! compile time) share one computation.

use crate::shape::{PATCH, Shape};

/// The header fields that size a prediction's scratch.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub depth: usize,
    pub rank: usize,
    pub classes: usize,
}

impl Dims {
    /// The dimensions of a validated shape.
    pub(crate) fn of(shape: Shape, rank: usize, classes: usize) -> Self {
        Self {
            channels: shape.channels(),
            height: shape.height(),
            width: shape.width(),
            depth: shape.depth(),
            rank,
            classes,
        }
    }
}

/// Scratch bytes for a model of these dimensions (see the module doc for
/// the layout); `None` if the geometry is invalid or the size overflows.
///
/// `const`, so firmware can size a `static` buffer from its embedded blob
/// with [`crate::scratch_len_for_blob`].
pub const fn scratch_len_for_dims(
    channels: usize,
    height: usize,
    width: usize,
    depth: usize,
    rank: usize,
    classes: usize,
) -> Option<usize> {
    scratch_len_of(Dims {
        channels,
        height,
        width,
        depth,
        rank,
        classes,
    })
}

/// The scratch length of [`layout`].
pub(crate) const fn scratch_len_of(dims: Dims) -> Option<usize> {
    match layout(dims) {
        Some((len, _)) => Some(len),
        None => None,
    }
}

/// Largest scratch for which the query's `q` maps of every layer are
/// stored rather than carried through the rings (see the module doc): a
/// 16 KiB-RAM microcontroller keeps room for its image buffer and stack.
pub const QZ_STORE_LIMIT: usize = 12 << 10;

/// The scratch length and whether the query's later-layer `q` rides in
/// the rings (`true`) or is stored (`false`).
pub(crate) const fn layout(dims: Dims) -> Option<(usize, bool)> {
    match layout_len(dims, false) {
        Some(n) if n <= QZ_STORE_LIMIT => Some((n, false)),
        _ => match layout_len(dims, true) {
            Some(n) => Some((n, true)),
            None => None,
        },
    }
}

/// Scratch bytes of one layout (`carried`: later-layer `q_z` in the rings).
#[allow(clippy::arithmetic_side_effects)] // loop counter l <= depth, and 2 l <= 2 depth < H, W (checked first)
const fn layout_len(dims: Dims, carried: bool) -> Option<usize> {
    let Dims {
        channels,
        height,
        width,
        depth,
        rank,
        classes,
    } = dims;
    if depth == 0 {
        return None;
    }
    // The last grid is (H - 2L) x (W - 2L); it must not be empty.
    let Some(shrink) = depth.checked_mul(2) else {
        return None;
    };
    if height <= shrink || width <= shrink {
        return None;
    }
    // Bytes: score accumulators, the band of 3 image rows per channel,
    // word-alignment slack, the query's uq map.
    let Some(acc) = classes.checked_mul(8) else {
        return None;
    };
    let Some(band) = channels.checked_mul(PATCH * width) else {
        return None;
    };
    let Some(mut bytes) = acc.checked_add(band) else {
        return None;
    };
    bytes = match bytes.checked_add(ALIGN_SLACK) {
        Some(b) => b,
        None => return None,
    };
    // Words: the query's q maps (layer 1 only when carried), a row of
    // projections and the row of cells being computed (layer 1's width),
    // and for layers below the top a ring of 3 rows of CELL words per
    // column of the next layer.
    let mut words = 0usize;
    let mut l = 1;
    while l <= depth {
        // l <= depth and 2 depth < H, W: no underflow.
        let rows = height - 2 * l;
        let cols = width - 2 * l;
        let Some(positions) = rows.checked_mul(cols) else {
            return None;
        };
        if l == 1 || !carried {
            words = match words.checked_add(positions) {
                Some(w) => w,
                None => return None,
            };
        }
        if l == 1 {
            words = match words.checked_add((1 + CELL) * cols) {
                Some(w) => w,
                None => return None,
            };
            bytes = match positions.checked_mul(rank) {
                Some(uq) => match bytes.checked_add(uq) {
                    Some(b) => b,
                    None => return None,
                },
                None => return None,
            };
        }
        if l < depth {
            // The next layer has cols - 2 columns.
            words = match (cols - 2).checked_mul(3 * CELL) {
                Some(ring) => match words.checked_add(ring) {
                    Some(w) => w,
                    None => return None,
                },
                None => return None,
            };
        }
        l += 1;
    }
    match words.checked_mul(4) {
        Some(w) => bytes.checked_add(w),
        None => None,
    }
}

/// Scratch bytes for a validated shape.
pub(crate) fn scratch_len_for(shape: Shape, rank: usize, classes: usize) -> Option<usize> {
    scratch_len_of(Dims::of(shape, rank, classes))
}

/// Words of a cell, one grid position of the row being computed or of a
/// ring row: `K` (then `Khat`), `Theta` (then `Phi = Thetahat + Khat`),
/// `q_x`, and the query's `q_z` (used when it rides in the rings).
pub(crate) const CELL: usize = 4;

/// Bytes the word-aligned part of the scratch may have to skip.
const ALIGN_SLACK: usize = 3;
