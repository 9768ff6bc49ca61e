//! Integer inference: the kernel between a query image and each centre,
//! accumulated into per-class scores, in a caller-provided scratch buffer.
//!
//! # What is computed
//!
//! For the query `z` and each centre `x_i` (exact semantics in
//! `docs/blob-format.md`, "Integer kernel"):
//!
//! 1. layer 1, per grid position `p`: `uq_j = requantise(P_p . W_j)` for both
//!    images, `K1 = sum_j uq(z)_j uq(x)_j`, `q1 = sum_j uq_j^2`,
//!    `Theta1 = K1`;
//! 2. the ReLU step ([`crate::fixed::relu_step`]) at every layer;
//! 3. layers `l >= 2`: 3x3 VALID window sums of `Khat`, `q`, and
//!    `Theta = sum Thetahat + K`;
//! 4. readout: NTK = `sum (Thetahat^L + Khat^L)`, NNGP = `sum Khat^L` over
//!    the final grid (a sum, not a mean: a constant factor);
//! 5. `score_o = sum_i alpha[i][o] * kernel(z, x_i)`, i64, saturating;
//!    the class is the argmax, lowest index on ties.
//!
//! # Where the time goes
//!
//! Per centre, every grid position of every layer: layer 1's projections,
//! the ReLU step, the window sums. Each hot loop is its own small function
//! (`gray4_pass`, `accumulate_pairs`, `relu_layer1`, `relu_upper`,
//! `push_row`, `column_sums`) so that its values stay in registers; 4-bit
//! grayscale centres are read straight from the blob, two positions per
//! multiply; positions under a blank query field skip the ReLU step (it
//! would return 0 there). `scripts/firmware-profile.sh` counts the
//! instructions each one takes on the Cortex-M targets.
//!
//! # Memory
//!
//! The query's maps (its `uq` and `q` at layer 1) are computed once per
//! prediction. A centre's maps are never stored whole: its layer-1 row `i`
//! is computed, pushed through the ReLU step and, as horizontal 3-sums,
//! into a 3-row ring, and as soon as a layer has three rows the next layer
//! computes its row, and so on up to the readout. So scratch is
//! `O(positions * r)` for the query plus `O(width * depth)` for the rings,
//! independent of `m`. The query's `q` at later layers (window sums of its
//! `q^1`, the same for every centre) is stored when the whole scratch stays
//! within [`QZ_STORE_LIMIT`]; otherwise it rides in the rings beside the
//! centre's maps, recomputed per centre, 4 bytes per position less RAM.
//! Both layouts compute the same integers. The layout table is in
//! `docs/blob-format.md`, section 8.

use core::fmt;

use crate::KernelKind;
use crate::blob::{Model, copy, unpack};
use crate::fixed::{SMALL_MULT_LIMIT, relu_step_unclamped, requantise, requantise_small};
use crate::scratch::{CELL, Dims, layout};
use crate::shape::PATCH;

/// The outcome of one prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Prediction {
    /// The predicted class (argmax of the scores, lowest index on ties).
    pub class: u16,
    /// Its integer score (real score = `score * alpha_scale`).
    pub score: i64,
    /// Winning score minus the runner-up's (>= 0, saturating): a confidence
    /// margin in the same units.
    pub margin: i64,
}

/// Why a prediction could not run. Only caller inputs can be wrong: the
/// model itself was validated by `Model::from_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PredictError {
    /// The image does not have `c * H * W` pixels.
    ImageLength {
        /// Pixels the model expects.
        expected: usize,
        /// Pixels given.
        got: usize,
    },
    /// The scratch buffer is shorter than `Model::scratch_len`.
    ScratchTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The score slice is shorter than the class count.
    ScoresTooShort {
        /// Entries needed.
        needed: usize,
        /// Entries given.
        got: usize,
    },
    /// A centre index past the last centre.
    NoSuchCentre {
        /// Index asked for.
        index: usize,
        /// Number of centres.
        centres: usize,
    },
}

impl fmt::Display for PredictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ImageLength { expected, got } => {
                write!(f, "image has {got} pixels, the model expects {expected}")
            }
            Self::ScratchTooSmall { needed, got } => {
                write!(f, "scratch has {got} bytes, prediction needs {needed}")
            }
            Self::ScoresTooShort { needed, got } => {
                write!(
                    f,
                    "score slice has {got} entries, the model has {needed} classes"
                )
            }
            Self::NoSuchCentre { index, centres } => {
                write!(f, "centre {index} does not exist (the model has {centres})")
            }
        }
    }
}

impl core::error::Error for PredictError {}

/// Deepest kernel a valid blob has (`kernel_bounds` rejects depth 6 and
/// more at any rank).
const MAX_DEPTH: usize = 5;

