//! The kernel machine's readout: one-hot targets, scores `K alpha`, the
//! predicted class of each row, and the share predicted right.

use crate::matrix::Matrix;

/// One-hot targets, `n x classes`.
pub fn one_hot(labels: &[u8], classes: usize) -> Matrix {
    let mut y = Matrix::zeros(labels.len(), classes);
    let values = y.as_mut_slice();
    for (i, &l) in labels.iter().enumerate() {
        values[i * classes + usize::from(l)] = 1.0;
    }
    y
}

/// Scores `K alpha` (`m x classes`) for a kernel block `k` (`m x n`) and
/// `alpha` (`n x classes`).
///
/// # Panics
/// If `k` has not as many columns as `alpha` has rows.
pub fn scores(k: &Matrix, alpha: &Matrix) -> Matrix {
    Matrix::from_mat((k.view() * alpha.view()).as_ref())
}

/// Index of the largest score in each row.
pub fn argmax_rows(scores: &Matrix) -> Vec<usize> {
    (0..scores.rows())
        .map(|i| {
            scores
                .row(i)
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
        })
        .collect()
}

/// Share of `labels` that `argmax(K alpha)` gets right.
pub fn accuracy(k: &Matrix, alpha: &Matrix, labels: &[u8]) -> f64 {
    share_correct(argmax_rows(&scores(k, alpha)), labels)
}

/// Share of `labels` that the predicted classes `pred` match.
pub fn share_correct(pred: impl IntoIterator<Item = usize>, labels: &[u8]) -> f64 {
    let right = pred
        .into_iter()
        .zip(labels)
        .filter(|(p, l)| *p == usize::from(**l))
        .count();
    right as f64 / labels.len().max(1) as f64
}

/// Mean over rows of the squared distance between `a` and `b` (same shape).
pub fn mean_squared(a: &Matrix, b: &Matrix) -> f64 {
    let sum: f64 = a
        .as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    sum / a.rows().max(1) as f64
}
