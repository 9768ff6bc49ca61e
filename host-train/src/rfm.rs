//! The ConvRFM loop: fit a kernel machine, compute its patch-AGOP, set the
//! metric `S = AGOP^{1/2}` (normalised), repeat; keep the iteration that is
//! best on a validation split carved from the training data.
//!
//! Two protocols:
//! - [`Protocol::Standard`] (default): lambda and the iteration are chosen
//!   on validation, never on the test set; the chosen metric and lambda are
//!   then re-fitted on all training images for the saved model.
//! - [`Protocol::Reference`]: the paper authors' script, for comparison
//!   only: no validation split, lambdas {1e-8, 1e-5, 1e-3} each reported on
//!   the test set, AGOP from the alphas of lambda = 1e-3 over the first 20
//!   training images; the model of the last iteration at 1e-3 is saved.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use convrfm_core::Shape;
use faer::MatRef;
use rand::SeedableRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::data::{LabelledImages, train_val_split};
use crate::features::{ConvLayer, featurise};
use crate::kernel::{Kernel, KernelKind, Metric};
use crate::linalg::{psd_sqrt_normalised, solve_ridge};
use crate::model::Model;
use crate::progress::Progress;
use crate::real::Real;
use crate::train_set::TrainSet;

/// Float type of the kernel computations (solves are always f64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Precision {
    /// Single precision: twice the SIMD width; ~1e-6 relative kernel error.
    F32,
    /// Double precision: the exact path.
    F64,
}

/// How lambda, the AGOP images and the iteration are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Protocol {
    /// Validation split; nothing is chosen on the test set.
    Standard,
    /// The authors' script, reported on the test set (comparison only).
    Reference,
}

/// Training parameters as given; [`TrainParams::check`] turns them into
/// [`CheckedParams`], the only thing [`train`] accepts.
#[derive(Clone, Debug)]
pub struct TrainParams {
    /// Kernel depth `L` (conv layers, including the patch layer).
    pub depth: usize,
    /// ConvRFM iterations (kernel fits); iteration 0 uses `S = I`.
    pub iterations: usize,
    /// Ridge values tried (on the max-normalised kernel).
    pub lambdas: Vec<f64>,
    /// Share of the training images held out for validation.
    pub val_fraction: f64,
    /// Training images the AGOP is averaged over.
    pub agop_images: usize,
    /// Kernel float type.
    pub precision: Precision,
    /// NTK or NNGP.
    pub kind: KernelKind,
    /// Seed of the validation split and the AGOP image sample.
    pub seed: u64,
    /// Standard or reference protocol.
    pub protocol: Protocol,
    /// Deep ConvRFM layers (1: plain ConvRFM); the kernel depth drops by
    /// one per added layer.
    pub layers: usize,
    /// Filters of each Deep ConvRFM feature layer.
    pub filters: usize,
}

/// Ridge values of the reference protocol.
pub const REFERENCE_LAMBDAS: [f64; 3] = [1e-8, 1e-5, 1e-3];
/// AGOP images of the reference protocol (the first ones).
pub const REFERENCE_AGOP_IMAGES: usize = 20;

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            depth: 3,
            iterations: 5,
            lambdas: vec![1e-6, 1e-4, 1e-3, 1e-2, 1e-1],
            val_fraction: 0.2,
            agop_images: 100,
            precision: Precision::F32,
            kind: KernelKind::Ntk,
            seed: 0,
            protocol: Protocol::Standard,
            layers: 1,
            filters: 64,
        }
    }
}

/// Parameters that passed [`TrainParams::check`].
#[derive(Clone, Debug)]
pub struct CheckedParams(TrainParams);

impl CheckedParams {
    /// The validated parameters.
    pub fn get(&self) -> &TrainParams {
        &self.0
    }
}

