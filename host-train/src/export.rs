//! `convrfm export`: a trained model -> the compact, checksummed blob that
//! `convrfm-core` runs, sized to a flash budget.
//!
//! Search (on a validation split of the model's training images, never on
//! test data): for each centre pixel depth (4, 8 bits) and metric rank `r`,
//! centres are chosen by pivoted Cholesky ([`crate::compact`]) from the fit
//! images, and for each centre count `m` of a ladder alpha is re-fitted
//! (Nystroem least squares, lambda on validation). Every candidate's blob
//! size is exact ([`convrfm_core::blob::encoded_len`]). The best candidate
//! under `--max-flash` is then rebuilt on all training images and encoded.
//! The float model of a candidate uses exactly the device's quantised
//! centre pixels and `W`; only the integer arithmetic of the device differs.

use anyhow::{Context, Result, anyhow, ensure};
use convrfm_core::blob::{self, BlobParts, KernelKind as BlobKind};
use indicatif::ProgressBar;

use crate::compact::{Nystrom, low_rank, padded_metric, quantise_pixels, select_centres};
use crate::data::{Images, LabelledImages, PixelType, train_val_split};
use crate::kernel::{Kernel, KernelKind};
use crate::model::Model;
use crate::progress::Progress;
use crate::rfm::{one_hot, share_correct};
use crate::train_set::TrainSet;

/// Budgets of the accuracy-vs-size frontier, bytes.
pub const FRONTIER_BUDGETS: [usize; 5] = [16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10];

/// Centre counts tried.
pub const CENTRE_LADDER: [usize; 14] =
    [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 320, 384, 448, 512];

/// What to search.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Largest blob allowed, bytes.
    pub max_flash: usize,
    /// Ranks of the low-rank metric tried (clipped to the patch dimension).
    pub ranks: Vec<usize>,
    /// Centre pixel depths tried (4 and/or 8).
    pub pixel_bits: Vec<u8>,
    /// Ridge values tried for the Nystroem fit.
    pub lambdas: Vec<f64>,
    /// Validation share of the training images.
    pub val_fraction: f64,
    /// Seed of the validation split.
    pub seed: u64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            max_flash: 256 << 10,
            ranks: vec![2, 3, 4, 6, 9],
            pixel_bits: vec![4, 8],
            lambdas: vec![1e-8, 1e-6, 1e-4, 1e-3, 1e-2],
            val_fraction: 0.2,
            seed: 0,
        }
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
    /// Float accuracy on the validation split.
    pub val_accuracy: f64,
    /// Exact blob size, bytes.
    pub bytes: usize,
}

/// A compact model in float, with everything the blob holds.
pub struct Compact {
    /// The search point it realises.
    pub candidate: Candidate,
    /// Kernel with the (quantised) low-rank metric.
    pub kernel: Kernel,
    /// `W` quantised, `d x r`.
    pub w: Vec<i8>,
    /// Requantisation multiplier of `u = P . W` on the device.
    pub u_mult: u32,
    /// `W = W_q * w_scale` in float.
    pub w_scale: f64,
    /// Centre images, quantised pixels in `[0, 1]`.
    pub centres: Images,
    /// `m x classes`, for the kernel divided by `scale`.
    pub alpha: Vec<f64>,
    /// Kernel normaliser (max centre self-kernel).
    pub scale: f64,
    /// Class names.
    pub class_names: Vec<String>,
}

impl Compact {
    /// Float class scores (`images x classes`).
    pub fn scores(&self, images: &Images, progress: Progress) -> Vec<f64> {
        let set = TrainSet::<f32>::new(&self.kernel, &self.centres.pixels);
        let bar = progress.bar("Compact", (images.len() * set.len()) as u64);
        let mut k = set.cross(&images.pixels, &bar);
        bar.finish_and_clear();
        k.iter_mut().for_each(|v| *v /= self.scale);
        crate::rfm::scores(&k, &self.alpha, self.class_names.len())
    }

