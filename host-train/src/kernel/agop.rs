//! Patch gradients of a fitted predictor and the patch-AGOP.
//!
//! For `f_o(z) = sum_n alpha[n][o] K(x_n, z)`, the gradient with respect to
//! each patch `P_p(z)` of the untransformed image, every patch position its
//! own variable (weight sharing), and
//! `AGOP = 1/|Z| sum_z sum_o sum_p g g^T`.

use std::collections::HashMap;

use crate::matrix::Matrix;
use crate::output::Phase;
use faer::MatRef;
use rayon::prelude::*;

use crate::data::ImageDims;
use crate::kernel::KernelBlocks;
use crate::kernel::Real;
use crate::kernel::{Gradient, LANES, Lanes, Pixel, Tape, Workspace, add_patch};

impl<R: Real> KernelBlocks<'_, R> {
    /// Patch gradients of one query image: `classes x positions x d`, where
    /// `alpha` is `n x classes`. `same` lists the training images
    /// equal to the query (self-pair convention: their `r` is exactly 0).
    pub fn patch_gradients<P: Pixel>(
        &self,
        alpha: &Matrix,
        query: &[P],
        same: &[usize],
    ) -> Vec<f64> {
        let kernel = self.kernel();
        let shape = kernel.shape();
        assert_eq!(alpha.rows(), self.len(), "alpha is not n x classes");
        let classes = alpha.cols();
        let a = kernel.image_maps::<R, P>(query);
        let mut work = Workspace::new(&shape);
        let mut tape = Tape::new(&shape);
        let mut grad = Gradient::new(&shape, classes);
        let mut weights = vec![[R::ZERO; LANES]; classes];
        for (bi, block) in self.blocks().iter().enumerate() {
            for (o, w) in weights.iter_mut().enumerate() {
                *w = lane_weights(alpha.as_slice(), classes, o, bi * LANES, block.len());
            }
            let mut same_lanes = [false; LANES];
            for &j in same.iter().filter(|&&j| j / LANES == bi) {
                same_lanes[j % LANES] = true;
            }
            kernel.forward(&a, block, &same_lanes, &mut work, Some(&mut tape));
            kernel.backward(block, &weights, &tape, &mut work, &mut grad);
        }
        grad.finish(kernel, &a)
    }

    /// Pixel gradients of one query image: `classes x pixels`, each class's
    /// patch gradients ([`Self::patch_gradients`]) summed back onto the
    /// pixels each patch covers (the kernel's own scale, not divided).
    pub fn pixel_gradients<P: Pixel>(
        &self,
        alpha: &Matrix,
        query: &[P],
        same: &[usize],
    ) -> Vec<Vec<f64>> {
        let shape = self.kernel().shape();
        let (d, cols, per) = (shape.patch_dim(), shape.grid(1).1, shape.pixels());
        let grads = self.patch_gradients(alpha, query, same);
        grads
            .chunks_exact((shape.positions(1) * d).max(1))
            .map(|class_grad| {
                let mut pixels = vec![0.0; per];
                for (p, gp) in class_grad.chunks_exact(d).enumerate() {
                    add_patch(
                        ImageDims::of(&shape),
                        shape.patch(),
                        gp,
                        (p / cols, p % cols),
                        &mut pixels,
                    );
                }
                pixels
            })
            .collect()
    }

    /// The patch-AGOP (`d x d`, row-major) over the query images (flat),
    /// averaged over queries. `train_images` are the images this set was
    /// prepared from: a query equal to one of them gets the self-pair
    /// convention for that pair. `progress` advances by one per query.
    pub fn agop<P: Pixel>(
        &self,
        alpha: &Matrix,
        train_images: &[P],
        queries: &[P],
        progress: &Phase,
    ) -> Vec<f64> {
        let d = self.kernel().shape().patch_dim();
        let per = self.kernel().shape().pixels();
        let index = ImageIndex::new(train_images, per);
        let m = queries.len() / per;
        // Per-query outer products, summed in query order afterwards so the
        // AGOP (and every model trained from it) does not depend on how the
        // work was split between threads.
        let parts: Vec<Vec<f64>> = queries
            .par_chunks(per)
            .map(|query| {
                let same = index.find(query);
                let grads = self.patch_gradients(alpha, query, &same);
                // sum_p g g^T as one product G^T G of the gradient rows.
                let gm = MatRef::from_row_major_slice(&grads, grads.len() / d, d);
                let outer = gm.transpose() * gm;
                progress.inc(1);
                (0..d * d)
                    .map(|ij| outer[(ij / d, ij % d)])
                    .collect::<Vec<f64>>()
            })
            .collect();
        let mut g = vec![0.0; d * d];
        for part in parts {
            for (a, p) in g.iter_mut().zip(part) {
                *a += p;
            }
        }
        let inv = 1.0 / m.max(1) as f64;
        for v in &mut g {
            *v *= inv;
        }
        g
    }
}

/// The weights of class `o` for the lanes of the block starting at image `start`.
fn lane_weights<R: Real>(
    alpha: &[f64],
    classes: usize,
    o: usize,
    start: usize,
    len: usize,
) -> Lanes<R> {
    let mut w = [R::ZERO; LANES];
    for (lane, wv) in w.iter_mut().enumerate().take(len) {
        *wv = R::from_f64(alpha[(start + lane) * classes + o]);
    }
    w
}

/// Finds the training images bit-identical to a query (the self-pair
/// convention needs them).
pub(crate) struct ImageIndex {
    by_bits: HashMap<Vec<u64>, Vec<usize>>,
}

impl ImageIndex {
    /// Indexes `images` (flat, `per` values each).
    pub(crate) fn new<P: Pixel>(images: &[P], per: usize) -> Self {
        let mut by_bits: HashMap<Vec<u64>, Vec<usize>> = HashMap::new();
        for (i, im) in images.chunks_exact(per).enumerate() {
            by_bits.entry(bits(im)).or_default().push(i);
        }
        Self { by_bits }
    }

    /// Indices of the images equal to `query`, bit for bit.
    pub(crate) fn find<P: Pixel>(&self, query: &[P]) -> Vec<usize> {
        self.by_bits.get(&bits(query)).cloned().unwrap_or_default()
    }
}

fn bits<P: Pixel>(image: &[P]) -> Vec<u64> {
    image
        .iter()
        .map(|&v| Into::<f64>::into(v).to_bits())
        .collect()
}
