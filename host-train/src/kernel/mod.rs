//! The convolutional NTK / NNGP of a ReLU CNN on metric-transformed patches,
//! and its gradient with respect to the query image's patches.
//!
//! This module is the single implementation of the kernel recursion (see
//! `docs/kernel.md`, or the golden vectors' README) used by training, AGOP
//! and export. Per pair of images `(a, b)`:
//!
//! - layer 1: `K1_p = <u_p(a), u_p(b)> / c` with `u_p = P_p S` (patch row
//!   vector times the metric `S`), `Theta1 = K1`;
//! - ReLU step, in the `rho = K / sqrt(q_a q_b)` form:
//!   `Khat = sqrt(q_a q_b) (sqrt(1 - rho^2) / pi + Kdot rho)`,
//!   `Kdot = (pi - arccos rho) / pi`, `Thetahat = Theta Kdot`;
//! - layers 2..L: `Q x Q` VALID window sums of `Khat`, `Thetahat` (plus
//!   `K`), `Q` the patch side (3 by default; any odd side, as the authors'
//!   `Vanilla(ps, depth)`);
//! - readout: `NTK = mean(Thetahat^L + Khat^L)`, `NNGP = mean(Khat^L)`.
//!
//! `q^l` of an image depends on that image alone, so `sqrt(q)` and
//! `1/sqrt(q)` maps are computed once per image ([`ImageMaps`]). Pairs are
//! evaluated one query image against a [`Block`] of [`LANES`] training
//! images at once, lane-interleaved, so every inner loop is a straight
//! element-wise loop over lanes that the compiler vectorises.
//!
//! Degenerate corners follow the reference: where `q = 0` (an all-zero patch
//! window), `rho = 0`, `Kdot = 1/2`, `Khat = 0`; an image paired with itself
//! gets `rho = 1` exactly (the self-pair convention), not a rounding residue.

pub mod agop;
pub mod blocks;
pub mod real;

pub use blocks::KernelBlocks;
pub use real::Real;

use convrfm_core::Shape;

use crate::data::ImageDims;
use faer::MatRef;
use serde::{Deserialize, Serialize};

/// A pixel value: images are `f32` in training; the exact `f64` path and
/// its reference checks may feed `f64` pixels.
pub trait Pixel: Copy + Into<f64> + Send + Sync {}
impl Pixel for f32 {}
impl Pixel for f64 {}

/// Images per block: the SIMD lane count of every inner loop.
pub const LANES: usize = 16;

/// One SIMD-friendly group of per-lane values.
pub type Lanes<R> = [R; LANES];

const INV_PI: f64 = 1.0 / std::f64::consts::PI;

/// Which kernel the readout gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum KernelKind {
    /// Neural tangent kernel (what ConvRFM uses).
    Ntk,
    /// Gaussian-process kernel of the same network.
    Nngp,
}

/// Float type of the kernel computations (solves are always f64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Precision {
    /// Single precision: twice the SIMD width; ~1e-6 relative kernel error.
    F32,
    /// Double precision: the exact path.
    F64,
}

/// The patch metric `S = M^{1/2}` (`d x d`, row-major): each patch row
/// vector `P` is mapped to `u = P S`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    dim: usize,
    rows: Vec<f64>,
}

/// Why a metric cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    /// The entry count is not `dim * dim`.
    #[error("metric has {found} entries, a {dim}x{dim} matrix needs {}", dim * dim)]
    WrongSize {
        /// Patch dimension.
        dim: usize,
        /// Entries given.
        found: usize,
    },
    /// An entry is NaN or infinite.
    #[error("metric entry ({row}, {col}) is not finite")]
    NotFinite {
        /// Row of the entry.
        row: usize,
        /// Column of the entry.
        col: usize,
    },
}

impl Metric {
    /// `S = I`: the plain convolutional kernel (ConvRFM iteration 0).
    pub fn identity(dim: usize) -> Self {
        let mut rows = vec![0.0; dim * dim];
        for i in 0..dim {
            rows[i * dim + i] = 1.0;
        }
        Self { dim, rows }
    }

    /// A metric from its rows; checks size and finiteness.
    pub fn from_rows(dim: usize, rows: Vec<f64>) -> Result<Self, MetricError> {
        if rows.len() != dim * dim {
            return Err(MetricError::WrongSize {
                dim,
                found: rows.len(),
            });
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(MetricError::NotFinite {
                row: i / dim,
                col: i % dim,
            });
        }
        Ok(Self { dim, rows })
    }