impl TrainParams {
    /// Validates every field; the reference protocol fixes its lambdas and
    /// AGOP images.
    pub fn check(mut self) -> Result<CheckedParams> {
        ensure!(
            self.depth >= 1,
            "depth must be at least 1, got {}",
            self.depth
        );
        ensure!(
            self.iterations >= 1,
            "iterations must be at least 1, got {}",
            self.iterations
        );
        if self.protocol == Protocol::Reference {
            self.lambdas = REFERENCE_LAMBDAS.to_vec();
            self.agop_images = REFERENCE_AGOP_IMAGES;
        }
        ensure!(!self.lambdas.is_empty(), "at least one lambda is needed");
        if let Some(l) = self.lambdas.iter().find(|l| !(l.is_finite() && **l >= 0.0)) {
            bail!("lambda must be a finite non-negative number, got {l}");
        }
        ensure!(
            self.val_fraction > 0.0 && self.val_fraction < 1.0,
            "validation fraction must be in (0, 1), got {}",
            self.val_fraction
        );
        ensure!(self.agop_images >= 1, "agop-images must be at least 1");
        ensure!(
            (1..=self.depth).contains(&self.layers),
            "layers must be between 1 and the kernel depth ({}), since each added layer \
             takes one off the depth; got {}",
            self.depth,
            self.layers
        );
        ensure!(self.filters >= 1, "filters must be at least 1");
        Ok(CheckedParams(self))
    }
}

/// One lambda's outcome in one iteration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LambdaResult {
    /// Ridge value.
    pub lambda: f64,
    /// Jitter Cholesky needed beyond lambda (0 if none).
    pub jitter: f64,
    /// Validation accuracy (standard protocol).
    pub val_accuracy: Option<f64>,
    /// Test accuracy, when a test set was given (never used to choose).
    pub test_accuracy: Option<f64>,
}

/// Wall-clock seconds per phase of one iteration.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct PhaseTimes {
    /// `K(X, X)`.
    pub ktrain: f64,
    /// `K(Z, X)` for validation and test images.
    pub ktest: f64,
    /// Cholesky solves, all lambdas.
    pub solve: f64,
    /// Patch gradients and AGOP.
    pub agop: f64,
    /// Eigendecomposition for the metric square root.
    pub eigh: f64,
}

impl PhaseTimes {
    /// Sum of all phases.
    pub fn total(&self) -> f64 {
        self.ktrain + self.ktest + self.solve + self.agop + self.eigh
    }
}

/// What one ConvRFM iteration did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IterationReport {
    /// 1-based Deep ConvRFM layer (1 for plain ConvRFM).
    pub layer: usize,
    /// 0-based; iteration 0 is the plain convolutional kernel (`S = I`).
    pub iteration: usize,
    /// One entry per lambda tried.
    pub results: Vec<LambdaResult>,
    /// Index into `results` of the lambda this iteration uses.
    pub chosen: usize,
    /// Seconds per phase.
    pub times: PhaseTimes,
}

/// The trained model and the run's history.
pub struct TrainOutcome {
    /// What `convrfm eval` and export use (the deepest layer's model).
    pub model: Model,
    /// Per-iteration reports, all layers in order.
    pub history: Vec<IterationReport>,
    /// One summary per layer (one for plain ConvRFM).
    pub layers: Vec<LayerSummary>,
    /// Each layer's re-fitted model (the last is `model`).
    pub layer_models: Vec<Model>,
    /// Index into the last layer's iterations of the one the model uses.
    pub best_iteration: usize,
    /// Test accuracy of the saved model, when a test set was given.
    pub final_test_accuracy: Option<f64>,
    /// Seconds of the final re-fits on all training images (standard protocol).
    pub refit_seconds: f64,
}

/// What one layer of a (Deep) ConvRFM run ended with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerSummary {
    /// 1-based layer number.
    pub layer: usize,
    /// Kernel depth of this layer.
    pub depth: usize,
    /// Channels, height, width of the images this layer's kernel sees.
    pub dims: (usize, usize, usize),
    /// Iteration (within the layer) whose metric was kept.
    pub best_iteration: usize,
    /// Ridge of the kept fit.
    pub lambda: f64,
    /// Validation accuracy of that iteration (standard protocol).
    pub val_accuracy: Option<f64>,
    /// Test accuracy of this layer's re-fitted model, when a test set was given.
    pub test_accuracy: Option<f64>,
}

impl LayerSummary {
    /// Column headings of [`LayerSummary::table_row`].
    pub const TABLE_HEADER: &'static str =
        "kernel input  depth  best_iter  lambda    val_%  test_%";

    /// The summary as one line of a table under [`Self::TABLE_HEADER`].
    pub fn table_row(&self) -> String {
        let pct = |a: Option<f64>| a.map_or("     -".into(), |a| format!("{:>6.2}", 100.0 * a));
        let (c, h, w) = self.dims;
        format!(
            "{:>12}  {:>5}  {:>9}  {:<7.0e}  {}  {}",
            format!("{c}x{h}x{w}"),
            self.depth,
            self.best_iteration,
            self.lambda,
            pct(self.val_accuracy),
            pct(self.test_accuracy)
        )
    }
}

