//! Criterion benchmarks of the ConvRFM training phases on seeded synthetic
//! 28x28 grayscale images (pixels uniform in [0, 1), so no patch is all
//! zero: the kernel's zero-patch shortcut never fires, unlike on real
//! images with a black background).
//!
//! Run with `cargo bench -p convrfm-benches`; add `-- --quick` for a fast
//! pass. The n = 1000 benchmarks take about a second per iteration, so they
//! run 10 samples.

use std::hint::black_box;
use std::time::Duration;

use convrfm_core::Shape;
use convrfm_train::fit::linalg::{psd_sqrt_normalised, solve_ridge};
use convrfm_train::fit::readout::one_hot;
use convrfm_train::kernel::KernelBlocks;
use convrfm_train::kernel::{Kernel, KernelKind, LANES, Metric, Workspace};
use convrfm_train::matrix::Matrix;
use convrfm_train::output::Progress;
use criterion::{Criterion, criterion_group, criterion_main};

/// Training-set size of the `*_n1000` benchmarks.
const N: usize = 1000;
/// Classes of the synthetic labels.
const CLASSES: usize = 10;
/// Query images of the AGOP benchmark (as in `convrfm bench`).
const AGOP_IMAGES: usize = 20;
/// Ridge of the solve benchmark.
const LAMBDA: f64 = 1e-3;
/// Makes hidden progress bars (`indicatif` is not a dependency of this
/// crate, so bars are made through `Progress` rather than named).
const QUIET: Progress = Progress { quiet: true };

/// A tiny deterministic generator (xorshift64*), so the bench crate needs
/// no `rand`.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1), 24 random bits.
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1), 53 random bits.
    fn next_signed(&mut self) -> f64 {
        2.0 * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) - 1.0
    }
}

/// 1 x 28 x 28 images, depth-3 kernel.
fn shape() -> Shape {
    Shape::new(1, 28, 28, 3).expect("28x28 admits depth 3")
}

/// The depth-3 NTK with the identity metric (ConvRFM iteration 0).
fn kernel() -> Kernel {
    let shape = shape();
    Kernel::new(shape, KernelKind::Ntk, Metric::identity(shape.patch_dim()))
}

/// `n` flat images with pixels uniform in [0, 1), seeded.
fn images(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = XorShift(seed);
    (0..n * shape().pixels()).map(|_| rng.next_f32()).collect()
}

/// `Kernel::forward`: one query image against one block of `LANES` training
/// images (f32, depth 3, identity metric, no tape).
fn kernel_tile(c: &mut Criterion) {
    let kernel = kernel();
    let x = images(LANES + 1, 0x5eed_0003);
    let per = shape().pixels();
    let train: Vec<&[f32]> = x[per..].chunks_exact(per).collect();
    let block = kernel.block::<f32, f32>(&train);
    let query = kernel.image_maps::<f32, f32>(&x[..per]);
    let mut work = Workspace::new(&shape());
    c.bench_function("kernel_tile", |b| {
        b.iter(|| {
            kernel.forward(
                black_box(&query),
                black_box(&block),
                &[false; LANES],
                &mut work,
                None,
            )
        })
    });
}

/// `KernelBlocks::<f32>::gram`: the n x n training kernel matrix at n = 1000
/// (500 500 pairs, all rayon threads).
fn gram_n1000(c: &mut Criterion) {
    let kernel = kernel();
    let x = images(N, 0x5eed_0001);
    let set = KernelBlocks::<f32>::new(&kernel, &x);
    let bar = QUIET.bar("bench", 0);
    c.bench_function("gram_n1000", |b| b.iter(|| set.gram(black_box(&x), &bar)));
}

/// `KernelBlocks::<f32>::agop`: patch-AGOP of a 10-class predictor with random
/// coefficients over n = 1000 training images, at 20 query images (the
/// first 20 training images, as `convrfm bench` does).
fn agop_n1000(c: &mut Criterion) {
    let kernel = kernel();
    let x = images(N, 0x5eed_0001);
    let set = KernelBlocks::<f32>::new(&kernel, &x);
    let mut rng = XorShift(0x5eed_0004);
    let alpha = Matrix::from_row_major(
        N,
        CLASSES,
        (0..N * CLASSES).map(|_| rng.next_signed()).collect(),
    )
    .expect("N x CLASSES");
    let queries = &x[..AGOP_IMAGES * shape().pixels()];
    let bar = QUIET.bar("bench", 0);
    c.bench_function("agop_n1000", |b| {
        b.iter(|| set.agop(black_box(&alpha), &x, black_box(queries), &bar))
    });
}

/// `linalg::solve_ridge`: Cholesky solve of `(K + 1e-3 I) alpha = Y` for the
/// max-normalised n = 1000 Gram matrix and one-hot labels of 10 classes.
fn solve_n1000(c: &mut Criterion) {
    let kernel = kernel();
    let x = images(N, 0x5eed_0001);
    let mut k = KernelBlocks::<f32>::new(&kernel, &x).gram(&x, &QUIET.bar("gram", 0));
    let scale = k.as_slice().iter().fold(0.0f64, |a, v| a.max(*v));
    k.divide(scale);
    let mut rng = XorShift(0x5eed_0002);
    let labels: Vec<u8> = (0..N)
        .map(|_| (rng.next_u64() % CLASSES as u64) as u8)
        .collect();
    let y = one_hot(&labels, CLASSES);
    c.bench_function("solve_n1000", |b| {
        b.iter(|| solve_ridge(black_box(&k), black_box(&y), LAMBDA).expect("SPD"))
    });
}

/// `linalg::psd_sqrt_normalised`: the metric update (eigendecomposition,
/// PSD square root, Frobenius normalisation) of a 9 x 9 PSD matrix.
fn eigh_d9(c: &mut Criterion) {
    let d = shape().patch_dim();
    let mut rng = XorShift(0x5eed_0005);
    let a: Vec<f64> = (0..d * d).map(|_| rng.next_signed()).collect();
    let g: Vec<f64> = (0..d * d)
        .map(|t| {
            let (i, j) = (t / d, t % d);
            (0..d).map(|k| a[i * d + k] * a[j * d + k]).sum()
        })
        .collect();
    c.bench_function("eigh_d9", |b| {
        b.iter(|| psd_sqrt_normalised(black_box(&g), d).expect("PSD"))
    });
}

criterion_group! {
    name = fast;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = kernel_tile, solve_n1000, eigh_d9
}

criterion_group! {
    name = slow;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    targets = gram_n1000, agop_n1000
}

criterion_main!(fast, slow);
