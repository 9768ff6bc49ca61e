//! The ConvRFM loop: fit a kernel machine, compute its patch-AGOP, set the
//! metric `S = AGOP^{1/2}` (normalised), repeat; keep the iteration that is
//! best on training data.
//!
//! Two protocols:
//! - [`Protocol::Standard`] (default): lambda and the iteration are chosen
//!   on training data by the [`Selection`], never on the test set. With
//!   leave-one-out or k-fold every iteration fits all training images (and
//!   the AGOP comes from that fit), so the chosen iteration's fit is the
//!   model; with a held-out split the chosen metric and lambda are re-fitted
//!   on all training images.
//! - [`Protocol::Reference`]: the paper authors' script, for comparison
//!   only: no validation split, lambdas {1e-8, 1e-5, 1e-3} each reported on
//!   the test set, AGOP from the alphas of lambda = 1e-3 over the first 20
//!   training images; the model of the last iteration at 1e-3 is saved.

use std::borrow::Cow;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use rand::SeedableRng;
use rand::seq::index::sample;

use super::features::{ConvLayer, ConvShape, featurise};
use super::linalg::{factor_ridge, psd_sqrt_normalised, solve_ridge};
use super::model::{Model, kernel_shape};
use super::params::{CheckedParams, Protocol};
use super::readout::{self, accuracy, one_hot};
use super::report::{IterationReport, LambdaResult, LayerSummary, PhaseTimes};
use super::selection::{Score, Selection, kfold_scores, loo_score};
use crate::data::{Images, LabelledImages, stratified_folds, stratified_split};
use crate::kernel::{Kernel, KernelBlocks, Metric, Precision, Real};
use crate::limits::ensure_fits;
use crate::matrix::Matrix;
use crate::output::Progress;

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

