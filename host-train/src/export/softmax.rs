//! The softmax readout: alpha fitted by multinomial logistic regression
//! (cross-entropy on the labels) on the compact model's kernel features
//! `K(x, C) / s`, instead of least squares onto one-hot targets. The
//! device is unchanged: it still takes the argmax of `K(x, C) alpha`, and
//! the softmax only shapes alpha. With a few hundred centres the features
//! are too few for least squares to place the class boundaries well
//! (`docs/export.md`: +1.1 to +2.1 points on the shipped blobs' centres).
//!
//! - **Whitening**: the features are nearly collinear (every centre's
//!   kernel shares a large common part), so the fit runs in the
//!   coordinates `Z = C P` of the feature covariance's eigenvectors scaled
//!   to unit variance (directions below [`RELATIVE_FLOOR`] of the largest
//!   eigenvalue dropped), and `alpha = P B`.
//! - **Optimiser**: in those coordinates the loss's curvature is at most
//!   `1/2 + 2 ridge` (the softmax's Hessian is at most `1/2`), so Nesterov's
//!   accelerated gradient with that step converges without a line search;
//!   [`ITERATIONS`] fixed steps, deterministic. Hand-written: twenty lines,
//!   where an optimiser crate would bring its own vector algebra.
//! - **Ridge** `ridge |B|^2` on the whitened coefficients, chosen from
//!   [`RIDGES`] by [`FOLDS`]-fold cross-validation over all fit images: a
//!   few thousand validation images cannot tell the ridges apart (on the
//!   32-centre blob they chose 1e-2, 0.75 point worse on test than the
//!   1e-5 that five folds of 60,000 images choose).

use anyhow::{Context, Result, ensure};
use faer::Mat;

use crate::fit::linalg::symmetric_eigen;
use crate::fit::readout::{argmax_rows, one_hot, scores};
use crate::matrix::Matrix;
use crate::output::Phase;

/// Folds of the cross-validation that chooses the ridge (and, for
/// `--readout auto`, the readout).
pub const FOLDS: usize = 5;

/// Ridges tried.
pub const RIDGES: [f64; 5] = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/// Nesterov steps of one fit (the loss settles within about 100 on the
/// Fashion-MNIST blobs).
pub const ITERATIONS: usize = 200;

/// Feature directions whose variance is below this share of the largest
/// carry nothing but rounding noise; they are left out.
pub const RELATIVE_FLOOR: f64 = 1e-12;

/// A fitted softmax readout.
pub struct SoftmaxFit {
    /// `m x classes`, for the features `K(x, C) / s`.
    pub alpha: Matrix,
    /// Mean cross-entropy on the fit images.
    pub loss: f64,
}

/// The ridge a softmax readout was chosen with, and how it scored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxChoice {
    /// Ridge on the whitened coefficients.
    pub ridge: f64,
    /// Cross-validated accuracy over the fit images.
    pub cv_accuracy: f64,
}

