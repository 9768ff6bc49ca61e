//! `convrfm bench`: seconds per training phase at a given size, with the
//! achieved kernel GFLOP/s under an explicit work model ([`peak`]: the
//! machine's own peak, to put it in proportion).

pub mod peak;

use std::fmt;

use anyhow::{Context, Result};
use convrfm_core::Shape;

use crate::data::{Split, fashion_mnist};
use crate::fit::report::{IterationReport, PhaseTimes};
use crate::fit::{CheckedParams, Protocol, TrainParams};
use crate::kernel::Precision;
use crate::output::Progress;
use crate::params::{ParamError, at_least};

/// The authors' code on a 2-core machine at n = 2000 train, 1000 test,
/// depth 3, AGOP over 20 images: seconds per phase (Ktrain, Ktest, AGOP).
pub const REFERENCE_SECONDS: [(&str, f64); 3] =
    [("Ktrain", 268.0), ("Ktest", 127.0), ("AGOP", 187.0)];

/// Floating-point operations of one kernel value under the work model:
/// `2 d` per layer-1 position (patch dot product), 30 per ReLU step
/// (rho, arccos polynomial, square root, Khat, Thetahat) at every position
/// of every layer, `4 (Q - 1) + 1` per position of layers >= 2 (separable
/// `Q x Q` sums of two maps plus `Theta += K`; 9 for `Q = 3`).
pub fn flops_per_pair(shape: &Shape) -> f64 {
    let p1 = shape.positions(1) as f64;
    let relu: f64 = (1..=shape.depth()).map(|l| shape.positions(l) as f64).sum();
    let later: f64 = (2..=shape.depth()).map(|l| shape.positions(l) as f64).sum();
    let window = 4.0 * (shape.patch() as f64 - 1.0) + 1.0;
    2.0 * shape.patch_dim() as f64 * p1 + 30.0 * relu + window * later
}

/// What to measure, as given; [`BenchParams::check`] validates it.
#[derive(Clone, Copy, Debug)]
pub struct BenchParams {
    /// Training images.
    pub n: usize,
    /// Test images.
    pub test: usize,
    /// Patch side.
    pub patch: usize,
    /// Kernel depth.
    pub depth: usize,
    /// Kernel float type.
    pub precision: Precision,
}

/// Bench parameters that passed [`BenchParams::check`], with the training
/// parameters of the measured run.
#[derive(Clone, Debug)]
pub struct CheckedBenchParams {
    bench: BenchParams,
    train: CheckedParams,
}

impl BenchParams {
    /// Validates the sizes and the training run they imply.
    pub fn check(self) -> Result<CheckedBenchParams, ParamError> {
        at_least("n", self.n, 1)?;
        at_least("test", self.test, 1)?;
        let train = TrainParams {
            patch: self.patch,
            depth: self.depth,
            iterations: 2,
            precision: self.precision,
            protocol: Protocol::Reference,
            ..TrainParams::default()
        }
        .check()?;
        Ok(CheckedBenchParams { bench: self, train })
    }
}

/// What [`run`] measured; its `Display` is the table `convrfm bench` prints.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Where the images came from.
    pub source: String,
    /// The measured configuration.
    pub params: BenchParams,
    /// AGOP images of the run.
    pub agop_images: usize,
    /// Worker threads.
    pub threads: usize,
    /// Seconds per phase of the first iteration.
    pub times: PhaseTimes,
    /// The machine's peak for the kernel's instruction mix.
    pub peak: peak::PeakResult,
}

/// Times the first iteration of a training run on Fashion-MNIST (the
/// authors' protocol: all `n` images fitted, the test set evaluated, the
/// AGOP over the first 20 images; the phases are the ones `train` times
/// itself), and measures the machine's peak.
pub fn run(params: &CheckedBenchParams, progress: Progress) -> Result<BenchReport> {
    let BenchParams { n, test, .. } = params.bench;
    let (train_set, source) = fashion_mnist(Split::Train, Some(n))?;
    let (test_set, _) = fashion_mnist(Split::Test, Some(test))?;
    let mut first: Option<PhaseTimes> = None;
    crate::fit::train::train(
        &params.train,
        &train_set,
        Some(&test_set),
        progress,
        &mut |r: &IterationReport| {
            first.get_or_insert(r.times);
        },
    )?;
    Ok(BenchReport {
        source: source.to_string(),
        params: params.bench,
        agop_images: params.train.get().agop_images,
        threads: rayon::current_num_threads(),
        times: first.context("no iteration ran")?,
        peak: peak::peak_gflops(0, 0.5).context("measuring the machine's peak")?,
    })
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BenchParams {
            n,
            test,
            patch,
            depth,
            ..
        } = self.params;
        let (agop_images, t, peak) = (self.agop_images, &self.times, &self.peak);
        writeln!(
            f,
            "data: {}; n = {n} train, {test} test, patch {patch}x{patch}, depth {depth}, {agop_images} AGOP images, {} threads",
            self.source, self.threads
        )?;
        let phases = [
            ("Ktrain", t.ktrain),
            ("Ktest", t.ktest),
            ("solve", t.solve),
            ("AGOP", t.agop),
            ("eigh", t.eigh),
        ];
        let total = t.total();
        writeln!(f, "{:<8} {:>9}", "phase", "seconds")?;
        for (name, s) in &phases {
            writeln!(f, "{name:<8} {s:>9.3}")?;
        }
        writeln!(f, "{:<8} {total:>9.3}", "total")?;
        let pairs = (n * (n + 1) / 2 + test * n) as f64;
        let kernel_s = t.ktrain + t.ktest;
        let fpp =
            Shape::with_patch(1, 28, 28, patch, depth).map_or(f64::NAN, |s| flops_per_pair(&s));
        let gflops = pairs * fpp / kernel_s / 1e9;
        writeln!(
            f,
            "kernel phases: {:.3e} pairs x {:.0} flop/pair (work model) = {:.3e} flop in {:.2} s: {:.1} GFLOP/s, {:.2} Mpairs/s",
            pairs,
            fpp,
            pairs * fpp,
            kernel_s,
            gflops,
            pairs / kernel_s / 1e6
        )?;
        writeln!(
            f,
            "machine peak (same instruction set, mul+add, {} threads): {:.1} GFLOP/s (FMA {:.1}); kernel at {:.0} % of peak",
            peak.threads,
            peak.gflops_total,
            peak.fma_gflops_total,
            100.0 * gflops / peak.gflops_total
        )?;
        writeln!(
            f,
            "(the work model counts every position; positions where the query's patch window is all zero are skipped exactly, so on images with blank background this is an effective rate)"
        )?;
        if (n, test, patch, depth, agop_images) == (2000, 1000, 3, 3, 20) {
            let theirs: f64 = REFERENCE_SECONDS.iter().map(|r| r.1).sum();
            for (name, s) in REFERENCE_SECONDS {
                let ours = phases
                    .iter()
                    .find(|p| p.0 == name)
                    .map_or(f64::NAN, |p| p.1);
                writeln!(
                    f,
                    "{name:<8} authors' code {s:>6.0} s, here {ours:>7.3} s: {:>6.0}x",
                    s / ours
                )?;
            }
            writeln!(
                f,
                "per iteration: authors' code ~{theirs:.0} s, here {total:.2} s: {:.0}x faster",
                theirs / total
            )?;
        }
        Ok(())
    }
}
