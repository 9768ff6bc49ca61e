//! Dense linear algebra on the host, via faer: the regularised kernel solve
//! and the PSD square root that turns an AGOP into the next metric.

use faer::linalg::solvers::Llt;
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::prelude::*;
use faer::{Mat, Side};

use crate::matrix::Matrix;

/// Why a solve or a square root failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LinalgError {
    /// The matrix has a NaN or infinite entry.
    #[error("{what} has a non-finite entry at ({row}, {col})")]
    NotFinite {
        /// Which matrix.
        what: &'static str,
        /// Row of the first bad entry.
        row: usize,
        /// Column of the first bad entry.
        col: usize,
    },
    /// Cholesky failed even with the largest jitter tried.
    #[error(
        "K + lambda I is not positive definite (lambda = {lambda:e}), even with jitter up to {max_jitter:e}"
    )]
    NotPositiveDefinite {
        /// Requested ridge.
        lambda: f64,
        /// Largest jitter tried.
        max_jitter: f64,
    },
    /// The eigendecomposition did not converge.
    #[error("eigendecomposition of the AGOP did not converge")]
    EigenFailed,
    /// The AGOP is zero: the predictor's gradients vanish, so there is no
    /// metric to learn.
    #[error("the AGOP is zero (all patch gradients vanish); cannot update the metric")]
    ZeroAgop,
}

/// `alpha = (K + lambda I)^{-1} Y` and what it took.
#[derive(Clone, Debug)]
pub struct Solution {
    /// `n x classes`.
    pub alpha: Matrix,
    /// Extra diagonal added beyond `lambda` to make Cholesky succeed
    /// (0 when none was needed).
    pub jitter: f64,
}

/// Largest jitter (relative to the unit diagonal scale of a max-normalised
/// kernel) tried before giving up.
const MAX_JITTER: f64 = 1e-2;

/// `K + lambda I` factored by Cholesky, with the jitter it needed: solves
/// for alpha and gives the diagonal of its inverse (exact leave-one-out).
pub struct RidgeFactor {
    llt: Llt<f64>,
    jitter: f64,
}

/// Factors `K + lambda I` by Cholesky. `k` is `n x n` symmetric (row-major;
/// only its values matter).
///
/// If the factorisation fails (f32 kernels carry ~1e-7 relative noise, so a
/// tiny lambda can leave the matrix indefinite at rounding level), the
/// diagonal is raised by a jitter of 1e-10, 1e-9, ... up to 1e-2 and the
/// jitter used is kept, so callers can report it.
pub fn factor_ridge(k: &Matrix, lambda: f64) -> Result<RidgeFactor, LinalgError> {
    let n = k.rows();
    check_finite("kernel matrix", k.as_slice(), n)?;
    let base = k.view();
    let ladder = JitterLadder {
        first: 1e-10,
        last: MAX_JITTER,
    };
    let (llt, jitter) = factor_with_jitter(
        |jitter| {
            let shift = lambda + jitter;
            Mat::from_fn(n, n, |i, j| base[(i, j)] + if i == j { shift } else { 0.0 })
        },
        ladder,
    )
    .ok_or(LinalgError::NotPositiveDefinite {
        lambda,
        max_jitter: MAX_JITTER,
    })?;
    Ok(RidgeFactor { llt, jitter })
}

impl RidgeFactor {
    /// `alpha = (K + lambda I)^{-1} Y` for `y` (`n x classes`, row-major).
    pub fn solve(&self, y: &Matrix) -> Result<Solution, LinalgError> {
        let alpha = Matrix::from_mat(self.llt.solve(y.view()).as_ref());
        check_finite("solution alpha", alpha.as_slice(), alpha.cols())?;
        Ok(Solution {
            alpha,
            jitter: self.jitter,
        })
    }

    /// The diagonal of `(K + lambda I)^{-1}`: with `L` the Cholesky factor,
    /// entry `i` is the squared norm of column `i` of `L^{-1}` (one
    /// triangular inversion, a third of a factorisation's work).
    pub fn inverse_diagonal(&self) -> Vec<f64> {
        let l = self.llt.L();
        let n = l.nrows();
        let mut inv = Mat::<f64>::zeros(n, n);
        invert_lower_triangular(inv.as_mut(), l, faer::get_global_parallelism());
        (0..n)
            .map(|i| (i..n).map(|k| inv[(k, i)] * inv[(k, i)]).sum())
            .collect()
    }
}

/// Solves `(K + lambda I) alpha = Y` by Cholesky ([`factor_ridge`], with
/// its jitter); `y` is `n x classes` row-major.
pub fn solve_ridge(k: &Matrix, y: &Matrix, lambda: f64) -> Result<Solution, LinalgError> {
    factor_ridge(k, lambda)?.solve(y)
}

/// The jitters tried after a failed Cholesky: `first`, then ten times more
/// each time, up to `last`.
#[derive(Clone, Copy, Debug)]
pub struct JitterLadder {
    /// The first jitter tried after none.
    pub first: f64,
    /// The largest jitter tried.
    pub last: f64,
}

/// The one Cholesky-with-jitter loop: factors the symmetric matrix
/// `matrix(j)`, first with `j = 0`, then up the ladder until the
/// factorisation succeeds; `(factor, j)`, or `None` past the ladder. The
/// caller builds `A(j)`, so each caller keeps its own scaling of `j`.
pub fn factor_with_jitter(
    matrix: impl Fn(f64) -> Mat<f64>,
    ladder: JitterLadder,
) -> Option<(Llt<f64>, f64)> {
    let mut jitter = 0.0;
    loop {
        if let Ok(llt) = matrix(jitter).llt(Side::Lower) {
            return Some((llt, jitter));
        }
        jitter = if jitter == 0.0 {
            ladder.first
        } else {
            jitter * 10.0
        };
        if jitter > ladder.last {
            return None;
        }
    }
}