    /// Whether `S` is a multiple of the identity (iteration 0's metric: the
    /// plain convolutional kernel, nothing learned).
    pub fn is_scaled_identity(&self) -> bool {
        let d = self.dim;
        let first = self.rows.first().copied().unwrap_or(0.0);
        self.rows
            .iter()
            .enumerate()
            .all(|(i, &v)| v == if i / d == i % d { first } else { 0.0 })
    }

    /// Patch dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The `d x d` entries, row-major.
    pub fn rows(&self) -> &[f64] {
        &self.rows
    }
}

/// What a kernel evaluation needs besides the images.
#[derive(Clone, Debug)]
pub struct Kernel {
    shape: Shape,
    kind: KernelKind,
    metric: Metric,
    u_step: Option<f64>,
}

impl Kernel {
    /// A kernel on images of `shape` (whose depth is the kernel depth).
    ///
    /// # Panics
    /// If the metric's dimension is not the shape's patch dimension (a
    /// programming error: models and trainers build both from one shape).
    pub fn new(shape: Shape, kind: KernelKind, metric: Metric) -> Self {
        assert_eq!(
            metric.dim(),
            shape.patch_dim(),
            "metric dimension does not match the patch dimension"
        );
        Self {
            shape,
            kind,
            metric,
            u_step: None,
        }
    }

    /// The same kernel with every transformed patch value rounded to a grid
    /// of `step`, clamped to `[-127, 127]` steps: the float mirror of the
    /// device's i8 requantisation of `u` (`docs/blob-format.md`), so a
    /// compact model can be evaluated on the host with the device's `u`.
    pub fn with_u_step(mut self, step: f64) -> Self {
        self.u_step = Some(step);
        self
    }

    /// Image shape and depth.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// NTK or NNGP.
    pub fn kind(&self) -> KernelKind {
        self.kind
    }

    /// The patch metric `S`.
    pub fn metric(&self) -> &Metric {
        &self.metric
    }

    /// Per-image maps of one image (`c*H*W` values, channel-major).
    pub fn image_maps<R: Real, P: Pixel>(&self, image: &[P]) -> ImageMaps<R> {
        let s = &self.shape;
        let d = s.patch_dim();
        let (rows, cols) = s.grid(1);
        // U = P S, P the positions x d patch matrix: one product (the
        // dominant cost of a query when d is large, as in Deep ConvRFM).
        let mut patches = vec![0.0f64; rows * cols * d];
        for i in 0..rows {
            for j in 0..cols {
                extract_patch(
                    ImageDims::of(s),
                    s.patch(),
                    image,
                    i,
                    j,
                    &mut patches[(i * cols + j) * d..][..d],
                );
            }
        }
        let product = MatRef::from_row_major_slice(&patches, rows * cols, d)
            * MatRef::from_row_major_slice(&self.metric.rows, d, d);
        let mut u: Vec<R> = (0..rows * cols * d)
            .map(|pk| R::from_f64(product[(pk / d, pk % d)]))
            .collect();
        if let Some(step) = self.u_step {
            for v in &mut u {
                let q = (v.to_f64() / step + 0.5).floor().clamp(-127.0, 127.0);
                *v = R::from_f64(q * step);
            }
        }
        let inv_c = R::from_f64(1.0 / s.channels() as f64);
        let mut q = vec![
            u.chunks_exact(d)
                .map(|up| up.iter().map(|&v| v * v).sum::<R>() * inv_c)
                .collect::<Vec<R>>(),
        ];
        for layer in 2..=s.depth() {
            let (r, c) = s.grid(layer - 1);
            let prev = &q[q.len() - 1];
            let mut next = vec![R::ZERO; s.positions(layer)];
            let mut horizontal = vec![R::ZERO; r * c];
            window_sum(
                prev,
                (r, c),
                s.patch(),
                &mut next,
                &mut horizontal,
                |acc, v| *acc += *v,
            );
            q.push(next);
        }
        let sqrt_q = q
            .iter()
            .map(|m| m.iter().map(|&v| v.sqrt()).collect())
            .collect::<Vec<Vec<R>>>();
        let inv_sqrt_q = sqrt_q
            .iter()
            .map(|m| m.iter().map(|&v| inv_or_zero(v)).collect())
            .collect();
        ImageMaps {
            u,
            q,
            sqrt_q,
            inv_sqrt_q,
        }
    }

