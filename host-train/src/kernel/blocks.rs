//! Kernel matrices over sets of images: `K(X, X)` and `K(Z, X)`.
//!
//! The training images `X` are prepared once into lane-interleaved
//! [`Block`]s; a query image is prepared on the fly (its cost is one patch
//! transform, negligible next to a row of pairs). Rows run in parallel on
//! rayon's pool, so `--threads` (the pool size) sets the cores used.

use crate::matrix::Matrix;
use crate::output::Phase;
use rayon::prelude::*;

use crate::kernel::Real;
use crate::kernel::{Block, Kernel, LANES, Pixel, Workspace};

/// Query images evaluated together against each block: the block's maps
/// (~0.6 MB at 28x28, depth 3) stay in cache while the tile uses them,
/// instead of being streamed from memory once per query.
const QUERY_TILE: usize = 8;

/// Training images prepared for kernel evaluation in precision `R`.
pub struct KernelBlocks<'k, R> {
    kernel: &'k Kernel,
    blocks: Vec<Block<R>>,
    len: usize,
}

impl<'k, R: Real> KernelBlocks<'k, R> {
    /// Prepares `images` (flat, `n * c*H*W` values, channel-major).
    ///
    /// # Panics
    /// If `images.len()` is not a multiple of the image size.
    pub fn new<P: Pixel>(kernel: &'k Kernel, images: &[P]) -> Self {
        let per = kernel.shape().pixels();
        assert_eq!(images.len() % per, 0, "image data is not whole images");
        let len = images.len() / per;
        let blocks = images
            .par_chunks(per * LANES)
            .map(|chunk| {
                let ims: Vec<&[P]> = chunk.chunks_exact(per).collect();
                kernel.block(&ims)
            })
            .collect();
        Self {
            kernel,
            blocks,
            len,
        }
    }

    /// Number of training images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no training image.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kernel these images were prepared for.
    pub fn kernel(&self) -> &'k Kernel {
        self.kernel
    }

    /// The lane blocks, in image order.
    pub fn blocks(&self) -> &[Block<R>] {
        &self.blocks
    }

    /// `K(X, X)` (`n x n`, row-major, symmetric) for the images this set was
    /// prepared from. Each unordered pair is evaluated once; the diagonal
    /// uses the self-pair convention. `progress` advances by one per pair
    /// evaluated (`n (n + 1) / 2` in all, up to block padding).
    pub fn gram<P: Pixel>(&self, images: &[P], progress: &Phase) -> Matrix {
        let n = self.len;
        let per = self.kernel.shape().pixels();
        let mut out = Matrix::zeros(n, n);
        out.as_mut_slice()
            .par_chunks_mut((n * QUERY_TILE).max(1))
            .enumerate()
            .for_each_init(
                || Workspace::new(&self.kernel.shape()),
                |work, (tile, rows)| {
                    let i0 = tile * QUERY_TILE;
                    let maps: Vec<_> = (i0..i0 + rows.len() / n)
                        .map(|i| self.kernel.image_maps::<R, P>(&images[i * per..][..per]))
                        .collect();
                    for (bi, block) in self.blocks.iter().enumerate().skip(i0 / LANES) {
                        for (t, (a, row)) in maps.iter().zip(rows.chunks_mut(n)).enumerate() {
                            let i = i0 + t;
                            if (bi + 1) * LANES <= i {
                                continue; // the whole block lies left of the diagonal
                            }
                            let mut same = [false; LANES];
                            if bi == i / LANES {
                                same[i % LANES] = true;
                            }
                            let (ntk, nngp) = self.kernel.forward(a, block, &same, work, None);
                            let vals = self.pick(&ntk, &nngp);
                            for (lane, v) in vals.iter().enumerate().take(block.len()) {
                                let j = bi * LANES + lane;
                                if j >= i {
                                    row[j] = v.to_f64();
                                }
                            }
                        }
                    }
                    progress.inc(maps.len() as u64 * (n - i0) as u64);
                },
            );
        let k = out.as_mut_slice();
        for i in 0..n {
            for j in 0..i {
                k[i * n + j] = k[j * n + i];
            }
        }
        out
    }

    /// `K(Z, X)` (`m x n`, row-major) for `m` query images (flat).
    /// `progress` advances by `n` per query.
    pub fn cross<P: Pixel>(&self, queries: &[P], progress: &Phase) -> Matrix {
        let n = self.len;
        let per = self.kernel.shape().pixels();
        assert_eq!(queries.len() % per, 0, "query data is not whole images");
        let m = queries.len() / per;
        let mut out = Matrix::zeros(m, n);
        if n == 0 {
            return out;
        }
        out.as_mut_slice()
            .par_chunks_mut(n * QUERY_TILE)
            .zip(queries.par_chunks(per * QUERY_TILE))
            .for_each_init(
                || Workspace::new(&self.kernel.shape()),
                |work, (rows, tile)| {
                    let maps: Vec<_> = tile
                        .chunks_exact(per)
                        .map(|q| self.kernel.image_maps::<R, P>(q))
                        .collect();
                    for (bi, block) in self.blocks.iter().enumerate() {
                        for (a, row) in maps.iter().zip(rows.chunks_mut(n)) {
                            let (ntk, nngp) =
                                self.kernel.forward(a, block, &[false; LANES], work, None);
                            let dst = &mut row[bi * LANES..(bi * LANES + block.len())];
                            for (d, v) in dst.iter_mut().zip(self.pick(&ntk, &nngp)) {
                                *d = v.to_f64();
                            }
                        }
                    }
                    progress.inc((maps.len() * n) as u64);
                },
            );
        out
    }

    fn pick<'a>(&self, ntk: &'a [R; LANES], nngp: &'a [R; LANES]) -> &'a [R; LANES] {
        match self.kernel.kind() {
            crate::kernel::KernelKind::Ntk => ntk,
            crate::kernel::KernelKind::Nngp => nngp,
        }
    }
}

impl<R: Real> KernelBlocks<'_, R> {
    /// `K(x_i, x_i)` for every image this set was prepared from (self-pair
    /// convention), without the rest of the Gram matrix.
    pub fn diagonal<P: Pixel>(&self, images: &[P]) -> Vec<f64> {
        let per = self.kernel.shape().pixels();
        let mut out = vec![0.0; self.len];
        out.par_iter_mut().enumerate().for_each_init(
            || Workspace::new(&self.kernel.shape()),
            |work, (i, v)| {
                let a = self.kernel.image_maps::<R, P>(&images[i * per..][..per]);
                let mut same = [false; LANES];
                same[i % LANES] = true;
                let (ntk, nngp) =
                    self.kernel
                        .forward(&a, &self.blocks[i / LANES], &same, work, None);
                *v = self.pick(&ntk, &nngp)[i % LANES].to_f64();
            },
        );
        out
    }
}
