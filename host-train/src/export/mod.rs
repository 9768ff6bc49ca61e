//! `convrfm export`: a trained model -> the compact, checksummed blob that
//! `convrfm-core` runs, sized to a flash budget.
//!
//! The compact model is fitted on a fit set ([`FitSet`]): any labelled
//! images of the model's shape (all 60,000 Fashion-MNIST training images,
//! say), not only the images the model was trained on, with the trained
//! model's own scores as a second target (distillation, [`teacher`]).
//!
//! Search (on a stratified sample of at most [`SEARCH_IMAGES`] fit images,
//! split into fit and validation; never on test data): for each centre
//! pixel depth (4 by default, 8 on request) and metric rank `r`, centres
//! are chosen by pivoted Cholesky ([`compact`]), and for each centre count
//! `m` of a ladder alpha is re-fitted (Nystroem least squares; lambda and
//! the label weight on validation). Every candidate's blob size is exact
//! ([`convrfm_core::blob::encoded_len`]) and its instructions per
//! inference predicted ([`cost`]). The best candidate under `--max-flash`
//! (and `--max-instructions`) is then rebuilt (centres from the whole
//! sample, learned by [`learn`], alpha on every fit image by the
//! [`softmax`] readout or least squares) and encoded.
//! The float model of a candidate uses exactly the device's quantised
//! centre pixels and `W`; only the integer arithmetic of the device
//! differs.

pub mod c_source;
pub mod compact;
pub mod cost;
pub mod device;
pub mod learn;
pub mod run;
pub mod softmax;
pub mod teacher;

use anyhow::{Context, Result, bail, ensure};

use self::compact::{Nystrom, Targets, select_centres};
use self::cost::{BlobDims, Cpu};
use self::device::{BlobContent, DeviceMetric, blob_bytes, quantise_pixels};
use self::learn::{LearnOptions, LearnProblem, LearnReport, learn_centres};
use self::run::blob_predict;
use self::softmax::SoftmaxChoice;
use crate::data::{
    ImageDims, Images, LabelledImages, PixelType, ResizeFilter, stratified_folds, stratified_split,
};
use crate::fit::Model;
use crate::fit::readout::{accuracy, argmax_rows, one_hot, scores, share_correct};
use crate::kernel::{Kernel, KernelBlocks};
use crate::matrix::Matrix;
use crate::output::{Phase, Progress};
use crate::params::{ParamError, at_least, fraction, ridge_values, unit_interval};

/// Budgets of the accuracy-vs-size frontier, bytes.
pub const FRONTIER_BUDGETS: [usize; 5] = [16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10];

/// Fit images the search uses at most (a stratified sample; the chosen
/// candidate's alpha is then fitted on every fit image): the search's
/// kernel blocks grow with it, its benefit levels off.
pub const SEARCH_IMAGES: usize = 12_500;

/// Centre counts tried.
pub const CENTRE_LADDER: [usize; 14] =
    [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 320, 384, 448, 512];

/// What to search.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Largest blob allowed, bytes.
    pub max_flash: usize,
    /// Most instructions per inference allowed on `cpu` (cost model,
    /// [`cost`]); `None`: no latency bound.
    pub max_instructions: Option<u64>,
    /// The core the instruction counts are for.
    pub cpu: Cpu,
    /// Ranks of the low-rank metric tried (clipped to the patch dimension).
    pub ranks: Vec<usize>,
    /// Centre pixel depths tried (4 and/or 8).
    pub pixel_bits: Vec<u8>,
    /// Ridge values tried for the Nystroem fit.
    pub lambdas: Vec<f64>,
    /// Weights of the labels against the teacher's scores tried (1: labels
    /// only, no distillation).
    pub label_weights: Vec<f64>,
    /// Validation share of the training images.
    pub val_fraction: f64,
    /// Seed of the validation split.
    pub seed: u64,
    /// Learned centres for the chosen candidate (`None`: the centres
    /// pivoted Cholesky picked, as they are).
    pub learn: Option<LearnOptions>,
    /// How the chosen candidate's alpha is fitted.
    pub readout: Readout,
}

