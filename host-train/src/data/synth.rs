//! The paper's synthetic local-signal tasks, generated in code and seeded.
//!
//! In each, the label is decided by a small pattern at a random place in
//! noise: a fixed convolutional kernel (`M = I`) averages it away with the
//! noise, while the patch-AGOP learns which patch directions carry it.
//!
//! Every generator is deterministic per `(seed, split)`: ChaCha8 seeded with
//! `seed` on a stream chosen by the split, so the training and test sets of
//! one seed are independent, and identical on every platform and release.

use anyhow::{Result, ensure};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::data::{ImageDims, Images, LabelledImages, PixelType, Split};

/// Side of a star image.
pub const STAR_SIDE: usize = 32;
/// Channels of a star image.
pub const STAR_CHANNELS: usize = 3;
/// Standard deviation of the star images' Gaussian noise.
pub const STAR_NOISE_STD: f32 = 0.3;
/// Side of the star pattern.
pub const STAR_PATTERN: usize = 7;
/// Channels that carry the star (the third is noise only).
pub const STAR_SIGNAL_CHANNELS: [usize; 2] = [0, 1];
/// The largest star offset: anywhere in the frame (`32 - 7`). The authors'
/// notebook draws offsets with `randint(0, 17)`, i.e. at most 16.
pub const STAR_MAX_OFFSET: usize = STAR_SIDE - STAR_PATTERN;

/// Side of the noise frame a digit is pasted into.
pub const NOISY_DIGITS_FRAME: usize = 42;
/// Standard deviation of the frame's noise (`N(0, 1) x 0.5`).
pub const NOISY_DIGITS_NOISE_STD: f32 = 0.5;

/// Rows of a toy-rows image.
pub const TOY_ROWS: usize = 16;
/// Columns of a toy-rows image.
pub const TOY_COLUMNS: usize = 32;

/// Whether pixel `(row, column)` of the 7x7 star belongs to it: the middle
/// row, the middle column and both diagonals (25 pixels).
pub fn star_pattern(row: usize, column: usize) -> bool {
    let mid = STAR_PATTERN / 2;
    row == mid || column == mid || row == column || row + column == STAR_PATTERN - 1
}

/// The random stream of a split.
fn rng(seed: u64, split: Split) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(match split {
        Split::Train => 1,
        Split::Test => 2,
    });
    rng
}

/// `n` labels of two classes, as balanced as `n` allows, in random order.
fn balanced_labels(n: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut labels: Vec<u8> = (0..n).map(|i| u8::from(i % 2 == 1)).collect();
    labels.shuffle(rng);
    labels
}

fn gaussian(rng: &mut ChaCha8Rng, std: f32) -> f32 {
    rng.sample::<f32, _>(StandardNormal) * std
}

/// *star*: `n` images of 3x32x32 `N(0, 0.3^2)` noise; the positive class
/// (label 1, "star") has the 7x7 [`star_pattern`] set to 1 in channels 0 and
/// 1 at one random offset (the same in both channels), row and column each
/// uniform in `0..=max_offset` ([`STAR_MAX_OFFSET`] for the whole frame, 16
/// as the authors' notebook); negatives (label 0, "noise") are pure noise.
/// Balanced.
pub fn star(n: usize, max_offset: usize, seed: u64, split: Split) -> Result<LabelledImages> {
    ensure!(
        max_offset <= STAR_MAX_OFFSET,
        "star offsets go up to {STAR_MAX_OFFSET} (a 7x7 star in a 32x32 image), got {max_offset}"
    );
    let mut rng = rng(seed, split);
    let labels = balanced_labels(n, &mut rng);
    let plane = STAR_SIDE * STAR_SIDE;
    let mut pixels = Vec::with_capacity(n * STAR_CHANNELS * plane);
    for &label in &labels {
        let start = pixels.len();
        pixels.extend((0..STAR_CHANNELS * plane).map(|_| gaussian(&mut rng, STAR_NOISE_STD)));
        if label == 1 {
            let top = rng.random_range(0..=max_offset);
            let left = rng.random_range(0..=max_offset);
            for ch in STAR_SIGNAL_CHANNELS {
                for r in 0..STAR_PATTERN {
                    for c in (0..STAR_PATTERN).filter(|&c| star_pattern(r, c)) {
                        pixels[start + ch * plane + (top + r) * STAR_SIDE + left + c] = 1.0;
                    }
                }
            }
        }
    }
    Ok(LabelledImages {
        images: Images {
            dims: ImageDims {
                channels: STAR_CHANNELS,
                height: STAR_SIDE,
                width: STAR_SIDE,
            },
            pixel_type: PixelType::F32,
            pixels,
        },
        labels,
        class_names: vec!["noise".into(), "star".into()],
    })
}

