//! How lambda and the iteration are chosen without the test set: exact
//! leave-one-out on all training images, stratified k-fold, or a
//! stratified held-out split; and the scores each gives per lambda.
//!
//! Leave-one-out is exact and cheap for kernel ridge regression: the
//! prediction for image `i` from a fit without it is
//! `y_i - (y_i - yhat_i) / (1 - H_ii)`, `H = K (K + lambda I)^{-1}`, which
//! the Cholesky factor of the fit already at hand gives with one triangular
//! inversion ([`loo_score`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::linalg::{LinalgError, solve_ridge};
use super::readout::{argmax_rows, mean_squared, one_hot, share_correct};
use crate::matrix::Matrix;

/// Training sets up to this size are scored by leave-one-out when the
/// selection is [`Selection::Auto`] (its cost grows as `n^3`, the Gram
/// matrix's as `n^2`; measured in `docs/training.md`).
pub const LOO_MAX_IMAGES: usize = 5_000;

/// The held-out share [`Selection::Auto`] uses above [`LOO_MAX_IMAGES`].
pub const AUTO_SPLIT: f64 = 0.2;

/// How lambda and the iteration are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Selection {
    /// Leave-one-out up to [`LOO_MAX_IMAGES`] training images, else a
    /// stratified split of [`AUTO_SPLIT`].
    Auto,
    /// Exact leave-one-out; every iteration fits all training images.
    Loo,
    /// Stratified k-fold; every iteration fits all training images.
    KFold(usize),
    /// A stratified held-out share; iterations fit the rest, and the chosen
    /// metric and lambda are re-fitted on all images.
    Split(f64),
}

impl Selection {
    /// The concrete rule for `n` training images (resolves `Auto`).
    pub fn for_images(self, n: usize) -> Self {
        match self {
            Self::Auto if n <= LOO_MAX_IMAGES => Self::Loo,
            Self::Auto => Self::Split(AUTO_SPLIT),
            other => other,
        }
    }

    /// What the rule does on `n` training images, in words.
    pub fn describe(self, n: usize) -> String {
        match self {
            Self::Auto => self.for_images(n).describe(n),
            Self::Loo => format!("exact leave-one-out on all {n} training images"),
            Self::KFold(k) => {
                format!("stratified {k}-fold cross-validation on all {n} training images")
            }
            Self::Split(share) => format!(
                "a stratified {:.0} % of the {n} training images held out, then a re-fit on all",
                100.0 * share
            ),
        }
    }

    /// Whether every iteration fits all training images (no re-fit).
    pub fn fits_all(self) -> bool {
        matches!(self, Self::Loo | Self::KFold(_))
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Loo => write!(f, "loo"),
            Self::KFold(k) => write!(f, "kfold:{k}"),
            Self::Split(share) => write!(f, "split:{share}"),
        }
    }
}

