//! Image geometry and the patch grids of the convolutional kernel.
//!
//! An image is `channels x height x width`, channel-major. Layer 1 sees the
//! `PATCH x PATCH` patches at every VALID position; every later layer is a
//! 3x3 VALID window over the previous grid, so each layer's grid is two rows
//! and two columns smaller than the one before.

use core::fmt;

/// Patch side (and window side of every later layer).
pub const PATCH: usize = 3;

/// Validated image shape together with the kernel depth it is used with.
///
/// Construction checks every product, so accessors cannot overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    channels: usize,
    height: usize,
    width: usize,
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
    /// The image is too small for the requested depth: the last layer's
    /// grid would be empty.
    TooSmallForDepth {
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
            Self::TooSmallForDepth { depth, min_side } => write!(
                f,
                "a depth-{depth} kernel needs images of at least {min_side}x{min_side} pixels"
            ),
            Self::Overflow => write!(f, "image size overflows"),
        }
    }
}

impl core::error::Error for ShapeError {}

impl Shape {
    /// Checks a `channels x height x width` image used with a `depth`-layer kernel.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        depth: usize,
    ) -> Result<Self, ShapeError> {
        if channels == 0 || height == 0 || width == 0 {
            return Err(ShapeError::ZeroDimension);
        }
        if depth == 0 {
            return Err(ShapeError::ZeroDepth);
        }
        // Side needed: PATCH for layer 1, plus 2 per later layer, plus 1 so
        // the final grid is not empty: PATCH + 2 (depth - 1).
        let min_side = depth
            .checked_sub(1)
            .and_then(|d| d.checked_mul(2))
            .and_then(|d| d.checked_add(PATCH))
            .ok_or(ShapeError::Overflow)?;
        if height < min_side || width < min_side {
            return Err(ShapeError::TooSmallForDepth { depth, min_side });
        }
        // c * 9 * H * W bounds every later size product (pixels, patch maps).
        channels
            .checked_mul(PATCH * PATCH)
            .and_then(|d| d.checked_mul(height))
            .and_then(|d| d.checked_mul(width))
            .ok_or(ShapeError::Overflow)?;
        Ok(Self {
            channels,
            height,
            width,
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

    /// Kernel depth `L`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Values per image, `c * H * W`.
    #[allow(clippy::arithmetic_side_effects)] // checked in `new`
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Patch length `d = c * PATCH * PATCH`.
    #[allow(clippy::arithmetic_side_effects)] // checked in `new`
    pub fn patch_dim(&self) -> usize {
        self.channels * PATCH * PATCH
    }

    /// `(rows, cols)` of the grid of layer `layer` (1-based, `1..=depth`);
    /// `(0, 0)` for a layer that does not exist.
    #[allow(clippy::arithmetic_side_effects)] // `new` guarantees H, W >= PATCH + 2 (depth - 1)
    pub fn grid(&self, layer: usize) -> (usize, usize) {
        if layer == 0 || layer > self.depth {
            return (0, 0);
        }
        let shrink = PATCH - 1 + 2 * (layer - 1);
        (self.height - shrink, self.width - shrink)
    }

    /// Number of positions of layer `layer`'s grid.
    #[allow(clippy::arithmetic_side_effects)] // bounded by H * W, checked in `new`
    pub fn positions(&self, layer: usize) -> usize {
        let (rows, cols) = self.grid(layer);
        rows * cols
    }

    /// Returns the same image geometry with another kernel depth.
    pub fn with_depth(&self, depth: usize) -> Result<Self, ShapeError> {
        Self::new(self.channels, self.height, self.width, depth)
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
                depth: 3,
                min_side: 7
            })
        );
        assert_eq!(Shape::new(0, 6, 6, 1), Err(ShapeError::ZeroDimension));
        assert_eq!(Shape::new(1, 6, 6, 0), Err(ShapeError::ZeroDepth));
        assert_eq!(Shape::new(usize::MAX, 6, 6, 1), Err(ShapeError::Overflow));
        assert_eq!(Shape::new(1, 8, 8, usize::MAX), Err(ShapeError::Overflow));
    }
}