/// *noisy digits*: each image of `digits` pasted, unchanged, at a uniformly
/// random offset inside a `frame x frame` field of `N(0, 1) x noise_std`
/// noise (every channel); labels and class names are kept.
pub fn noisy_digits(
    digits: &LabelledImages,
    frame: usize,
    noise_std: f32,
    seed: u64,
    split: Split,
) -> Result<LabelledImages> {
    let im = &digits.images;
    ensure!(
        frame >= im.dims.height && frame >= im.dims.width,
        "a {frame}x{frame} frame cannot hold {}x{} images",
        im.dims.height,
        im.dims.width
    );
    ensure!(
        noise_std.is_finite() && noise_std >= 0.0,
        "noise standard deviation must be finite and non-negative, got {noise_std}"
    );
    let mut rng = rng(seed, split);
    let plane = frame * frame;
    let mut pixels = Vec::with_capacity(digits.len() * im.dims.channels * plane);
    for i in 0..digits.len() {
        let start = pixels.len();
        pixels.extend((0..im.dims.channels * plane).map(|_| gaussian(&mut rng, noise_std)));
        let top = rng.random_range(0..=frame - im.dims.height);
        let left = rng.random_range(0..=frame - im.dims.width);
        let digit = im.image(i);
        for ch in 0..im.dims.channels {
            for r in 0..im.dims.height {
                let src = &digit[(ch * im.dims.height + r) * im.dims.width..][..im.dims.width];
                let dst = start + ch * plane + (top + r) * frame + left;
                pixels[dst..dst + im.dims.width].copy_from_slice(src);
            }
        }
    }
    Ok(LabelledImages {
        images: Images {
            dims: ImageDims {
                channels: im.dims.channels,
                height: frame,
                width: frame,
            },
            pixel_type: PixelType::F32,
            pixels,
        },
        labels: digits.labels.clone(),
        class_names: digits.class_names.clone(),
    })
}