/// How a built compact model's alpha is fitted once its centres are
/// fixed. (The search ranks candidates by least squares either way: one
/// factorisation per ridge serves every candidate.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Readout {
    /// Whichever of the two scores better in cross-validation over the
    /// fit images (softmax on ties).
    #[default]
    Auto,
    /// Multinomial logistic regression on the labels (module `softmax`).
    Softmax,
    /// Nystroem least squares onto the candidate's mixed targets, with its
    /// ridge and label weight.
    LeastSquares,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            max_flash: 256 << 10,
            max_instructions: None,
            cpu: Cpu::CortexM4f,
            ranks: vec![2, 3, 4, 6, 9],
            // 8-bit centres were chosen at no frontier point of two sweeps
            // (docs/export.md): at equal size 4-bit buys twice the centres.
            pixel_bits: vec![4],
            lambdas: vec![1e-8, 1e-6, 1e-4, 1e-3, 1e-2],
            label_weights: vec![1.0, 0.75, 0.5, 0.25, 0.0],
            val_fraction: 0.2,
            seed: 0,
            learn: Some(LearnOptions::default()),
            readout: Readout::Auto,
        }
    }
}

impl ExportOptions {
    /// Validates every field before any search: a budget, ranks of at
    /// least 1, pixel depths of 4 or 8, ridge values, a validation share.
    pub fn check(self) -> Result<CheckedExportOptions, ParamError> {
        at_least("max-flash", self.max_flash, 1)?;
        if self.ranks.is_empty() {
            return Err(ParamError::Empty { name: "ranks" });
        }
        for &r in &self.ranks {
            at_least("rank", r, 1)?;
        }
        if self.pixel_bits.is_empty() {
            return Err(ParamError::Empty { name: "pixel-bits" });
        }
        if let Some(&b) = self.pixel_bits.iter().find(|&&b| b != 4 && b != 8) {
            return Err(ParamError::NotAllowed {
                name: "pixel-bits",
                allowed: "4, 8",
                got: usize::from(b),
            });
        }
        ridge_values("lambdas", &self.lambdas)?;
        if self.label_weights.is_empty() {
            return Err(ParamError::Empty {
                name: "label-weights",
            });
        }
        for &w in &self.label_weights {
            unit_interval("label-weights", w)?;
        }
        fraction("val-fraction", self.val_fraction)?;
        if let Some(learn) = &self.learn {
            learn.check()?;
        }
        Ok(CheckedExportOptions(self))
    }
}

/// Export options that passed [`ExportOptions::check`].
#[derive(Clone, Debug)]
pub struct CheckedExportOptions(ExportOptions);

impl CheckedExportOptions {
    /// The validated options.
    pub fn get(&self) -> &ExportOptions {
        &self.0
    }

    /// Whether a label weight below 1 asks for the teacher's scores.
    pub fn distils(&self) -> bool {
        self.0.label_weights.iter().any(|&w| w < 1.0)
    }
}

/// The labelled images a compact model is fitted and validated on, and
/// the trained model's scores on them when distilling.
pub struct FitSet {
    data: LabelledImages,
    teacher: Option<Matrix>,
}

impl FitSet {
    /// Checks `data` against the model (shape, pixel type, labels within
    /// its classes, at least 10 images), before any kernel is computed.
    pub fn new(model: &Model, data: LabelledImages) -> Result<Self> {
        data.images.ensure_like(
            model.dims(),
            model.pixel_type(),
            "fit images",
            "the model's",
        )?;
        data.ensure_labels_below(model.classes(), "the model")?;
        ensure!(
            data.len() >= 10,
            "the fit set holds {} images; at least 10 are needed (for a validation split)",
            data.len()
        );
        Ok(Self {
            data,
            teacher: None,
        })
    }

