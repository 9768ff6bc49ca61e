//! How close the integer kernel is to the same recursion in f64 with exact
//! `acos` / `sqrt`. Prints the figures quoted in docs/blob-format.md
//! (`cargo test -p convrfm-core --test accuracy -- --nocapture`).
//!
//! Two references, both scaled to the integer units (so no fudge factor
//! is fitted):
//! - "exact u": f64 recursion on `u * u_mult / 2^24` without rounding or
//!   clamping: the whole device error (i8 requantisation + fixed point);
//! - "same uq": f64 recursion on the device's own requantised `uq`: the
//!   error of the fixed-point ReLU steps, rounding and tables alone.
// Tests and their helpers: a panic is a test failure, which is what we want.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::f64::consts::PI;

use common::{Owned, Rng};
use convrfm_core::{KernelKind, Model};

const H: usize = 28;
const DEPTH: usize = 3;
const R: usize = 9;

fn patch_u(img: &[u8], w: &[i8], i: usize, j: usize, col: usize) -> i64 {
    let mut u = 0i64;
    for a in 0..3 {
        for b in 0..3 {
            u += i64::from(img[(i + a) * H + j + b]) * i64::from(w[(a * 3 + b) * R + col]);
        }
    }
    u
}

/// The recursion in f64 from per-position projected patches (1 channel).
fn f64_kernel(uz: &[Vec<f64>], ux: &[Vec<f64>], kind: KernelKind) -> f64 {
    let n = H - 2;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut k: Vec<f64> = (0..n * n).map(|p| dot(&uz[p], &ux[p])).collect();
    let mut qz: Vec<f64> = (0..n * n).map(|p| dot(&uz[p], &uz[p])).collect();
    let mut qx: Vec<f64> = (0..n * n).map(|p| dot(&ux[p], &ux[p])).collect();
    let mut th = k.clone();
    let mut side = n;
    for layer in 1..=DEPTH {
        let mut kh = vec![0.0; side * side];
        let mut thh = vec![0.0; side * side];
        for p in 0..side * side {
            let s = (qz[p] * qx[p]).sqrt();
            let rho = if s > 0.0 {
                (k[p] / s).clamp(-1.0, 1.0)
            } else {
                0.0
            };
            let kdot = (PI - rho.acos()) / PI;
            let j = ((1.0 - rho * rho).max(0.0).sqrt() + (PI - rho.acos()) * rho) / PI;
            kh[p] = s * j;
            thh[p] = th[p] * kdot;
        }
        if layer == DEPTH {
            return match kind {
                KernelKind::Ntk => kh.iter().zip(&thh).map(|(a, b)| a + b).sum(),
                KernelKind::Nngp => kh.iter().sum(),
            };
        }
        let o = side - 2;
        let wsum = |src: &[f64]| -> Vec<f64> {
            let mut out = vec![0.0; o * o];
            for i in 0..o {
                for j in 0..o {
                    for a in 0..3 {
                        for b in 0..3 {
                            out[i * o + j] += src[(i + a) * side + j + b];
                        }
                    }
                }
            }
            out
        };
        k = wsum(&kh);
        th = wsum(&thh).iter().zip(&k).map(|(a, b)| a + b).collect();
        qz = wsum(&qz);
        qx = wsum(&qx);
        side = o;
    }
    unreachable!()
}

/// `u * u_mult / 2^24` per position, unrounded (`exact`) or as the device
/// requantises it.
fn projections(img: &[u8], w: &[i8], u_mult: u32, exact: bool) -> Vec<Vec<f64>> {
    let n = H - 2;
    let scale = f64::from(u_mult) / f64::from(1u32 << 24);
    (0..n * n)
        .map(|p| {
            (0..R)
                .map(|col| {
                    let u = patch_u(img, w, p / n, p % n, col);
                    if exact {
                        u as f64 * scale
                    } else {
                        ((u * i64::from(u_mult) + (1 << 23)) >> 24).clamp(-127, 127) as f64
                    }
                })
                .collect()
        })
        .collect()
}

/// A garment-like image: zero background, a filled ellipse with a smooth
/// gradient and texture.
fn synthetic(rng: &mut Rng) -> Vec<u8> {
    let (cy, cx) = (rng.range_i64(10, 17) as f64, rng.range_i64(10, 17) as f64);
    let (ry, rx) = (rng.range_i64(5, 12) as f64, rng.range_i64(4, 12) as f64);
    let base = rng.range_i64(60, 200) as f64;
    let tilt = rng.range_i64(-6, 6) as f64;
    let mut img = vec![0u8; H * H];
    for y in 0..H {
        for x in 0..H {
            let (dy, dx) = ((y as f64 - cy) / ry, (x as f64 - cx) / rx);
            if dy * dy + dx * dx <= 1.0 {
                let v = base + tilt * (x as f64 - cx) + rng.range_i64(-25, 25) as f64;
                img[y * H + x] = v.clamp(1.0, 255.0) as u8;
            }
        }
    }
    img
}