    /// Real score per unit of integer score: the device kernel is
    /// `g^2 c P_L` times the float kernel (`g` the requantisation gain of
    /// `u`, `1/c` and the readout mean dropped), and the float model divides
    /// its kernel by `scale` (`docs/blob-format.md` §9).
    fn alpha_scale(&self, a_scale: f64) -> f64 {
        let shape = self.kernel.shape();
        let g = f64::from(self.u_mult) / f64::from(1u32 << 24) * 255.0 / self.w_scale;
        let p_last = shape.positions(shape.depth()) as f64;
        a_scale / (g * g * shape.channels() as f64 * p_last * self.scale)
    }

    /// Encodes the blob, quantising alpha to i16.
    pub fn encode(&self, expected_accuracy: Option<f64>) -> Result<Vec<u8>> {
        let shape = self.kernel.shape();
        let r = self.candidate.rank;
        let u_mult = self.u_mult;
        let amax = self
            .alpha
            .iter()
            .fold(0.0f64, |a, v| a.max(v.abs()))
            .max(1e-300);
        let a_scale = amax / 32767.0;
        let alpha: Vec<i16> = self
            .alpha
            .iter()
            .map(|v| (v / a_scale).round() as i16)
            .collect();
        let bits = self.candidate.pixel_bits;
        let per = shape.pixels();
        let img_bytes = blob::image_bytes(bits, per).context("pixel bits")?;
        let mut centres = vec![0u8; self.centres.len() * img_bytes];
        for (img, out) in self
            .centres
            .pixels
            .chunks_exact(per)
            .zip(centres.chunks_exact_mut(img_bytes))
        {
            let values: Vec<u8> = img
                .iter()
                .map(|v| {
                    if bits == 4 {
                        blob::pixel_to_4bit(to_u8(*v))
                    } else {
                        to_u8(*v)
                    }
                })
                .collect();
            blob::pack_pixels(bits, &values, out).map_err(|e| anyhow!("packing centres: {e:?}"))?;
        }
        let names: Vec<&str> = self.class_names.iter().map(String::as_str).collect();
        let parts = BlobParts {
            channels: u16::try_from(shape.channels())?,
            height: u16::try_from(shape.height())?,
            width: u16::try_from(shape.width())?,
            depth: u8::try_from(shape.depth())?,
            pixel_bits: bits,
            rank: u8::try_from(r)?,
            kind: match self.kernel.kind() {
                KernelKind::Ntk => BlobKind::Ntk,
                KernelKind::Nngp => BlobKind::Nngp,
            },
            u_mult,
            alpha_scale: self.alpha_scale(a_scale) as f32,
            expected_accuracy_bp: expected_accuracy.map_or(0, |a| (a * 10_000.0).round() as u16),
            centre_count: u16::try_from(self.centres.len())?,
            w: &self.w,
            centres: &centres,
            alpha: &alpha,
            class_names: &names,
        };
        let len = blob::encoded_len(&parts).map_err(|e| anyhow!("blob size: {e:?}"))?;
        let mut out = vec![0u8; len];
        blob::encode(&parts, &mut out).map_err(|e| anyhow!("encoding the blob: {e:?}"))?;
        Ok(out)
    }
}

/// A pixel in `[0, 1]` as the device's byte.
pub fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Exact blob size of a candidate shape, without building it.
fn blob_bytes(model: &Model, m: usize, rank: usize, bits: u8) -> Result<usize> {
    let d = model.channels * 9;
    let per = model.channels * model.height * model.width;
    let w = vec![0i8; d * rank];
    let centres = vec![0u8; m * blob::image_bytes(bits, per).context("pixel bits")?];
    let alpha = vec![0i16; m * model.classes()];
    let names: Vec<&str> = model.class_names.iter().map(String::as_str).collect();
    let parts = BlobParts {
        channels: u16::try_from(model.channels)?,
        height: u16::try_from(model.height)?,
        width: u16::try_from(model.width)?,
        depth: u8::try_from(model.depth)?,
        pixel_bits: bits,
        rank: u8::try_from(rank)?,
        kind: BlobKind::Ntk,
        u_mult: 1,
        alpha_scale: 1.0,
        expected_accuracy_bp: 0,
        centre_count: u16::try_from(m)?,
        w: &w,
        centres: &centres,
        alpha: &alpha,
        class_names: &names,
    };
    blob::encoded_len(&parts).map_err(|e| anyhow!("blob size: {e:?}"))
}