    /// Adds the teacher's scores on these images (`n x classes`), for
    /// distillation.
    pub fn with_teacher(self, scores: Matrix) -> Result<Self> {
        ensure!(
            scores.rows() == self.data.len() && scores.cols() == self.data.class_names.len(),
            "teacher scores of {}x{} for {} images of {} classes",
            scores.rows(),
            scores.cols(),
            self.data.len(),
            self.data.class_names.len()
        );
        Ok(Self {
            teacher: Some(scores),
            ..self
        })
    }

    /// The images and labels.
    pub fn data(&self) -> &LabelledImages {
        &self.data
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are none (never, once checked).
    pub fn is_empty(&self) -> bool {
        self.data.len() == 0
    }

    fn select(&self, idx: &[usize]) -> FitSet {
        FitSet {
            data: self.data.select(idx),
            teacher: self.teacher.as_ref().map(|t| t.select_rows(idx)),
        }
    }

    fn targets(&self, classes: usize) -> Targets {
        Targets {
            labels: one_hot(&self.data.labels, classes),
            teacher: self.teacher.clone(),
        }
    }

    /// The search's stratified sample (all images up to [`SEARCH_IMAGES`]),
    /// as indices.
    fn search_indices(&self, seed: u64) -> Vec<usize> {
        if self.len() <= SEARCH_IMAGES {
            return (0..self.len()).collect();
        }
        let share = SEARCH_IMAGES as f64 / self.len() as f64;
        stratified_split(&self.data.labels, share, seed).1
    }

    /// The search's sample split into fit and validation images, as
    /// indices into this set.
    fn search_split(&self, seed: u64, val_fraction: f64) -> (Vec<usize>, Vec<usize>) {
        let sample = self.search_indices(seed);
        let labels: Vec<u8> = sample.iter().map(|&i| self.data.labels[i]).collect();
        let (fit, val) = stratified_split(&labels, val_fraction, seed);
        let global = |idx: Vec<usize>| idx.into_iter().map(|i| sample[i]).collect();
        (global(fit), global(val))
    }
}

/// One point of the search.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Centres.
    pub m: usize,
    /// Metric rank.
    pub rank: usize,
    /// Centre pixel bits.
    pub pixel_bits: u8,
    /// Chosen ridge.
    pub lambda: f64,
    /// Chosen weight of the labels against the teacher's scores.
    pub label_weight: f64,
    /// Float accuracy on the validation split.
    pub val_accuracy: f64,
    /// Exact blob size, bytes.
    pub bytes: usize,
    /// Predicted instructions per inference on the options' CPU.
    pub instructions: u64,
}

/// A compact model in float, with everything the blob holds.
pub struct Compact {
    /// The search point it realises.
    pub candidate: Candidate,
    /// The device's patch projection and the float kernel mirroring it.
    pub metric: DeviceMetric,
    /// Centre images, quantised pixels in `[0, 1]`.
    pub centres: Images,
    /// `m x classes`, for the kernel divided by `scale`.
    pub alpha: Matrix,
    /// Kernel normaliser (max centre self-kernel).
    pub scale: f64,
    /// Class names.
    pub class_names: Vec<String>,
    /// The model's resize filter, recorded in the blob.
    pub resize: ResizeFilter,
    /// How the centres were learned, if they were.
    pub learned: Option<LearnReport>,
    /// How the readout was chosen, when the softmax was tried.
    pub readout: Option<ReadoutReport>,
}

/// How a built model's readout was chosen, when the softmax was tried:
/// by cross-validation over all fit images ([`softmax::FOLDS`] folds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReadoutReport {
    /// The softmax's ridge and cross-validated accuracy.
    pub softmax: SoftmaxChoice,
    /// Least squares' cross-validated accuracy (the candidate's ridge and
    /// label weight), when it was a choice (`--readout auto`).
    pub least_squares_cv: Option<f64>,
    /// The readout alpha was fitted by: softmax or least squares.
    pub used: Readout,
}

impl Compact {
    /// Float class scores (`images x classes`).
    pub fn scores(&self, images: &Images, progress: Progress) -> Matrix {
        let blocks = KernelBlocks::<f32>::new(&self.metric.kernel, &self.centres.pixels);
        let mut k = blocks.cross(
            &images.pixels,
            &progress.bar("Compact", (images.len() * blocks.len()) as u64),
        );
        k.divide(self.scale);
        scores(&k, &self.alpha)
    }