impl FromStr for Selection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not auto, loo, kfold:K (K >= 2) or split:F (0 < F < 1)");
        match s.split_once(':') {
            None if s == "auto" => Ok(Self::Auto),
            None if s == "loo" => Ok(Self::Loo),
            Some(("kfold", k)) => match k.parse::<usize>() {
                Ok(k) if k >= 2 => Ok(Self::KFold(k)),
                _ => Err(bad()),
            },
            Some(("split", f)) => match f.parse::<f64>() {
                Ok(f) if f > 0.0 && f < 1.0 => Ok(Self::Split(f)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// How well one lambda predicts images it was not fitted on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Share of held-out predictions of the right class.
    pub accuracy: f64,
    /// Mean over images of the squared error against the one-hot target.
    pub sq_error: f64,
}

impl Score {
    /// Scores of held-out predictions `pred` (`m x classes`) of `labels`.
    pub fn of(pred: &Matrix, labels: &[u8]) -> Self {
        Self {
            accuracy: share_correct(argmax_rows(pred), labels),
            sq_error: mean_squared(pred, &one_hot(labels, pred.cols())),
        }
    }

    /// Higher accuracy, then lower squared error.
    pub fn better_than(&self, other: &Self) -> bool {
        self.accuracy > other.accuracy
            || (self.accuracy == other.accuracy && self.sq_error < other.sq_error)
    }
}

/// Exact leave-one-out score of the ridge fit `alpha = (K + lambda I)^{-1} Y`
/// of the one-hot `labels`, from `alpha` and the diagonal of
/// `(K + lambda I)^{-1}` ([`RidgeFactor::inverse_diagonal`]).
///
/// With `A = K + lambda I`, `y - K alpha = lambda alpha` and
/// `1 - H_ii = lambda (A^{-1})_ii`, so the leave-one-out residual
/// `(y_i - yhat_i) / (1 - H_ii)` is `alpha_i / (A^{-1})_ii`, for every class.
///
/// [`RidgeFactor::inverse_diagonal`]: super::linalg::RidgeFactor::inverse_diagonal
pub fn loo_score(alpha: &Matrix, inverse_diagonal: &[f64], labels: &[u8]) -> Score {
    let (n, classes) = (alpha.rows(), alpha.cols());
    let mut pred = one_hot(labels, classes);
    let values = pred.as_mut_slice();
    for (i, &d) in inverse_diagonal.iter().enumerate().take(n) {
        let d = d.max(f64::MIN_POSITIVE);
        for o in 0..classes {
            values[i * classes + o] -= alpha.get(i, o) / d;
        }
    }
    Score::of(&pred, labels)
}

/// Stratified k-fold scores of every lambda: each fold is predicted by the
/// ridge fit on the others (sub-blocks of the Gram matrix `k`), and the
/// held-out predictions of all folds are scored together.
pub fn kfold_scores(
    k: &Matrix,
    labels: &[u8],
    classes: usize,
    lambdas: &[f64],
    folds: &[Vec<usize>],
) -> Result<Vec<Score>, LinalgError> {
    let n = k.rows();
    let mut preds = vec![Matrix::zeros(n, classes); lambdas.len()];
    for held in folds.iter().filter(|f| !f.is_empty()) {
        let mut is_held = vec![false; n];
        for &i in held {
            is_held[i] = true;
        }
        let fit: Vec<usize> = (0..n).filter(|&i| !is_held[i]).collect();
        let block = |rows: &[usize], cols: &[usize]| {
            let mut m = Matrix::zeros(rows.len(), cols.len());
            let values = m.as_mut_slice();
            for (a, &i) in rows.iter().enumerate() {
                for (b, &j) in cols.iter().enumerate() {
                    values[a * cols.len() + b] = k.get(i, j);
                }
            }
            m
        };
        let kff = block(&fit, &fit);
        let khf = block(held, &fit);
        let fit_labels: Vec<u8> = fit.iter().map(|&i| labels[i]).collect();
        let y = one_hot(&fit_labels, classes);
        for (pred, &lambda) in preds.iter_mut().zip(lambdas) {
            let alpha = solve_ridge(&kff, &y, lambda)?.alpha;
            let scores = khf.view() * alpha.view();
            let values = pred.as_mut_slice();
            for (a, &i) in held.iter().enumerate() {
                for o in 0..classes {
                    values[i * classes + o] = scores[(a, o)];
                }
            }
        }
    }
    Ok(preds.iter().map(|p| Score::of(p, labels)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::linalg::factor_ridge;

    /// A small PSD Gram matrix (RBF on 1-D points) and labels by sign.
    fn problem(n: usize) -> (Matrix, Vec<u8>) {
        let x: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 97) as f64 / 97.0 * 4.0 - 2.0)
            .collect();
        let mut k = Matrix::zeros(n, n);
        let values = k.as_mut_slice();
        for i in 0..n {
            for j in 0..n {
                values[i * n + j] = (-(x[i] - x[j]).powi(2)).exp();
            }
        }
        let labels = x.iter().map(|&v| u8::from(v > 0.3)).collect();
        (k, labels)
    }

    /// Leave-one-out by brute force: n fits of n - 1 images.
    fn brute_force_loo(k: &Matrix, labels: &[u8], lambda: f64) -> Score {
        let n = k.rows();
        let folds: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
        kfold_scores(k, labels, 2, &[lambda], &folds).unwrap()[0]
    }

    #[test]
    fn loo_formula_equals_n_refits() {
        let (k, labels) = problem(40);
        let lambdas = [1e-4, 1e-2, 1.0];
        let y = one_hot(&labels, 2);
        let fast: Vec<Score> = lambdas
            .iter()
            .map(|&lambda| {
                let factor = factor_ridge(&k, lambda).unwrap();
                loo_score(
                    &factor.solve(&y).unwrap().alpha,
                    &factor.inverse_diagonal(),
                    &labels,
                )
            })
            .collect();
        for (s, &lambda) in fast.iter().zip(&lambdas) {
            let slow = brute_force_loo(&k, &labels, lambda);
            assert_eq!(s.accuracy, slow.accuracy, "lambda {lambda}");
            assert!(
                (s.sq_error - slow.sq_error).abs() < 1e-8 * slow.sq_error.max(1.0),
                "lambda {lambda}: {} vs {}",
                s.sq_error,
                slow.sq_error
            );
        }
        // The scores are not trivial: small lambdas interpolate, LOO sees it.
        assert!(fast[0].sq_error != fast[2].sq_error);
    }

    #[test]
    fn score_ranks_accuracy_then_error() {
        let a = Score {
            accuracy: 0.9,
            sq_error: 0.5,
        };
        let b = Score {
            accuracy: 0.9,
            sq_error: 0.4,
        };
        let c = Score {
            accuracy: 0.8,
            sq_error: 0.1,
        };
        assert!(b.better_than(&a) && a.better_than(&c) && !a.better_than(&a));
        let pred = Matrix::from_row_major(2, 2, vec![0.9, 0.1, 0.6, 0.4]).unwrap();
        let s = Score::of(&pred, &[0, 1]);
        assert_eq!(s.accuracy, 0.5);
        assert!((s.sq_error - (0.02 + 0.72) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn selection_parses_prints_and_resolves() {
        for text in ["auto", "loo", "kfold:5", "split:0.2"] {
            assert_eq!(text.parse::<Selection>().unwrap().to_string(), text);
        }
        for bad in [
            "", "LOO", "kfold", "kfold:1", "kfold:x", "split:0", "split:1", "split:-1", "k:3",
        ] {
            let err = bad.parse::<Selection>().unwrap_err();
            assert!(err.contains("kfold:K"), "{bad}: {err}");
        }
        assert_eq!(Selection::Auto.for_images(LOO_MAX_IMAGES), Selection::Loo);
        assert_eq!(
            Selection::Auto.for_images(LOO_MAX_IMAGES + 1),
            Selection::Split(AUTO_SPLIT)
        );
        assert_eq!(Selection::KFold(3).for_images(10), Selection::KFold(3));
        assert!(Selection::Loo.fits_all() && !Selection::Split(0.5).fits_all());
    }
}
