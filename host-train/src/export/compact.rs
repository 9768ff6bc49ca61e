//! From a trained ConvRFM to a compact model that fits a microcontroller:
//! a few training images kept as Nystroem centres, a low-rank patch metric,
//! quantised pixels. This module is the float side (selection and fitting);
//! `export` turns the result into a blob for `convrfm-core`.
//!
//! - **Centres**: greedy pivoted Cholesky on the kernel matrix (each step
//!   takes the image the chosen ones explain worst, i.e. the largest
//!   residual diagonal). Unlike uniform sampling it avoids near-duplicates
//!   and covers the data; it needs only one kernel row per centre. The
//!   order is nested, so the first `m` pivots are the `m`-centre choice.
//! - **alpha**: re-fitted for the centres on all fit images by regularised
//!   least squares, `(C^T C + n lambda W) alpha = C^T Y` (`C` = kernel
//!   between fit images and centres, `W` = between centres).
//! - **Low-rank metric**: the top-`r` eigenpairs of `S`: `W_r = V_r diag(s_r)`
//!   (`d x r`), which keeps `<P W_r, P' W_r> = P S_r^2 P'^T` exactly.

use anyhow::{Context, Result, ensure};
use faer::Mat;
use faer::prelude::Solve;

use crate::fit::linalg::{JitterLadder, factor_with_jitter, symmetric_eigen};
use crate::fit::readout::accuracy;
use crate::kernel::{Kernel, KernelBlocks, Metric, Real};
use crate::matrix::Matrix;
use crate::output::Phase;

/// The first `m` pivots of a greedy pivoted Cholesky of `K(X, X)` over
/// `images` (fewer if the kernel's numerical rank is exhausted first).
pub fn select_centres<R: Real>(
    kernel: &Kernel,
    images: &[f32],
    m: usize,
    progress: &Phase,
) -> Vec<usize> {
    let set = KernelBlocks::<R>::new(kernel, images);
    let n = set.len();
    let per = kernel.shape().pixels();
    let mut resid = set.diagonal(images);
    let floor = 1e-9 * resid.iter().fold(0.0f64, |a, v| a.max(*v));
    let mut cols: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut chosen = Vec::with_capacity(m);
    let hidden = Phase::hidden();
    for _ in 0..m.min(n) {
        let (piv, &best) = resid
            .iter()
            .enumerate()
            .fold(
                (0, &f64::NEG_INFINITY),
                |b, (i, v)| if *v > *b.1 { (i, v) } else { b },
            );
        if best <= floor {
            break;
        }
        let mut col = set.cross(&images[piv * per..][..per], &hidden).into_vec();
        for prev in &cols {
            let f = prev[piv];
            for (c, p) in col.iter_mut().zip(prev) {
                *c -= f * p;
            }
        }
        let inv = 1.0 / best.sqrt();
        for (c, r) in col.iter_mut().zip(resid.iter_mut()) {
            *c *= inv;
            *r -= *c * *c;
        }
        resid[piv] = f64::NEG_INFINITY; // never again
        cols.push(col);
        chosen.push(piv);
        progress.inc(1);
    }
    chosen
}

/// `W_r = V_r diag(s_r)` (`d x r`, row-major) from the top-`r` eigenpairs of
/// the symmetric metric `S` ([`padded_metric`] turns it into a float
/// kernel's metric).
pub fn low_rank(metric: &Metric, r: usize) -> Result<Vec<f64>> {
    let d = metric.dim();
    ensure!((1..=d).contains(&r), "rank {r} must be in 1..={d}");
    let (values, vectors) = symmetric_eigen("metric", metric.rows(), d)?;
    // Largest first: the top r.
    let mut w = vec![0.0; d * r];
    for j in 0..r {
        let scale = values[j].max(0.0);
        for i in 0..d {
            w[i * r + j] = vectors[j][i] * scale;
        }
    }
    Ok(w)
}

/// The `d x d` metric whose first `r` columns are `w` (`d x r`) and the rest 0.
pub fn padded_metric(w: &[f64], d: usize, r: usize) -> Result<Metric> {
    let mut rows = vec![0.0; d * d];
    for i in 0..d {
        rows[i * d..i * d + r].copy_from_slice(&w[i * r..][..r]);
    }
    Ok(Metric::from_rows(d, rows)?)
}