/// Fits alpha (`m x classes`) to `labels` on the features `c` (`n x m`).
pub fn fit(c: &Matrix, labels: &[u8], classes: usize, ridge: f64) -> Result<SoftmaxFit> {
    let (n, m) = (c.rows(), c.cols());
    ensure!(
        n == labels.len() && n > 0,
        "{n} feature rows for {} labels",
        labels.len()
    );
    ensure!(
        ridge.is_finite() && ridge >= 0.0,
        "softmax ridge {ridge} is not finite and non-negative"
    );
    let cov = Matrix::from_mat((c.view().transpose() * c.view()).as_ref());
    let cov: Vec<f64> = cov.as_slice().iter().map(|v| v / n as f64).collect();
    let (values, vectors) = symmetric_eigen("the feature covariance", &cov, m)
        .context("whitening the softmax readout's features")?;
    let top = values.first().copied().unwrap_or(0.0);
    ensure!(top > 0.0, "the kernel features are all zero");
    let kept: Vec<usize> = (0..m)
        .filter(|&j| values[j] > top * RELATIVE_FLOOR)
        .collect();
    let p = Mat::from_fn(m, kept.len(), |i, j| {
        vectors[kept[j]][i] / values[kept[j]].sqrt()
    });
    let z = c.view() * &p;
    let y = one_hot(labels, classes);
    let y = y.view();
    let step = 1.0 / (0.5 + 2.0 * ridge);
    let mut b = Mat::<f64>::zeros(kept.len(), classes);
    let mut previous = b.clone();
    let mut loss = f64::INFINITY;
    for t in 0..ITERATIONS {
        let momentum = t as f64 / (t as f64 + 3.0);
        let look = &b + (&b - &previous) * faer::Scale(momentum);
        let (l, mut grad) = softmax_loss(&z, &look, y, n);
        grad += &look * faer::Scale(2.0 * ridge);
        loss = l;
        previous = b;
        b = &look - grad * faer::Scale(step);
    }
    let alpha = Matrix::from_mat((&p * &b).as_ref());
    ensure!(
        alpha.as_slice().iter().all(|v| v.is_finite()),
        "the softmax readout diverged (ridge {ridge})"
    );
    Ok(SoftmaxFit { alpha, loss })
}

/// Alpha fitted on the rows `idx` of the features `c` and of `labels`.
pub fn fit_rows(
    c: &Matrix,
    labels: &[u8],
    idx: &[usize],
    classes: usize,
    ridge: f64,
) -> Result<Matrix> {
    let picked: Vec<u8> = idx.iter().map(|&i| labels[i]).collect();
    Ok(fit(&c.select_rows(idx), &picked, classes, ridge)?.alpha)
}

/// Mean cross-entropy of `softmax(z b)` against `y`, and its gradient in `b`.
fn softmax_loss(z: &Mat<f64>, b: &Mat<f64>, y: faer::MatRef<'_, f64>, n: usize) -> (f64, Mat<f64>) {
    let mut r = z * b;
    let mut loss = 0.0;
    for i in 0..r.nrows() {
        let top = (0..r.ncols())
            .map(|k| r[(i, k)])
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..r.ncols()).map(|k| (r[(i, k)] - top).exp()).sum();
        for k in 0..r.ncols() {
            let log_p = r[(i, k)] - top - sum.ln();
            loss -= y[(i, k)] * log_p;
            r[(i, k)] = log_p.exp() - y[(i, k)];
        }
    }
    let grad = z.transpose() * &r * faer::Scale(1.0 / n as f64);
    (loss / n as f64, grad)
}

/// Share of the images that a readout gets right when fitted without
/// their fold: `fit_alpha(idx)` fits alpha on the other folds' images
/// (`idx`, indices into the rows of `c` and `labels`). One tick of `bar`
/// per fold.
pub fn cross_validated(
    c: &Matrix,
    labels: &[u8],
    folds: &[Vec<usize>],
    bar: &Phase,
    fit_alpha: impl Fn(&[usize]) -> Result<Matrix>,
) -> Result<f64> {
    let n = c.rows();
    let mut right = 0usize;
    for fold in folds {
        let mut held = vec![false; n];
        for &i in fold {
            held[i] = true;
        }
        let rest: Vec<usize> = (0..n).filter(|&i| !held[i]).collect();
        let alpha = fit_alpha(&rest)?;
        let pred = argmax_rows(&scores(&c.select_rows(fold), &alpha));
        right += pred
            .iter()
            .zip(fold)
            .filter(|(p, i)| **p == usize::from(labels[**i]))
            .count();
        bar.inc(1);
    }
    Ok(right as f64 / n.max(1) as f64)
}

