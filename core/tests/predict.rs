//! Prediction: input errors, exact agreement with an independent
//! full-map re-implementation of the integer kernel, and invariances.
// Tests and their helpers: a panic is a test failure, which is what we want.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::{Owned, Rng, ref_kernel, ref_scores};
use convrfm_core::{KernelKind, Model, PredictError, Shape, scratch_len_for_dims};

/// 1x8x8, depth 2, m = 3, r = 2, 8-bit centres, hand-picked W.
fn tiny(kind: KernelKind) -> Owned {
    let mut rng = Rng(0xC0FFEE);
    Owned {
        channels: 1,
        height: 8,
        width: 8,
        depth: 2,
        pixel_bits: 8,
        rank: 2,
        kind,
        u_mult: 1 << 21, // u / 8
        alpha_scale: 1.0,
        accuracy: 0,
        // Column 0: a centre-surround filter; column 1: a horizontal edge.
        w: vec![-1, 1, -1, 2, -1, 2, -1, 8, 0, -1, 0, -2, -1, 0, -1, 0],
        centres: (0..3)
            .map(|_| (0..64).map(|_| rng.below(256) as u8).collect())
            .collect(),
        alpha: vec![3, -1, -2, 5, 1, 1],
        names: vec!["a", "b"],
    }
    .fix_w()
}

trait FixW {
    fn fix_w(self) -> Self;
}

impl FixW for Owned {
    /// Pads W to d * r = 18 entries (the literal above lists 16).
    fn fix_w(mut self) -> Self {
        self.w.resize(18, 1);
        self
    }
}

#[test]
fn input_errors() {
    let o = tiny(KernelKind::Ntk);
    let blob = o.encode();
    let m = Model::from_bytes(&blob).unwrap();
    let mut scratch = vec![0u8; m.scratch_len()];
    assert_eq!(
        m.predict(&[0; 63], &mut scratch),
        Err(PredictError::ImageLength {
            expected: 64,
            got: 63
        })
    );
    assert_eq!(
        m.predict(&[0; 65], &mut scratch),
        Err(PredictError::ImageLength {
            expected: 64,
            got: 65
        })
    );
    let n = m.scratch_len();
    assert_eq!(
        m.predict(&[0; 64], &mut scratch[..n - 1]),
        Err(PredictError::ScratchTooSmall {
            needed: n,
            got: n - 1
        })
    );
    assert_eq!(
        m.predict_scores(&[0; 64], &mut scratch, &mut [0; 1]),
        Err(PredictError::ScoresTooShort { needed: 2, got: 1 })
    );
    assert_eq!(
        m.kernel_value(&[0; 64], 3, &mut scratch),
        Err(PredictError::NoSuchCentre {
            index: 3,
            centres: 3
        })
    );
    // Longer scratch and score slices are fine.
    let mut big = vec![0u8; n + 100];
    let mut scores = [i64::MAX; 5];
    m.predict_scores(&[0; 64], &mut big, &mut scores).unwrap();
    assert_eq!(&scores[2..], &[i64::MAX; 3]);
}

#[test]
fn tiny_model_matches_independent_reference() {
    for kind in [KernelKind::Ntk, KernelKind::Nngp] {
        let o = tiny(kind);
        let blob = o.encode();
        let m = Model::from_bytes(&blob).unwrap();
        let mut scratch = vec![0u8; m.scratch_len()];
        let mut rng = Rng(5);
        for trial in 0..20 {
            let z: Vec<u8> = (0..64).map(|_| rng.below(256) as u8).collect();
            let expected = ref_scores(&o, &z);
            let mut scores = [0i64; 2];
            let p = m.predict_scores(&z, &mut scratch, &mut scores).unwrap();
            assert_eq!(scores.to_vec(), expected, "{kind:?} trial {trial}");
            let best = if expected[1] > expected[0] { 1 } else { 0 };
            assert_eq!(p.class, best);
            assert_eq!(p.score, expected[best as usize]);
            assert_eq!(p.margin, (expected[0] - expected[1]).abs());
            assert_eq!(m.predict(&z, &mut scratch), Ok(p));
            for i in 0..3 {
                assert_eq!(
                    m.kernel_value(&z, i, &mut scratch),
                    Ok(ref_kernel(&o, &z, &o.centre_values(i)))
                );
            }
        }
    }
}