/// One layer's finished fit: the chosen metric, lambda and re-fitted alpha.
struct LayerFit {
    metric: Metric,
    scale: f64,
    lambda: f64,
    alpha: Vec<f64>,
    history: Vec<IterationReport>,
    best_iteration: usize,
    val_accuracy: Option<f64>,
    refit_seconds: f64,
}

/// Trains ConvRFM on `train` (Deep ConvRFM when `layers > 1`), reporting
/// each iteration to `on_iteration`; `test`, if given, is only ever
/// evaluated, never used to choose.
pub fn train(
    params: &CheckedParams,
    train: &LabelledImages,
    test: Option<&LabelledImages>,
    progress: Progress,
    on_iteration: &mut dyn FnMut(&IterationReport),
) -> Result<TrainOutcome> {
    let p = params.get();
    let im = &train.images;
    let classes = train.num_classes();
    ensure!(
        classes >= 2,
        "training data has {classes} class; at least 2 are needed"
    );
    if let Some(t) = test {
        let ti = &t.images;
        ensure!(
            (ti.channels, ti.height, ti.width) == (im.channels, im.height, im.width),
            "test images are {}x{}x{}, training images {}x{}x{}",
            ti.channels,
            ti.height,
            ti.width,
            im.channels,
            im.height,
            im.width
        );
        ensure!(
            ti.pixel_type == im.pixel_type,
            "test images have {}, training images {}",
            ti.pixel_type,
            im.pixel_type
        );
        if let Some(&l) = t.labels.iter().find(|&&l| usize::from(l) >= classes) {
            bail!("test label {l} is out of range: the training data has {classes} classes");
        }
    }
    let mut features = Vec::new();
    let mut history = Vec::new();
    let mut layers = Vec::new();
    let mut layer_models = Vec::new();
    let mut refit_seconds = 0.0;
    let mut last = None;
    for layer in 1..=p.layers {
        let depth = p.depth + 1 - layer;
        let x = featurised(train, &features)?;
        let t = test.map(|t| featurised(t, &features)).transpose()?;
        let fit = match p.precision {
            Precision::F32 => {
                fit_layer::<f32>(p, layer, depth, &x, t.as_ref(), progress, on_iteration)
            }
            Precision::F64 => {
                fit_layer::<f64>(p, layer, depth, &x, t.as_ref(), progress, on_iteration)
            }
        }
        .with_context(|| format!("layer {layer}"))?;
        let dims = (x.images.channels, x.images.height, x.images.width);
        // Feature maps can be large (64 channels per layer): free them
        // before the test evaluation, which recomputes what it needs.
        drop((x, t));
        let mut model = Model::new(
            train,
            features.clone(),
            depth,
            p,
            fit.metric.clone(),
            fit.scale,
            fit.lambda,
            fit.alpha,
        );
        let test_accuracy = test.map(|t| model.accuracy(t, progress)).transpose()?;
        layers.push(LayerSummary {
            layer,
            depth,
            dims,
            best_iteration: fit.best_iteration,
            lambda: fit.lambda,
            val_accuracy: fit.val_accuracy,
            test_accuracy,
        });
        history.extend(fit.history);
        model.history = history.clone();
        refit_seconds += fit.refit_seconds;
        if layer < p.layers {
            features.push(ConvLayer::from_metric(
                &fit.metric,
                dims.0,
                p.filters,
                p.seed ^ (0xF117_0000 + layer as u64),
            )?);
        }
        layer_models.push(model.clone());
        last = Some((model, fit.best_iteration, test_accuracy));
    }
    let (model, best_iteration, final_test_accuracy) = last.context("no layer ran")?;
    Ok(TrainOutcome {
        model,
        history,
        layers,
        layer_models,
        best_iteration,
        final_test_accuracy,
        refit_seconds,
    })
}

/// `set` with its images passed through `features`.
fn featurised(set: &LabelledImages, features: &[ConvLayer]) -> Result<LabelledImages> {
    Ok(LabelledImages {
        images: featurise(features, &set.images)?,
        labels: set.labels.clone(),
        class_names: set.class_names.clone(),
    })
}