/// The ridge of [`RIDGES`] with the best cross-validated accuracy on
/// `folds` of the features `c` (ties keep the smaller ridge), one tick of
/// `bar` per fit.
pub fn choose(
    c: &Matrix,
    labels: &[u8],
    classes: usize,
    folds: &[Vec<usize>],
    bar: &Phase,
) -> Result<SoftmaxChoice> {
    let mut best: Option<SoftmaxChoice> = None;
    for ridge in RIDGES {
        let cv_accuracy = cross_validated(c, labels, folds, bar, |idx| {
            fit_rows(c, labels, idx, classes, ridge)
        })?;
        if best.is_none_or(|b| cv_accuracy > b.cv_accuracy) {
            best = Some(SoftmaxChoice { ridge, cv_accuracy });
        }
    }
    best.context("no softmax ridge to try")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::compact::{Nystrom, Targets};
    use crate::fit::readout::accuracy;

    /// Three classes in order along a line, features `(100 + x, 100)`
    /// (collinear but for `x`): least squares onto one-hot targets masks
    /// the middle class (a linear score cannot peak in the middle), the
    /// softmax separates all three.
    fn problem() -> (Matrix, Vec<u8>) {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..300usize {
            let class = (i % 3) as u8;
            let x = 2.0 * f64::from(class) + (i / 3) as f64 / 100.0;
            rows.extend([100.0 + x, 100.0]);
            labels.push(class);
        }
        (Matrix::from_row_major(300, 2, rows).unwrap(), labels)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (c, labels) = problem();
        let z = Mat::from_fn(c.rows(), c.cols(), |i, j| c.get(i, j) / 100.0);
        let y = one_hot(&labels, 3);
        let b = Mat::from_fn(2, 3, |i, j| 0.3 * i as f64 - 0.2 * j as f64 + 0.1);
        let (_, grad) = softmax_loss(&z, &b, y.view(), c.rows());
        let h = 1e-6;
        for (i, j) in [(0, 0), (1, 2), (0, 1)] {
            let (mut up, mut down) = (b.clone(), b.clone());
            up[(i, j)] += h;
            down[(i, j)] -= h;
            let numeric = (softmax_loss(&z, &up, y.view(), c.rows()).0
                - softmax_loss(&z, &down, y.view(), c.rows()).0)
                / (2.0 * h);
            assert!(
                (numeric - grad[(i, j)]).abs() < 1e-6,
                "({i}, {j}): {numeric} vs {}",
                grad[(i, j)]
            );
        }
    }

    #[test]
    fn softmax_fits_what_least_squares_misses() {
        let (c, labels) = problem();
        let soft = fit(&c, &labels, 3, 1e-5).unwrap();
        let targets = Targets {
            labels: one_hot(&labels, 3),
            teacher: None,
        };
        let w = Matrix::zeros(2, 2);
        let ls = Nystrom {
            c: &c,
            w: &w,
            targets: &targets,
        }
        .solve(0.0, 1.0)
        .unwrap();
        let ls_acc = accuracy(&c, &ls, &labels);
        let soft_acc = accuracy(&c, &soft.alpha, &labels);
        assert!(
            soft_acc > ls_acc + 0.05,
            "softmax {soft_acc}, least squares {ls_acc}"
        );
        assert!(soft_acc > 0.95, "softmax {soft_acc}");
        // The loss of confident, right predictions (uniform ones: ln 3).
        assert!(soft.loss < 0.2, "loss {}", soft.loss);
    }

    #[test]
    fn ridge_is_chosen_by_cross_validation_and_bad_input_is_refused() {
        let (c, labels) = problem();
        let folds = crate::data::stratified_folds(&labels, FOLDS, 0);
        let choice = choose(&c, &labels, 3, &folds, &Phase::hidden()).unwrap();
        assert!(RIDGES.contains(&choice.ridge));
        assert!(choice.cv_accuracy > 0.9, "{choice:?}");
        // The chosen ridge's figure is that of its own cross-validation.
        let again = cross_validated(&c, &labels, &folds, &Phase::hidden(), |idx| {
            fit_rows(&c, &labels, idx, 3, choice.ridge)
        })
        .unwrap();
        assert_eq!(again, choice.cv_accuracy);
        assert!(fit(&c, &labels[1..], 3, 1e-4).is_err());
        assert!(fit(&c, &labels, 3, f64::NAN).is_err());
        let zeros = Matrix::zeros(300, 2);
        assert!(fit(&zeros, &labels, 3, 1e-4).is_err());
    }
}
