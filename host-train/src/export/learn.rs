//! Learned centres: the compact model's centre pixels moved by gradient
//! descent on its squared loss over the fit set, instead of staying the
//! training images pivoted Cholesky picked (learned prototypes, as in
//! ProtoNN, with the ConvRFM's own kernel and metric).
//!
//! Loss of a mini-batch `B` for fixed alpha:
//! `L = 1/|B| sum_i |K(x_i, C) alpha / s - y_i|^2`, `y` the distillation
//! targets. Its gradient with respect to centre `c_j` is
//! `sum_i w_ij dK(x_i, c_j)/dc_j` with `w_ij = 2/|B| (r_i . alpha_j) / s`
//! (`r` the residuals). The kernel is symmetric, so that is the pixel
//! gradient at `c_j` of the predictor `sum_i w_ij K(x_i, .)`: the gradient
//! the AGOP averages ([`KernelBlocks::pixel_gradients`]), no new calculus.
//!
//! - **Rounds**: alpha is re-fitted (Nystroem, the candidate's lambda) on a
//!   fixed pool of fit images, then Adam steps over [`ROUND_IMAGES`] batch
//!   images move the centres with that alpha. Each round is scored on the validation
//!   images; the centres of the best round are kept, the starting ones
//!   included, so learning never returns worse centres on validation.
//! - **Quantisation-aware end**: for the last [`QUANTISED_SHARE`] of the
//!   steps (or of the time budget) the forward pass and the gradient use
//!   the centres rounded to the blob's pixel grid while the update goes to
//!   the float copy (straight-through); every round is scored with rounded
//!   centres, as the device stores them.
//! - Pixels stay in `[0, 1]`. The regulariser's dependence on the centres
//!   is left out of the gradient (alpha's ridge is re-fitted each round).
//! - Deterministic for a seed and thread count when the step bound, not
//!   the time budget, ends the run (batches come from a seeded generator;
//!   each centre's gradient is computed whole on one thread).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::compact::{Nystrom, Targets, padded_metric};
use super::device::quantise_pixels;
use super::gather;
use crate::fit::readout::{accuracy, mean_squared, scores};
use crate::kernel::agop::{ImageIndex, onto_pixels};
use crate::kernel::{Kernel, KernelBlocks};
use crate::matrix::Matrix;
use crate::output::{Phase, Progress};
use crate::params::{ParamError, at_least, positive};

/// Batch images between two re-fits of alpha (whole steps, at least
/// one): rounds cost the same share of the time whatever the batch size.
pub const ROUND_IMAGES: usize = 8192;

/// Share of the steps (or of the time budget) at the end that uses centres
/// rounded to the blob's grid.
pub const QUANTISED_SHARE: f64 = 0.25;

/// Fit images alpha is re-fitted on each round (at most).
pub const POOL_IMAGES: usize = 4096;

/// How long and how the centres are learned.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnOptions {
    /// Wall-clock bound of the whole optimisation, rounds' scoring included.
    pub time_budget: Duration,
    /// Most Adam steps.
    pub max_steps: usize,
    /// Fit images per step.
    pub batch: usize,
    /// Adam's step size, in pixel units (pixels are in `[0, 1]`).
    pub learning_rate: f64,
    /// Whether the patch projection `W` is learned with the centres.
    pub projection: bool,
}

impl Default for LearnOptions {
    fn default() -> Self {
        Self {
            time_budget: Duration::from_secs(420),
            max_steps: 5000,
            batch: 64,
            learning_rate: 0.01,
            projection: true,
        }
    }
}

impl LearnOptions {
    /// Refuses a zero time budget or step count, a batch under 1 and a
    /// step size that is not finite and positive.
    pub fn check(&self) -> Result<(), ParamError> {
        if self.time_budget.is_zero() {
            return Err(ParamError::ZeroDuration {
                name: "time-budget",
            });
        }
        at_least("learn-steps", self.max_steps, 1)?;
        at_least("learn-batch", self.batch, 1)?;
        positive("learning-rate", self.learning_rate)
    }
}

