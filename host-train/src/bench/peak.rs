//! The machine's practical f32 peak for the kernel's instruction mix, to
//! put the kernel's achieved GFLOP/s (see [`crate::bench`]) in proportion.
//!
//! # Method
//!
//! Every thread of a dedicated rayon pool runs the same loop for the
//! requested time: [`ACCUMULATORS`] independent accumulators of
//! [`LANES`] `f32` each (the kernel's lane block), each updated element-wise
//! as `acc = acc * a + b`. The accumulators are independent, so the loop is
//! limited by the floating-point units' throughput rather than by the
//! latency of one dependency chain; they are few enough to stay in vector
//! registers (12 of them are 12 zmm or 24 ymm registers, of 32 with
//! AVX-512), so there is no memory traffic. The loop is plain Rust on
//! `[f32; LANES]` arrays, compiled like the kernel (the workspace builds
//! with `-C target-cpu=native`), so it gets the vector width and instruction
//! set the kernel's auto-vectorised loops get (on AVX-512 Xeons LLVM prefers
//! 256-bit vectors: the loop body is then 24 `vmulps` + 24 `vaddps` on ymm
//! registers, or 24 `vfmadd213ps`). Each element update counts as 2
//! floating-point operations. [`std::hint::black_box`] hides the operands
//! and the results from the optimiser, so the loop can be neither folded nor
//! removed. Total GFLOP/s is all threads' operations over the wall time.
//!
//! # Why mul + add, not FMA
//!
//! Rust never contracts `x * a + b` into a fused multiply-add (that would
//! change the rounding), and the kernel code calls no `mul_add`, so the
//! kernel's arithmetic runs as separate multiply and add instructions. The
//! fair peak for it is therefore the separate mul + add peak. It can be as
//! low as half the FMA peak (one instruction per flop instead of two), but
//! cores that issue adds on more ports than FMAs close some or all of the
//! gap (on the AVX-512 Xeon VM this was written on, both came out at about
//! 96 GFLOP/s per core). The FMA peak (`f32::mul_add`, compiled to FMA
//! instructions when the target has them) is measured too and reported as
//! [`PeakResult::fma_gflops_total`], for reference.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::kernel::LANES;

/// Independent accumulators per thread: enough to cover the latency of a
/// dependent mul + add (or FMA) chain on two or three vector ports.
pub const ACCUMULATORS: usize = 12;

/// Loop iterations between two clock reads (a fraction of a millisecond).
const CHUNK: u64 = 1 << 13;

/// Floating-point operations of one loop iteration: 2 per element update.
const FLOPS_PER_ITER: f64 = (2 * ACCUMULATORS * LANES) as f64;

/// Measured f32 peak throughput.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakResult {
    /// Separate multiply and add (the kernel's instruction mix), all
    /// threads together, GFLOP/s.
    pub gflops_total: f64,
    /// `gflops_total / threads`.
    pub gflops_per_thread: f64,
    /// Fused multiply-add, all threads together, GFLOP/s (reference only:
    /// the kernel does not use FMA).
    pub fma_gflops_total: f64,
    /// `fma_gflops_total / threads`.
    pub fma_gflops_per_thread: f64,
    /// Threads that ran the loop.
    pub threads: usize,
    /// Wall time of the mul + add measurement, seconds (the FMA measurement
    /// takes about as long again).
    pub seconds: f64,
}

/// Measures the practical f32 peak on `threads` threads (0: rayon's
/// current pool size), running each variant (mul + add, then FMA) for
/// about `seconds` (0.5 gives stable figures). See the module docs for the
/// method.
///
/// # Panics
/// If the thread pool cannot be created.
pub fn peak_gflops(
    threads: usize,
    seconds: f64,
) -> Result<PeakResult, rayon::ThreadPoolBuildError> {
    let threads = if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let duration = Duration::from_secs_f64(seconds.max(0.0));
    let (flops, wall) = measure(&pool, duration, mul_then_add);
    let (fma_flops, fma_wall) = measure(&pool, duration, fused);
    let gflops_total = flops / wall / 1e9;
    let fma_gflops_total = fma_flops / fma_wall / 1e9;
    Ok(PeakResult {
        gflops_total,
        gflops_per_thread: gflops_total / threads as f64,
        fma_gflops_total,
        fma_gflops_per_thread: fma_gflops_total / threads as f64,
        threads,
        seconds: wall,
    })
}

type Accs = [[f32; LANES]; ACCUMULATORS];