/// *toy rows*: `n` images of 1x16x32 whose rows are
/// `N(0, 1) x sqrt(sigma) / sqrt(32)`, with one uniformly random row
/// replaced by `y x ones(32) / sqrt(32)`; `y = +1` is label 0 ("+1"),
/// `y = -1` label 1 ("-1"). Balanced.
pub fn toy_rows(n: usize, sigma: f64, seed: u64, split: Split) -> Result<LabelledImages> {
    ensure!(
        sigma.is_finite() && sigma >= 0.0,
        "sigma must be finite and non-negative, got {sigma}"
    );
    let mut rng = rng(seed, split);
    let labels = balanced_labels(n, &mut rng);
    let inv_sqrt_d = 1.0 / (TOY_COLUMNS as f64).sqrt();
    let std = (sigma.sqrt() * inv_sqrt_d) as f32;
    let plane = TOY_ROWS * TOY_COLUMNS;
    let mut pixels = Vec::with_capacity(n * plane);
    for &label in &labels {
        let start = pixels.len();
        pixels.extend((0..plane).map(|_| gaussian(&mut rng, std)));
        let row = rng.random_range(0..TOY_ROWS);
        let y = if label == 0 { 1.0 } else { -1.0 };
        let dst = start + row * TOY_COLUMNS;
        pixels[dst..dst + TOY_COLUMNS].fill((y * inv_sqrt_d) as f32);
    }
    Ok(LabelledImages {
        images: Images {
            dims: ImageDims {
                channels: 1,
                height: TOY_ROWS,
                width: TOY_COLUMNS,
            },
            pixel_type: PixelType::F32,
            pixels,
        },
        labels,
        class_names: vec!["+1".into(), "-1".into()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_std(v: impl Iterator<Item = f32>) -> (f64, f64, usize) {
        let v: Vec<f64> = v.map(f64::from).collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt(), v.len())
    }

    /// Offset of the star in one channel of a positive image, found as the
    /// only placement where every pattern pixel is exactly 1.
    fn star_offsets(plane: &[f32]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for top in 0..=STAR_SIDE - STAR_PATTERN {
            for left in 0..=STAR_SIDE - STAR_PATTERN {
                let all = (0..STAR_PATTERN).all(|r| {
                    (0..STAR_PATTERN).all(|c| {
                        !star_pattern(r, c) || plane[(top + r) * STAR_SIDE + left + c] == 1.0
                    })
                });
                if all {
                    found.push((top, left));
                }
            }
        }
        found
    }

    #[test]
    fn star_pattern_has_25_pixels() {
        let count = (0..7)
            .flat_map(|r| (0..7).map(move |c| (r, c)))
            .filter(|&(r, c)| star_pattern(r, c))
            .count();
        assert_eq!(count, 25);
        assert!(star_pattern(0, 0) && star_pattern(6, 0) && star_pattern(3, 5));
        assert!(!star_pattern(0, 1) && !star_pattern(5, 2));
    }

    #[test]
    fn star_is_deterministic_balanced_and_has_the_stated_statistics() {
        let star = |n, seed, split| star(n, STAR_MAX_OFFSET, seed, split).expect("in range");
        let set = star(400, 7, Split::Train);
        assert_eq!(set, star(400, 7, Split::Train));
        assert_ne!(set.images.pixels, star(400, 8, Split::Train).images.pixels);
        assert_ne!(set.images.pixels, star(400, 7, Split::Test).images.pixels);
        assert_eq!(set.labels.iter().filter(|&&l| l == 1).count(), 200);
        assert_eq!(
            (
                set.images.dims.channels,
                set.images.dims.height,
                set.images.dims.width
            ),
            (3, 32, 32)
        );
        let plane = STAR_SIDE * STAR_SIDE;
        let mut tops = Vec::new();
        for (i, &label) in set.labels.iter().enumerate() {
            let image = set.images.image(i);
            let ones = |ch: usize| {
                image[ch * plane..][..plane]
                    .iter()
                    .filter(|&&v| v == 1.0)
                    .count()
            };
            if label == 0 {
                assert_eq!(ones(0) + ones(1) + ones(2), 0, "image {i}");
            } else {
                let at = star_offsets(&image[..plane]);
                assert_eq!(at.len(), 1, "image {i}");
                assert_eq!(star_offsets(&image[plane..2 * plane]), at, "image {i}");
                assert!(star_offsets(&image[2 * plane..]).is_empty(), "image {i}");
                assert_eq!((ones(0), ones(1), ones(2)), (25, 25, 0), "image {i}");
                tops.push(at[0].0);
            }
        }
        // Offsets cover the whole range (200 draws from 26 values).
        assert_eq!(tops.iter().min(), Some(&0));
        assert_eq!(tops.iter().max(), Some(&(STAR_SIDE - STAR_PATTERN)));
        // Noise: every pixel of negatives and channel 2 of positives.
        let noise = set.labels.iter().enumerate().flat_map(|(i, &l)| {
            let from = if l == 0 { 0 } else { 2 * plane };
            set.images.image(i)[from..].iter().copied()
        });
        let (mean, std, count) = mean_std(noise);
        let se = f64::from(STAR_NOISE_STD) / (count as f64).sqrt();
        assert!(mean.abs() < 4.0 * se, "mean {mean}");
        assert!((std - 0.3).abs() < 0.003, "std {std}");
    }

    #[test]
    fn star_offsets_stay_within_the_range_asked_for() {
        let set = star(400, 16, 2, Split::Test).expect("in range");
        let plane = STAR_SIDE * STAR_SIDE;
        let mut seen = Vec::new();
        for (i, _) in set.labels.iter().enumerate().filter(|(_, l)| **l == 1) {
            let at = star_offsets(&set.images.image(i)[..plane]);
            assert_eq!(at.len(), 1, "image {i}");
            seen.push(at[0]);
        }
        let most = seen.iter().map(|&(t, l)| t.max(l)).max();
        let least = seen.iter().map(|&(t, l)| t.min(l)).min();
        // 200 draws of 17 x 17 offsets reach both ends, and never beyond.
        assert_eq!((least, most), (Some(0), Some(16)));
        let msg = star(4, 26, 0, Split::Train)
            .expect_err("out of range")
            .to_string();
        assert!(msg.contains("up to 25"), "{msg}");
    }

    #[test]
    fn toy_rows_have_one_signal_row_and_scaled_noise() {
        let sigma = 2.0;
        let set = toy_rows(300, sigma, 3, Split::Test).expect("valid sigma");
        assert_eq!(set, toy_rows(300, sigma, 3, Split::Test).expect("valid"));
        assert_eq!(set.labels.iter().filter(|&&l| l == 0).count(), 150);
        let level = 1.0 / 32f32.sqrt();
        let mut noise = Vec::new();
        for (i, &label) in set.labels.iter().enumerate() {
            let rows: Vec<&[f32]> = set.images.image(i).chunks(TOY_COLUMNS).collect();
            let y = if label == 0 { level } else { -level };
            let signal: Vec<usize> = (0..TOY_ROWS)
                .filter(|&r| rows[r].iter().all(|&v| v == y))
                .collect();
            assert_eq!(signal.len(), 1, "image {i}");
            for (r, row) in rows.iter().enumerate() {
                if r != signal[0] {
                    noise.extend_from_slice(row);
                }
            }
        }
        let (mean, std, _) = mean_std(noise.into_iter());
        let want = (sigma / 32.0).sqrt();
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((std - want).abs() < 0.01 * want, "std {std}, want {want}");
        assert!(toy_rows(2, -1.0, 0, Split::Train).is_err());
        assert!(toy_rows(2, f64::NAN, 0, Split::Train).is_err());
    }

    #[test]
    fn noisy_digits_paste_each_digit_once_into_noise() {
        let digits = crate::data::vendored_fashion_mnist(Split::Test).take(100);
        let set = noisy_digits(&digits, 42, 0.5, 11, Split::Test).expect("fits");
        assert_eq!(
            set,
            noisy_digits(&digits, 42, 0.5, 11, Split::Test).expect("fits")
        );
        assert_eq!(set.labels, digits.labels);
        assert_eq!((set.images.dims.height, set.images.dims.width), (42, 42));
        let mut noise = Vec::new();
        let mut lefts = Vec::new();
        for i in 0..set.len() {
            let (image, digit) = (set.images.image(i), digits.images.image(i));
            let at: Vec<(usize, usize)> = (0..=14)
                .flat_map(|t| (0..=14).map(move |l| (t, l)))
                .filter(|&(t, l)| {
                    (0..28).all(|r| image[(t + r) * 42 + l..][..28] == digit[r * 28..][..28])
                })
                .collect();
            assert_eq!(at.len(), 1, "image {i}");
            let (top, left) = at[0];
            lefts.push(left);
            for r in 0..42 {
                for c in 0..42 {
                    if !(top..top + 28).contains(&r) || !(left..left + 28).contains(&c) {
                        noise.push(image[r * 42 + c]);
                    }
                }
            }
        }
        assert!(lefts.contains(&0) && lefts.contains(&14));
        let (mean, std, _) = mean_std(noise.into_iter());
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((std - 0.5).abs() < 0.005, "std {std}");
        let msg = noisy_digits(&digits, 20, 0.5, 0, Split::Train)
            .expect_err("too small")
            .to_string();
        assert!(msg.contains("20x20 frame cannot hold 28x28"), "{msg}");
    }
}