/// ConvRFM on one layer's images: iterate, choose on validation, re-fit.
fn fit_layer<R: Real>(
    p: &TrainParams,
    layer: usize,
    depth: usize,
    train: &LabelledImages,
    test: Option<&LabelledImages>,
    progress: Progress,
    on_iteration: &mut dyn FnMut(&IterationReport),
) -> Result<LayerFit> {
    let im = &train.images;
    let shape = Shape::new(im.channels, im.height, im.width, depth).map_err(|e| {
        anyhow::anyhow!(
            "{}x{}x{} images, depth {depth}: {e}",
            im.channels,
            im.height,
            im.width,
        )
    })?;
    let classes = train.num_classes();
    let reference = p.protocol == Protocol::Reference;
    let (fit, val) = if reference {
        (train.clone(), None)
    } else {
        ensure!(
            train.len() >= 2,
            "need at least 2 training images for a validation split"
        );
        let (fit_idx, val_idx) = train_val_split(train.len(), p.val_fraction, p.seed);
        (train.select(&fit_idx), Some(train.select(&val_idx)))
    };
    let agop_idx: Vec<usize> = if reference {
        (0..p.agop_images.min(fit.len())).collect()
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed ^ 0xA60B);
        let mut idx = sample(&mut rng, fit.len(), p.agop_images.min(fit.len())).into_vec();
        idx.sort_unstable();
        idx
    };
    let agop_queries = fit.images.select(&agop_idx);
    let y = one_hot(&fit.labels, classes);

    let mut metric = Metric::identity(shape.patch_dim());
    let mut history = Vec::new();
    // (validation accuracy, iteration, metric, lambda)
    let mut best: Option<(f64, usize, Metric, f64)> = None;
    let mut last_fit = None;
    for iteration in 0..p.iterations {
        let mut times = PhaseTimes::default();
        let kernel = Kernel::new(shape, p.kind, metric.clone());
        let t = Instant::now();
        let set = TrainSet::<R>::new(&kernel, &fit.images.pixels);
        let n = fit.len();
        let bar = progress.bar("Ktrain", (n * (n + 1) / 2) as u64);
        let mut kff = set.gram(&fit.images.pixels, &bar);
        bar.finish_and_clear();
        times.ktrain = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let queries = val.iter().chain(test).map(|s| s.len()).sum::<usize>();
        let bar = progress.bar("Ktest", (queries * n) as u64);
        let mut kvf = val.as_ref().map(|v| set.cross(&v.images.pixels, &bar));
        let mut ktf = test.map(|t| set.cross(&t.images.pixels, &bar));
        bar.finish_and_clear();
        times.ktest = t.elapsed().as_secs_f64();

        let scale = kff.iter().fold(0.0f64, |m, v| m.max(*v));
        ensure!(
            scale > 0.0 && scale.is_finite(),
            "kernel matrix maximum is {scale}: are all images blank?"
        );
        for m in std::iter::once(&mut kff)
            .chain(kvf.iter_mut())
            .chain(ktf.iter_mut())
        {
            m.iter_mut().for_each(|v| *v /= scale);
        }

        let t = Instant::now();
        let mut results = Vec::new();
        let mut alphas = Vec::new();
        for &lambda in &p.lambdas {
            let sol = solve_ridge(&kff, n, &y, lambda)
                .with_context(|| format!("iteration {iteration}, lambda {lambda:e}"))?;
            let acc = |k: &Option<Vec<f64>>, s: Option<&LabelledImages>| {
                k.as_ref()
                    .zip(s)
                    .map(|(k, s)| accuracy(k, &sol.alpha, classes, &s.labels))
            };
            results.push(LambdaResult {
                lambda,
                jitter: sol.jitter,
                val_accuracy: acc(&kvf, val.as_ref()),
                test_accuracy: acc(&ktf, test),
            });
            alphas.push(sol.alpha);
        }
        times.solve = t.elapsed().as_secs_f64();
        let chosen = if reference {
            p.lambdas.len() - 1 // 1e-3, the reference's AGOP lambda
        } else {
            choose(&results)
        };
        let val_acc = results[chosen].val_accuracy.unwrap_or(f64::NEG_INFINITY);
        if !reference && best.as_ref().is_none_or(|b| val_acc > b.0) {
            best = Some((val_acc, iteration, metric.clone(), p.lambdas[chosen]));
        }

        if iteration + 1 < p.iterations {
            let t = Instant::now();
            let bar = progress.bar("AGOP", agop_queries.len() as u64);
            let g = set.agop(
                &alphas[chosen],
                classes,
                &fit.images.pixels,
                &agop_queries.pixels,
                &bar,
            );
            bar.finish_and_clear();
            times.agop = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let s = psd_sqrt_normalised(&g, shape.patch_dim())
                .with_context(|| format!("iteration {iteration}"))?;
            metric = Metric::from_rows(shape.patch_dim(), s)?;
            times.eigh = t.elapsed().as_secs_f64();
        }
        let report = IterationReport {
            layer,
            iteration,
            results,
            chosen,
            times,
        };
        on_iteration(&report);
        history.push(report);
        last_fit = Some((
            kernel.metric().clone(),
            scale,
            alphas.swap_remove(chosen),
            p.lambdas[chosen],
        ));
    }

    let t = Instant::now();
    let fit = match best {
        Some((val_acc, best_iteration, metric, lambda)) => {
            // Re-fit the chosen metric and lambda on all training images.
            let kernel = Kernel::new(shape, p.kind, metric.clone());
            let set = TrainSet::<R>::new(&kernel, &train.images.pixels);
            let n = train.len();
            let bar = progress.bar("Refit", (n * (n + 1) / 2) as u64);
            let mut k = set.gram(&train.images.pixels, &bar);
            bar.finish_and_clear();
            let scale = k.iter().fold(0.0f64, |m, v| m.max(*v));
            k.iter_mut().for_each(|v| *v /= scale);
            let sol = solve_ridge(&k, n, &one_hot(&train.labels, classes), lambda)
                .context("final re-fit")?;
            LayerFit {
                metric,
                scale,
                lambda,
                alpha: sol.alpha,
                history,
                best_iteration,
                val_accuracy: Some(val_acc),
                refit_seconds: t.elapsed().as_secs_f64(),
            }
        }
        None => {
            // Reference protocol: the last iteration, fitted on everything.
            let (metric, scale, alpha, lambda) = last_fit.context("no iteration ran")?;
            LayerFit {
                metric,
                scale,
                lambda,
                alpha,
                history,
                best_iteration: p.iterations - 1,
                val_accuracy: None,
                refit_seconds: 0.0,
            }
        }
    };
    Ok(fit)
}