/// What the centres are learned against.
pub struct LearnProblem<'a> {
    /// The compact model's float kernel (the device mirror).
    pub kernel: &'a Kernel,
    /// The projection to learn as well, if it is learned.
    pub projection: Option<Projection<'a>>,
    /// Fit images (flat pixels), the ones batches and the pool come from.
    pub images: &'a [f32],
    /// Targets of the fit images, `n x classes` (labels and teacher mixed).
    pub targets: &'a Matrix,
    /// Validation images (flat pixels) and their labels.
    pub val_images: &'a [f32],
    /// Labels of `val_images`.
    pub val_labels: &'a [u8],
    /// Ridge of alpha's re-fit.
    pub lambda: f64,
    /// Blob pixel depth the centres are rounded to.
    pub bits: u8,
    /// Kernel normaliser (kept fixed while learning).
    pub scale: f64,
    /// Seed of the batches and the pool.
    pub seed: u64,
}

/// The patch projection `W` learned with the centres: the kernel's metric
/// is `W` (`d x rank`) padded with zero columns (`u = P W`).
pub struct Projection<'a> {
    /// The starting `W`, row-major, in float.
    pub start: Vec<f64>,
    /// Its columns.
    pub rank: usize,
    /// The device mirror of a projection (`W` quantised, `u` rounded as the
    /// device rounds it): the kernel of the quantisation-aware end.
    pub device: &'a (dyn Fn(&[f64]) -> Result<Kernel> + Sync),
}

impl Projection<'_> {
    /// The float kernel of `w` on `like`'s shape and kind.
    fn kernel(&self, like: &Kernel, w: &[f64]) -> Result<Kernel> {
        let d = like.shape().patch_dim();
        Ok(Kernel::new(
            like.shape(),
            like.kind(),
            padded_metric(w, d, self.rank)?,
        ))
    }
}

/// One round's scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Round {
    /// Adam steps taken before the round was scored.
    pub step: usize,
    /// Mean squared loss on the pool with alpha re-fitted.
    pub pool_loss: f64,
    /// Validation accuracy with the rounded centres.
    pub val_accuracy: f64,
}

/// Learned centres and how they were found.
pub struct Learned {
    /// The best round's centres, rounded to the blob's grid.
    pub centres: Vec<f32>,
    /// The best round's projection `W` (float), if it was learned.
    pub projection: Option<Vec<f64>>,
    /// Every round, the starting centres' first.
    pub rounds: Vec<Round>,
    /// Index into `rounds` of the kept centres.
    pub best: usize,
    /// Adam steps taken.
    pub steps: usize,
}

impl Learned {
    /// The starting centres' round.
    pub fn first(&self) -> Round {
        self.rounds[0]
    }

    /// The kept centres' round.
    pub fn kept(&self) -> Round {
        self.rounds[self.best]
    }

    /// What a report of the built blob says about learning.
    pub fn report(&self) -> LearnReport {
        LearnReport {
            steps: self.steps,
            first: self.first(),
            kept: self.kept(),
        }
    }
}

/// How learning went for a built blob, without the centres.
#[derive(Clone, Copy, Debug)]
pub struct LearnReport {
    /// Adam steps taken.
    pub steps: usize,
    /// The starting centres' scores.
    pub first: Round,
    /// The kept centres' scores.
    pub kept: Round,
}

/// Adam's moments of every pixel.
struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
    rate: f64,
}

impl Adam {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(len: usize, rate: f64) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
            rate,
        }
    }

    /// One step's change of the parameters, for their gradient `g`.
    fn delta(&mut self, g: &[f64]) -> Vec<f64> {
        self.t += 1;
        let (c1, c2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        g.iter()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .map(|((&g, m), v)| {
                *m = Self::B1 * *m + (1.0 - Self::B1) * g;
                *v = Self::B2 * *v + (1.0 - Self::B2) * g * g;
                -self.rate * (*m / c1) / ((*v / c2).sqrt() + Self::EPS)
            })
            .collect()
    }

    /// One step on pixels, kept in `[0, 1]`.
    fn step_pixels(&mut self, x: &mut [f32], g: &[f64]) {
        for (x, d) in x.iter_mut().zip(self.delta(g)) {
            *x = (f64::from(*x) + d).clamp(0.0, 1.0) as f32;
        }
    }

    /// One step on unbounded parameters.
    fn step(&mut self, x: &mut [f64], g: &[f64]) {
        for (x, d) in x.iter_mut().zip(self.delta(g)) {
            *x += d;
        }
    }
}

