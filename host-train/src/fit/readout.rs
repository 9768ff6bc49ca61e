//! The kernel machine's readout: one-hot targets, scores `K alpha`, the
//! predicted class of each row, and the share predicted right.

use faer::MatRef;

pub fn one_hot(labels: &[u8], classes: usize) -> Vec<f64> {
    let mut y = vec![0.0; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        y[i * classes + usize::from(l)] = 1.0;
    }
    y
}

/// Scores `K alpha` (`m x classes`, row-major) for a kernel block `k`
/// (`m x n`, row-major) and `alpha` (`n x classes`).
pub fn scores(k: &[f64], alpha: &[f64], classes: usize) -> Vec<f64> {
    let n = alpha.len() / classes;
    let m = k.len().checked_div(n).unwrap_or(0);
    let prod =
        MatRef::from_row_major_slice(k, m, n) * MatRef::from_row_major_slice(alpha, n, classes);
    let mut out = Vec::with_capacity(m * classes);
    for i in 0..m {
        for c in 0..classes {
            out.push(prod[(i, c)]);
        }
    }
    out
}

/// Index of the largest score in each row.
pub fn argmax_rows(scores: &[f64], classes: usize) -> Vec<usize> {
    scores
        .chunks_exact(classes)
        .map(|row| {
            row.iter()
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
pub fn accuracy(k: &[f64], alpha: &[f64], classes: usize, labels: &[u8]) -> f64 {
    share_correct(argmax_rows(&scores(k, alpha, classes), classes), labels)
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