/// Scratch split into its parts.
struct Work<'s> {
    /// The image rows `i..i + 3` of every channel, unpacked to 8 bits: per
    /// channel a ring of 3 rows, image row `y` in slot `y % 3`.
    band: &'s mut [u8],
    /// The query's `uq` map (i8), filter-major: `P_1` bytes per filter.
    uqz: &'s mut [u8],
    /// The query's `q^l` maps, layer after layer (each `<= i32::MAX`); only
    /// `q^1` when the later ones ride in the rings.
    qz: &'s mut [i32],
    /// A row of the centre's layer-1 projections (one filter; for 4-bit
    /// grayscale centres two filters' pair words).
    u: &'s mut [i32],
    /// The row being computed, [`CELL`] words per column.
    cells: &'s mut [i32],
    /// Per layer below the top, 3 ring rows of horizontal sums of cells.
    rings: &'s mut [i32],
    /// Whether the query's later-layer `q_z` rides in the rings.
    carried: bool,
    /// Word offsets, by layer, of the rings in `rings` (ring `l` of
    /// layers `1..depth` spans `ring_at[l]..ring_at[l + 1]`) and of the
    /// stored query maps in `qz`: worked out once per prediction.
    ring_at: [usize; MAX_DEPTH + 2],
    q_at: [usize; MAX_DEPTH + 2],
    /// Grayscale models (`r <= d = 9`): each filter's 9 weights, read once
    /// per prediction.
    weights: [[i8; PATCH * PATCH]; PATCH * PATCH],
}

/// The ring of layer `layer` (`1..depth`) in `rings` (`ring_at`: the
/// rings' offsets, see `Work`): 3 rows of horizontal sums, a cell per
/// column of layer `layer + 1`.
fn ring_of<'r>(rings: &'r mut [i32], ring_at: &[usize], layer: usize) -> &'r mut [i32] {
    let at = |l: usize| ring_at.get(l).copied().unwrap_or(0);
    let (start, end) = (at(layer), at(layer.saturating_add(1)));
    rings.get_mut(start..end).unwrap_or(&mut [])
}