/// Checks the blob format can hold `model`: it stores 8-bit pixels in
/// `[0, 1]` and a single-layer kernel.
fn check_exportable(model: &Model) -> Result<()> {
    ensure!(
        model.features.is_empty(),
        "a Deep ConvRFM model ({} feature layers) cannot be exported: the blob format \
         holds a single-layer ConvRFM",
        model.features.len()
    );
    ensure!(
        model.pixel_type == PixelType::U8,
        "a model trained on {} cannot be exported: the blob format stores 8-bit pixels \
         in [0, 1]",
        model.pixel_type
    );
    Ok(())
}

/// What the device computes with for rank `r`: the quantised `W` (`d x r`
/// i8, per-tensor scale), `u_mult` (so the largest `|P . W|` over `images`
/// maps to 127), and the float kernel that mirrors both (quantised `W`,
/// `u` rounded as the device rounds it).
fn device_kernel(
    model: &Model,
    rank: usize,
    images: &Images,
) -> Result<(Kernel, Vec<i8>, u32, f64)> {
    let shape = model.shape()?;
    let w = low_rank(&model.metric, rank)?;
    let wmax = w.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-300);
    let w_scale = wmax / 127.0;
    let wq: Vec<i8> = w.iter().map(|v| (v / w_scale).round() as i8).collect();
    let deq: Vec<f64> = wq.iter().map(|&v| f64::from(v) * w_scale).collect();
    // Largest |u| = |P . W| over all patches of `images`, in device units
    // (u8 pixels times i8 weights).
    let (h, wd, c) = (shape.height(), shape.width(), shape.channels());
    let mut max_u: i64 = 1;
    for img in images.pixels.chunks_exact(shape.pixels()) {
        let px: Vec<i64> = img.iter().map(|v| i64::from(to_u8(*v))).collect();
        for i in 0..h - 2 {
            for j in 0..wd - 2 {
                for col in 0..rank {
                    let mut acc = 0i64;
                    for ch in 0..c {
                        for a in 0..3 {
                            for b in 0..3 {
                                let k = ch * 9 + a * 3 + b;
                                acc += px[ch * h * wd + (i + a) * wd + j + b]
                                    * i64::from(wq[k * rank + col]);
                            }
                        }
                    }
                    max_u = max_u.max(acc.abs());
                }
            }
        }
    }
    let u_mult = u32::try_from((127i64 << 24) / max_u)
        .unwrap_or(u32::MAX)
        .max(1);
    let step = w_scale * f64::from(1u32 << 24) / (255.0 * f64::from(u_mult));
    let kernel = Kernel::new(
        shape,
        model.kind,
        padded_metric(&deq, shape.patch_dim(), rank)?,
    )
    .with_u_step(step);
    Ok((kernel, wq, u_mult, w_scale))
}

/// Builds the compact model of one search point on `data` (centres from
/// `data`, alpha re-fitted on `data`).
pub fn build(
    model: &Model,
    data: &LabelledImages,
    m: usize,
    rank: usize,
    bits: u8,
    lambda: f64,
    progress: Progress,
) -> Result<Compact> {
    check_exportable(model)?;
    let shape = model.shape()?;
    let (kernel, w, u_mult, w_scale) = device_kernel(model, rank, &data.images)?;
    let ck = centre_kernels(
        &kernel,
        &data.images,
        bits,
        m,
        &[&data.images],
        "Centres",
        progress,
    )?;
    let centres = Images {
        pixel_type: PixelType::U8,
        channels: shape.channels(),
        height: shape.height(),
        width: shape.width(),
        pixels: ck.centres,
    };
    let (idx, kc, scale) = (ck.idx, ck.kc, ck.scale);
    let c = &ck.rows[0];
    let y = one_hot(&data.labels, model.classes());
    let alpha = Nystrom {
        c,
        w: &kc,
        y: &y,
        n: data.len(),
        m: idx.len(),
    }
    .solve(lambda)
    .context("Nystroem re-fit failed")?;
    let candidate = Candidate {
        m: idx.len(),
        rank,
        pixel_bits: bits,
        lambda,
        val_accuracy: f64::NAN,
        bytes: blob_bytes(model, idx.len(), rank, bits)?,
    };
    Ok(Compact {
        candidate,
        kernel,
        w,
        u_mult,
        w_scale,
        centres,
        alpha,
        scale,
        class_names: model.class_names.clone(),
    })
}