/// A Nystroem regularised least-squares problem: `C` (`n x m`, kernel
/// between fit images and centres), `W` (`m x m`, between centres), `Y`
/// (`n x classes` one-hot).
pub struct Nystrom<'a> {
    /// `n x m`.
    pub c: &'a Matrix,
    /// `m x m`.
    pub w: &'a Matrix,
    /// `n x classes`.
    pub y: &'a Matrix,
}

impl Nystrom<'_> {
    /// `alpha` (`m x classes`) solving `(C^T C + n lambda W) alpha = C^T Y`.
    /// A small diagonal jitter (relative to the matrix scale) is added if
    /// Cholesky fails; `None` if even that fails.
    pub fn solve(&self, lambda: f64) -> Option<Matrix> {
        let (n, m) = (self.c.rows(), self.c.cols());
        let (cm, wm, ym) = (self.c.view(), self.w.view(), self.y.view());
        let ctc = cm.transpose() * cm;
        let rhs = cm.transpose() * ym;
        let scale = (0..m)
            .map(|i| ctc[(i, i)])
            .fold(0.0f64, f64::max)
            .max(1e-300);
        let ladder = JitterLadder {
            first: 1e-12,
            last: 1e-4,
        };
        let (llt, _) = factor_with_jitter(
            |jitter| {
                Mat::from_fn(m, m, |i, j| {
                    ctc[(i, j)]
                        + n as f64 * lambda * wm[(i, j)]
                        + if i == j { jitter * scale } else { 0.0 }
                })
            },
            ladder,
        )?;
        let sol = llt.solve(rhs.as_ref());
        let alpha = Matrix::from_mat(sol.as_ref());
        alpha
            .as_slice()
            .iter()
            .all(|v| v.is_finite())
            .then_some(alpha)
    }

    /// The lambda with the best accuracy on validation (`c_val`: kernel
    /// between validation images and centres): `(lambda, alpha, accuracy)`.
    pub fn best_lambda(
        &self,
        c_val: &Matrix,
        val_labels: &[u8],
        lambdas: &[f64],
    ) -> Result<(f64, Matrix, f64)> {
        let mut best: Option<(f64, Matrix, f64)> = None;
        for &lambda in lambdas {
            let Some(alpha) = self.solve(lambda) else {
                continue;
            };
            let acc = accuracy(c_val, &alpha, val_labels);
            if best.as_ref().is_none_or(|b| acc > b.2) {
                best = Some((lambda, alpha, acc));
            }
        }
        best.context("every Nystroem solve failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_rank_projection_keeps_inner_products_and_truncation_keeps_the_top() {
        // S = A + A^T + 4 I: symmetric positive definite, 3 x 3.
        let a = [0.3, -0.2, 0.5, 0.1, 0.7, -0.4, 0.2, 0.0, 0.6];
        let d = 3;
        let s: Vec<f64> = (0..9)
            .map(|t| a[t] + a[(t % d) * d + t / d] + if t % 4 == 0 { 4.0 } else { 0.0 })
            .collect();
        let metric = Metric::from_rows(d, s.clone()).unwrap();
        let s2 = |i: usize, j: usize| (0..d).map(|k| s[i * d + k] * s[j * d + k]).sum::<f64>();
        let w = low_rank(&metric, d).unwrap();
        for i in 0..d {
            for j in 0..d {
                let wwt: f64 = (0..d).map(|k| w[i * d + k] * w[j * d + k]).sum();
                assert!(
                    (wwt - s2(i, j)).abs() < 1e-12,
                    "W W^T != S S^T at ({i}, {j})"
                );
            }
        }
        // Rank 1 keeps the largest eigenvalue: trace(W W^T) = s_max^2 <= trace(S^2).
        let w1 = low_rank(&metric, 1).unwrap();
        let t1: f64 = w1.iter().map(|v| v * v).sum();
        let t: f64 = (0..d).map(|i| s2(i, i)).sum();
        assert!(t1 > t / 3.0 && t1 < t);
        assert!(low_rank(&metric, 0).is_err() && low_rank(&metric, 4).is_err());
    }
}
