//! Image geometry and the patch grids of the convolutional kernel.
//!
//! An image is `channels x height x width`, channel-major. Layer 1 sees the
//! `Q x Q` patches at every VALID position (`Q` the patch side); every later
//! layer is a `Q x Q` VALID window over the previous grid, so each layer's
//! grid is `Q - 1` rows and columns smaller than the one before (the
//! authors' `Vanilla(ps, depth)`).
//!
//! The host trains any odd `Q`; a blob, and so this crate's prediction,
//! holds `Q = PATCH = 3` only ([`Shape::new`]).

use core::fmt;

/// Patch side of every blob (and window side of every later layer).
pub const PATCH: usize = 3;

/// Validated image shape together with the patch side and kernel depth it
/// is used with.
///
/// Construction checks every product, so accessors cannot overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    channels: usize,
    height: usize,
    width: usize,
    patch: usize,
    depth: usize,
}

/// Why a [`Shape`] is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ShapeError {
    /// A dimension is zero.
    ZeroDimension,
    /// The depth is zero.
    ZeroDepth,
    /// The patch side is zero or even (a window has no centre).
    BadPatch {
        /// The patch side given.
        patch: usize,
    },
    /// The image is too small for the patch side and depth: the last
    /// layer's grid would be empty.
    TooSmallForDepth {
        /// Patch side.
        patch: usize,
        /// Requested kernel depth.
        depth: usize,
        /// Smallest side the image would need.
        min_side: usize,
    },
    /// A size product does not fit in `usize`.
    Overflow,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroDimension => write!(f, "an image dimension is zero"),
            Self::ZeroDepth => write!(f, "kernel depth must be at least 1"),
            Self::BadPatch { patch } => {
                write!(f, "patch size {patch} is not an odd number of at least 1")
            }
            Self::TooSmallForDepth {
                patch,
                depth,
                min_side,
            } => write!(
                f,
                "a depth-{depth} kernel on {patch}x{patch} patches needs images of at least \
                 {min_side}x{min_side} pixels"
            ),
            Self::Overflow => write!(f, "image size overflows"),
        }
    }
}

impl core::error::Error for ShapeError {}

impl Shape {
    /// Checks a `channels x height x width` image used with a `depth`-layer
    /// kernel on the blob's `PATCH x PATCH` patches.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        depth: usize,
    ) -> Result<Self, ShapeError> {
        Self::with_patch(channels, height, width, PATCH, depth)
    }

    /// Checks a `channels x height x width` image used with a `depth`-layer
    /// kernel on `patch x patch` patches (`patch` odd).
    pub fn with_patch(
        channels: usize,
        height: usize,
        width: usize,
        patch: usize,
        depth: usize,
    ) -> Result<Self, ShapeError> {
        if patch % 2 == 0 {
            return Err(ShapeError::BadPatch { patch });
        }
        if channels == 0 || height == 0 || width == 0 {
            return Err(ShapeError::ZeroDimension);
        }
        if depth == 0 {
            return Err(ShapeError::ZeroDepth);
        }
        // Side needed: `patch` for layer 1, plus `patch - 1` per later
        // layer, so the final grid keeps one position.
        let min_side = depth
            .checked_sub(1)
            .and_then(|d| d.checked_mul(patch.saturating_sub(1)))
            .and_then(|d| d.checked_add(patch))
            .ok_or(ShapeError::Overflow)?;
        if height < min_side || width < min_side {
            return Err(ShapeError::TooSmallForDepth {
                patch,
                depth,
                min_side,
            });
        }
        // c * Q^2 * H * W bounds every later size product (pixels, patch maps).
        channels
            .checked_mul(patch)
            .and_then(|d| d.checked_mul(patch))
            .and_then(|d| d.checked_mul(height))
            .and_then(|d| d.checked_mul(width))
            .ok_or(ShapeError::Overflow)?;
        Ok(Self {
            channels,
            height,
            width,
            patch,
            depth,
        })
    }

    /// Number of channels `c`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Image height `H` (rows).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width `W` (columns).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Patch side `Q` (odd; the window side of every layer).
    pub fn patch(&self) -> usize {
        self.patch
    }

    /// Kernel depth `L`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Values per image, `c * H * W`.
    #[allow(clippy::arithmetic_side_effects)] // checked in `new`
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Patch length `d = c * Q * Q`.
    #[allow(clippy::arithmetic_side_effects)] // checked in `with_patch`
    pub fn patch_dim(&self) -> usize {
        self.channels * self.patch * self.patch
    }

    /// `(rows, cols)` of the grid of layer `layer` (1-based, `1..=depth`);
    /// `(0, 0)` for a layer that does not exist.
    #[allow(clippy::arithmetic_side_effects)] // `with_patch` guarantees H, W >= Q + (Q - 1)(depth - 1)
    pub fn grid(&self, layer: usize) -> (usize, usize) {
        if layer == 0 || layer > self.depth {
            return (0, 0);
        }
        let shrink = (self.patch - 1) * layer;
        (self.height - shrink, self.width - shrink)
    }

    /// Number of positions of layer `layer`'s grid.
    #[allow(clippy::arithmetic_side_effects)] // bounded by H * W, checked in `new`
    pub fn positions(&self, layer: usize) -> usize {
        let (rows, cols) = self.grid(layer);
        rows * cols
    }

    /// Returns the same image geometry and patch side with another kernel
    /// depth.
    pub fn with_depth(&self, depth: usize) -> Result<Self, ShapeError> {
        Self::with_patch(self.channels, self.height, self.width, self.patch, depth)
    }
}