/// The next metric from an AGOP `g` (`d x d`, row-major):
/// `S = V diag(sqrt(max(l, 0))) V^T / ||.||_F` (negative eigenvalues from
/// rounding are clipped; Frobenius normalisation as in the reference).
pub fn psd_sqrt_normalised(g: &[f64], d: usize) -> Result<Vec<f64>, LinalgError> {
    let (values, vectors) = symmetric_eigen("AGOP", g, d)?;
    let roots: Vec<f64> = values.iter().map(|v| v.max(0.0).sqrt()).collect();
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            out[i * d + j] = (0..d)
                .map(|k| vectors[k][i] * roots[k] * vectors[k][j])
                .sum();
        }
    }
    let norm = out.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(LinalgError::ZeroAgop);
    }
    for v in &mut out {
        *v /= norm;
    }
    Ok(out)
}

/// Eigenvalues (largest first) and matching unit eigenvectors of the
/// symmetric part of the `d x d` row-major matrix `m` (named `what` in
/// errors).
pub fn symmetric_eigen(
    what: &'static str,
    m: &[f64],
    d: usize,
) -> Result<(Vec<f64>, Vec<Vec<f64>>), LinalgError> {
    check_finite(what, m, d)?;
    let sym = Mat::from_fn(d, d, |i, j| 0.5 * (m[i * d + j] + m[j * d + i]));
    let eig = sym
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| LinalgError::EigenFailed)?;
    let (u, s) = (eig.U(), eig.S());
    // faer returns them in increasing order.
    let values = (0..d).rev().map(|k| s[k]).collect();
    let vectors = (0..d)
        .rev()
        .map(|k| (0..d).map(|i| u[(i, k)]).collect())
        .collect();
    Ok((values, vectors))
}

fn check_finite(what: &'static str, m: &[f64], cols: usize) -> Result<(), LinalgError> {
    match m.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(LinalgError::NotFinite {
            what,
            row: i / cols.max(1),
            col: i % cols.max(1),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rows: usize, v: &[f64]) -> Matrix {
        Matrix::from_row_major(rows, v.len() / rows, v.to_vec()).unwrap()
    }

    #[test]
    fn ridge_solve_solves() {
        let k = [4.0, 1.0, 1.0, 3.0];
        let y = [1.0, 0.0, 0.0, 1.0];
        let sol = solve_ridge(&m(2, &k), &m(2, &y), 0.0).unwrap();
        // inverse of [[4,1],[1,3]] = [[3,-1],[-1,4]] / 11
        let want = [3.0 / 11.0, -1.0 / 11.0, -1.0 / 11.0, 4.0 / 11.0];
        for (a, b) in sol.alpha.as_slice().iter().zip(want) {
            assert!((a - b).abs() < 1e-14);
        }
        assert_eq!(sol.jitter, 0.0);
    }

    #[test]
    fn indefinite_matrix_gets_reported_jitter_or_error() {
        // Rank-deficient PSD matrix with a rounding-level negative eigenvalue.
        let k = [1.0, 1.0, 1.0, 1.0 - 1e-12];
        let sol = solve_ridge(&m(2, &k), &m(2, &[1.0, 0.0]), 0.0).unwrap();
        assert!(sol.jitter > 0.0);
        let k = [1.0, 2.0, 2.0, 1.0]; // eigenvalues 3 and -1
        assert_eq!(
            solve_ridge(&m(2, &k), &m(2, &[1.0, 0.0]), 1e-3).unwrap_err(),
            LinalgError::NotPositiveDefinite {
                lambda: 1e-3,
                max_jitter: MAX_JITTER
            }
        );
    }

    #[test]
    fn non_finite_kernel_is_named() {
        let k = [1.0, f64::NAN, 0.0, 1.0];
        let err = solve_ridge(&m(2, &k), &m(2, &[1.0, 0.0]), 1e-3).unwrap_err();
        assert_eq!(
            err,
            LinalgError::NotFinite {
                what: "kernel matrix",
                row: 0,
                col: 1
            }
        );
    }

    #[test]
    fn sqrt_of_agop_squares_back_and_is_normalised() {
        // G = A A^T for a random-ish A.
        let a = [1.0, 2.0, 0.5, -1.0, 0.3, 2.0, 0.0, 1.0, 1.5];
        let d = 3;
        let mut g = vec![0.0; 9];
        for i in 0..d {
            for j in 0..d {
                g[i * d + j] = (0..d).map(|k| a[i * d + k] * a[j * d + k]).sum();
            }
        }
        let s = psd_sqrt_normalised(&g, d).unwrap();
        let fro: f64 = s.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((fro - 1.0).abs() < 1e-12);
        // S^2 is proportional to G.
        let s2: Vec<f64> = (0..9)
            .map(|t| (0..d).map(|k| s[(t / d) * d + k] * s[k * d + t % d]).sum())
            .collect();
        let ratio = g[0] / s2[0];
        for (x, y) in g.iter().zip(&s2) {
            assert!((x - ratio * y).abs() < 1e-10 * ratio);
        }
        assert_eq!(
            psd_sqrt_normalised(&[0.0; 4], 2),
            Err(LinalgError::ZeroAgop)
        );
    }
}