impl Model<'_> {
    /// Classifies `image` (`c * H * W` u8 pixels, channel-major, row-major
    /// within a channel) using `scratch` (at least [`Model::scratch_len`]
    /// bytes; contents on entry do not matter).
    pub fn predict(&self, image: &[u8], scratch: &mut [u8]) -> Result<Prediction, PredictError> {
        self.check_inputs(image, scratch)?;
        let (acc, rest) = scratch.split_at_mut(self.classes.saturating_mul(8).min(scratch.len()));
        Ok(self.score(image, rest, &mut ScoreBytes(acc)))
    }

    /// Like [`Model::predict`], and also writes every class's score into
    /// `scores[..classes]` (`scores` may be longer; the rest is untouched).
    pub fn predict_scores(
        &self,
        image: &[u8],
        scratch: &mut [u8],
        scores: &mut [i64],
    ) -> Result<Prediction, PredictError> {
        self.check_buffers(image.len(), scratch.len(), scores.len())?;
        // Checked just above: `scores` has at least `classes` entries.
        let mut scores = scores.get_mut(..self.classes).unwrap_or(&mut []);
        let (_, rest) = scratch.split_at_mut(self.classes.saturating_mul(8).min(scratch.len()));
        Ok(self.score(image, rest, &mut scores))
    }

    /// The one scoring loop of both predictions: zero the class scores,
    /// add every centre's `alpha`-weighted kernel (saturating), argmax.
    fn score(&self, image: &[u8], rest: &mut [u8], scores: &mut impl Scores) -> Prediction {
        scores.zero();
        self.each_kernel(image, rest, |i, k| {
            for o in 0..self.classes {
                scores.add(o, self.weighted(i, o, k));
            }
        });
        argmax(&mut (0..self.classes).map(|o| scores.get(o)))
    }

    /// The integer kernel between `image` and centre `centre` (NTK or NNGP
    /// as the model says), exactly as `predict` computes it: for checking
    /// the device arithmetic against the float kernel on the host.
    pub fn kernel_value(
        &self,
        image: &[u8],
        centre: usize,
        scratch: &mut [u8],
    ) -> Result<i64, PredictError> {
        if centre >= self.centres {
            return Err(PredictError::NoSuchCentre {
                index: centre,
                centres: self.centres,
            });
        }
        self.check_inputs(image, scratch)?;
        let (_, rest) = scratch.split_at_mut(self.classes.saturating_mul(8).min(scratch.len()));
        let mut work = self.carve(rest);
        self.prepare_query(image, &mut work);
        Ok(self.pair_kernel(centre, &mut work))
    }

    /// The buffer checks every prediction makes, by length: an image of
    /// exactly `c * H * W` bytes, at least [`Model::scratch_len`] scratch
    /// bytes, at least [`Model::classes`] score slots. Firmware with
    /// `static` buffers checks them once with this at start-up.
    pub fn check_buffers(
        &self,
        image: usize,
        scratch: usize,
        scores: usize,
    ) -> Result<(), PredictError> {
        let expected = self.shape.pixels();
        if image != expected {
            return Err(PredictError::ImageLength {
                expected,
                got: image,
            });
        }
        if scratch < self.scratch_len {
            return Err(PredictError::ScratchTooSmall {
                needed: self.scratch_len,
                got: scratch,
            });
        }
        if scores < self.classes {
            return Err(PredictError::ScoresTooShort {
                needed: self.classes,
                got: scores,
            });
        }
        Ok(())
    }

    fn check_inputs(&self, image: &[u8], scratch: &[u8]) -> Result<(), PredictError> {
        self.check_buffers(image.len(), scratch.len(), self.classes)
    }

    /// `alpha[i][o] * k`, saturating.
    #[inline]
    fn weighted(&self, i: usize, o: usize, k: i64) -> i64 {
        i64::from(self.alpha(i, o).unwrap_or(0)).saturating_mul(k)
    }

    /// Prepares the query once, then calls `each(i, kernel(z, x_i))` for
    /// every centre in index order.
    fn each_kernel(&self, image: &[u8], rest: &mut [u8], mut each: impl FnMut(usize, i64)) {
        let mut work = self.carve(rest);
        self.prepare_query(image, &mut work);
        for i in 0..self.centres {
            each(i, self.pair_kernel(i, &mut work));
        }
    }

    /// Splits the scratch after the score accumulators into its parts. The
    /// caller checked its length against `scratch_len`, whose computation
    /// (checked, in `from_bytes`) bounds every product here.
    #[allow(clippy::arithmetic_side_effects)] // bounded by scratch_len, see above
    fn carve<'s>(&self, rest: &'s mut [u8]) -> Work<'s> {
        let s = &self.shape;
        let (band, rest) = rest.split_at_mut((s.channels() * PATCH * s.width()).min(rest.len()));
        let (uqz, rest) = rest.split_at_mut((s.positions(1) * self.rank).min(rest.len()));
        let (_, words, _) = bytemuck::pod_align_to_mut::<u8, i32>(rest);
        let carried = self.carries_qz();
        let q_len: usize = if carried {
            s.positions(1)
        } else {
            (1..=s.depth()).map(|l| s.positions(l)).sum()
        };
        let (qz, words) = words.split_at_mut(q_len.min(words.len()));
        let cols = s.grid(1).1;
        let (u, words) = words.split_at_mut(cols.min(words.len()));
        let (cells, rings) = words.split_at_mut((CELL * cols).min(words.len()));
        let (mut ring_at, mut q_at) = ([0; MAX_DEPTH + 2], [0; MAX_DEPTH + 2]);
        for layer in 1..=s.depth().min(MAX_DEPTH) {
            let (r, q) = (
                ring_at.get(layer).copied().unwrap_or(0),
                q_at.get(layer).copied().unwrap_or(0),
            );
            if let Some(next) = ring_at.get_mut(layer + 1) {
                *next = r + 3 * CELL * s.grid(layer + 1).1;
            }
            if let Some(next) = q_at.get_mut(layer + 1) {
                *next = q + s.positions(layer);
            }
        }
        let mut weights = [[0i8; PATCH * PATCH]; PATCH * PATCH];
        if s.channels() == 1 {
            for (k, wk) in weights.iter_mut().enumerate().take(self.rank) {
                for (d, &src) in wk.iter_mut().zip(self.w.iter().skip(k).step_by(self.rank)) {
                    *d = src as i8;
                }
            }
        }
        Work {
            band,
            uqz,
            qz,
            u,
            cells,
            rings,
            carried,
            ring_at,
            q_at,
            weights,
        }
    }

    /// Whether this model's scratch layout carries the query's later-layer
    /// `q_z` in the rings ([`layout`]).
    fn carries_qz(&self) -> bool {
        layout(Dims::of(self.shape, self.rank, self.classes)).is_some_and(|(_, carried)| carried)
    }

    /// Makes the band hold image rows `row..row + 3` of every channel of
    /// `img` (packed at `bits`), unpacking only the rows not there yet.
    #[allow(clippy::arithmetic_side_effects)] // 3 W <= c H W (Shape::new)
    fn load_band(&self, img: &[u8], bits: u8, row: usize, band: &mut [u8]) {
        let w = self.shape.width();
        let first = if row == 0 { 0 } else { PATCH - 1 };
        for (ch, slots) in band.chunks_exact_mut((PATCH * w).max(1)).enumerate() {
            for y in row.saturating_add(first)..row.saturating_add(PATCH) {
                if let Some(dst) = slots.chunks_exact_mut(w.max(1)).nth(y % PATCH) {
                    self.unpack_row(img, bits, ch, y, dst);
                }
            }
        }
    }

    /// Unpacks row `y` of channel `ch` of `img` into `dst` (`W` bytes).
    /// 4-bit pixels come in pairs per byte, low nibble first; a row of a
    /// 4-bit image starts on an odd nibble when `H W` or `W` is odd.
    #[allow(clippy::arithmetic_side_effects)] // y < H, ch < c: inside c H W (Shape::new)
    fn unpack_row(&self, img: &[u8], bits: u8, ch: usize, y: usize, dst: &mut [u8]) {
        let (h, w) = (self.shape.height(), self.shape.width());
        let start = (ch * h + y) * w;
        if bits == 8 {
            copy(dst, img.get(start..).unwrap_or(&[]));
        } else if start % 2 == 0 {
            let src = img.get(start / 2..).unwrap_or(&[]);
            let mut pairs = dst.chunks_exact_mut(2);
            for (d, &b) in (&mut pairs).zip(src) {
                if let [lo, hi] = d {
                    *lo = (b & 0x0F) * 17;
                    *hi = (b >> 4) * 17;
                }
            }
            if let (Some(last), Some(&b)) = (pairs.into_remainder().first_mut(), src.get(w / 2)) {
                *last = (b & 0x0F) * 17;
            }
        } else {
            for (x, d) in dst.iter_mut().enumerate() {
                *d = unpack(bits, img, start + x);
            }
        }
    }

    /// The band's three rows of channel `ch` in patch order for layer-1
    /// row `row` (image rows `row`, `row + 1`, `row + 2`).
    #[allow(clippy::arithmetic_side_effects)] // slot indices < 3
    fn band_rows<'b>(&self, band: &'b [u8], ch: usize, row: usize) -> [&'b [u8]; PATCH] {
        let w = self.shape.width();
        let slots = band.chunks_exact((PATCH * w).max(1)).nth(ch).unwrap_or(&[]);
        let slot = |a: usize| {
            slots
                .chunks_exact(w.max(1))
                .nth((row + a) % PATCH)
                .unwrap_or(&[])
        };
        [slot(0), slot(1), slot(2)]
    }

    /// `uq` of filter `k` at column `j` of layer-1 row `row` of the band:
    /// `requantise(sum_t P[t] W[t][k])`, any channel count.
    ///
    /// Bound: |u| <= 9 c * 255 * 128 <= i32::MAX (`MAX_CHANNELS`).
    #[allow(clippy::arithmetic_side_effects)] // see the bound above
    fn project(&self, band: &[u8], row: usize, j: usize, k: usize) -> i32 {
        let mut weights = self.w.iter().skip(k).step_by(self.rank.max(1));
        let mut u = 0i32;
        for ch in 0..self.shape.channels() {
            for src in self.band_rows(band, ch, row) {
                for &p in src.iter().skip(j).take(PATCH) {
                    let w = weights.next().copied().unwrap_or(0);
                    u += i32::from(p) * i32::from(w as i8);
                }
            }
        }
        i32::from(requantise(u, self.u_mult))
    }

    /// Query maps: `uq` at layer 1 and `q^l` for every layer.
    ///
    /// Bounds: `q^1 <= r * 127^2`, `q^l <= 9^(l-1) r 127^2 <= i32::MAX`
    /// (`kernel_bounds`, checked in `from_bytes`); indices are below the
    /// map sizes that `scratch_len` counted.
    #[allow(clippy::arithmetic_side_effects)] // see above
    fn prepare_query(&self, image: &[u8], work: &mut Work<'_>) {
        let s = &self.shape;
        let (rows, cols) = s.grid(1);
        let p1 = s.positions(1);
        let m = self.u_mult;
        let Work {
            band,
            uqz,
            qz,
            u,
            weights,
            ..
        } = work;
        for (i, q_row) in qz.chunks_exact_mut(cols.max(1)).take(rows).enumerate() {
            self.load_band(image, 8, i, band);
            if s.channels() == 1 {
                q_row.fill(0);
                for (k, w) in weights.iter().enumerate().take(self.rank) {
                    gray8_project(&w.map(i32::from), self.band_rows(band, 0, i), u);
                    let start = k * p1 + i * cols;
                    let z_row = uqz.get_mut(start..start + cols).unwrap_or(&mut []);
                    for ((z, q), &u) in z_row.iter_mut().zip(q_row.iter_mut()).zip(u.iter()) {
                        let uq = i32::from(requantise(u, m));
                        *z = uq as i8 as u8;
                        *q += uq * uq;
                    }
                }
                continue;
            }
            for (j, qz) in q_row.iter_mut().enumerate() {
                let mut q = 0i32;
                for k in 0..self.rank {
                    let uq = self.project(band, i, j, k);
                    if let Some(slot) = uqz.get_mut(k * p1 + i * cols + j) {
                        *slot = uq as i8 as u8;
                    }
                    q += uq * uq;
                }
                *qz = q;
            }
        }
        for layer in 2..=s.depth() {
            if work.carried {
                break;
            }
            let at = |l: usize| work.q_at.get(l).copied().unwrap_or(0);
            let (lo, hi) = qz.split_at_mut(at(layer).min(qz.len()));
            let src = lo.get(at(layer - 1)..).unwrap_or(&[]);
            window_sums(src, s.grid(layer - 1).1, hi, s.grid(layer));
        }
    }

    /// The centre's layer-1 `K1 = sum_k uq_k(z) uq_k(x)` and
    /// `q1 = sum_k uq_k(x)^2` along layer-1 row `row`, into the row's `K`
    /// and `q_x`. Grayscale projections requantise with 32-bit products
    /// when the multiplier allows ([`requantise_small`]).
    fn layer1_row(&self, work: &mut Work<'_>, img: &[u8], row: usize) {
        let m = self.u_mult;
        if self.shape.channels() == 1 && m <= SMALL_MULT_LIMIT {
            let (mh, ml) = ((m >> 12) as i32, (m & 0xFFF) as i32);
            self.layer1_row_with(work, img, row, move |u| requantise_small(u, mh, ml));
        } else {
            self.layer1_row_with(work, img, row, move |u| i32::from(requantise(u, m)));
        }
    }

    /// [`Model::layer1_row`] with a requantisation. Grayscale centres go
    /// filter by filter along the row: `u` into the row's `Theta` (free
    /// until the ReLU step), then requantised and accumulated. 4-bit ones
    /// with an even width read the packed centre directly and compute two
    /// positions per multiply ([`gray4_pass`]), two filters per
    /// accumulation.
    #[allow(clippy::arithmetic_side_effects)] // K1, q1 <= r 127^2; indices inside the maps
    fn layer1_row_with(
        &self,
        work: &mut Work<'_>,
        img: &[u8],
        row: usize,
        rq: impl Fn(i32) -> i32 + Copy,
    ) {
        let s = &self.shape;
        let (p1, cols, w) = (s.positions(1), s.grid(1).1, s.width());
        let Work {
            band,
            uqz,
            u,
            cells,
            weights,
            ..
        } = work;
        cells.fill(0);
        let z_row = |k: usize| {
            let start = k * p1 + row * cols;
            uqz.get(start..start + cols).unwrap_or(&[])
        };
        let weights = |k: usize| weights.get(k).map_or([0; 9], |w| w.map(i32::from));

        if s.channels() == 1 && self.pixel_bits == 4 && w % 2 == 0 {
            let (ua, ub) = u.split_at_mut((cols / 2).min(u.len()));
            // Filters k and k + 1 together (k + 1 past the rank: zero weights).
            let project = |k: usize, ua: &mut [i32], ub: &mut [i32]| {
                let (wa, wb) = (weights(k), weights(k + 1));
                let rows = wa.chunks_exact(PATCH).zip(wb.chunks_exact(PATCH));
                for (a, (wa, wb)) in rows.enumerate() {
                    let start = (row + a) * w / 2;
                    let bytes = img.get(start..start + w / 2).unwrap_or(&[]);
                    if let (&[a0, a1, a2], &[b0, b1, b2]) = (wa, wb) {
                        gray4_pass([[a0, a1, a2], [b0, b1, b2]], bytes, (ua, ub), a == 0);
                    }
                }
            };
            for k in (0..self.rank).step_by(2) {
                project(k, ua, ub);
                if k + 1 < self.rank {
                    let (a, b) = ((&*ua, z_row(k)), (&*ub, z_row(k + 1)));
                    accumulate_pairs::<true>(a, b, cells, rq);
                } else {
                    // The second filter's slot is read but unused.
                    let a = (&*ua, z_row(k));
                    accumulate_pairs::<false>(a, a, cells, rq);
                }
            }
        } else if s.channels() == 1 {
            self.load_band(img, self.pixel_bits, row, band);
            for k in 0..self.rank {
                gray8_project(&weights(k), self.band_rows(band, 0, row), u);
                accumulate(u, z_row(k), cells, rq);
            }
        } else {
            self.load_band(img, self.pixel_bits, row, band);
            for k in 0..self.rank {
                let cells = cells.chunks_exact_mut(CELL).zip(z_row(k));
                for (j, (cell, &z)) in cells.enumerate() {
                    if let [kk, _, qq, _] = cell {
                        let uq = self.project(band, row, j, k);
                        *kk += uq * i32::from(z as i8);
                        *qq += uq * uq;
                    }
                }
            }
        }
    }

    /// `kernel(z, x_centre)` with the query maps already in `work`.
    ///
    /// Each layer-1 row goes through the ReLU step and, as horizontal
    /// 3-sums, into its layer's 3-row ring; as soon as a ring holds three
    /// rows, the next layer computes its row from the column sums of the
    /// ring, and so on up to the readout. A position whose query variance
    /// is 0 has a blank receptive field: `K = Theta = 0` there, so
    /// `Khat = Thetahat = 0` without the ReLU step (exactly what the step
    /// would give).
    ///
    /// Bounds (`kernel_bounds`, checked in `from_bytes`): every `K`, `q`,
    /// `Khat` map is at most `B_l = 9^(l-1) r 127^2` in magnitude and every
    /// `Theta`, `Phi` at most `(l + 1) B_l`, with `L B_L <= i32::MAX`, so the
    /// i32 sums cannot overflow (partial sums are bounded by the sum of
    /// magnitudes); the readout is at most `P_L (L + 1) B_L <= 2^47`.
    #[allow(clippy::arithmetic_side_effects)] // see above
    fn pair_kernel(&self, centre: usize, work: &mut Work<'_>) -> i64 {
        let s = &self.shape;
        let depth = s.depth();
        let img = self.centre_bytes(centre).unwrap_or(&[]);
        let (rows, cols) = s.grid(1);
        let mut readout = 0i64;
        for i in 0..rows {
            self.layer1_row(work, img, i);
            let q_row = work.qz.get(i * cols..(i + 1) * cols).unwrap_or(&[]);
            relu_layer1(work.cells, q_row);
            if depth == 1 {
                readout += self.readout(work.cells, cols);
            } else {
                let slot = ring_row(ring_of(work.rings, &work.ring_at, 1), i, CELL * s.grid(2).1);
                push_to_ring(work.cells, slot, work.carried);
                if i >= 2 {
                    readout += self.cascade(i - 2, work);
                }
            }
        }
        readout
    }

    /// After row `row + 2` of layer 1 is in its ring: computes row `row` of
    /// layer 2 and every row above that became computable, returning their
    /// readout contribution. Same bounds as [`Model::pair_kernel`].
    #[allow(clippy::arithmetic_side_effects)] // see pair_kernel
    fn cascade(&self, row: usize, work: &mut Work<'_>) -> i64 {
        let s = &self.shape;
        let depth = s.depth();
        let (mut layer, mut row) = (2, row);
        loop {
            let cols = s.grid(layer).1;
            let start = |l: usize| work.ring_at.get(l).copied().unwrap_or(0);
            let below = work
                .rings
                .get(start(layer - 1)..start(layer))
                .unwrap_or(&[]);
            if work.carried {
                column_sums::<true>(below, CELL * cols, work.cells);
                relu_upper(work.cells, cols, None);
            } else {
                let q_off = work.q_at.get(layer).copied().unwrap_or(0) + row * cols;
                let q_row = work.qz.get(q_off..q_off + cols).unwrap_or(&[]);
                column_sums::<false>(below, CELL * cols, work.cells);
                relu_upper(work.cells, cols, Some(q_row));
            }
            if layer == depth {
                return self.readout(work.cells, cols);
            }
            let next_cols = s.grid(layer + 1).1;
            let slot = ring_row(
                ring_of(work.rings, &work.ring_at, layer),
                row,
                CELL * next_cols,
            );
            push_to_ring(work.cells, slot, work.carried);
            if row < 2 {
                return 0;
            }
            layer += 1;
            row -= 2;
        }
    }

    /// The top layer's readout of a row of `cols` columns: `sum Phi` (NTK,
    /// `Thetahat + Khat`) or `sum Khat` (NNGP), i64. A row's part of one pair's
    /// readout, `<= 2^47`.
    #[allow(clippy::arithmetic_side_effects)] // see above
    fn readout(&self, cells: &[i32], cols: usize) -> i64 {
        let field = match self.kind {
            KernelKind::Ntk => 1,
            KernelKind::Nngp => 0,
        };
        cells
            .chunks_exact(CELL)
            .take(cols)
            .map(|c| i64::from(c.get(field).copied().unwrap_or(0)))
            .sum()
    }
}