impl LearnProblem<'_> {
    fn per(&self) -> usize {
        self.kernel.shape().pixels()
    }

    fn images_at(&self, idx: &[usize]) -> Vec<f32> {
        gather(self.images, self.per(), idx)
    }

    /// `K(images, centres) / scale`.
    fn kernel_rows(&self, centres: &Blocks, images: &[f32]) -> Matrix {
        let mut k = centres.cross(images, &Phase::hidden());
        k.divide(self.scale);
        k
    }

    /// Re-fits alpha on the pool and scores the (rounded) centres.
    fn score(
        &self,
        kernel: &Kernel,
        centres: &[f32],
        pool: &Pool,
        step: usize,
    ) -> Result<(Round, Matrix)> {
        let set = Blocks::new(kernel, centres);
        let mut kc = set.gram(centres, &Phase::hidden());
        kc.divide(self.scale);
        let kp = self.kernel_rows(&set, &pool.images);
        let alpha = Nystrom {
            c: &kp,
            w: &kc,
            targets: &pool.targets,
        }
        .solve(self.lambda, 1.0)
        .context("re-fitting alpha for the learned centres")?;
        let kv = self.kernel_rows(&set, self.val_images);
        let round = Round {
            step,
            pool_loss: mean_squared(&scores(&kp, &alpha), &pool.targets.labels),
            val_accuracy: accuracy(&kv, &alpha, self.val_labels),
        };
        Ok((round, alpha))
    }

    /// The batch loss and its gradients: with respect to every centre's
    /// pixels (`m * pixels`) and, when `metric` is asked for, to the
    /// kernel's metric `S` (`d x d`; `u = P S` on both sides of every pair).
    fn gradient(
        &self,
        kernel: &Kernel,
        centres: &[f32],
        alpha: &Matrix,
        batch: &[usize],
        metric: bool,
    ) -> Gradients {
        let shape = kernel.shape();
        let per = self.per();
        let x = self.images_at(batch);
        let y = self.targets.select_rows(batch);
        let set = Blocks::new(kernel, centres);
        let pred = scores(&self.kernel_rows(&set, &x), alpha);
        let b = batch.len();
        let k = y.cols();
        let resid: Vec<f64> = pred
            .as_slice()
            .iter()
            .zip(y.as_slice())
            .map(|(p, t)| p - t)
            .collect();
        let loss = resid.iter().map(|r| r * r).sum::<f64>() / b.max(1) as f64;
        // dL/dK(x_i, c_j) = factor (r_i . alpha_j), batch x centres.
        let factor = 2.0 / (b.max(1) as f64 * self.scale);
        let m = alpha.rows();
        let weights: Vec<f64> = resid
            .chunks_exact(k)
            .flat_map(|r| {
                (0..m).map(move |j| {
                    factor * r.iter().zip(alpha.row(j)).map(|(r, a)| r * a).sum::<f64>()
                })
            })
            .collect();
        let weight_column = |j: usize| {
            let w = (0..b).map(|i| weights[i * m + j]).collect();
            Matrix::from_row_major(b, 1, w).unwrap_or_else(|| Matrix::zeros(b, 1))
        };
        let batch_set = Blocks::new(kernel, &x);
        let index = ImageIndex::new(&x, per);
        // Each centre's side: its pixels' gradient and its share of S's.
        let sides: Vec<(Vec<f64>, Option<Vec<f64>>)> = centres
            .par_chunks(per)
            .enumerate()
            .map(|(j, centre)| {
                let du = batch_set.u_gradients(&weight_column(j), centre, &index.find(centre));
                // A gradient that overflowed (a centre all but equal to a
                // batch image: the kernel's derivative is unbounded at rho
                // = 1) moves nothing rather than poisoning Adam's moments.
                if !du.iter().all(|v| v.is_finite()) {
                    return (vec![0.0; per], None);
                }
                let pixels = onto_pixels(&shape, &kernel.through_metric(&du));
                (pixels, metric.then(|| kernel.metric_gradient(centre, &du)))
            })
            .collect();
        let (pixels, mut parts): (Vec<Vec<f64>>, Vec<Option<Vec<f64>>>) = sides.into_iter().unzip();
        if metric {
            // Each batch image's side of S's gradient.
            let centre_index = ImageIndex::new(centres, per);
            parts.par_extend(x.par_chunks(per).enumerate().map(|(i, image)| {
                let w = Matrix::from_row_major(m, 1, weights[i * m..][..m].to_vec())
                    .unwrap_or_else(|| Matrix::zeros(m, 1));
                let du = set.u_gradients(&w, image, &centre_index.find(image));
                du.iter()
                    .all(|v| v.is_finite())
                    .then(|| kernel.metric_gradient(image, &du))
            }));
        }
        // Summed in a fixed order, whatever the threads.
        let metric = metric.then(|| {
            let d = shape.patch_dim();
            parts.iter().flatten().fold(vec![0.0; d * d], |mut acc, g| {
                for (a, v) in acc.iter_mut().zip(g) {
                    *a += v;
                }
                acc
            })
        });
        Gradients {
            pixels: pixels.concat(),
            metric,
            loss,
        }
    }
}