    /// Lane-interleaved maps of up to [`LANES`] images; missing lanes are
    /// all-zero images, whose kernel values are exactly 0.
    pub fn block<R: Real, P: Pixel>(&self, images: &[&[P]]) -> Block<R> {
        assert!(images.len() <= LANES);
        let maps: Vec<ImageMaps<R>> = images.iter().map(|im| self.image_maps(im)).collect();
        let interleave = |get: &dyn Fn(&ImageMaps<R>) -> &[R], len: usize| -> Vec<Lanes<R>> {
            let mut out = vec![[R::ZERO; LANES]; len];
            for (lane, m) in maps.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(get(m)) {
                    o[lane] = v;
                }
            }
            out
        };
        let s = &self.shape;
        let u = interleave(&|m| &m.u, s.positions(1) * s.patch_dim());
        let per_layer = |get: &dyn Fn(&ImageMaps<R>, usize) -> &[R]| -> Vec<Vec<Lanes<R>>> {
            (0..s.depth())
                .map(|l| interleave(&|m| get(m, l), s.positions(l + 1)))
                .collect()
        };
        let q = per_layer(&|m, l| &m.q[l]);
        let sqrt_q = per_layer(&|m, l| &m.sqrt_q[l]);
        let inv_sqrt_q = per_layer(&|m, l| &m.inv_sqrt_q[l]);
        Block {
            len: images.len(),
            u,
            q,
            sqrt_q,
            inv_sqrt_q,
        }
    }

    /// Kernel values between image `a` and every lane of `b`: `(NTK, NNGP)`.
    ///
    /// `same[lane]` marks lanes holding an image equal to `a` (self-pair
    /// convention).
    /// With a `tape`, also records what [`Kernel::backward`] needs.
    pub fn forward<R: Real>(
        &self,
        a: &ImageMaps<R>,
        b: &Block<R>,
        same: &[bool; LANES],
        work: &mut Workspace<R>,
        mut tape: Option<&mut Tape<R>>,
    ) -> (Lanes<R>, Lanes<R>) {
        let s = &self.shape;
        let d = s.patch_dim();
        let inv_c = R::from_f64(1.0 / s.channels() as f64);
        let Workspace {
            k,
            theta,
            tmp,
            horizontal,
            ..
        } = work;
        // Layer 1: same-position patch products.
        let n1 = s.positions(1);
        for (p, (kp, tp)) in k[..n1].iter_mut().zip(&mut theta[..n1]).enumerate() {
            if a.q[0][p] == R::ZERO {
                // All-zero query patch: K1 = 0 for every lane.
                *kp = [R::ZERO; LANES];
                *tp = [R::ZERO; LANES];
                continue;
            }
            let mut acc = [R::ZERO; LANES];
            for (&ua, ub) in a.u[p * d..][..d].iter().zip(&b.u[p * d..][..d]) {
                for (acc, &ub) in acc.iter_mut().zip(ub) {
                    *acc += ua * ub;
                }
            }
            for (kv, acc) in kp.iter_mut().zip(acc) {
                *kv = acc * inv_c;
            }
            *tp = *kp;
        }
        for layer in 1..=s.depth() {
            let n = s.positions(layer);
            let l = layer - 1;
            relu_step(
                &mut k[..n],
                &mut theta[..n],
                Variances {
                    q: &a.q[l],
                    sqrt: &a.sqrt_q[l],
                    inv_sqrt: &a.inv_sqrt_q[l],
                },
                Variances {
                    q: &b.q[l],
                    sqrt: &b.sqrt_q[l],
                    inv_sqrt: &b.inv_sqrt_q[l],
                },
                same,
                tape.as_deref_mut().map(|t| &mut t.layers[l]),
            );
            if layer < s.depth() {
                let (r, c) = s.grid(layer);
                let m = s.positions(layer + 1);
                // Theta^{l+1} = wsum(Thetahat) + K^{l+1}, K^{l+1} = wsum(Khat).
                window_sum(&theta[..n], (r, c), s.patch(), tmp, horizontal, add_lanes);
                theta[..m].copy_from_slice(&tmp[..m]);
                window_sum(&k[..n], (r, c), s.patch(), tmp, horizontal, add_lanes);
                k[..m].copy_from_slice(&tmp[..m]);
                for (t, kv) in theta[..m].iter_mut().zip(&k[..m]) {
                    add_lanes(t, kv);
                }
            }
        }
        let n = s.positions(s.depth());
        let inv_n = R::from_f64(1.0 / n as f64);
        let mut khat_sum = [R::ZERO; LANES];
        let mut theta_sum = [R::ZERO; LANES];
        for (kv, tv) in k[..n].iter().zip(&theta[..n]) {
            add_lanes(&mut khat_sum, kv);
            add_lanes(&mut theta_sum, tv);
        }
        let mut ntk = [R::ZERO; LANES];
        let mut nngp = [R::ZERO; LANES];
        for lane in 0..LANES {
            nngp[lane] = khat_sum[lane] * inv_n;
            ntk[lane] = theta_sum[lane] * inv_n + nngp[lane];
        }
        (ntk, nngp)
    }

    /// Adds, for each class `o`, the gradient of
    /// `f_o(a) = sum_lanes weights[o][lane] * kernel(a, lane)` with respect to
    /// the transformed patches `u_p(a)` and maps `q^l(a)` into `grad`.
    ///
    /// `tape` must come from [`Kernel::forward`] on the same pair.
    /// Call [`Gradient::finish`] after the last block to get patch gradients.
    pub fn backward<R: Real>(
        &self,
        b: &Block<R>,
        weights: &[Lanes<R>],
        tape: &Tape<R>,
        work: &mut Workspace<R>,
        grad: &mut Gradient<R>,
    ) {
        let s = &self.shape;
        let d = s.patch_dim();
        let depth = s.depth();
        let last = s.positions(depth);
        let inv_n = R::from_f64(1.0 / last as f64);
        let Workspace {
            k: dk,
            theta: dth,
            tmp,
            horizontal,
            dq,
        } = work;
        // The backward pass is linear in its seed and all classes share the
        // pair's Jacobian: propagate d kernel / d (u, q) once per pair, then
        // weight it per class at the end.
        dk[..last].fill([inv_n; LANES]);
        let theta_seed = match self.kind {
            KernelKind::Ntk => inv_n,
            KernelKind::Nngp => R::ZERO,
        };
        dth[..last].fill([theta_seed; LANES]);
        for layer in (1..=depth).rev() {
            let n = s.positions(layer);
            let t = &tape.layers[layer - 1];
            let dq = &mut dq[layer - 1];
            for p in 0..n {
                let (kd, tk, dqp) = (&mut dk[p], &mut dth[p], &mut dq[p]);
                for lane in 0..LANES {
                    let (dkh, dthh) = (kd[lane], tk[lane]);
                    let kdot = t.kdot[p][lane];
                    let dtheta = dthh * kdot;
                    // dK (+ dTheta: Theta of every layer contains + K).
                    kd[lane] = dkh * kdot + dthh * t.dkdot_dk[p][lane] + dtheta;
                    tk[lane] = dtheta;
                    dqp[lane] = dkh * t.dkhat_dq[p][lane] + dthh * t.dkdot_dq[p][lane];
                }
            }
            if layer > 1 {
                let (r, c) = s.grid(layer - 1);
                window_adjoint(&dk[..n], (r, c), s.patch(), tmp, horizontal, add_lanes);
                dk[..r * c].copy_from_slice(&tmp[..r * c]);
                window_adjoint(&dth[..n], (r, c), s.patch(), tmp, horizontal, add_lanes);
                dth[..r * c].copy_from_slice(&tmp[..r * c]);
            }
        }
        for (o, w) in weights.iter().enumerate() {
            for (acc_l, dq_l) in grad.dq[o].iter_mut().zip(dq.iter()) {
                for (acc, v) in acc_l.iter_mut().zip(dq_l) {
                    for lane in 0..LANES {
                        acc[lane] += w[lane] * v[lane];
                    }
                }
            }
        }
        // dK1 -> d u(a): sum over lanes of w dK1 u(b) (the 1/c comes in
        // `finish`). Classes innermost, so each u(b) value is loaded once:
        // with d = 576 (Deep ConvRFM) the block's u is tens of MB.
        for p in 0..s.positions(1) {
            for (g, w) in grad.weighted.iter_mut().zip(weights) {
                for lane in 0..LANES {
                    g[lane] = dk[p][lane] * w[lane];
                }
            }
            for (k, ub) in b.u[p * d..][..d].iter().enumerate() {
                for (du, g) in grad.du.iter_mut().zip(&grad.weighted) {
                    let acc = &mut du[p * d + k];
                    for lane in 0..LANES {
                        acc[lane] += g[lane] * ub[lane];
                    }
                }
            }
        }
    }
}