#[test]
fn random_models_match_independent_reference() {
    let mut rng = Rng(0x5EED);
    for seed in 0..150u64 {
        let mut o = Owned::random(&mut Rng(seed + 1));
        // Exporter-like multiplier so uq spans the i8 range without
        // clamping everything: 127 / (max possible |u| / 4).
        let maxu: i64 = (0..usize::from(o.rank))
            .map(|j| {
                (0..o.d())
                    .map(|k| i64::from(o.w[k * usize::from(o.rank) + j]).abs() * 255)
                    .sum::<i64>()
            })
            .max()
            .unwrap()
            .max(1);
        o.u_mult = ((127i64 << 24) * 4 / maxu) as u32;
        let blob = o.encode();
        let m = Model::from_bytes(&blob).unwrap();
        let mut scratch = vec![0xEEu8; m.scratch_len()];
        let z: Vec<u8> = (0..o.pixels()).map(|_| rng.below(256) as u8).collect();
        let expected = ref_scores(&o, &z);
        let mut scores = vec![0i64; o.names.len()];
        m.predict_scores(&z, &mut scratch, &mut scores).unwrap();
        assert_eq!(scores, expected, "seed {seed}: {m:?}");
    }
}

/// Large models carry the query's later-layer `q` through the rings
/// instead of storing it (a smaller scratch): the same integers as the
/// reference, on both layouts, grayscale and colour, 4-bit and 8-bit.
#[test]
fn both_scratch_layouts_match_independent_reference() {
    let mut rng = Rng(0xCA11);
    for (channels, side, rank, bits) in [
        (1u16, 28u16, 9u8, 4u8),
        (1, 28, 9, 8),
        (2, 20, 14, 4),
        (1, 28, 2, 4),
    ] {
        let mut o = Owned::random(&mut rng);
        o.channels = channels;
        o.height = side;
        o.width = side;
        o.depth = 3;
        o.rank = rank;
        o.pixel_bits = bits;
        let pixels = o.pixels();
        let maxv = if bits == 4 { 16 } else { 256 };
        o.centres = (0..2)
            .map(|_| (0..pixels).map(|_| rng.below(maxv) as u8).collect())
            .collect();
        o.alpha = (0..2 * o.names.len())
            .map(|_| rng.range_i64(-999, 999) as i16)
            .collect();
        o.w = (0..o.d() * usize::from(rank))
            .map(|_| rng.range_i64(-64, 64) as i8)
            .collect();
        o.u_mult = ((127i64 << 24) / (i64::from(channels) * 9 * 255 * 64 / 4)) as u32;
        let blob = o.encode();
        let m = Model::from_bytes(&blob).unwrap();
        let stored_len = {
            let s = m.shape();
            let p: usize = (1..=3).map(|l| s.positions(l)).sum();
            let c = |l| s.grid(l).1;
            8 * o.names.len()
                + 3 * usize::from(channels) * usize::from(side)
                + s.positions(1) * usize::from(rank)
                + 3
                + 4 * (p + 5 * c(1) + 12 * (c(2) + c(3)))
        };
        let carried = m.scratch_len() < stored_len;
        assert_eq!(
            carried,
            stored_len > convrfm_core::QZ_STORE_LIMIT,
            "{channels} {side} {rank}"
        );
        let mut scratch = vec![0x5Au8; m.scratch_len()];
        for _ in 0..2 {
            // Blank borders, as real images have, exercise the skip.
            let z: Vec<u8> = (0..pixels)
                .map(|p| {
                    let (row, col) = (
                        (p / usize::from(side)) % usize::from(side),
                        p % usize::from(side),
                    );
                    if row < 4 || col < 3 {
                        0
                    } else {
                        rng.below(256) as u8
                    }
                })
                .collect();
            let mut scores = vec![0i64; o.names.len()];
            m.predict_scores(&z, &mut scratch, &mut scores).unwrap();
            assert_eq!(
                scores,
                ref_scores(&o, &z),
                "{channels}x{side} r {rank} {bits}-bit carried {carried}"
            );
        }
    }
}

