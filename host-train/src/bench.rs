//! `convrfm bench`: seconds per training phase at a given size, with the
//! achieved kernel GFLOP/s under an explicit work model.

use std::time::Instant;

use anyhow::{Result, ensure};
use convrfm_core::Shape;

use crate::data::{Split, fashion_mnist};
use crate::kernel::{Kernel, KernelKind, Metric};
use crate::linalg::{psd_sqrt_normalised, solve_ridge};
use crate::progress::Progress;
use crate::real::Real;
use crate::rfm::{Precision, one_hot};
use crate::train_set::TrainSet;

/// The authors' code on a 2-core machine at n = 2000 train, 1000 test,
/// depth 3, AGOP over 20 images: seconds per phase (Ktrain, Ktest, AGOP).
pub const REFERENCE_SECONDS: [(&str, f64); 3] =
    [("Ktrain", 268.0), ("Ktest", 127.0), ("AGOP", 187.0)];

/// Floating-point operations of one kernel value under the work model:
/// `2 d` per layer-1 position (patch dot product), 30 per ReLU step
/// (rho, arccos polynomial, square root, Khat, Thetahat) at every position
/// of every layer, 9 per position of layers >= 2 (separable 3x3 sums of two
/// maps plus `Theta += K`).
pub fn flops_per_pair(shape: &Shape) -> f64 {
    let p1 = shape.positions(1) as f64;
    let relu: f64 = (1..=shape.depth()).map(|l| shape.positions(l) as f64).sum();
    let later: f64 = (2..=shape.depth()).map(|l| shape.positions(l) as f64).sum();
    2.0 * shape.patch_dim() as f64 * p1 + 30.0 * relu + 9.0 * later
}

/// Runs one ConvRFM iteration's phases on Fashion-MNIST and prints them.
pub fn run(
    n: usize,
    test: usize,
    depth: usize,
    agop_images: usize,
    precision: Precision,
    progress: Progress,
) -> Result<()> {
    ensure!(
        n >= 1 && test >= 1 && agop_images >= 1,
        "sizes must be positive"
    );
    let (train, source) = fashion_mnist(Split::Train, Some(n))?;
    let (test_set, _) = fashion_mnist(Split::Test, Some(test))?;
    println!(
        "data: {source}; n = {n} train, {test} test, depth {depth}, {agop_images} AGOP images, {} threads",
        rayon::current_num_threads()
    );
    match precision {
        Precision::F32 => run_in::<f32>(
            &train.images.pixels,
            &train.labels,
            &test_set.images.pixels,
            depth,
            agop_images,
            progress,
        ),
        Precision::F64 => run_in::<f64>(
            &train.images.pixels,
            &train.labels,
            &test_set.images.pixels,
            depth,
            agop_images,
            progress,
        ),
    }
}

fn run_in<R: Real>(
    x: &[f32],
    labels: &[u8],
    z: &[f32],
    depth: usize,
    agop_images: usize,
    progress: Progress,
) -> Result<()> {
    let shape = Shape::new(1, 28, 28, depth).map_err(|e| anyhow::anyhow!("{e}"))?;
    let n = labels.len();
    let m = z.len() / shape.pixels();
    let kernel = Kernel::new(shape, KernelKind::Ntk, Metric::identity(shape.patch_dim()));
    let mut phases: Vec<(&str, f64)> = Vec::new();

    let t = Instant::now();
    let set = TrainSet::<R>::new(&kernel, x);
    let bar = progress.bar("Ktrain", (n * (n + 1) / 2) as u64);
    let mut k = set.gram(x, &bar);
    bar.finish_and_clear();
    phases.push(("Ktrain", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let bar = progress.bar("Ktest", (m * n) as u64);
    let _kt = set.cross(z, &bar);
    bar.finish_and_clear();
    phases.push(("Ktest", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let scale = k.iter().fold(0.0f64, |a, v| a.max(*v));
    k.iter_mut().for_each(|v| *v /= scale);
    let sol = solve_ridge(&k, n, &one_hot(labels, 10), 1e-3)?;
    phases.push(("solve", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let q = agop_images.min(n);
    let bar = progress.bar("AGOP", q as u64);
    let g = set.agop(&sol.alpha, 10, x, &x[..q * shape.pixels()], &bar);
    bar.finish_and_clear();
    phases.push(("AGOP", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    psd_sqrt_normalised(&g, shape.patch_dim())?;
    phases.push(("eigh", t.elapsed().as_secs_f64()));

    let total: f64 = phases.iter().map(|p| p.1).sum();
    println!("{:<8} {:>9}", "phase", "seconds");
    for (name, s) in &phases {
        println!("{name:<8} {s:>9.3}");
    }
    println!("{:<8} {total:>9.3}", "total");
    let pairs = (n * (n + 1) / 2 + m * n) as f64;
    let kernel_s = phases[0].1 + phases[1].1;
    let fpp = flops_per_pair(&shape);
    let gflops = pairs * fpp / kernel_s / 1e9;
    println!(
        "kernel phases: {:.3e} pairs x {:.0} flop/pair (work model) = {:.3e} flop in {:.2} s: {:.1} GFLOP/s, {:.2} Mpairs/s",
        pairs,
        fpp,
        pairs * fpp,
        kernel_s,
        gflops,
        pairs / kernel_s / 1e6
    );
    let peak = crate::peak::peak_gflops(0, 0.5);
    println!(
        "machine peak (same instruction set, mul+add, {} threads): {:.1} GFLOP/s (FMA {:.1}); kernel at {:.0} % of peak",
        peak.threads,
        peak.gflops_total,
        peak.fma_gflops_total,
        100.0 * gflops / peak.gflops_total
    );
    println!(
        "(the work model counts every position; positions where the query's patch window is all zero are skipped exactly, so on images with blank background this is an effective rate)"
    );
    if (n, m, depth, agop_images) == (2000, 1000, 3, 20) {
        let theirs: f64 = REFERENCE_SECONDS.iter().map(|r| r.1).sum();
        for (name, s) in REFERENCE_SECONDS {
            let ours = phases
                .iter()
                .find(|p| p.0 == name)
                .map_or(f64::NAN, |p| p.1);
            println!(
                "{name:<8} authors' code {s:>6.0} s, here {ours:>7.3} s: {:>6.0}x",
                s / ours
            );
        }
        println!(
            "per iteration: authors' code ~{theirs:.0} s, here {total:.2} s: {:.0}x faster",
            theirs / total
        );
    }
    Ok(())
}