    /// Encodes the blob (alpha quantised to i16).
    pub fn encode(&self, expected_accuracy: Option<f64>) -> Result<Vec<u8>> {
        BlobContent {
            metric: &self.metric,
            pixel_bits: self.candidate.pixel_bits,
            centres: &self.centres,
            alpha: &self.alpha,
            scale: self.scale,
            class_names: &self.class_names,
            resize: self.resize,
            expected_accuracy,
        }
        .encode()
    }
}

/// Checks the blob format can hold `model`: it stores 3x3 patches, 8-bit
/// pixels in `[0, 1]` and a single-layer kernel. (Commands call it before
/// reading a fit set or computing teacher scores.)
pub fn check_exportable(model: &Model) -> Result<()> {
    ensure!(
        model.patch == convrfm_core::PATCH,
        "a model with {p}x{p} patches cannot be exported: the blob format holds {q}x{q} \
         patches (train with --patch-size {q} to export)",
        p = model.patch,
        q = convrfm_core::PATCH
    );
    ensure!(
        model.features.is_empty(),
        "a Deep ConvRFM model ({} feature layers) cannot be exported: the blob format \
         holds a single-layer ConvRFM",
        model.features.len()
    );
    ensure!(
        model.pixel_type() == PixelType::U8,
        "a model trained on {} cannot be exported: the blob format stores 8-bit pixels \
         in [0, 1]",
        model.pixel_type()
    );
    Ok(())
}