/// Best validation accuracy; ties go to the larger lambda (the smoother fit).
fn choose(results: &[LambdaResult]) -> usize {
    let mut best = 0;
    for (i, r) in results.iter().enumerate() {
        if r.val_accuracy >= results[best].val_accuracy {
            best = i;
        }
    }
    best
}

/// One-hot targets, `n x classes` row-major.
pub fn one_hot(labels: &[u8], classes: usize) -> Vec<f64> {
    let mut y = vec![0.0; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        y[i * classes + usize::from(l)] = 1.0;
    }
    y
}

/// Scores `K alpha` (`m x classes`, row-major) for a kernel block `k`
/// (`m x n`, row-major) and `alpha` (`n x classes`).
pub fn scores(k: &[f64], alpha: &[f64], classes: usize) -> Vec<f64> {
    let n = alpha.len() / classes;
    let m = k.len().checked_div(n).unwrap_or(0);
    let prod =
        MatRef::from_row_major_slice(k, m, n) * MatRef::from_row_major_slice(alpha, n, classes);
    let mut out = Vec::with_capacity(m * classes);
    for i in 0..m {
        for c in 0..classes {
            out.push(prod[(i, c)]);
        }
    }
    out
}

/// Index of the largest score in each row.
pub fn argmax_rows(scores: &[f64], classes: usize) -> Vec<usize> {
    scores
        .chunks_exact(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
        })
        .collect()
}

/// Share of `labels` that `argmax(K alpha)` gets right.
pub fn accuracy(k: &[f64], alpha: &[f64], classes: usize, labels: &[u8]) -> f64 {
    share_correct(argmax_rows(&scores(k, alpha, classes), classes), labels)
}

/// Share of `labels` that the predicted classes `pred` match.
pub fn share_correct(pred: impl IntoIterator<Item = usize>, labels: &[u8]) -> f64 {
    let right = pred
        .into_iter()
        .zip(labels)
        .filter(|(p, l)| *p == usize::from(**l))
        .count();
    right as f64 / labels.len().max(1) as f64
}
