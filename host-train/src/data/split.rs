//! Which part of a data set, and the seeded, stratified splits of one:
//! a held-out share, or k folds.

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

/// Deals image indices into `k` folds by class: each class's images,
/// shuffled (ChaCha8, seeded), go round-robin to the folds, continuing
/// where the previous class stopped, so fold sizes differ by at most one
/// and every fold has each class's share. Each fold is sorted; `k` is at
/// least 1.
pub fn stratified_folds(labels: &[u8], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let k = k.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for class in 0..=u8::MAX {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        for i in members {
            folds[next].push(i);
            next = (next + 1) % k;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn folds_partition_and_keep_class_shares() {
        let labels: Vec<u8> = (0..103).map(|i| (i % 3) as u8).collect();
        let folds = stratified_folds(&labels, 5, 9);
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        for f in &folds {
            assert!(f.is_sorted());
            for class in 0..3 {
                let c = f.iter().filter(|&&i| labels[i] == class).count();
                assert!(
                    (6..=8).contains(&c),
                    "class {class}: {c} in a fold of {}",
                    f.len()
                );
            }
        }
        assert_eq!(stratified_folds(&labels, 5, 9), folds);
        assert_ne!(stratified_folds(&labels, 5, 10), folds);
        assert_eq!(stratified_folds(&labels, 0, 1).len(), 1);
    }
}
