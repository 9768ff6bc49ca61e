//! Which part of a data set, and the seeded fit/validation split.

use std::fmt;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Which part of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set (Fashion-MNIST: 60,000 images).
    Train,
    /// The test set (Fashion-MNIST: 10,000 images, files named `t10k`).
    Test,
}

impl Split {
    /// File name prefix used by the MNIST family.
    pub(crate) fn file_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    /// Image count of the full Fashion-MNIST split.
    pub(crate) fn full_size(self) -> usize {
        match self {
            Split::Train => 60_000,
            Split::Test => 10_000,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Splits `0..n` into (fit, validation) index sets by a seeded shuffle
/// (ChaCha8, so the split is the same on every platform and release).
///
/// Validation gets `round(n * val_fraction)` indices, clamped to `[1, n-1]`
/// when `n >= 2` so that neither side is empty (a NaN fraction counts as 0);
/// for `n < 2` everything goes to fit. Both lists are returned sorted, so
/// selecting with them keeps the original order. Not stratified.
pub fn train_val_split(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    if n < 2 {
        return (order, Vec::new());
    }
    // `as` saturates (NaN becomes 0), and the clamp does the rest.
    let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut val = order[..n_val].to_vec();
    let mut fit = order[n_val..].to_vec();
    val.sort_unstable();
    fit.sort_unstable();
    (fit, val)
}

/// Splits image indices into (kept, held out) by class: each class gives
/// `round(count * fraction)` of its images (at least one if it has two or
/// more, never all), chosen by a seeded shuffle (ChaCha8). Both lists are
/// returned sorted.
pub fn stratified_split(labels: &[u8], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for class in 0..=u8::MAX {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if members.is_empty() {
            continue;
        }
        let n = members.len();
        let take = if n < 2 {
            0
        } else {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        };
        members.shuffle(&mut rng);
        held.extend_from_slice(&members[..take]);
        kept.extend_from_slice(&members[take..]);
    }
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_disjoint_and_sized() {
        let (fit, val) = train_val_split(100, 0.2, 7);
        assert_eq!((fit.len(), val.len()), (80, 20));
        assert!(fit.is_sorted() && val.is_sorted());
        let mut all: Vec<usize> = fit.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(train_val_split(100, 0.2, 7), (fit.clone(), val.clone()));
        assert_ne!(train_val_split(100, 0.2, 8).1, val);
        // Clamping keeps both sides nonempty.
        assert_eq!(train_val_split(10, 0.0, 1).1.len(), 1);
        assert_eq!(train_val_split(10, 1.0, 1).0.len(), 1);
        assert_eq!(train_val_split(10, f64::NAN, 1).1.len(), 1);
        assert_eq!(train_val_split(2, 0.5, 1).1.len(), 1);
        assert_eq!(train_val_split(1, 0.5, 1), (vec![0], vec![]));
        assert_eq!(train_val_split(0, 0.5, 1), (vec![], vec![]));
    }

    #[test]
    fn stratified_split_keeps_class_shares() {
        let labels: Vec<u8> = (0..100).map(|i| if i < 80 { 0 } else { 1 }).collect();
        let (kept, held) = stratified_split(&labels, 0.25, 3);
        assert_eq!(held.iter().filter(|&&i| labels[i] == 0).count(), 20);
        assert_eq!(held.iter().filter(|&&i| labels[i] == 1).count(), 5);
        assert_eq!(kept.len() + held.len(), 100);
        assert!(kept.is_sorted() && held.is_sorted());
        assert_eq!(stratified_split(&labels, 0.25, 3), (kept, held.clone()));
        assert_ne!(stratified_split(&labels, 0.25, 4).1, held);
        // A class of one image stays whole on the kept side.
        assert_eq!(stratified_split(&[0, 0, 1], 0.5, 0).1.len(), 1);
    }
}