/// Centres chosen by pivoted Cholesky from `images` quantised to `bits`,
/// with the kernel between the centres (`kc`, `m x m`) and between each of
/// `queries` and the centres (`rows`, `n_q x m` each), all divided by
/// `scale`, the largest centre self-kernel.
struct CentreKernels {
    idx: Vec<usize>,
    centres: Vec<f32>,
    kc: Vec<f64>,
    rows: Vec<Vec<f64>>,
    scale: f64,
}

fn centre_kernels(
    kernel: &Kernel,
    images: &Images,
    bits: u8,
    m: usize,
    queries: &[&Images],
    label: &str,
    progress: Progress,
) -> Result<CentreKernels> {
    let quantised = quantise_pixels(&images.pixels, bits);
    let bar = progress.bar(label, m as u64);
    let idx = select_centres::<f32>(kernel, &quantised, m, &bar);
    bar.finish_and_clear();
    let centres = gather(&quantised, kernel.shape().pixels(), &idx);
    let set = TrainSet::<f32>::new(kernel, &centres);
    let hidden = ProgressBar::hidden();
    let mut kc = set.gram(&centres, &hidden);
    let mm = idx.len();
    let scale = (0..mm).map(|i| kc[i * mm + i]).fold(0.0f64, f64::max);
    ensure!(scale > 0.0, "all centres are blank images");
    let mut rows: Vec<Vec<f64>> = queries
        .iter()
        .map(|q| set.cross(&q.pixels, &hidden))
        .collect();
    for v in kc.iter_mut().chain(rows.iter_mut().flatten()) {
        *v /= scale;
    }
    Ok(CentreKernels {
        idx,
        centres,
        kc,
        rows,
        scale,
    })
}

fn gather(pixels: &[f32], per: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| pixels[i * per..][..per].iter().copied())
        .collect()
}

/// Every candidate of the search, evaluated on a validation split of the
/// model's training images.
pub fn search(model: &Model, opts: &ExportOptions, progress: Progress) -> Result<Vec<Candidate>> {
    check_exportable(model)?;
    let shape = model.shape()?;
    let data = model.training_data();
    ensure!(
        data.len() >= 10,
        "the model holds only {} training images",
        data.len()
    );
    let (fit_idx, val_idx) = train_val_split(data.len(), opts.val_fraction, opts.seed);
    let (fit, val) = (data.select(&fit_idx), data.select(&val_idx));
    let y = one_hot(&fit.labels, model.classes());
    let largest_budget = opts.max_flash.max(*FRONTIER_BUDGETS.last().unwrap_or(&0));
    let mut out = Vec::new();
    for &bits in &opts.pixel_bits {
        for &rank in opts.ranks.iter().filter(|&&r| r <= shape.patch_dim()) {
            let ladder: Vec<usize> = CENTRE_LADDER
                .iter()
                .copied()
                .filter(|&m| m <= fit.len())
                .filter(|&m| blob_bytes(model, m, rank, bits).is_ok_and(|b| b <= largest_budget))
                .collect();
            let Some(&m_max) = ladder.last() else {
                continue;
            };
            let (kernel, ..) = device_kernel(model, rank, &fit.images)?;
            let ck = centre_kernels(
                &kernel,
                &fit.images,
                bits,
                m_max,
                &[&fit.images, &val.images],
                &format!("{bits}b r{rank}"),
                progress,
            )?;
            let (mm, kc, c_fit, c_val) = (ck.idx.len(), &ck.kc, &ck.rows[0], &ck.rows[1]);
            for &m in ladder.iter().filter(|&&m| m <= mm) {
                let sub = |k: &[f64], rows: usize| -> Vec<f64> {
                    (0..rows)
                        .flat_map(|i| k[i * mm..i * mm + m].iter().copied())
                        .collect()
                };
                let (cf, cv, w) = (sub(c_fit, fit.len()), sub(c_val, val.len()), sub(kc, m));
                let Ok((lambda, _, acc)) = Nystrom {
                    c: &cf,
                    w: &w,
                    y: &y,
                    n: fit.len(),
                    m,
                }
                .best_lambda(&cv, &val.labels, &opts.lambdas) else {
                    continue;
                };
                out.push(Candidate {
                    m,
                    rank,
                    pixel_bits: bits,
                    lambda,
                    val_accuracy: acc,
                    bytes: blob_bytes(model, m, rank, bits)?,
                });
            }
        }
    }
    Ok(out)
}