#[test]
fn four_bit_centres_equal_eight_bit_centres_at_17v() {
    let mut rng = Rng(77);
    let mut o4 = Owned::random(&mut rng);
    o4.pixel_bits = 4;
    let pixels = o4.pixels();
    o4.centres = (0..o4.centres.len())
        .map(|_| (0..pixels).map(|_| rng.below(16) as u8).collect())
        .collect();
    let mut o8 = o4.clone();
    o8.pixel_bits = 8;
    o8.centres = (0..o4.centres.len()).map(|i| o4.centre_values(i)).collect();
    let (b4, b8) = (o4.encode(), o8.encode());
    assert!(b4.len() < b8.len());
    let (m4, m8) = (
        Model::from_bytes(&b4).unwrap(),
        Model::from_bytes(&b8).unwrap(),
    );
    let mut scratch = vec![0u8; m4.scratch_len()];
    for _ in 0..10 {
        let z: Vec<u8> = (0..pixels).map(|_| rng.below(256) as u8).collect();
        let (mut s4, mut s8) = (vec![0; o4.names.len()], vec![0; o4.names.len()]);
        m4.predict_scores(&z, &mut scratch, &mut s4).unwrap();
        m8.predict_scores(&z, &mut scratch, &mut s8).unwrap();
        assert_eq!(s4, s8);
    }
}

/// A centre equal to the query: rho = 1 wherever q > 0, so every layer's
/// Khat equals its q exactly and Theta^l = l K^l. The kernel is then
/// `(L + 1) sum q^L` (NTK) or `sum q^L` (NNGP), computed here directly.
#[test]
fn self_pair_is_exact() {
    let mut rng = Rng(31);
    for _ in 0..40 {
        let mut o = Owned::random(&mut rng);
        o.pixel_bits = 8;
        let pixels = o.pixels();
        let z: Vec<u8> = (0..pixels)
            .map(|p| if p % 5 == 0 { 0 } else { rng.below(256) as u8 })
            .collect();
        o.centres[0] = z.clone();
        let blob = o.encode();
        let m = Model::from_bytes(&blob).unwrap();
        let mut scratch = vec![0u8; m.scratch_len()];
        let k = m.kernel_value(&z, 0, &mut scratch).unwrap();
        // q^1 from the requantised projections, then window sums.
        let (c, h, w, r) = (
            usize::from(o.channels),
            usize::from(o.height),
            usize::from(o.width),
            usize::from(o.rank),
        );
        let (mut rows, mut cols) = (h - 2, w - 2);
        let mut q = vec![0i64; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                for col in 0..r {
                    let mut u = 0i64;
                    for ch in 0..c {
                        for a in 0..3 {
                            for b in 0..3 {
                                u += i64::from(z[ch * h * w + (i + a) * w + j + b])
                                    * i64::from(o.w[(ch * 9 + a * 3 + b) * r + col]);
                            }
                        }
                    }
                    let uq = ((u * i64::from(o.u_mult) + (1 << 23)) >> 24).clamp(-127, 127);
                    q[i * cols + j] += uq * uq;
                }
            }
        }
        for _ in 1..o.depth {
            let mut next = vec![0i64; (rows - 2) * (cols - 2)];
            for i in 0..rows - 2 {
                for j in 0..cols - 2 {
                    for a in 0..3 {
                        for b in 0..3 {
                            next[i * (cols - 2) + j] += q[(i + a) * cols + j + b];
                        }
                    }
                }
            }
            q = next;
            rows -= 2;
            cols -= 2;
        }
        let sum_q: i64 = q.iter().sum();
        let expected = match o.kind {
            KernelKind::Ntk => (i64::from(o.depth) + 1) * sum_q,
            KernelKind::Nngp => sum_q,
        };
        assert_eq!(k, expected);
    }
}