/// Runs `chunk` on every thread of `pool` for `duration`; returns the
/// operations done by all threads and the wall time in seconds.
fn measure(
    pool: &rayon::ThreadPool,
    duration: Duration,
    chunk: fn(Accs, &[f32; LANES], &[f32; LANES], u64) -> Accs,
) -> (f64, f64) {
    let start = Instant::now();
    let iters: Vec<u64> = pool.broadcast(|_| {
        // a < 1 and b > 0: every accumulator converges to b / (1 - a), a
        // normal number, so there are no overflows or denormals.
        let a = [0.999_f32; LANES];
        let b = [1e-3_f32; LANES];
        let mut accs: Accs = [[1.0; LANES]; ACCUMULATORS];
        let begin = Instant::now();
        let mut done = 0;
        loop {
            accs = chunk(black_box(accs), black_box(&a), black_box(&b), CHUNK);
            done += CHUNK;
            if begin.elapsed() >= duration {
                break;
            }
        }
        black_box(accs);
        done
    });
    let wall = start.elapsed().as_secs_f64();
    let total: u64 = iters.iter().sum();
    (total as f64 * FLOPS_PER_ITER, wall)
}

/// `iters` rounds of `acc = acc * a + b` (separate mul and add) on every
/// accumulator.
#[inline(never)]
fn mul_then_add(accs: Accs, a: &[f32; LANES], b: &[f32; LANES], iters: u64) -> Accs {
    rounds(accs, a, b, iters, |x, a, b| {
        for ((x, &ai), &bi) in x.iter_mut().zip(a).zip(b) {
            *x = *x * ai + bi;
        }
    })
}

/// `iters` rounds of `acc = fma(acc, a, b)` on every accumulator.
#[inline(never)]
fn fused(accs: Accs, a: &[f32; LANES], b: &[f32; LANES], iters: u64) -> Accs {
    rounds(accs, a, b, iters, |x, a, b| {
        for ((x, &ai), &bi) in x.iter_mut().zip(a).zip(b) {
            *x = x.mul_add(ai, bi);
        }
    })
}

/// `iters` rounds of `step` on each accumulator. The accumulators are
/// separate locals and the calls are written out, so each one is an
/// element-wise loop over one lane block, vectorised along the lanes as the
/// kernel's loops are, and all stay in registers.
#[inline(always)]
fn rounds(
    accs: Accs,
    a: &[f32; LANES],
    b: &[f32; LANES],
    iters: u64,
    step: impl Fn(&mut [f32; LANES], &[f32; LANES], &[f32; LANES]),
) -> Accs {
    let [
        mut x0,
        mut x1,
        mut x2,
        mut x3,
        mut x4,
        mut x5,
        mut x6,
        mut x7,
        mut x8,
        mut x9,
        mut x10,
        mut x11,
    ] = accs;
    for _ in 0..iters {
        step(&mut x0, a, b);
        step(&mut x1, a, b);
        step(&mut x2, a, b);
        step(&mut x3, a, b);
        step(&mut x4, a, b);
        step(&mut x5, a, b);
        step(&mut x6, a, b);
        step(&mut x7, a, b);
        step(&mut x8, a, b);
        step(&mut x9, a, b);
        step(&mut x10, a, b);
        step(&mut x11, a, b);
    }
    [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_positive_and_finite() {
        let r = peak_gflops(1, 0.02).unwrap();
        assert_eq!(r.threads, 1);
        for v in [
            r.gflops_total,
            r.gflops_per_thread,
            r.fma_gflops_total,
            r.fma_gflops_per_thread,
        ] {
            assert!(v.is_finite() && v > 0.0, "{r:?}");
        }
        assert!(r.seconds >= 0.02 && r.seconds < 5.0, "{r:?}");
        assert_eq!(r.gflops_per_thread, r.gflops_total);
    }

    #[test]
    fn loops_compute_the_recurrence() {
        let a = [0.5; LANES];
        let b = [1.0; LANES];
        let start: Accs = [[2.0; LANES]; ACCUMULATORS];
        // 2 -> 2 -> 2: the fixed point of x = x / 2 + 1.
        assert_eq!(mul_then_add(start, &a, &b, 3), start);
        assert_eq!(fused(start, &a, &b, 3), start);
        let one = mul_then_add([[0.0; LANES]; ACCUMULATORS], &a, &b, 2);
        assert_eq!(one[ACCUMULATORS - 1][LANES - 1], 1.5);
    }
}