/// One filter along a grayscale layer-1 row of 8-bit pixels:
/// `u[j] = 3x3 patch at j . w` from the band's three rows. Its own function
/// so that the weights stay in registers.
///
/// Bound: |u| <= 9 * 255 * 128.
#[inline(never)]
#[allow(clippy::arithmetic_side_effects)] // see above
fn gray8_project(w: &[i32; 9], [r0, r1, r2]: [&[u8]; PATCH], u: &mut [i32]) {
    let patches = r0
        .windows(PATCH)
        .zip(r1.windows(PATCH))
        .zip(r2.windows(PATCH));
    for (u, ((a, b), c)) in u.iter_mut().zip(patches) {
        if let (Some(a), Some(b), Some(c)) = (
            a.first_chunk::<3>(),
            b.first_chunk::<3>(),
            c.first_chunk::<3>(),
        ) {
            let px = |v: u8| i32::from(v);
            *u = px(a[0]) * w[0]
                + px(a[1]) * w[1]
                + px(a[2]) * w[2]
                + px(b[0]) * w[3]
                + px(b[1]) * w[4]
                + px(b[2]) * w[5]
                + px(c[0]) * w[6]
                + px(c[1]) * w[7]
                + px(c[2]) * w[8];
        }
    }
}

/// One image row's part of two filters (`a`, `b`) along a grayscale
/// layer-1 row of a 4-bit centre (`bytes`: the row as stored, two pixels
/// per byte, low nibble first), two positions per multiply. With pair
/// words `p[x] = v[x] | v[x + 1] << 16`, `w0 p[2i] + w1 p[2i + 1] + w2
/// p[2i + 2]` holds position `2i`'s `sum w v` in its low half and position
/// `2i + 1`'s in its high half. Byte `i` is `p[2i]` spread into halves;
/// `p[2i + 1]` joins the high half of `p[2i]` and the low half of
/// `p[2i + 2]`. Summed over the three rows each half is at most
/// `9 * 128 * 15 = 17280 < 2^15` in magnitude, so the word is exactly
/// `lo + hi 2^16` ([`accumulate_pairs`] splits it). Writes (`first`) or
/// adds into `acc_a` and `acc_b`, one word per pair of positions.
#[inline(never)]
#[allow(clippy::arithmetic_side_effects)] // |sum| < 2^31, see above
fn gray4_pass(
    [[a0, a1, a2], [b0, b1, b2]]: [[i32; 3]; 2],
    bytes: &[u8],
    (acc_a, acc_b): (&mut [i32], &mut [i32]),
    first: bool,
) {
    let spread = |b: u8| i32::from(b & 0x0F) | i32::from(b >> 4) << 16;
    let Some((&byte0, rest)) = bytes.split_first() else {
        return;
    };
    let mut even = spread(byte0);
    for ((ta, tb), &byte) in acc_a.iter_mut().zip(acc_b.iter_mut()).zip(rest) {
        let next = spread(byte);
        let odd = (even >> 16) | (next << 16);
        let sa = a0 * even + a1 * odd + a2 * next;
        let sb = b0 * even + b1 * odd + b2 * next;
        if first {
            (*ta, *tb) = (sa, sb);
        } else {
            (*ta, *tb) = (*ta + sa, *tb + sb);
        }
        even = next;
    }
}