/// Builds the compact model of search point `c`: centres from the search
/// sample of `fit` (the same seed as the search), learned when `opts` asks
/// for it, alpha fitted on every fit image by `opts`' readout (softmax on
/// the labels, its ridge chosen by cross-validation; or least squares with
/// `c`'s lambda and label weight). The built candidate's validation
/// accuracy is that readout's on the search's validation images, fitted
/// without them, which learning also held out.
pub fn build(
    model: &Model,
    fit: &FitSet,
    c: &Candidate,
    opts: &CheckedExportOptions,
    progress: Progress,
) -> Result<Compact> {
    check_exportable(model)?;
    let opts = opts.get();
    let shape = model.shape()?;
    let pool = fit.data.images.select(&fit.search_indices(opts.seed));
    let metric = DeviceMetric::new(model, c.rank, &pool)?;
    let mut centres = pick_centres(
        &metric.kernel,
        &pool,
        c.pixel_bits,
        c.m,
        "Centres",
        progress,
    );
    let mixed = fit.targets(model.classes()).mixed(c.label_weight);
    // The search's validation images: learning holds them out, and the
    // readout is scored on them.
    let val_idx = fit.search_split(opts.seed, opts.val_fraction).1;
    let learned = match &opts.learn {
        Some(learn) => {
            let val = fit.select(&val_idx);
            let learned = learn_centres(
                &LearnProblem {
                    kernel: &metric.kernel,
                    images: &fit.data.images.pixels,
                    targets: &mixed,
                    val_images: &val.data.images.pixels,
                    val_labels: &val.data.labels,
                    lambda: c.lambda,
                    bits: c.pixel_bits,
                    scale: self_kernel_max(&metric.kernel, &centres)?,
                    seed: opts.seed,
                },
                &centres,
                &complement(fit.len(), &val_idx),
                learn,
                progress,
            )?;
            let report = learned.report();
            centres = learned.centres;
            Some(report)
        }
        None => None,
    };
    let ck = CentreKernels::new(&metric.kernel, &centres, &[&fit.data.images])?;
    let rows = &ck.rows[0];
    let labels = &fit.data.labels;
    // Least squares on the rows `idx` of the fit images.
    let least_squares = |idx: &[usize]| -> Result<Matrix> {
        Nystrom {
            c: &rows.select_rows(idx),
            w: &ck.kc,
            targets: &Targets {
                labels: mixed.select_rows(idx),
                teacher: None,
            },
        }
        .solve(c.lambda, 1.0)
        .context("Nystroem re-fit failed")
    };
    let all: Vec<usize> = (0..fit.len()).collect();
    let train_idx = complement(fit.len(), &val_idx);
    let held_out = |alpha: &Matrix| {
        let val_labels: Vec<u8> = val_idx.iter().map(|&i| labels[i]).collect();
        accuracy(&rows.select_rows(&val_idx), alpha, &val_labels)
    };
    let (alpha, val_accuracy, readout) = match opts.readout {
        Readout::LeastSquares => {
            // Learned centres are scored on the held-out images; picked
            // ones keep the search's figure.
            let val = match learned {
                Some(_) => held_out(&least_squares(&train_idx)?),
                None => c.val_accuracy,
            };
            (least_squares(&all)?, val, None)
        }
        Readout::Softmax | Readout::Auto => {
            let folds = stratified_folds(labels, softmax::FOLDS, opts.seed);
            let classes = model.classes();
            let auto = opts.readout == Readout::Auto;
            let fits = folds.len() * (softmax::RIDGES.len() + usize::from(auto));
            let bar = progress.bar("Readout", fits as u64);
            let choice = softmax::choose(rows, labels, classes, &folds, &bar)?;
            let least_squares_cv = auto
                .then(|| softmax::cross_validated(rows, labels, &folds, &bar, least_squares))
                .transpose()?;
            let used = match least_squares_cv {
                Some(ls) if ls > choice.cv_accuracy => Readout::LeastSquares,
                _ => Readout::Softmax,
            };
            let fit_on = |idx: &[usize]| -> Result<Matrix> {
                match used {
                    Readout::LeastSquares => least_squares(idx),
                    _ => softmax::fit_rows(rows, labels, idx, classes, choice.ridge),
                }
            };
            let report = ReadoutReport {
                softmax: choice,
                least_squares_cv,
                used,
            };
            (fit_on(&all)?, held_out(&fit_on(&train_idx)?), Some(report))
        }
    };
    let c = Candidate {
        val_accuracy,
        ..c.clone()
    };
    let m = ck.kc.rows();
    let candidate = Candidate {
        m,
        bytes: blob_bytes(model, m, c.rank, c.pixel_bits)?,
        instructions: instructions(model, m, c.rank, c.pixel_bits, opts.cpu)?,
        ..c
    };
    Ok(Compact {
        candidate,
        metric,
        centres: Images {
            dims: ImageDims::of(&shape),
            pixel_type: PixelType::U8,
            pixels: centres,
        },
        alpha,
        scale: ck.scale,
        class_names: model.class_names().to_vec(),
        resize: model.resize,
        learned,
        readout,
    })
}

/// Predicted instructions per inference of `m` centres at `rank` and
/// `bits` for `model` on `cpu` ([`cost`]).
pub fn instructions(model: &Model, m: usize, rank: usize, bits: u8, cpu: Cpu) -> Result<u64> {
    let dims = BlobDims {
        shape: model.shape()?,
        rank,
        pixel_bits: bits,
        centres: m,
    };
    Ok(dims.instructions(cpu).round() as u64)
}

/// `0..n` without `taken` (sorted).
fn complement(n: usize, taken: &[usize]) -> Vec<usize> {
    let mut keep = vec![true; n];
    for &i in taken {
        keep[i] = false;
    }
    (0..n).filter(|&i| keep[i]).collect()
}

/// Largest `K(c, c)` over `centres` (the kernel normaliser).
fn self_kernel_max(kernel: &Kernel, centres: &[f32]) -> Result<f64> {
    largest_self_kernel(KernelBlocks::<f32>::new(kernel, centres).diagonal(centres))
}

/// The largest of the centres' self-kernels `diagonal`: the scale every
/// kernel value of a compact model is divided by.
fn largest_self_kernel(diagonal: impl IntoIterator<Item = f64>) -> Result<f64> {
    let scale = diagonal.into_iter().fold(0.0f64, f64::max);
    ensure!(scale > 0.0, "all centres are blank images");
    Ok(scale)
}