/// Fashion-MNIST test images from the subset shipped in the repository
/// (decompressed with `flate2`; the file is part of the repo, so its
/// absence is a failure, not a skip).
fn fashion_mnist(count: usize) -> Vec<Vec<u8>> {
    use std::io::Read;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/fashion-mnist/t10k-images-idx3-ubyte.gz"
    );
    let gz = std::fs::read(path).expect("the repo's Fashion-MNIST subset");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut bytes)
        .expect("gzip");
    let n = u32::from_be_bytes(bytes[4..8].try_into().expect("header")) as usize;
    bytes[16..]
        .chunks_exact(H * H)
        .take(n.min(count))
        .map(<[u8]>::to_vec)
        .collect()
}

struct Errors {
    exact: Vec<f64>,
    same_uq: Vec<f64>,
}

fn measure(images: &[Vec<u8>], pairs: &[(usize, usize)], kind: KernelKind, seed: u64) -> Errors {
    let mut rng = Rng(seed);
    let w: Vec<i8> = (0..9 * R).map(|_| rng.range_i64(-64, 64) as i8).collect();
    // Exporter's choice: the largest |u| over the images maps to 127.
    let maxu = images
        .iter()
        .flat_map(|img| {
            let w = &w;
            (0..(H - 2) * (H - 2)).flat_map(move |p| {
                (0..R).map(move |c| patch_u(img, w, p / (H - 2), p % (H - 2), c).abs())
            })
        })
        .max()
        .unwrap()
        .max(1);
    let u_mult = ((127i64 << 24) / maxu) as u32;
    let mut errs = Errors {
        exact: Vec::new(),
        same_uq: Vec::new(),
    };
    for &(zi, xi) in pairs {
        let (z, x) = (&images[zi], &images[xi]);
        let o = Owned {
            channels: 1,
            height: H as u16,
            width: H as u16,
            depth: DEPTH as u8,
            pixel_bits: 8,
            rank: R as u8,
            kind,
            u_mult,
            alpha_scale: 1.0,
            accuracy: 0,
            w: w.clone(),
            centres: vec![x.clone()],
            alpha: vec![1, -1],
            names: vec!["a", "b"],
        };
        let blob = o.encode();
        let m = Model::from_bytes(&blob).unwrap();
        let mut scratch = vec![0u8; m.scratch_len()];
        let k_int = m.kernel_value(z, 0, &mut scratch).unwrap() as f64;
        let exact = f64_kernel(
            &projections(z, &w, u_mult, true),
            &projections(x, &w, u_mult, true),
            kind,
        );
        let same = f64_kernel(
            &projections(z, &w, u_mult, false),
            &projections(x, &w, u_mult, false),
            kind,
        );
        errs.exact.push((k_int - exact).abs() / exact.abs());
        errs.same_uq.push((k_int - same).abs() / same.abs());
    }
    errs
}

fn summary(v: &[f64]) -> (f64, f64) {
    let max = v.iter().copied().fold(0.0, f64::max);
    (max, v.iter().sum::<f64>() / v.len() as f64)
}

fn report(label: &str, e: &Errors) -> (f64, f64) {
    let (mx, mean) = summary(&e.exact);
    let (mx2, mean2) = summary(&e.same_uq);
    println!(
        "{label}: {} pairs; vs exact-u f64: max {mx:.2e} mean {mean:.2e}; \
         vs same-uq f64: max {mx2:.2e} mean {mean2:.2e}",
        e.exact.len()
    );
    (mx, mx2)
}

fn pairs_for(n: usize, rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = (0..n).map(|i| (i, (i + 1) % n)).collect();
    for _ in 0..n {
        pairs.push((rng.below(n as u64) as usize, rng.below(n as u64) as usize));
    }
    pairs
}

#[test]
fn integer_kernel_vs_f64_synthetic() {
    let mut rng = Rng(2024);
    let mut images: Vec<Vec<u8>> = (0..40).map(|_| synthetic(&mut rng)).collect();
    // Near-duplicates: rho close to 1 at every layer.
    for i in 0..10 {
        let mut v = images[i].clone();
        for p in v.iter_mut().filter(|p| **p > 0) {
            *p = (i64::from(*p) + rng.range_i64(-3, 3)).clamp(1, 255) as u8;
        }
        images.push(v);
    }
    let mut pairs = pairs_for(40, &mut rng);
    pairs.extend((0..10).map(|i| (i, 40 + i)));
    for (kind, seed) in [(KernelKind::Ntk, 1u64), (KernelKind::Nngp, 2)] {
        let e = measure(&images, &pairs, kind, seed);
        let (exact, same) = report(&format!("synthetic {kind:?}"), &e);
        assert!(exact < 1e-2, "{exact}");
        assert!(same < 5e-4, "{same}");
    }
}

#[test]
fn integer_kernel_vs_f64_fashion_mnist() {
    let images = fashion_mnist(60);
    assert_eq!(images.len(), 60);
    let mut rng = Rng(7);
    let pairs = pairs_for(images.len(), &mut rng);
    for (kind, seed) in [(KernelKind::Ntk, 3u64), (KernelKind::Nngp, 4)] {
        let e = measure(&images, &pairs, kind, seed);
        let (exact, same) = report(&format!("Fashion-MNIST {kind:?}"), &e);
        assert!(exact < 1e-2, "{exact}");
        assert!(same < 5e-4, "{same}");
    }
}
