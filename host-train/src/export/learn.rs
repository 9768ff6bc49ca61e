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

use super::compact::{Nystrom, Targets};
use super::device::quantise_pixels;
use super::gather;
use crate::fit::readout::{accuracy, mean_squared, scores};
use crate::kernel::agop::ImageIndex;
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
}

impl Default for LearnOptions {
    fn default() -> Self {
        Self {
            time_budget: Duration::from_secs(420),
            max_steps: 5000,
            batch: 64,
            learning_rate: 0.01,
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

    /// One step on `x`, clamped to `[0, 1]`.
    fn step(&mut self, x: &mut [f32], g: &[f64]) {
        self.t += 1;
        let (c1, c2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        for (((x, &g), m), v) in x.iter_mut().zip(g).zip(&mut self.m).zip(&mut self.v) {
            *m = Self::B1 * *m + (1.0 - Self::B1) * g;
            *v = Self::B2 * *v + (1.0 - Self::B2) * g * g;
            let delta = self.rate * (*m / c1) / ((*v / c2).sqrt() + Self::EPS);
            *x = (f64::from(*x) - delta).clamp(0.0, 1.0) as f32;
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
    fn score(&self, centres: &[f32], pool: &Pool, step: usize) -> Result<(Round, Matrix)> {
        let set = Blocks::new(self.kernel, centres);
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

    /// Pixel gradient of the batch loss for every centre (`m * pixels`),
    /// and the loss.
    fn gradient(&self, centres: &[f32], alpha: &Matrix, batch: &[usize]) -> (Vec<f64>, f64) {
        let per = self.per();
        let x = self.images_at(batch);
        let y = self.targets.select_rows(batch);
        let set = Blocks::new(self.kernel, centres);
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
        let factor = 2.0 / (b.max(1) as f64 * self.scale);
        let batch_set = Blocks::new(self.kernel, &x);
        let index = ImageIndex::new(&x, per);
        let grads: Vec<Vec<f64>> = centres
            .par_chunks(per)
            .enumerate()
            .map(|(j, centre)| {
                let aj = alpha.row(j);
                let w: Vec<f64> = resid
                    .chunks_exact(k)
                    .map(|r| factor * r.iter().zip(aj).map(|(r, a)| r * a).sum::<f64>())
                    .collect();
                let w = Matrix::from_row_major(b, 1, w).unwrap_or_else(|| Matrix::zeros(b, 1));
                let mut g = batch_set.pixel_gradients(&w, centre, &index.find(centre));
                let g = g.pop().unwrap_or_else(|| vec![0.0; per]);
                // A gradient that overflowed (a centre all but equal to a
                // batch image: the kernel's derivative is unbounded at rho
                // = 1) moves nothing rather than poisoning Adam's moments.
                if g.iter().all(|v| v.is_finite()) {
                    g
                } else {
                    vec![0.0; per]
                }
            })
            .collect();
        (grads.concat(), loss)
    }
}

type Blocks<'k> = KernelBlocks<'k, f32>;

/// The images alpha is re-fitted on each round, and their (mixed) targets.
struct Pool {
    images: Vec<f32>,
    targets: Targets,
}

/// Learns the centres (`m * pixels`, in `[0, 1]`) against `problem`,
/// batches drawn from the fit images `train` (indices into
/// `problem.images`), within `opts`' time and step bounds.
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
    let (first, mut alpha) = problem.score(&rounded(&float), &pool, 0)?;
    let score_time = t0.elapsed();
    let mut rounds = vec![first];
    let mut best = (0, rounded(&float));
    let mut adam = Adam::new(float.len(), opts.learning_rate);
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
            let at = if quantised {
                rounded(&float)
            } else {
                float.clone()
            };
            let (g, _) = problem.gradient(&at, &alpha, batch);
            adam.step(&mut float, &g);
            step += 1;
            bar.inc(1);
        }
        let now = rounded(&float);
        let (round, refit) = problem.score(&now, &pool, step)?;
        alpha = refit;
        if round.val_accuracy > rounds[best.0].val_accuracy {
            best = (rounds.len(), now);
        }
        rounds.push(round);
        bar.message(&describe(first, round));
    }
    Ok(Learned {
        centres: best.1,
        rounds,
        best: best.0,
        steps: step,
    })
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
        let alpha = Matrix::from_row_major(
            10,
            10,
            (0..100)
                .map(|i| ((i * 37 % 17) as f64 - 8.0) / 8.0)
                .collect(),
        )
        .unwrap();
        let batch: Vec<usize> = (0..48).collect();
        let (g, loss) = p.gradient(&t.start, &alpha, &batch);
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
            let (_, lp) = p.gradient(&plus, &alpha, &batch);
            let (_, lm) = p.gradient(&minus, &alpha, &batch);
            let fd = (lp - lm) / (2.0 * f64::from(eps));
            assert!(
                (fd - g[i]).abs() <= 0.05 * g[i].abs(),
                "pixel {i}: analytic {} vs finite difference {fd} (loss {loss})",
                g[i]
            );
        }
    }

    #[test]
    fn learning_lowers_the_training_loss_keeps_validation_and_is_deterministic() {
        let t = tiny();
        let p = problem(&t);
        let opts = LearnOptions {
            time_budget: Duration::from_secs(3600),
            max_steps: 300,
            batch: 64,
            learning_rate: 0.02,
        };
        let train: Vec<usize> = (0..240).collect();
        let learned = learn_centres(&p, &t.start, &train, &opts, QUIET).unwrap();
        assert_eq!(learned.steps, 300, "the step bound ends the run");
        assert_eq!(
            learned.rounds.len(),
            1 + 300usize.div_ceil(ROUND_IMAGES / 64)
        );
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
        assert_ne!(learned.centres, t.start);
        // Same seed, same steps: the same centres, bit for bit.
        let again = learn_centres(&p, &t.start, &train, &opts, QUIET).unwrap();
        assert_eq!(again.centres, learned.centres);
        assert_eq!(again.rounds, learned.rounds);
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