/// One layer's finished fit: the chosen metric, lambda and re-fitted alpha.
struct LayerFit {
    metric: Metric,
    scale: f64,
    lambda: f64,
    alpha: Matrix,
    history: Vec<IterationReport>,
    best_iteration: usize,
    selection: Selection,
    selection_accuracy: Option<f64>,
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
    // The Gram matrix, its factorisation and the kernel against the
    // validation and test images, f64.
    let n = train.len() as u128;
    let queries = test.map_or(0, |t| t.len()) as u128;
    ensure_fits(
        &format!("training on {n} images"),
        8 * (2 * n * n + n * queries),
    )?;
    ensure!(
        classes >= 2,
        "training data has {classes} class; at least 2 are needed"
    );
    // The patch side and depth fit the images (then every Deep ConvRFM
    // layer's shrunken images fit their shallower kernel too): before any
    // kernel work.
    kernel_shape(im.dims, p.patch, p.depth)?;
    if let Some(t) = test {
        t.images
            .ensure_like(im.dims, im.pixel_type, "test images", "training images")?;
        t.ensure_labels_below(classes, "the training data")
            .context("test set")?;
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
        let fit_in = match p.precision {
            Precision::F32 => fit_layer::<f32>,
            Precision::F64 => fit_layer::<f64>,
        };
        let fit = fit_in(
            params,
            layer,
            depth,
            &x,
            t.as_deref(),
            progress,
            on_iteration,
        )
        .with_context(|| format!("layer {layer}"))?;
        let dims = x.images.dims;
        // Feature maps can be large (64 channels per layer): free them
        // before the test evaluation, which recomputes what it needs.
        drop((x, t));
        history.extend(fit.history);
        let model = Model {
            train: train.clone(),
            features: features.clone(),
            patch: p.patch,
            depth,
            kind: p.kind,
            precision: p.precision,
            metric: fit.metric.clone(),
            scale: fit.scale,
            lambda: fit.lambda,
            alpha: fit.alpha,
            history: history.iter().map(IterationReport::record).collect(),
            resize: p.resize,
        };
        let test_accuracy = test.map(|t| model.accuracy(t, progress)).transpose()?;
        layers.push(LayerSummary {
            layer,
            depth,
            dims,
            best_iteration: fit.best_iteration,
            lambda: fit.lambda,
            selection: fit.selection,
            selection_accuracy: fit.selection_accuracy,
            test_accuracy,
        });
        refit_seconds += fit.refit_seconds;
        if layer < p.layers {
            features.push(ConvLayer::from_metric(
                &fit.metric,
                ConvShape {
                    in_channels: dims.channels,
                    side: p.patch,
                    filters: p.filters,
                },
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

/// `set` with its images passed through `features` (borrowed when there
/// are none).
fn featurised<'a>(
    set: &'a LabelledImages,
    features: &[ConvLayer],
) -> Result<Cow<'a, LabelledImages>> {
    if features.is_empty() {
        return Ok(Cow::Borrowed(set));
    }
    Ok(Cow::Owned(LabelledImages {
        images: featurise(features, &set.images)?.into_owned(),
        labels: set.labels.clone(),
        class_names: set.class_names.clone(),
    }))
}

/// What the best iteration so far kept: its score, metric and lambda, and
/// when it was fitted on all training images, its scale and alpha.
struct Best {
    score: Score,
    iteration: usize,
    metric: Metric,
    lambda: f64,
    fitted: Option<(f64, Matrix)>,
}

/// ConvRFM on one layer's images: iterate, choose on training data (re-fit
/// after a held-out split).
fn fit_layer<R: Real>(
    params: &CheckedParams,
    layer: usize,
    depth: usize,
    train: &LabelledImages,
    test: Option<&LabelledImages>,
    progress: Progress,
    on_iteration: &mut dyn FnMut(&IterationReport),
) -> Result<LayerFit> {
    let (p, lambdas) = (params.get(), params.lambdas());
    let shape = kernel_shape(train.images.dims, p.patch, depth)?;
    let classes = train.num_classes();
    let reference = p.protocol == Protocol::Reference;
    let selection = p.selection.for_images(train.len());
    if !reference {
        let least = match selection {
            Selection::KFold(k) => k,
            _ => 2,
        };
        ensure!(
            train.len() >= least,
            "selection {selection} needs at least {least} training images, there are {}",
            train.len()
        );
    }
    // The images every iteration fits, and the held-out ones of a split.
    let (fit, val) = match selection {
        Selection::Split(share) if !reference => {
            let (fit_idx, val_idx) = stratified_split(&train.labels, share, p.seed);
            (
                Cow::Owned(train.select(&fit_idx)),
                Some(train.select(&val_idx)),
            )
        }
        _ => (Cow::Borrowed(train), None),
    };
    let folds = match selection {
        Selection::KFold(k) => stratified_folds(&fit.labels, k, p.seed),
        _ => Vec::new(),
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
    let mut best: Option<Best> = None;
    let mut last_fit = None;
    for iteration in 0..p.iterations {
        let mut times = PhaseTimes::default();
        let kernel = Kernel::new(shape, p.kind, metric.clone());
        let t = Instant::now();
        let set = KernelBlocks::<R>::new(&kernel, &fit.images.pixels);
        let n = fit.len();
        let mut kff = set.gram(
            &fit.images.pixels,
            &progress.bar("Ktrain", (n * (n + 1) / 2) as u64),
        );
        times.ktrain = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let queries = val.iter().chain(test).map(|s| s.len()).sum::<usize>();
        let (mut kvf, mut ktf) = {
            let phase = progress.bar("Ktest", (queries * n) as u64);
            (
                val.as_ref().map(|v| set.cross(&v.images.pixels, &phase)),
                test.map(|t| set.cross(&t.images.pixels, &phase)),
            )
        };
        times.ktest = t.elapsed().as_secs_f64();

        let scale = kernel_scale(&kff, &fit.images)?;
        for m in std::iter::once(&mut kff)
            .chain(kvf.iter_mut())
            .chain(ktf.iter_mut())
        {
            m.divide(scale);
        }

        let mut alphas = Vec::new();
        let mut jitters = Vec::new();
        let mut loo = Vec::new();
        for &lambda in lambdas {
            let t = Instant::now();
            let factor = factor_ridge(&kff, lambda)
                .with_context(|| format!("iteration {iteration}, lambda {lambda:e}"))?;
            let sol = factor
                .solve(&y)
                .with_context(|| format!("iteration {iteration}, lambda {lambda:e}"))?;
            times.solve += t.elapsed().as_secs_f64();
            if selection == Selection::Loo && !reference {
                let t = Instant::now();
                loo.push(loo_score(
                    &sol.alpha,
                    &factor.inverse_diagonal(),
                    &fit.labels,
                ));
                times.select += t.elapsed().as_secs_f64();
            }
            alphas.push(sol.alpha);
            jitters.push(sol.jitter);
        }

        let t = Instant::now();
        let scores: Vec<Option<Score>> = match (&kvf, &val) {
            _ if reference => vec![None; lambdas.len()],
            (Some(k), Some(v)) => alphas
                .iter()
                .map(|a| Some(Score::of(&readout::scores(k, a), &v.labels)))
                .collect(),
            _ if selection == Selection::Loo => loo.into_iter().map(Some).collect(),
            _ => kfold_scores(&kff, &fit.labels, classes, lambdas, &folds)
                .with_context(|| format!("iteration {iteration}, selection {selection}"))?
                .into_iter()
                .map(Some)
                .collect(),
        };
        times.select += t.elapsed().as_secs_f64();
        let results: Vec<LambdaResult> = lambdas
            .iter()
            .zip(&jitters)
            .zip(scores)
            .zip(&alphas)
            .map(|(((&lambda, &jitter), selection), alpha)| LambdaResult {
                lambda,
                jitter,
                selection,
                test_accuracy: ktf
                    .as_ref()
                    .zip(test)
                    .map(|(k, t)| accuracy(k, alpha, &t.labels)),
            })
            .collect();
        let chosen = if reference {
            lambdas.len() - 1 // 1e-3, the reference's AGOP lambda
        } else {
            choose(&results)
        };
        if let Some(score) = results[chosen].selection
            && best.as_ref().is_none_or(|b| score.better_than(&b.score))
        {
            best = Some(Best {
                score,
                iteration,
                metric: metric.clone(),
                lambda: lambdas[chosen],
                fitted: selection
                    .fits_all()
                    .then(|| (scale, alphas[chosen].clone())),
            });
        }

        if iteration + 1 < p.iterations {
            let t = Instant::now();
            let g = set.agop(
                &alphas[chosen],
                &fit.images.pixels,
                &agop_queries.pixels,
                &progress.bar("AGOP", agop_queries.len() as u64),
            );
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
            lambdas[chosen],
        ));
    }

    let t = Instant::now();
    let fit = match best {
        Some(Best {
            score,
            iteration,
            metric,
            lambda,
            fitted: Some((scale, alpha)),
        }) => LayerFit {
            // Leave-one-out or k-fold: the chosen iteration already fitted
            // all training images.
            metric,
            scale,
            lambda,
            alpha,
            history,
            best_iteration: iteration,
            selection,
            selection_accuracy: Some(score.accuracy),
            refit_seconds: 0.0,
        },
        Some(Best {
            score,
            iteration,
            metric,
            lambda,
            fitted: None,
        }) => {
            // Held-out split: re-fit the chosen metric and lambda on all
            // training images.
            let kernel = Kernel::new(shape, p.kind, metric.clone());
            let set = KernelBlocks::<R>::new(&kernel, &train.images.pixels);
            let n = train.len();
            let mut k = set.gram(
                &train.images.pixels,
                &progress.bar("Refit", (n * (n + 1) / 2) as u64),
            );
            let scale = kernel_scale(&k, &train.images)?;
            k.divide(scale);
            let sol = solve_ridge(&k, &one_hot(&train.labels, classes), lambda)
                .context("final re-fit")?;
            LayerFit {
                metric,
                scale,
                lambda,
                alpha: sol.alpha,
                history,
                best_iteration: iteration,
                selection,
                selection_accuracy: Some(score.accuracy),
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
                selection,
                selection_accuracy: None,
                refit_seconds: 0.0,
            }
        }
    };
    Ok(fit)
}

/// The largest entry of a Gram matrix `k` of `images`, by which the kernel
/// is normalised; an overflow or an all-zero matrix is an error that says
/// why.
fn kernel_scale(k: &Matrix, images: &Images) -> Result<f64> {
    // f64::max skips NaN, so non-finite entries are looked for, not folded.
    if k.as_slice().iter().any(|v| !v.is_finite()) {
        let largest = images.pixels.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        bail!(
            "the kernel overflows: the largest |pixel| is {largest:e}; scale the images to a \
             range like [0, 1]"
        );
    }
    let scale = k.as_slice().iter().fold(0.0f64, |m, v| m.max(*v));
    ensure!(
        scale > 0.0,
        "the kernel matrix is zero: every training image is blank"
    );
    Ok(scale)
}

/// The best selection score; ties go to the later (larger) lambda, the
/// smoother fit.
fn choose(results: &[LambdaResult]) -> usize {
    let mut best = 0;
    for (i, r) in results.iter().enumerate() {
        if let (Some(s), Some(b)) = (r.selection, results[best].selection)
            && !b.better_than(&s)
        {
            best = i;
        }
    }
    best
}