/// The most accurate candidate of at most `budget` bytes (ties: smaller).
pub fn best_under(candidates: &[Candidate], budget: usize) -> Option<&Candidate> {
    candidates
        .iter()
        .filter(|c| c.bytes <= budget)
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
}

/// Rebuilds `c` on all of the model's training images, encodes it, and
/// evaluates float and integer versions on `test` if given.
pub fn realise(
    model: &Model,
    c: &Candidate,
    test: Option<&LabelledImages>,
    progress: Progress,
) -> Result<Realised> {
    let train = model.training_data();
    let compact = build(model, &train, c.m, c.rank, c.pixel_bits, c.lambda, progress)?;
    let blob = compact.encode(Some(c.val_accuracy))?;
    let test = test
        .map(|t| -> Result<TestReport> {
            let float_pred =
                crate::rfm::argmax_rows(&compact.scores(&t.images, progress), model.classes());
            let int_pred = blob_predict(&blob, &t.images, progress)?;
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
        candidate: c.clone(),
        blob,
        test,
    })
}

/// Integer predictions of a blob through `convrfm-core` (the one
/// implementation of the device arithmetic), in parallel over images:
/// per image the predicted class and every class's integer score.
pub fn blob_predict(
    blob_bytes: &[u8],
    images: &Images,
    progress: Progress,
) -> Result<Vec<(usize, Vec<i64>)>> {
    use rayon::prelude::*;
    let model =
        convrfm_core::Model::from_bytes(blob_bytes).map_err(|e| anyhow!("invalid blob: {e}"))?;
    let per = images.pixels_per_image();
    let s = model.shape();
    ensure!(
        (images.channels, images.height, images.width) == (s.channels(), s.height(), s.width()),
        "images are {}x{}x{}, the blob expects {}x{}x{}",
        images.channels,
        images.height,
        images.width,
        s.channels(),
        s.height(),
        s.width()
    );
    let bar = progress.bar("Blob", images.len() as u64);
    let out = images
        .pixels
        .par_chunks(per)
        .map_init(
            || (vec![0u8; model.scratch_len()], vec![0i64; model.classes()]),
            |(scratch, scores), img| {
                let px: Vec<u8> = img.iter().map(|v| to_u8(*v)).collect();
                let p = model
                    .predict_scores(&px, scratch, scores)
                    .map_err(|e| anyhow!("{e}"))?;
                bar.inc(1);
                Ok((usize::from(p.class), scores.clone()))
            },
        )
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    out
}

/// Parses a byte size: `65536`, `64K`, `64KiB`, `1M`, `1MiB` (K = 1024).
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .with_context(|| format!("size {s:?}: expected a number like 65536 or 64KiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        other => anyhow::bail!("size {s:?}: unknown unit {other:?} (use K/KiB or M/MiB)"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
    }

    #[test]
    fn best_under_prefers_accuracy_then_size() {
        let c = |m, acc, bytes| Candidate {
            m,
            rank: 4,
            pixel_bits: 4,
            lambda: 1e-3,
            val_accuracy: acc,
            bytes,
        };
        let cands = [
            c(8, 0.70, 5000),
            c(16, 0.80, 9000),
            c(32, 0.80, 17000),
            c(64, 0.85, 33000),
        ];
        assert_eq!(best_under(&cands, 16 << 10).unwrap().m, 16);
        assert_eq!(best_under(&cands, 64 << 10).unwrap().m, 64);
        assert!(best_under(&cands, 1000).is_none());
    }
}