/// `m` centres chosen by pivoted Cholesky from `images` quantised to
/// `bits` (fewer if the kernel's numerical rank runs out), flat pixels.
fn pick_centres(
    kernel: &Kernel,
    images: &Images,
    bits: u8,
    m: usize,
    label: &str,
    progress: Progress,
) -> Vec<f32> {
    let quantised = quantise_pixels(&images.pixels, bits);
    let idx = select_centres::<f32>(kernel, &quantised, m, &progress.bar(label, m as u64));
    gather(&quantised, kernel.shape().pixels(), &idx)
}

/// The kernel between the centres (`kc`, `m x m`) and between each of
/// `queries` and the centres (`rows`, `n_q x m` each), all divided by
/// `scale`, the largest centre self-kernel.
struct CentreKernels {
    kc: Matrix,
    rows: Vec<Matrix>,
    scale: f64,
}

impl CentreKernels {
    fn new(kernel: &Kernel, centres: &[f32], queries: &[&Images]) -> Result<Self> {
        let set = KernelBlocks::<f32>::new(kernel, centres);
        let hidden = Phase::hidden();
        let mut kc = set.gram(centres, &hidden);
        let scale = largest_self_kernel((0..kc.rows()).map(|i| kc.get(i, i)))?;
        let mut rows: Vec<Matrix> = queries
            .iter()
            .map(|q| set.cross(&q.pixels, &hidden))
            .collect();
        for k in std::iter::once(&mut kc).chain(rows.iter_mut()) {
            k.divide(scale);
        }
        Ok(Self { kc, rows, scale })
    }
}

fn gather(pixels: &[f32], per: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| pixels[i * per..][..per].iter().copied())
        .collect()
}

/// The ranks of `opts` the blob format can hold for `model`, after
/// checking that the smallest candidate fits `--max-flash`: both known
/// from sizes alone, so commands call this before reading a fit set or
/// computing any kernel.
pub fn feasible_ranks(model: &Model, opts: &ExportOptions) -> Result<Vec<usize>> {
    let shape = model.shape()?;
    let ranks: Vec<usize> = opts
        .ranks
        .iter()
        .copied()
        .filter(|&r| r <= shape.patch_dim() && convrfm_core::kernel_fits(&shape, r).is_ok())
        .collect();
    if ranks.is_empty() {
        let lowest = opts.ranks.iter().copied().min().unwrap_or(1);
        convrfm_core::kernel_fits(&shape, lowest)
            .context("no rank tried fits the blob's integer kernel")?;
        bail!(
            "no rank of {:?} fits {}-value patches",
            opts.ranks,
            shape.patch_dim()
        );
    }
    let smallest = ranks
        .iter()
        .flat_map(|&r| opts.pixel_bits.iter().map(move |&b| (r, b)))
        .filter_map(|(r, b)| blob_bytes(model, CENTRE_LADDER[0], r, b).ok())
        .min()
        .context("no candidate size can be computed")?;
    ensure!(
        smallest <= opts.max_flash,
        "the smallest blob for this model needs {smallest} bytes ({} centres), more than \
         --max-flash {}",
        CENTRE_LADDER[0],
        opts.max_flash
    );
    if let Some(limit) = opts.max_instructions {
        let cheapest = ranks
            .iter()
            .flat_map(|&r| opts.pixel_bits.iter().map(move |&b| (r, b)))
            .filter_map(|(r, b)| instructions(model, CENTRE_LADDER[0], r, b, opts.cpu).ok())
            .min()
            .context("no candidate cost can be computed")?;
        ensure!(
            cheapest <= limit,
            "the cheapest blob for this model needs {cheapest} instructions per inference on \
             a {} ({} centres), more than --max-instructions {limit}",
            opts.cpu.name(),
            CENTRE_LADDER[0]
        );
    }
    Ok(ranks)
}