// Tests: an overflow panics the test, which is the failure we want.
#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn grids_shrink_by_two_per_layer() {
        let s = Shape::new(1, 28, 28, 3).unwrap();
        assert_eq!(s.grid(1), (26, 26));
        assert_eq!(s.grid(2), (24, 24));
        assert_eq!(s.grid(3), (22, 22));
        assert_eq!(s.grid(4), (0, 0));
        assert_eq!(s.patch_dim(), 9);
        let s = Shape::new(2, 7, 9, 3).unwrap();
        assert_eq!(s.grid(1), (5, 7));
        assert_eq!(s.grid(3), (1, 3));
        assert_eq!(s.patch_dim(), 18);
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            Shape::new(3, 6, 6, 3),
            Err(ShapeError::TooSmallForDepth {
                patch: 3,
                depth: 3,
                min_side: 7
            })
        );
        assert_eq!(Shape::new(0, 6, 6, 1), Err(ShapeError::ZeroDimension));
        assert_eq!(Shape::new(1, 6, 6, 0), Err(ShapeError::ZeroDepth));
        assert_eq!(Shape::new(usize::MAX, 6, 6, 1), Err(ShapeError::Overflow));
        assert_eq!(Shape::new(1, 8, 8, usize::MAX), Err(ShapeError::Overflow));
        for patch in [0, 2, 4] {
            assert_eq!(
                Shape::with_patch(1, 28, 28, patch, 1),
                Err(ShapeError::BadPatch { patch })
            );
        }
        // A patch larger than the image, and a depth whose last grid is empty.
        assert_eq!(
            Shape::with_patch(1, 8, 8, 9, 1),
            Err(ShapeError::TooSmallForDepth {
                patch: 9,
                depth: 1,
                min_side: 9
            })
        );
        assert_eq!(
            Shape::with_patch(1, 14, 14, 5, 4),
            Err(ShapeError::TooSmallForDepth {
                patch: 5,
                depth: 4,
                min_side: 17
            })
        );
    }

    #[test]
    fn grids_shrink_by_patch_minus_one_per_layer() {
        // The authors' Vanilla(5, 3) on 14x14: 10x10, 6x6, 2x2.
        let s = Shape::with_patch(1, 14, 14, 5, 3).unwrap();
        assert_eq!(
            [s.grid(1), s.grid(2), s.grid(3)],
            [(10, 10), (6, 6), (2, 2)]
        );
        assert_eq!(s.patch_dim(), 25);
        // ps 11, depth 1 on 32x32 (the star notebook).
        let s = Shape::with_patch(3, 32, 32, 11, 1).unwrap();
        assert_eq!((s.grid(1), s.patch_dim()), ((22, 22), 363));
        // Patch side 1: pixels are patches, grids never shrink.
        let s = Shape::with_patch(2, 5, 7, 1, 3).unwrap();
        assert_eq!((s.grid(3), s.patch_dim()), ((5, 7), 2));
        assert_eq!(s.with_depth(5).unwrap().patch(), 1);
    }
}