#[test]
fn scratch_contents_and_reuse_do_not_matter() {
    let o = Owned::random(&mut Rng(404));
    let blob = o.encode();
    let m = Model::from_bytes(&blob).unwrap();
    let z: Vec<u8> = (0..o.pixels()).map(|p| (p * 37 % 251) as u8).collect();
    let mut a = vec![0u8; m.scratch_len()];
    let mut b = vec![0xFFu8; m.scratch_len()];
    let first = m.predict(&z, &mut a).unwrap();
    assert_eq!(m.predict(&z, &mut b), Ok(first));
    assert_eq!(m.predict(&z, &mut a), Ok(first));
}

#[test]
fn zero_image_and_saturating_extremes() {
    // A zero query: every q_z = 0, so every kernel value is 0 and all
    // scores tie: class 0 wins with margin 0.
    let o = tiny(KernelKind::Ntk);
    let blob = o.encode();
    let m = Model::from_bytes(&blob).unwrap();
    let mut scratch = vec![0u8; m.scratch_len()];
    let p = m.predict(&[0; 64], &mut scratch).unwrap();
    assert_eq!((p.class, p.score, p.margin), (0, 0, 0));
    for i in 0..3 {
        assert_eq!(m.kernel_value(&[0; 64], i, &mut scratch), Ok(0));
    }
    // Extreme W and u_mult: everything clamps to +-127, no overflow.
    let mut o = tiny(KernelKind::Ntk);
    o.w = vec![-128; 18];
    o.u_mult = u32::MAX;
    o.alpha = vec![i16::MAX, i16::MIN, i16::MIN, i16::MAX, i16::MAX, i16::MAX];
    let blob = o.encode();
    let m = Model::from_bytes(&blob).unwrap();
    let z = [255u8; 64];
    let mut scores = [0i64; 2];
    m.predict_scores(&z, &mut scratch, &mut scores).unwrap();
    assert_eq!(scores.to_vec(), ref_scores(&o, &z));
}

#[test]
fn scratch_len_28x28_depth3_within_16k() {
    for r in 1..=9 {
        for classes in [2, 10, 100] {
            let n = scratch_len_for_dims(1, 28, 28, 3, r, classes).unwrap();
            if classes <= 10 {
                assert!(n <= 16 * 1024, "r = {r}: {n}");
            }
        }
    }
    let n = scratch_len_for_dims(1, 28, 28, 3, 9, 10).unwrap();
    println!("scratch_len(1x28x28, depth 3, r = 9, 10 classes) = {n}");
    assert_eq!(n, 11_683);
    // Matches Shape's geometry: scores, band, uq map, alignment slack,
    // then words: the layer-1 q map, a row of projections, the row being
    // computed (4 words per column), two rings (12 words per column).
    let s = Shape::new(1, 28, 28, 3).unwrap();
    let (p1, c1) = (s.positions(1), s.grid(1).1);
    let (c2, c3) = (s.grid(2).1, s.grid(3).1);
    assert_eq!(
        n,
        10 * 8 + 3 * 28 + p1 * 9 + 3 + 4 * (p1 + 5 * c1 + 12 * (c2 + c3))
    );
    assert_eq!(scratch_len_for_dims(1, 6, 6, 3, 1, 2), None);
    assert_eq!(scratch_len_for_dims(1, 28, 28, 0, 1, 2), None);
}