/// Every candidate of the search within the flash of the largest budget
/// and the latency budget (`max_instructions`), evaluated on a validation
/// split of the search sample of `fit`.
pub fn search(
    model: &Model,
    fit: &FitSet,
    opts: &CheckedExportOptions,
    progress: Progress,
) -> Result<Vec<Candidate>> {
    let opts = opts.get();
    check_exportable(model)?;
    let ranks = feasible_ranks(model, opts)?;
    let sample = fit.data.images.select(&fit.search_indices(opts.seed));
    let (fit_idx, val_idx) = fit.search_split(opts.seed, opts.val_fraction);
    let (fit, val) = (fit.select(&fit_idx), fit.select(&val_idx));
    let targets = fit.targets(model.classes());
    let largest_budget = opts.max_flash.max(*FRONTIER_BUDGETS.last().unwrap_or(&0));
    let mut out = Vec::new();
    let mut failure = None;
    for &bits in &opts.pixel_bits {
        for &rank in &ranks {
            let ladder: Vec<usize> = CENTRE_LADDER
                .iter()
                .copied()
                .filter(|&m| m <= sample.len())
                .filter(|&m| blob_bytes(model, m, rank, bits).is_ok_and(|b| b <= largest_budget))
                // Over the latency budget a candidate can never be chosen,
                // at any frontier point either: not worth evaluating.
                .filter(|&m| {
                    opts.max_instructions.is_none_or(|limit| {
                        instructions(model, m, rank, bits, opts.cpu).is_ok_and(|i| i <= limit)
                    })
                })
                .collect();
            let Some(&m_max) = ladder.last() else {
                continue;
            };
            let metric = DeviceMetric::new(model, rank, &sample)?;
            let centres = pick_centres(
                &metric.kernel,
                &sample,
                bits,
                m_max,
                &format!("{bits}b r{rank}"),
                progress,
            );
            let ck = CentreKernels::new(
                &metric.kernel,
                &centres,
                &[&fit.data.images, &val.data.images],
            )?;
            let (mm, kc, c_fit, c_val) = (ck.kc.rows(), &ck.kc, &ck.rows[0], &ck.rows[1]);
            for &m in ladder.iter().filter(|&&m| m <= mm) {
                let (cf, cv, w) = (c_fit.left_columns(m), c_val.left_columns(m), kc.top_left(m));
                let fitted = Nystrom {
                    c: &cf,
                    w: &w,
                    targets: &targets,
                }
                .best(&cv, &val.data.labels, &opts.lambdas, &opts.label_weights)
                .with_context(|| format!("{m} centres, rank {rank}, {bits}-bit pixels"));
                let fitted = match fitted {
                    Ok(f) => f,
                    Err(e) => {
                        failure = Some(e);
                        continue;
                    }
                };
                out.push(Candidate {
                    m,
                    rank,
                    pixel_bits: bits,
                    lambda: fitted.lambda,
                    label_weight: fitted.label_weight,
                    val_accuracy: fitted.accuracy,
                    bytes: blob_bytes(model, m, rank, bits)?,
                    instructions: instructions(model, m, rank, bits, opts.cpu)?,
                });
            }
        }
    }
    // A candidate that failed is skipped; if all did, the reason is the error.
    match (out.is_empty(), failure) {
        (true, Some(e)) => Err(e.context("every candidate of the search failed")),
        _ => Ok(out),
    }
}

/// The most accurate candidate of at most `bytes` and, if given, at most
/// `instructions` per inference (ties: smaller).
pub fn best_under(
    candidates: &[Candidate],
    bytes: usize,
    instructions: Option<u64>,
) -> Option<&Candidate> {
    candidates
        .iter()
        .filter(|c| c.bytes <= bytes && instructions.is_none_or(|i| c.instructions <= i))
        .fold(None, |best: Option<&Candidate>, c| match best {
            Some(b)
                if b.val_accuracy > c.val_accuracy
                    || (b.val_accuracy == c.val_accuracy && b.bytes <= c.bytes) =>
            {
                Some(b)
            }
            _ => Some(c),
        })
}

