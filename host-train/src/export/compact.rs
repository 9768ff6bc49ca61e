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
//!   between fit images and centres, `W` = between centres), where `Y`
//!   mixes the one-hot labels with the trained model's scores
//!   (distillation: the full model is the teacher, [`Targets`]).
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

/// What a compact model is fitted to: the one-hot labels and, for
/// distillation, the teacher's scores on the same images. A fit with label
/// weight `w` regresses onto `w Y + (1 - w) T`; the solution is linear in
/// the targets, so one factorisation per lambda serves every `w`.
pub struct Targets {
    /// `n x classes` one-hot.
    pub labels: Matrix,
    /// `n x classes` teacher scores, if distilling.
    pub teacher: Option<Matrix>,
}

impl Targets {
    /// `w Y + (1 - w) T`, `n x classes` (the labels alone without a
    /// teacher): what a fit with label weight `w` regresses onto.
    pub fn mixed(&self, w: f64) -> Matrix {
        Stacked {
            pair: self.stacked(),
            classes: self.labels.cols(),
        }
        .mix(w)
    }

    /// Labels and teacher scores side by side, `n x classes` or
    /// `n x 2 classes`.
    fn stacked(&self) -> Matrix {
        let Some(t) = &self.teacher else {
            return self.labels.clone();
        };
        let (n, k) = (self.labels.rows(), self.labels.cols());
        let data = (0..n)
            .flat_map(|i| self.labels.row(i).iter().chain(t.row(i)).copied())
            .collect();
        Matrix::from_row_major(n, 2 * k, data).unwrap_or_else(|| self.labels.clone())
    }
}

/// A labels' block and a teacher's block side by side, each `classes`
/// wide ([`Targets::stacked`], or the alpha solving for it), or the labels'
/// block alone; [`Stacked::mix`] blends them for one label weight.
struct Stacked {
    pair: Matrix,
    classes: usize,
}

impl Stacked {
    /// `w labels + (1 - w) teacher` (`rows x classes`); the labels' block
    /// alone when there is no teacher's.
    fn mix(&self, w: f64) -> Matrix {
        let (m, k) = (self.pair.rows(), self.classes);
        if self.pair.cols() == k {
            return self.pair.clone();
        }
        let data = (0..m)
            .flat_map(|i| {
                let row = self.pair.row(i);
                (0..k).map(move |j| w * row[j] + (1.0 - w) * row[k + j])
            })
            .collect();
        Matrix::from_row_major(m, k, data).unwrap_or_else(|| self.pair.left_columns(k))
    }
}

/// A Nystroem regularised least-squares problem: `C` (`n x m`, kernel
/// between fit images and centres), `W` (`m x m`, between centres), and
/// the targets (`n` rows).
pub struct Nystrom<'a> {
    /// `n x m`.
    pub c: &'a Matrix,
    /// `m x m`.
    pub w: &'a Matrix,
    /// Labels and, when distilling, teacher scores.
    pub targets: &'a Targets,
}

/// The best fit of [`Nystrom::best`].
pub struct Fitted {
    /// The ridge.
    pub lambda: f64,
    /// The label weight (1: labels only).
    pub label_weight: f64,
    /// `m x classes`.
    pub alpha: Matrix,
    /// Accuracy on the validation images.
    pub accuracy: f64,
}