/// Splits the words of [`gray4_pass`] for one filter (`a`, query `za`) or
/// two (`b`, `zb`: `TWO`), requantises each position's `u = 17 * half`
/// (the pixel is `17 v`) and adds `uq * z` into the cells' `K1` and `uq^2`
/// into their `q1`. Bounds: halves `< 2^15`; |uq| <= 127, so K1, q1 <=
/// r 127^2.
#[inline(never)]
#[allow(clippy::arithmetic_side_effects)] // see above
fn accumulate_pairs<const TWO: bool>(
    (a, za): (&[i32], &[u8]),
    (b, zb): (&[i32], &[u8]),
    cells: &mut [i32],
    rq: impl Fn(i32) -> i32,
) {
    let split = |total: i32| {
        let lo = i32::from(total as i16);
        (rq(17 * lo), rq(17 * ((total - lo) >> 16)))
    };
    let z = |z: u8| i32::from(z as i8);
    let rows = a
        .iter()
        .zip(za.chunks_exact(2))
        .zip(b.iter().zip(zb.chunks_exact(2)));
    for (cell, ((&ta, za), (&tb, zb))) in cells.chunks_exact_mut(2 * CELL).zip(rows) {
        if let ([k0, _, q0, _, k1, _, q1, _], &[za0, za1], &[zb0, zb1]) = (cell, za, zb) {
            let (x0, x1) = split(ta);
            let (mut kk0, mut kk1) = (x0 * z(za0), x1 * z(za1));
            let (mut qq0, mut qq1) = (x0 * x0, x1 * x1);
            if TWO {
                let (y0, y1) = split(tb);
                kk0 += y0 * z(zb0);
                kk1 += y1 * z(zb1);
                qq0 += y0 * y0;
                qq1 += y1 * y1;
            }
            *k0 += kk0;
            *k1 += kk1;
            *q0 += qq0;
            *q1 += qq1;
        }
    }
}