/// Copies the `side x side` patch at grid position `(i, j)` of a
/// `(channels, height, width)` image in the reference order: channel
/// slowest, then row offset, then column offset.
pub(crate) fn extract_patch<R: Real, P: Pixel>(
    dims: ImageDims,
    side: usize,
    image: &[P],
    i: usize,
    j: usize,
    patch: &mut [R],
) {
    let ImageDims {
        channels,
        height: h,
        width: w,
    } = dims;
    let mut k = 0;
    for ch in 0..channels {
        for a in 0..side {
            let row = &image[ch * h * w + (i + a) * w + j..][..side];
            for &v in row {
                patch[k] = R::from_f64(v.into());
                k += 1;
            }
        }
    }
}

/// The adjoint of [`extract_patch`]: adds the `side x side` `patch` onto
/// the pixels of `image` it would have been read from.
pub(crate) fn add_patch(
    dims: ImageDims,
    side: usize,
    patch: &[f64],
    (i, j): (usize, usize),
    image: &mut [f64],
) {
    let ImageDims {
        channels,
        height: h,
        width: w,
    } = dims;
    let mut k = 0;
    for ch in 0..channels {
        for a in 0..side {
            let row = &mut image[ch * h * w + (i + a) * w + j..][..side];
            for v in row {
                *v += patch[k];
                k += 1;
            }
        }
    }
}