/// One batch's loss and gradients.
struct Gradients {
    /// With respect to every centre's pixels, `m * pixels`.
    pixels: Vec<f64>,
    /// With respect to the metric `S`, `d x d` row-major, if asked for.
    metric: Option<Vec<f64>>,
    /// Mean squared loss of the batch.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the finite-difference tests")
    )]
    loss: f64,
}

type Blocks<'k> = KernelBlocks<'k, f32>;

/// The images alpha is re-fitted on each round, and their (mixed) targets.
struct Pool {
    images: Vec<f32>,
    targets: Targets,
}

/// The projection being learned: `W` in float and its optimiser.
struct Moving {
    w: Vec<f64>,
    adam: Adam,
}

/// Learns the centres (`m * pixels`, in `[0, 1]`) and, if `problem` has a
/// projection, `W`, against `problem`, batches drawn from the fit images
/// `train` (indices into `problem.images`), within `opts`' time and step
/// bounds. `W` moves until the quantisation-aware end, which uses the
/// device's form of it, fixed.
pub fn learn_centres(
    problem: &LearnProblem,
    start: &[f32],
    train: &[usize],
    opts: &LearnOptions,
    progress: Progress,
) -> Result<Learned> {
    let t0 = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(problem.seed);
    let mut order = train.to_vec();
    order.shuffle(&mut rng);
    let pool_idx = &order[..order.len().min(POOL_IMAGES)];
    let pool = Pool {
        images: problem.images_at(pool_idx),
        targets: Targets {
            labels: problem.targets.select_rows(pool_idx),
            teacher: None,
        },
    };
    let mut float = start.to_vec();
    let rounded = |c: &[f32]| quantise_pixels(c, problem.bits);
    // The projection moves in float (the device's `u` rounding has no
    // gradient) at a step of the learning rate times its largest entry.
    let mut moving = problem.projection.as_ref().map(|p| Moving {
        adam: Adam::new(
            p.start.len(),
            opts.learning_rate * p.start.iter().fold(0.0f64, |a, v| a.max(v.abs())),
        ),
        w: p.start.clone(),
    });
    let float_kernel = |w: &Moving| -> Result<Kernel> {
        match &problem.projection {
            Some(p) => p.kernel(problem.kernel, &w.w),
            None => Ok(problem.kernel.clone()),
        }
    };
    let mut kernel = match &moving {
        Some(w) => float_kernel(w)?,
        None => problem.kernel.clone(),
    };
    let (first, mut alpha) = problem.score(&kernel, &rounded(&float), &pool, 0)?;
    let score_time = t0.elapsed();
    let mut rounds = vec![first];
    let projection = |m: &Option<Moving>| m.as_ref().map(|m| m.w.clone());
    let mut best = (0, rounded(&float), projection(&moving));
    let mut adam = Adam::new(float.len(), opts.learning_rate);
    let mut learning_w = moving.is_some();
    let bar = progress.bar("Learn", opts.max_steps as u64);
    bar.message(&describe(first, first));
    let budget = opts.time_budget;
    // Steps stop early enough for the last round's scoring to fit the budget.
    let stop_at = budget.saturating_sub(score_time);
    let quantise_from_time = stop_at.mul_f64(1.0 - QUANTISED_SHARE);
    let quantise_from_step = (opts.max_steps as f64 * (1.0 - QUANTISED_SHARE)) as usize;
    // A batch larger than the training images is all of them.
    let batch_len = opts.batch.min(order.len());
    let round_steps = ROUND_IMAGES.div_ceil(batch_len.max(1));
    let (mut step, mut cursor) = (0, 0);
    while step < opts.max_steps && t0.elapsed() < stop_at {
        for _ in 0..round_steps {
            if step >= opts.max_steps || t0.elapsed() >= stop_at {
                break;
            }
            if cursor + batch_len > order.len() {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            let batch = &order[cursor..cursor + batch_len];
            cursor += batch.len();
            let quantised = step >= quantise_from_step || t0.elapsed() >= quantise_from_time;
            if quantised
                && learning_w
                && let (Some(w), Some(p)) = (&moving, &problem.projection)
            {
                // From here on the device's form of W, fixed.
                kernel = (p.device)(&w.w)?;
                learning_w = false;
            }
            let at = if quantised {
                rounded(&float)
            } else {
                float.clone()
            };
            let g = problem.gradient(&kernel, &at, &alpha, batch, learning_w);
            adam.step_pixels(&mut float, &g.pixels);
            if let (Some(w), Some(gs)) = (&mut moving, &g.metric) {
                let d = kernel.shape().patch_dim();
                let rank = w.w.len() / d.max(1);
                // W is S's first `rank` columns.
                let gw: Vec<f64> = (0..w.w.len())
                    .map(|i| gs[(i / rank) * d + i % rank])
                    .collect();
                let tangent = along_sphere(&gw, &w.w);
                w.adam.step(&mut w.w, &tangent);
                kernel = float_kernel(w)?;
            }
            step += 1;
            bar.inc(1);
        }
        let now = rounded(&float);
        let (round, refit) = problem.score(&kernel, &now, &pool, step)?;
        alpha = refit;
        if round.val_accuracy > rounds[best.0].val_accuracy {
            best = (rounds.len(), now, projection(&moving));
        }
        rounds.push(round);
        bar.message(&describe(first, round));
    }
    Ok(Learned {
        centres: best.1,
        projection: best.2,
        rounds,
        best: best.0,
        steps: step,
    })
}

/// `g` without its component along `w`. The kernel is homogeneous in `W`
/// (`K` scales with `|W|^2`) and alpha is re-fitted, so `W`'s length is
/// alpha's business: only its direction is learned, and its length stays
/// where the device's quantisation was set up for.
fn along_sphere(g: &[f64], w: &[f64]) -> Vec<f64> {
    let ww: f64 = w.iter().map(|v| v * v).sum();
    let gw: f64 = g.iter().zip(w).map(|(g, w)| g * w).sum();
    let k = if ww > 0.0 { gw / ww } else { 0.0 };
    g.iter().zip(w).map(|(g, w)| g - k * w).collect()
}

fn describe(first: Round, now: Round) -> String {
    format!(
        "step {}: pool loss {:.4} (start {:.4}), validation {:.2} % (start {:.2} %)",
        now.step,
        now.pool_loss,
        first.pool_loss,
        100.0 * now.val_accuracy,
        100.0 * first.val_accuracy
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Split, vendored_fashion_mnist};
    use crate::fit::readout::one_hot;
    use crate::kernel::{KernelKind, Metric};
    use convrfm_core::Shape;

    const QUIET: Progress = Progress { quiet: true };

    /// 240 fit and 60 validation images of the vendored Fashion-MNIST, a
    /// depth-2 NTK with the identity metric, 10 starting centres (one per
    /// class, 4-bit).
    struct Tiny {
        kernel: Kernel,
        images: Vec<f32>,
        targets: Matrix,
        val_images: Vec<f32>,
        val_labels: Vec<u8>,
        start: Vec<f32>,
        scale: f64,
    }

    fn tiny() -> Tiny {
        let set = vendored_fashion_mnist(Split::Train).take_spread(300);
        let kernel = Kernel::new(
            Shape::new(1, 28, 28, 2).unwrap(),
            KernelKind::Ntk,
            Metric::identity(9),
        );
        let fit: Vec<usize> = (0..240).collect();
        let val: Vec<usize> = (240..300).collect();
        let (fit, val) = (set.select(&fit), set.select(&val));
        let firsts: Vec<usize> = (0..10u8)
            .filter_map(|c| fit.labels.iter().position(|&l| l == c))
            .collect();
        let start = quantise_pixels(&fit.images.select(&firsts).pixels, 4);
        let diag = Blocks::new(&kernel, &start).diagonal(&start);
        Tiny {
            targets: one_hot(&fit.labels, 10),
            images: fit.images.pixels,
            val_images: val.images.pixels,
            val_labels: val.labels,
            start,
            scale: diag.into_iter().fold(0.0, f64::max),
            kernel,
        }
    }

    fn problem(t: &Tiny) -> LearnProblem<'_> {
        LearnProblem {
            kernel: &t.kernel,
            projection: None,
            images: &t.images,
            targets: &t.targets,
            val_images: &t.val_images,
            val_labels: &t.val_labels,
            lambda: 1e-3,
            bits: 4,
            scale: t.scale,
            seed: 7,
        }
    }

    #[test]
    fn centre_gradient_matches_finite_differences() {
        let t = tiny();
        let p = problem(&t);
        let per = 28 * 28;
        let alpha = alpha_10();
        let batch: Vec<usize> = (0..48).collect();
        let Gradients {
            pixels: g, loss, ..
        } = p.gradient(&t.kernel, &t.start, &alpha, &batch, false);
        // Centre 3's pixels with the largest gradients (interior pixels of
        // the garment, where the loss is smooth).
        let mut order: Vec<usize> = (3 * per..4 * per).collect();
        order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        let eps = 1e-2f32;
        for &i in &order[..4] {
            let mut plus = t.start.clone();
            let mut minus = t.start.clone();
            plus[i] += eps;
            minus[i] -= eps;
            let lp = p.gradient(&t.kernel, &plus, &alpha, &batch, false).loss;
            let lm = p.gradient(&t.kernel, &minus, &alpha, &batch, false).loss;
            let fd = (lp - lm) / (2.0 * f64::from(eps));
            assert!(
                (fd - g[i]).abs() <= 0.05 * g[i].abs(),
                "pixel {i}: analytic {} vs finite difference {fd} (loss {loss})",
                g[i]
            );
        }
    }

    /// A rank-2 projection: two 3x3 filters (a blur and an edge).
    fn start_projection() -> Vec<f64> {
        let blur = [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0];
        let edge = [-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
        blur.iter()
            .zip(edge)
            .flat_map(|(&b, e)| [b / 4.0, e / 4.0])
            .collect()
    }

    fn float_kernel(w: &[f64]) -> Result<Kernel> {
        Ok(Kernel::new(
            Shape::new(1, 28, 28, 2).unwrap(),
            KernelKind::Ntk,
            padded_metric(w, 9, 2)?,
        ))
    }

    fn alpha_10() -> Matrix {
        Matrix::from_row_major(
            10,
            10,
            (0..100)
                .map(|i| ((i * 37 % 17) as f64 - 8.0) / 8.0)
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn projection_gradient_matches_finite_differences() {
        let t = tiny();
        let p = problem(&t);
        let w = start_projection();
        let alpha = alpha_10();
        let batch: Vec<usize> = (0..48).collect();
        let kernel = float_kernel(&w).unwrap();
        let g = p.gradient(&kernel, &t.start, &alpha, &batch, true);
        let gs = g.metric.expect("asked for");
        // Both sides of every pair move with W: the centres' and the batch
        // images'. The six entries of W (S's first two columns) with the
        // largest gradients are checked (the f32 kernel's rounding swamps
        // a finite difference of the small ones).
        let analytic = |i: usize| gs[(i / 2) * 9 + i % 2];
        let mut order: Vec<usize> = (0..w.len()).collect();
        order.sort_by(|&a, &b| analytic(b).abs().total_cmp(&analytic(a).abs()));
        let eps = 1e-3;
        for &i in &order[..6] {
            let loss_at = |delta: f64| {
                let mut moved = w.clone();
                moved[i] += delta;
                p.gradient(
                    &float_kernel(&moved).unwrap(),
                    &t.start,
                    &alpha,
                    &batch,
                    false,
                )
                .loss
            };
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
            assert!(
                (fd - analytic(i)).abs() <= 0.02 * analytic(i).abs(),
                "W entry {i}: analytic {} vs finite difference {fd} (loss {})",
                analytic(i),
                g.loss
            );
        }
        // The columns of S past the rank do not exist for the kernel; their
        // gradient is not zero in general but is never used.
        assert_eq!(gs.len(), 81);
    }

    /// Learns on the tiny set's 240 fit images and checks what any run
    /// must show: the training loss falls by a tenth, validation does not
    /// fall, and a second run is the same bit for bit.
    fn learns(p: &LearnProblem, start: &[f32], opts: &LearnOptions) -> Learned {
        let train: Vec<usize> = (0..240).collect();
        let learned = learn_centres(p, start, &train, opts, QUIET).unwrap();
        assert_eq!(learned.steps, opts.max_steps, "the step bound ends the run");
        let (first, last) = (learned.first(), learned.rounds[learned.rounds.len() - 1]);
        assert!(
            last.pool_loss < 0.9 * first.pool_loss,
            "training loss {} -> {}",
            first.pool_loss,
            last.pool_loss
        );
        assert!(learned.kept().val_accuracy >= first.val_accuracy);
        // Kept centres are on the blob's 4-bit grid and in [0, 1].
        assert_eq!(learned.centres, quantise_pixels(&learned.centres, 4));
        assert_ne!(learned.centres, start);
        let again = learn_centres(p, start, &train, opts, QUIET).unwrap();
        assert_eq!(again.centres, learned.centres);
        assert_eq!(again.projection, learned.projection);
        assert_eq!(again.rounds, learned.rounds);
        learned
    }

    const STEPS: LearnOptions = LearnOptions {
        time_budget: Duration::from_secs(3600),
        max_steps: 256,
        batch: 64,
        learning_rate: 0.02,
        projection: false,
    };

    #[test]
    fn learning_lowers_the_training_loss_keeps_validation_and_is_deterministic() {
        let t = tiny();
        let learned = learns(&problem(&t), &t.start, &STEPS);
        assert_eq!(learned.projection, None);
        assert_eq!(
            learned.rounds.len(),
            1 + 256usize.div_ceil(ROUND_IMAGES / 64)
        );
    }

    #[test]
    fn learning_the_projection_too_moves_it_and_fits_better_than_the_centres_alone() {
        let t = tiny();
        let start = start_projection();
        let kernel = float_kernel(&start).unwrap();
        let device = |w: &[f64]| float_kernel(w);
        let fixed = LearnProblem {
            kernel: &kernel,
            ..problem(&t)
        };
        let moving = LearnProblem {
            projection: Some(Projection {
                start: start.clone(),
                rank: 2,
                device: &device,
            }),
            ..fixed
        };
        let opts = LearnOptions {
            projection: true,
            ..STEPS
        };
        let with_w = learns(&moving, &t.start, &opts);
        let without = learns(
            &LearnProblem {
                kernel: &kernel,
                ..problem(&t)
            },
            &t.start,
            &STEPS,
        );
        let w = with_w.projection.clone().expect("learned");
        assert_eq!(w.len(), start.len());
        assert_ne!(w, start);
        let last = |l: &Learned| l.rounds[l.rounds.len() - 1].pool_loss;
        eprintln!(
            "pool loss with W {} without {}",
            last(&with_w),
            last(&without)
        );
        assert!(last(&with_w) < last(&without));
    }

    #[test]
    fn a_batch_larger_than_the_fit_images_takes_them_all() {
        let t = tiny();
        let opts = LearnOptions {
            max_steps: 2,
            batch: usize::MAX,
            ..LearnOptions::default()
        };
        let train: Vec<usize> = (0..240).collect();
        let learned = learn_centres(&problem(&t), &t.start, &train, &opts, QUIET).unwrap();
        assert_eq!((learned.steps, learned.rounds.len()), (2, 2));
    }

    #[test]
    fn options_refuse_a_zero_budget_and_bad_steps() {
        assert!(LearnOptions::default().check().is_ok());
        let zero = LearnOptions {
            time_budget: Duration::ZERO,
            ..LearnOptions::default()
        };
        assert!(
            zero.check()
                .unwrap_err()
                .to_string()
                .contains("time-budget")
        );
        let bad_rate = LearnOptions {
            learning_rate: f64::NAN,
            ..LearnOptions::default()
        };
        assert!(
            bad_rate
                .check()
                .unwrap_err()
                .to_string()
                .contains("learning-rate")
        );
        let no_steps = LearnOptions {
            max_steps: 0,
            ..LearnOptions::default()
        };
        assert!(
            no_steps
                .check()
                .unwrap_err()
                .to_string()
                .contains("learn-steps")
        );
    }
}