/// Requantises a row of `u` and adds `uq * z` into each cell's `K1` and
/// `uq^2` into its `q1`. Bounds: |uq| <= 127, so K1, q1 <= r 127^2.
#[inline(never)]
#[allow(clippy::arithmetic_side_effects)] // see above
fn accumulate(u: &[i32], z_row: &[u8], cells: &mut [i32], rq: impl Fn(i32) -> i32) {
    for ((cell, &z), &u) in cells.chunks_exact_mut(CELL).zip(z_row).zip(u) {
        if let [kk, _, qq, _] = cell {
            let uq = rq(u);
            *kk += uq * i32::from(z as i8);
            *qq += uq * uq;
        }
    }
}

/// The ReLU step at one position, `(Khat, Phi = Thetahat + Khat)`; a
/// blank query field (`q_z = 0`) gives 0 without the step (exactly what
/// the step gives there, see `pair_kernel`).
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // Phi <= (l + 1) B_l, see pair_kernel
fn relu_cell(k: i32, theta: i32, qz: i32, qx: i32) -> (i32, i32) {
    if qz == 0 {
        return (0, 0);
    }
    // Khat <= max(q_z, q_x) < 2^31 within the kernel bounds: the cast is exact.
    let (khat, thetahat) = relu_step_unclamped(k, theta, qz as u32, qx as u32);
    (khat as i32, thetahat + khat as i32)
}