/// Test-set figures of one realised candidate.
#[derive(Clone, Copy, Debug)]
pub struct TestReport {
    /// Accuracy of the float compact model.
    pub float_accuracy: f64,
    /// Accuracy of the blob through the integer core.
    pub int_accuracy: f64,
    /// Share of images where both give the same class.
    pub same_class: f64,
}

/// A candidate rebuilt on all training images and encoded.
pub struct Realised {
    /// The search point.
    pub candidate: Candidate,
    /// The blob bytes.
    pub blob: Vec<u8>,
    /// Test figures, when a test set was given.
    pub test: Option<TestReport>,
    /// How the centres were learned, if they were.
    pub learned: Option<LearnReport>,
    /// How the readout was chosen, when the softmax was tried.
    pub readout: Option<ReadoutReport>,
}

/// Rebuilds `c` on `fit` ([`build`]), encodes it, and evaluates float and
/// integer versions on `test` if given.
pub fn realise(
    model: &Model,
    fit: &FitSet,
    c: &Candidate,
    opts: &CheckedExportOptions,
    test: Option<&LabelledImages>,
    progress: Progress,
) -> Result<Realised> {
    let compact = build(model, fit, c, opts, progress)?;
    let blob = compact.encode(Some(compact.candidate.val_accuracy))?;
    let test = test
        .map(|t| -> Result<TestReport> {
            let float_pred = argmax_rows(&compact.scores(&t.images, progress));
            let core = convrfm_core::Model::from_bytes(&blob).context("the encoded blob")?;
            let int_pred = blob_predict(&core, &t.images, progress)?;
            Ok(TestReport {
                float_accuracy: share_correct(float_pred.iter().copied(), &t.labels),
                int_accuracy: share_correct(int_pred.iter().map(|p| p.0), &t.labels),
                same_class: float_pred
                    .iter()
                    .zip(&int_pred)
                    .filter(|(f, i)| **f == i.0)
                    .count() as f64
                    / t.len().max(1) as f64,
            })
        })
        .transpose()?;
    Ok(Realised {
        candidate: compact.candidate.clone(),
        blob,
        test,
        learned: compact.learned,
        readout: compact.readout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_any_search() {
        assert!(ExportOptions::default().check().is_ok());
        let d = ExportOptions::default;
        let bad = |o: ExportOptions| o.check().unwrap_err().to_string();
        assert!(
            bad(ExportOptions {
                max_flash: 0,
                ..d()
            })
            .contains("max-flash")
        );
        assert!(
            bad(ExportOptions {
                ranks: vec![0],
                ..d()
            })
            .contains("rank")
        );
        assert!(
            bad(ExportOptions {
                pixel_bits: vec![5],
                ..d()
            })
            .contains("pixel-bits")
        );
        assert!(
            bad(ExportOptions {
                lambdas: vec![-1.0],
                ..d()
            })
            .contains("lambdas")
        );
        assert!(
            bad(ExportOptions {
                lambdas: vec![f64::NAN],
                ..d()
            })
            .contains("lambdas")
        );
        assert!(
            bad(ExportOptions {
                val_fraction: 0.0,
                ..d()
            })
            .contains("val-fraction")
        );
    }

    #[test]
    fn best_under_prefers_accuracy_then_size() {
        let c = |m, acc, bytes| Candidate {
            m,
            rank: 4,
            pixel_bits: 4,
            lambda: 1e-3,
            label_weight: 1.0,
            val_accuracy: acc,
            bytes,
            instructions: 300_000 * m as u64,
        };
        let cands = [
            c(8, 0.70, 5000),
            c(16, 0.80, 9000),
            c(32, 0.80, 17000),
            c(64, 0.85, 33000),
        ];
        assert_eq!(best_under(&cands, 16 << 10, None).unwrap().m, 16);
        assert_eq!(best_under(&cands, 64 << 10, None).unwrap().m, 64);
        assert!(best_under(&cands, 1000, None).is_none());
        // An instruction budget binds before the byte budget.
        assert_eq!(
            best_under(&cands, 64 << 10, Some(10_000_000)).unwrap().m,
            16
        );
        assert!(best_under(&cands, 64 << 10, Some(1_000_000)).is_none());
    }
}