impl Nystrom<'_> {
    /// `alpha` (`m x classes`) solving `(C^T C + n lambda W) alpha = C^T Y_w`
    /// with `Y_w = w Y + (1 - w) T`. `None` if the solve fails.
    pub fn solve(&self, lambda: f64, label_weight: f64) -> Option<Matrix> {
        let (ctc, rhs) = self.normal_equations();
        self.solve_stacked(&ctc, &rhs, lambda)
            .map(|s| s.mix(label_weight))
    }

    /// The lambda and label weight with the best accuracy on validation
    /// (`c_val`: kernel between validation images and centres; ties keep
    /// the earlier lambda, then the earlier weight).
    pub fn best(
        &self,
        c_val: &Matrix,
        val_labels: &[u8],
        lambdas: &[f64],
        label_weights: &[f64],
    ) -> Result<Fitted> {
        let (ctc, rhs) = self.normal_equations();
        let weights: &[f64] = if self.targets.teacher.is_some() {
            label_weights
        } else {
            &[1.0]
        };
        let mut best: Option<Fitted> = None;
        for &lambda in lambdas {
            let Some(stacked) = self.solve_stacked(&ctc, &rhs, lambda) else {
                continue;
            };
            for &label_weight in weights {
                let alpha = stacked.mix(label_weight);
                let acc = accuracy(c_val, &alpha, val_labels);
                if best.as_ref().is_none_or(|b| acc > b.accuracy) {
                    best = Some(Fitted {
                        lambda,
                        label_weight,
                        alpha,
                        accuracy: acc,
                    });
                }
            }
        }
        best.context("every Nystroem solve failed")
    }

    /// `C^T C` and `C^T [Y T]`, computed once for every lambda and weight.
    fn normal_equations(&self) -> (Mat<f64>, Mat<f64>) {
        let cm = self.c.view();
        let y = self.targets.stacked();
        (cm.transpose() * cm, cm.transpose() * y.view())
    }

    fn solve_stacked(&self, ctc: &Mat<f64>, rhs: &Mat<f64>, lambda: f64) -> Option<Stacked> {
        let (n, m) = (self.c.rows(), self.c.cols());
        let wm = self.w.view();
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
            .then_some(Stacked {
                pair: alpha,
                classes: self.targets.labels.cols(),
            })
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

    #[test]
    fn distillation_mixes_the_two_fits_and_weight_one_is_the_labels_fit() {
        // A small, well-posed problem: C 30 x 5, W = A^T A / 5 + I / 10.
        let (n, m, k) = (30, 5, 3);
        let v = |i: usize| ((i as f64 * 0.754_877_666).fract() - 0.5) * 2.0;
        let c = Matrix::from_row_major(n, m, (0..n * m).map(v).collect()).unwrap();
        let a = Matrix::from_row_major(m, m, (0..m * m).map(|i| v(i + 500)).collect()).unwrap();
        let w = Matrix::from_mat(
            (a.view().transpose() * a.view() / faer::Scale(5.0)
                + Mat::<f64>::identity(m, m) / faer::Scale(10.0))
            .as_ref(),
        );
        let labels: Vec<u8> = (0..n).map(|i| (i % k) as u8).collect();
        let y = crate::fit::readout::one_hot(&labels, k);
        let t = Matrix::from_row_major(n, k, (0..n * k).map(|i| v(i + 900)).collect()).unwrap();
        let plain = Targets {
            labels: y.clone(),
            teacher: None,
        };
        let teacher_only = Targets {
            labels: t.clone(),
            teacher: None,
        };
        let mixed = Targets {
            labels: y,
            teacher: Some(t),
        };
        let fit = |targets: &Targets, w_label: f64| {
            Nystrom {
                c: &c,
                w: &w,
                targets,
            }
            .solve(1e-3, w_label)
            .unwrap()
        };
        let close = |a: &Matrix, b: &Matrix| {
            a.as_slice()
                .iter()
                .zip(b.as_slice())
                .all(|(x, y)| (x - y).abs() < 1e-10)
        };
        assert!(close(&fit(&mixed, 1.0), &fit(&plain, 1.0)));
        assert!(close(&fit(&mixed, 0.0), &fit(&teacher_only, 1.0)));
        let half = fit(&mixed, 0.5);
        let (l, t) = (fit(&plain, 1.0), fit(&teacher_only, 1.0));
        for i in 0..m * k {
            let expect = 0.5 * l.as_slice()[i] + 0.5 * t.as_slice()[i];
            assert!((half.as_slice()[i] - expect).abs() < 1e-10);
        }
        // Without a teacher only the labels' fit is tried.
        let best = Nystrom {
            c: &c,
            w: &w,
            targets: &plain,
        }
        .best(&c, &labels, &[1e-3], &[0.0, 0.5])
        .unwrap();
        assert_eq!(best.label_weight, 1.0);
    }
}