/// The ReLU step along a layer-1 row of cells, in place: `K -> Khat`,
/// `Phi` from `Theta = K`, and the query's `q_z` kept in the cell for the
/// window sums. Its own function so that the step's temporaries get the
/// registers.
#[inline(never)]
fn relu_layer1(cells: &mut [i32], qz: &[i32]) {
    for (cell, &qz) in cells.chunks_exact_mut(CELL).zip(qz) {
        if let [k, t, q, z] = cell {
            (*k, *t) = relu_cell(*k, *k, qz, *q);
            *z = qz;
        }
    }
}

/// The ReLU step along a later layer's row of cells, in place: `K ->
/// Khat`, `Theta -> Phi`, for the row's `cols` cells, with the query's
/// `q_z` from `qz` (stored maps: its row of the layer) or from the cells
/// themselves (`None`: it rode in the rings).
#[inline(never)]
#[allow(clippy::arithmetic_side_effects)] // cols <= C_1: inside the cells
fn relu_upper(cells: &mut [i32], cols: usize, qz: Option<&[i32]>) {
    // One bound for the loop: the row's cells.
    let len = (CELL * cols).min(cells.len());
    let cells = cells.get_mut(..len).unwrap_or(&mut []);
    match qz {
        Some(qz) => {
            for (cell, &qz) in cells.chunks_exact_mut(CELL).zip(qz) {
                if let [k, t, q, _] = cell {
                    (*k, *t) = relu_cell(*k, *t, qz, *q);
                }
            }
        }
        None => {
            for cell in cells.chunks_exact_mut(CELL) {
                if let [k, t, q, z] = cell {
                    (*k, *t) = relu_cell(*k, *t, *z, *q);
                }
            }
        }
    }
}