fn inv_or_zero<R: Real>(v: R) -> R {
    if v > R::ZERO { R::ONE / v } else { R::ZERO }
}

fn add_lanes<R: Real>(acc: &mut Lanes<R>, v: &Lanes<R>) {
    for (a, &b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

/// `dst[i][j] = sum of src over the side x side window at (i, j)` (VALID),
/// done as a row pass into `horizontal` then a column pass, each adding
/// left to right (top to bottom). `src` is `rows x cols`; `horizontal`
/// holds at least `rows * (cols - side + 1)` values.
fn window_sum<T: Copy>(
    src: &[T],
    grid: (usize, usize),
    side: usize,
    dst: &mut [T],
    horizontal: &mut [T],
    add: impl Fn(&mut T, &T),
) {
    // The default side gets its own copy with the window length a
    // constant, so its short loops unroll as before patch sizes were free.
    match side {
        3 => window_sum_of::<3, T>(src, grid, 3, dst, horizontal, add),
        _ => window_sum_of::<0, T>(src, grid, side, dst, horizontal, add),
    }
}

/// [`window_sum`] with the side `SIDE` when it is not 0, else `side`.
fn window_sum_of<const SIDE: usize, T: Copy>(
    src: &[T],
    (rows, cols): (usize, usize),
    side: usize,
    dst: &mut [T],
    horizontal: &mut [T],
    add: impl Fn(&mut T, &T),
) {
    let side = if SIDE == 0 { side } else { SIDE };
    let (orows, ocols) = (rows + 1 - side, cols + 1 - side);
    for i in 0..rows {
        let row = &src[i * cols..][..cols];
        for (j, h) in horizontal[i * ocols..][..ocols].iter_mut().enumerate() {
            *h = row[j];
            for v in &row[j + 1..j + side] {
                add(h, v);
            }
        }
    }
    for i in 0..orows {
        for (j, o) in dst[i * ocols..][..ocols].iter_mut().enumerate() {
            *o = horizontal[i * ocols + j];
            for a in 1..side {
                add(o, &horizontal[(i + a) * ocols + j]);
            }
        }
    }
}

/// Adjoint of [`window_sum`]: every output's value is added back to its
/// side x side window (column pass, then row pass, each the adjoint of the
/// forward pass). `dst` is the `rows x cols` input grid; it is overwritten.
/// `vertical` holds at least `rows * (cols - side + 1)` values.
fn window_adjoint<T: Copy>(
    src: &[T],
    (rows, cols): (usize, usize),
    side: usize,
    dst: &mut [T],
    vertical: &mut [T],
    add: impl Fn(&mut T, &T),
) {
    let (orows, ocols) = (rows + 1 - side, cols + 1 - side);
    let vertical = &mut vertical[..rows * ocols];
    for i in 0..rows {
        for j in 0..ocols {
            // Rows i-(side-1)..=i of the output that cover input row i.
            let lo = i.saturating_sub(side - 1);
            let hi = i.min(orows - 1);
            let mut acc = src[lo * ocols + j];
            for ii in lo + 1..=hi {
                add(&mut acc, &src[ii * ocols + j]);
            }
            vertical[i * ocols + j] = acc;
        }
    }
    for i in 0..rows {
        let row = &vertical[i * ocols..][..ocols];
        for (j, o) in dst[i * cols..][..cols].iter_mut().enumerate() {
            let lo = j.saturating_sub(side - 1);
            let hi = j.min(ocols - 1);
            let mut acc = row[lo];
            for v in &row[lo + 1..=hi] {
                add(&mut acc, v);
            }
            *o = acc;
        }
    }
}

/// One side's variance maps on one layer: `q`, `sqrt(q)`, `1/sqrt(q)` (0
/// where `q = 0`).
struct Variances<'a, T> {
    q: &'a [T],
    sqrt: &'a [T],
    inv_sqrt: &'a [T],
}

/// The ReLU step on one layer, in place: `K -> Khat`, `Theta -> Thetahat`.
fn relu_step<R: Real>(
    k: &mut [Lanes<R>],
    theta: &mut [Lanes<R>],
    a: Variances<'_, R>,
    b: Variances<'_, Lanes<R>>,
    force: &[bool; LANES],
    mut tape: Option<&mut LayerTape<R>>,
) {
    let inv_pi = R::from_f64(INV_PI);
    let half_inv_pi = R::from_f64(0.5 * INV_PI);
    let live_min = R::from_f64(1e-30);
    let any_forced = force.iter().any(|&f| f);
    for p in 0..k.len() {
        let (sa, ia) = (a.sqrt[p], a.inv_sqrt[p]);
        if sa == R::ZERO && tape.is_none() {
            // q_a = 0 here: by induction over layers K = Theta = 0 (every
            // window below is zero too), so Khat = Thetahat = 0. Skipping
            // is exact; Fashion-MNIST backgrounds make this common.
            k[p] = [R::ZERO; LANES];
            theta[p] = [R::ZERO; LANES];
            continue;
        }
        let mut kdot_l = [R::ZERO; LANES];
        let mut kpre = [R::ZERO; LANES];
        let mut theta_pre = [R::ZERO; LANES];
        for lane in 0..LANES {
            let kv = k[p][lane];
            // No clamp to [-1, 1]: a rounding excess is harmless below
            // (`arccos` saturates, `1 - rho^2` is floored at 0).
            let rho = kv * ia * b.inv_sqrt[p][lane];
            let rho = if any_forced && force[lane] && rho > R::ZERO {
                R::ONE
            } else {
                rho
            };
            let kdot = R::ONE - rho.arccos() * inv_pi;
            let sin = (R::ONE - rho * rho).max(R::ZERO).sqrt();
            let scale = sa * b.sqrt[p][lane];
            k[p][lane] = scale * (sin * inv_pi + kdot * rho);
            let th = theta[p][lane];
            theta[p][lane] = th * kdot;
            kdot_l[lane] = kdot;
            kpre[lane] = kv;
            theta_pre[lane] = th;
        }
        if let Some(t) = tape.as_deref_mut() {
            // Partials of the reference, with its r = sqrt(q_a q_b - K^2)
            // (the gradient is 1/r-sensitive near collinear patches, so r is
            // formed exactly as there). All r-terms are 0 where r = 0 ("not
            // live", or a self-pair): then dKhat/dK = Kdot only.
            let qa = a.q[p];
            let qa_inv = ia * ia;
            for lane in 0..LANES {
                let (kv, th) = (kpre[lane], theta_pre[lane]);
                let r2 = qa * b.q[p][lane] - kv * kv;
                let live = r2 > live_min && !force[lane];
                let r = r2.max(R::ZERO).sqrt();
                let rinv = if live { R::ONE / r } else { R::ZERO };
                let r = if live { r } else { R::ZERO };
                t.k_pre[p][lane] = kv;
                t.theta_pre[p][lane] = th;
                t.k_post[p][lane] = k[p][lane];
                t.kdot[p][lane] = kdot_l[lane];
                t.dkdot_dk[p][lane] = th * inv_pi * rinv;
                t.dkhat_dq[p][lane] = r * half_inv_pi * qa_inv;
                t.dkdot_dq[p][lane] = -th * kv * half_inv_pi * rinv * qa_inv;
            }
        }
    }
}

/// Per-image maps of the query side: transformed patches and `q` maps.
#[derive(Clone, Debug)]
pub struct ImageMaps<R> {
    /// `u_p = P_p S`, positions x d.
    u: Vec<R>,
    /// `q^l` per layer.
    q: Vec<Vec<R>>,
    /// `sqrt(q^l)` per layer.
    sqrt_q: Vec<Vec<R>>,
    /// `1/sqrt(q^l)` per layer, 0 where `q = 0`.
    inv_sqrt_q: Vec<Vec<R>>,
}

impl<R: Real> ImageMaps<R> {
    /// `q^l` of this image (layer 1-based), the variance map of that layer.
    pub fn q(&self, layer: usize) -> Vec<f64> {
        self.q[layer - 1].iter().map(|v| v.to_f64()).collect()
    }
}

/// Up to [`LANES`] training-side images, lane-interleaved.
#[derive(Clone, Debug)]
pub struct Block<R> {
    len: usize,
    u: Vec<Lanes<R>>,
    q: Vec<Vec<Lanes<R>>>,
    sqrt_q: Vec<Vec<Lanes<R>>>,
    inv_sqrt_q: Vec<Vec<Lanes<R>>>,
}

impl<R> Block<R> {
    /// Number of real images (the remaining lanes are padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the block holds no image.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reusable per-thread buffers for [`Kernel::forward`] / [`Kernel::backward`].
pub struct Workspace<R> {
    k: Vec<Lanes<R>>,
    theta: Vec<Lanes<R>>,
    tmp: Vec<Lanes<R>>,
    horizontal: Vec<Lanes<R>>,
    /// Per-layer `d kernel / d q_a` of one pair (backward only).
    dq: Vec<Vec<Lanes<R>>>,
}

impl<R: Real> Workspace<R> {
    /// Buffers sized for `shape`.
    pub fn new(shape: &Shape) -> Self {
        let n = shape.positions(1);
        Self {
            k: vec![[R::ZERO; LANES]; n],
            theta: vec![[R::ZERO; LANES]; n],
            tmp: vec![[R::ZERO; LANES]; n],
            horizontal: vec![[R::ZERO; LANES]; n],
            dq: (1..=shape.depth())
                .map(|l| vec![[R::ZERO; LANES]; shape.positions(l)])
                .collect(),
        }
    }
}

/// Per-layer maps and partial derivatives recorded by a forward pass.
struct LayerTape<R> {
    k_pre: Vec<Lanes<R>>,
    theta_pre: Vec<Lanes<R>>,
    k_post: Vec<Lanes<R>>,
    kdot: Vec<Lanes<R>>,
    /// `Theta * dKdot/dK`.
    dkdot_dk: Vec<Lanes<R>>,
    /// `dKhat/dq_a`.
    dkhat_dq: Vec<Lanes<R>>,
    /// `Theta * dKdot/dq_a`.
    dkdot_dq: Vec<Lanes<R>>,
}

/// What [`Kernel::backward`] needs from the forward pass of one block.
pub struct Tape<R> {
    layers: Vec<LayerTape<R>>,
}

impl<R: Real> Tape<R> {
    /// Tape sized for `shape`.
    pub fn new(shape: &Shape) -> Self {
        let layers = (1..=shape.depth())
            .map(|l| {
                let n = shape.positions(l);
                let z = || vec![[R::ZERO; LANES]; n];
                LayerTape {
                    k_pre: z(),
                    theta_pre: z(),
                    k_post: z(),
                    kdot: z(),
                    dkdot_dk: z(),
                    dkhat_dq: z(),
                    dkdot_dq: z(),
                }
            })
            .collect();
        Self { layers }
    }

    /// The recorded maps of one lane, layer by layer (for inspection and
    /// for checking the recursion against reference traces).
    pub fn trace(&self, lane: usize) -> Vec<LayerTrace> {
        let pick = |m: &[Lanes<R>]| m.iter().map(|v| v[lane].to_f64()).collect::<Vec<f64>>();
        self.layers
            .iter()
            .map(|t| {
                let kdot = pick(&t.kdot);
                let theta_pre = pick(&t.theta_pre);
                LayerTrace {
                    k_pre: pick(&t.k_pre),
                    k_post: pick(&t.k_post),
                    theta_post: theta_pre.iter().zip(&kdot).map(|(t, k)| t * k).collect(),
                    theta_pre,
                    kdot,
                }
            })
            .collect()
    }
}

/// One layer's maps for one image pair, row-major over that layer's grid.
#[derive(Clone, Debug)]
pub struct LayerTrace {
    /// `K` before the ReLU step.
    pub k_pre: Vec<f64>,
    /// `Theta` before the ReLU step.
    pub theta_pre: Vec<f64>,
    /// `Khat`.
    pub k_post: Vec<f64>,
    /// `Kdot`.
    pub kdot: Vec<f64>,
    /// `Thetahat`.
    pub theta_post: Vec<f64>,
}

/// Gradient accumulators of one query image, per class.
pub struct Gradient<R> {
    /// `d f_o / d u(a)` from the `K1` terms, per lane; positions x d.
    du: Vec<Vec<Lanes<R>>>,
    /// `d f_o / d q^l(a)`, per lane and layer.
    dq: Vec<Vec<Vec<Lanes<R>>>>,
    /// Per-class weighted `dK1` of one position (backward's scratch).
    weighted: Vec<Lanes<R>>,
}

impl<R: Real> Gradient<R> {
    /// Zeroed accumulators for `classes` outputs.
    pub fn new(shape: &Shape, classes: usize) -> Self {
        let d = shape.patch_dim();
        Self {
            du: vec![vec![[R::ZERO; LANES]; shape.positions(1) * d]; classes],
            dq: vec![
                (1..=shape.depth())
                    .map(|l| vec![[R::ZERO; LANES]; shape.positions(l)])
                    .collect();
                classes
            ],
            weighted: vec![[R::ZERO; LANES]; classes],
        }
    }

    /// Patch gradients `g[o][p] = d f_o / d P_p(a)` (classes x positions x d,
    /// in f64), chaining the `q` maps down to layer 1 and `u = P S` back to
    /// the untransformed patches.
    pub fn finish(&self, kernel: &Kernel, a: &ImageMaps<R>) -> Vec<f64> {
        let s = &kernel.shape;
        let d = s.patch_dim();
        let n1 = s.positions(1);
        let inv_c = 1.0 / s.channels() as f64;
        // Rows of dL/du per (class, position); the patch gradients are then
        // one product with the metric, g = du S^T.
        let mut dus = Vec::with_capacity(self.du.len() * n1 * d);
        for (du_o, dq_o) in self.du.iter().zip(&self.dq) {
            // Reduce lanes, then chain dq^l -> dq^{l-1} (q^l = wsum q^{l-1}).
            let mut dq: Vec<f64> = lane_sums(&dq_o[s.depth() - 1]);
            for layer in (1..s.depth()).rev() {
                let (r, c) = s.grid(layer);
                let mut below = vec![0.0; r * c];
                let mut vertical = vec![0.0; r * c];
                window_adjoint(
                    &dq,
                    (r, c),
                    s.patch(),
                    &mut below,
                    &mut vertical,
                    |acc, v| *acc += *v,
                );
                for (b, own) in below.iter_mut().zip(lane_sums(&dq_o[layer - 1])) {
                    *b += own;
                }
                dq = below;
            }
            let du = lane_sums(du_o);
            for p in 0..n1 {
                dus.extend(
                    (0..d).map(|k| (du[p * d + k] + 2.0 * dq[p] * a.u[p * d + k].to_f64()) * inv_c),
                );
            }
        }
        let rows = self.du.len() * n1;
        let g = MatRef::from_row_major_slice(&dus, rows, d)
            * MatRef::from_row_major_slice(kernel.metric.rows(), d, d).transpose();
        let mut out = Vec::with_capacity(rows * d);
        for i in 0..rows {
            out.extend((0..d).map(|j| g[(i, j)]));
        }
        out
    }
}

fn lane_sums<R: Real>(v: &[Lanes<R>]) -> Vec<f64> {
    v.iter()
        .map(|l| l.iter().map(|x| x.to_f64()).sum())
        .collect()
}