/// `out = a + b + c`, cell by cell (the query's `q_z` word too when
/// `CARRIED`): the vertical and the horizontal halves of a 3x3 window sum.
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // sums of three bounded values, see pair_kernel
fn add3_cells<const CARRIED: bool>(out: &mut [i32], a: &[i32], b: &[i32], c: &[i32]) {
    let terms = a
        .chunks_exact(CELL)
        .zip(b.chunks_exact(CELL))
        .zip(c.chunks_exact(CELL));
    for (o, ((a, b), c)) in out.chunks_exact_mut(CELL).zip(terms) {
        if let ([o0, o1, o2, o3], &[a0, a1, a2, a3], &[b0, b1, b2, b3], &[c0, c1, c2, c3]) =
            (o, a, b, c)
        {
            *o0 = a0 + b0 + c0;
            *o1 = a1 + b1 + c1;
            *o2 = a2 + b2 + c2;
            if CARRIED {
                *o3 = a3 + b3 + c3;
            }
        }
    }
}

/// A layer's cells from the ring below (3 rows of `slot` words): the sums
/// of its three rows of horizontal sums.
#[inline(never)]
fn column_sums<const CARRIED: bool>(ring: &[i32], slot: usize, cells: &mut [i32]) {
    let mut rows = ring.chunks_exact(slot.max(1));
    if let (Some(r0), Some(r1), Some(r2)) = (rows.next(), rows.next(), rows.next()) {
        add3_cells::<CARRIED>(cells, r0, r1, r2);
    }
}

/// Ring row `row % 3` (of `slot` words) of a layer's ring. Rows are below
/// 2^16 (`H` is a u16), where `(row * 0xAAAB) >> 17` is exactly `row / 3`:
/// no division, which ARMv6-M would call a routine for.
#[allow(clippy::arithmetic_side_effects)] // row < 2^16: row * 0xAAAB < 2^32; index <= 2
fn ring_row(ring: &mut [i32], row: usize, slot: usize) -> &mut [i32] {
    let index = row - 3 * ((row * 0xAAAB) >> 17);
    ring.chunks_exact_mut(slot.max(1))
        .nth(index)
        .unwrap_or(&mut [])
}

/// [`push_row`] for the layout in use (`carried`: the query's `q_z` rides
/// in the rings).
fn push_to_ring(cells: &[i32], out: &mut [i32], carried: bool) {
    if carried {
        push_row::<true>(cells, out);
    } else {
        push_row::<false>(cells, out);
    }
}

/// The horizontal 3-sums of a row's cells into a ring row (two columns
/// fewer), the query's `q_z` too when `CARRIED`.
#[inline(never)]
fn push_row<const CARRIED: bool>(cells: &[i32], out: &mut [i32]) {
    let shifted = |n: usize| cells.get(n..).unwrap_or(&[]);
    add3_cells::<CARRIED>(out, cells, shifted(CELL), shifted(2 * CELL));
}

/// `dst = 3x3 VALID window sums of src` (`src` has `src_cols` columns,
/// `dst` is `(rows, cols)`); bounded as `q^l` (see `prepare_query`).
#[allow(clippy::arithmetic_side_effects)] // see prepare_query
fn window_sums(src: &[i32], src_cols: usize, dst: &mut [i32], (rows, cols): (usize, usize)) {
    for i in 0..rows {
        for (j, d) in dst.iter_mut().skip(i * cols).take(cols).enumerate() {
            *d = (0..PATCH)
                .flat_map(|a| src.iter().skip((i + a) * src_cols + j).take(PATCH))
                .sum();
        }
    }
}

fn get_i64(b: &[u8]) -> i64 {
    b.first_chunk::<8>().map_or(0, |w| i64::from_le_bytes(*w))
}

/// Class score slots: the caller's `[i64]`, or, for [`Model::predict`],
/// 8 bytes each at the start of the scratch (which need not be aligned).
trait Scores {
    fn zero(&mut self);
    fn add(&mut self, class: usize, value: i64);
    fn get(&self, class: usize) -> i64;
}

impl Scores for &mut [i64] {
    fn zero(&mut self) {
        self.fill(0);
    }

    fn add(&mut self, class: usize, value: i64) {
        if let Some(s) = self.get_mut(class) {
            *s = s.saturating_add(value);
        }
    }

    fn get(&self, class: usize) -> i64 {
        (**self).get(class).copied().unwrap_or(0)
    }
}

/// [`Scores`] in unaligned little-endian bytes.
struct ScoreBytes<'a>(&'a mut [u8]);

impl Scores for ScoreBytes<'_> {
    fn zero(&mut self) {
        self.0.fill(0);
    }

    fn add(&mut self, class: usize, value: i64) {
        if let Some(slot) = self
            .0
            .get_mut(class.saturating_mul(8)..)
            .and_then(|s| s.get_mut(..8))
        {
            let v = get_i64(slot).saturating_add(value);
            copy(slot, &v.to_le_bytes());
        }
    }

    fn get(&self, class: usize) -> i64 {
        self.0.get(class.saturating_mul(8)..).map_or(0, get_i64)
    }
}

/// Argmax with the lowest index winning ties, and the margin to the
/// runner-up. `scores` has at least 2 entries (classes >= 2).
fn argmax(scores: &mut dyn Iterator<Item = i64>) -> Prediction {
    let mut best = (0u16, i64::MIN);
    let mut second = i64::MIN;
    for (o, v) in scores.enumerate() {
        if v > best.1 {
            second = best.1;
            best = (u16::try_from(o).unwrap_or(u16::MAX), v);
        } else if v > second {
            second = v;
        }
    }
    Prediction {
        class: best.0,
        score: best.1,
        margin: best.1.saturating_sub(second),
    }
}
