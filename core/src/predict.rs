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
//! # Memory
//!
//! The query's maps (its `uq` at layer 1 and its `q` at every layer) are
//! computed once per prediction. A centre's maps are never stored whole:
//! its layer-1 row `i` is computed, pushed through the ReLU step into a
//! 3-row ring buffer, and as soon as a layer has three rows the next layer
//! computes its row, and so on up to the readout. So scratch is
//! `O(positions * r)` for the query plus `O(width * depth)` for the rings,
//! independent of `m`.
//!
//! Scratch layout (bytes, no alignment needed: words are read and written
//! with `from_le_bytes` / `to_le_bytes`):
//!
//! | part | bytes |
//! | --- | --- |
//! | score accumulators (i64) | `8 * classes` |
//! | query `uq`, layer 1 (i8) | `P_1 * r` |
//! | query `q^l`, every layer (i32) | `4 * (P_1 + ... + P_L)` |
//! | centre patch (u8) | `9 c` |
//! | rings, layers `1..L-1`: 3 rows x cols x (Khat, Thetahat, q) (i32) | `36 * (C_1 + ... + C_{L-1})` |
//!
//! (`P_l`, `C_l`: positions and columns of layer `l`'s grid.) For 28x28
//! grayscale, depth 3, `r = 9`, 10 classes this is 14,917 bytes.

use core::fmt;

use crate::KernelKind;
use crate::blob::{Model, copy, unpack};
use crate::fixed::{relu_step, requantise};
use crate::shape::{PATCH, Shape};

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

/// Scratch bytes for a model of these dimensions (see the module doc for
/// the layout); `None` if the geometry is invalid or the size overflows.
///
/// `const`, so firmware can size a `static` buffer from its embedded blob
/// with [`scratch_len_for_blob`].
#[allow(clippy::arithmetic_side_effects)] // loop counter l <= depth, and 2 l <= 2 depth < H, W (checked first)
pub const fn scratch_len_for_dims(
    channels: usize,
    height: usize,
    width: usize,
    depth: usize,
    rank: usize,
    classes: usize,
) -> Option<usize> {
    if depth == 0 {
        return None;
    }
    // The last grid is (H - 2L) x (W - 2L); it must not be empty.
    let Some(shrink) = depth.checked_mul(2) else {
        return None;
    };
    if height <= shrink || width <= shrink {
        return None;
    }
    let Some(mut total) = classes.checked_mul(8) else {
        return None;
    };
    let Some(patch) = channels.checked_mul(PATCH * PATCH) else {
        return None;
    };
    let mut l = 1;
    while l <= depth {
        // l <= depth and 2 depth < H, W: no underflow.
        let rows = height - 2 * l;
        let cols = width - 2 * l;
        let Some(positions) = rows.checked_mul(cols) else {
            return None;
        };
        // q^l map (i32).
        let Some(q) = positions.checked_mul(4) else {
            return None;
        };
        let Some(t) = total.checked_add(q) else {
            return None;
        };
        total = t;
        if l == 1 {
            let Some(uq) = positions.checked_mul(rank) else {
                return None;
            };
            let Some(t) = total.checked_add(uq) else {
                return None;
            };
            total = t;
        }
        if l < depth {
            let Some(ring) = cols.checked_mul(RING_ENTRY_BYTES * 3) else {
                return None;
            };
            let Some(t) = total.checked_add(ring) else {
                return None;
            };
            total = t;
        }
        l += 1;
    }
    total.checked_add(patch)
}

/// [`scratch_len_for_dims`] read from a blob's header (only the first
/// `HEADER_LEN` bytes are looked at; nothing is validated). For a blob
/// that `Model::from_bytes` accepts this equals `Model::scratch_len`, so
/// firmware can size its buffer at compile time with
/// `const N: usize = match scratch_len_for_blob(BLOB) { Some(n) => n, None => panic!() };`
/// and keep `[u8; N]` in a `static` (e.g. through `cortex_m::singleton!`)
/// or on the stack.
pub const fn scratch_len_for_blob(blob: &[u8]) -> Option<usize> {
    let Some(h) = blob.first_chunk::<{ crate::blob::HEADER_LEN }>() else {
        return None;
    };
    let channels = u16::from_le_bytes([h[12], h[13]]) as usize;
    let height = u16::from_le_bytes([h[14], h[15]]) as usize;
    let width = u16::from_le_bytes([h[16], h[17]]) as usize;
    let depth = h[18] as usize;
    let classes = u16::from_le_bytes([h[20], h[21]]) as usize;
    let rank = h[24] as usize;
    scratch_len_for_dims(channels, height, width, depth, rank, classes)
}

/// Scratch bytes for a validated shape.
pub(crate) fn scratch_len_for(shape: Shape, rank: usize, classes: usize) -> Option<usize> {
    scratch_len_for_dims(
        shape.channels(),
        shape.height(),
        shape.width(),
        shape.depth(),
        rank,
        classes,
    )
}

/// Bytes of one ring entry: `Khat`, `Thetahat`, `q_x` as i32.
const RING_ENTRY_BYTES: usize = 12;

/// Word `i` (i32, little-endian) of a byte map; 0 out of range, which the
/// sizes validated by `from_bytes` rule out.
#[inline]
fn get_word(b: &[u8], i: usize) -> i32 {
    let w = i
        .checked_mul(4)
        .and_then(|o| b.get(o..))
        .and_then(<[u8]>::first_chunk::<4>);
    w.map_or(0, |w| i32::from_le_bytes(*w))
}

/// Sets word `i` of a byte map (no-op out of range, see [`get_word`]).
#[inline]
fn set_word(b: &mut [u8], i: usize, v: i32) {
    if let Some(w) = i
        .checked_mul(4)
        .and_then(|o| b.get_mut(o..))
        .and_then(<[u8]>::first_chunk_mut::<4>)
    {
        *w = v.to_le_bytes();
    }
}

fn get_i64(b: &[u8]) -> i64 {
    b.first_chunk::<8>().map_or(0, |w| i64::from_le_bytes(*w))
}

/// Scratch split into its parts.
struct Work<'s> {
    uqz: &'s mut [u8],
    qz: &'s mut [u8],
    patch: &'s mut [u8],
    rings: &'s mut [u8],
}

impl Model<'_> {
    /// Classifies `image` (`c * H * W` u8 pixels, channel-major, row-major
    /// within a channel) using `scratch` (at least [`Model::scratch_len`]
    /// bytes; contents on entry do not matter).
    pub fn predict(&self, image: &[u8], scratch: &mut [u8]) -> Result<Prediction, PredictError> {
        self.check_inputs(image, scratch)?;
        let (acc, rest) = scratch.split_at_mut(self.classes.saturating_mul(8).min(scratch.len()));
        let mut work = self.carve(rest);
        acc.fill(0);
        self.prepare_query(image, &mut work);
        for i in 0..self.centres {
            let k = self.pair_kernel(i, &mut work);
            for (o, slot) in acc.chunks_exact_mut(8).enumerate() {
                let a = i64::from(self.alpha(i, o).unwrap_or(0));
                let v = get_i64(slot).saturating_add(a.saturating_mul(k));
                copy(slot, &v.to_le_bytes());
            }
        }
        let mut scores = acc.chunks_exact(8).map(get_i64);
        Ok(argmax(&mut scores))
    }

    /// Like [`Model::predict`], and also writes every class's score into
    /// `scores[..classes]` (`scores` may be longer; the rest is untouched).
    pub fn predict_scores(
        &self,
        image: &[u8],
        scratch: &mut [u8],
        scores: &mut [i64],
    ) -> Result<Prediction, PredictError> {
        let got = scores.len();
        let scores = scores
            .get_mut(..self.classes)
            .ok_or(PredictError::ScoresTooShort {
                needed: self.classes,
                got,
            })?;
        self.check_inputs(image, scratch)?;
        let (_, rest) = scratch.split_at_mut(self.classes.saturating_mul(8).min(scratch.len()));
        let mut work = self.carve(rest);
        scores.fill(0);
        self.prepare_query(image, &mut work);
        for i in 0..self.centres {
            let k = self.pair_kernel(i, &mut work);
            for (o, s) in scores.iter_mut().enumerate() {
                let a = i64::from(self.alpha(i, o).unwrap_or(0));
                *s = s.saturating_add(a.saturating_mul(k));
            }
        }
        Ok(argmax(&mut scores.iter().copied()))
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

    fn check_inputs(&self, image: &[u8], scratch: &[u8]) -> Result<(), PredictError> {
        let expected = self.shape.pixels();
        if image.len() != expected {
            return Err(PredictError::ImageLength {
                expected,
                got: image.len(),
            });
        }
        if scratch.len() < self.scratch_len {
            return Err(PredictError::ScratchTooSmall {
                needed: self.scratch_len,
                got: scratch.len(),
            });
        }
        Ok(())
    }

    /// Splits the scratch after the score accumulators into its parts. The
    /// caller checked its length against `scratch_len`, whose computation
    /// (checked, in `from_bytes`) bounds every product here.
    #[allow(clippy::arithmetic_side_effects)] // bounded by scratch_len, see above
    fn carve<'s>(&self, rest: &'s mut [u8]) -> Work<'s> {
        let s = &self.shape;
        let uq_len = s.positions(1) * self.rank;
        let q_len = 4 * (1..=s.depth()).map(|l| s.positions(l)).sum::<usize>();
        let patch_len = s.patch_dim();
        let (uqz, rest) = rest.split_at_mut(uq_len.min(rest.len()));
        let (qz, rest) = rest.split_at_mut(q_len.min(rest.len()));
        let (patch, rings) = rest.split_at_mut(patch_len.min(rest.len()));
        Work {
            uqz,
            qz,
            patch,
            rings,
        }
    }

    /// Word offset of the query's `q^l` map in `Work::qz`.
    #[allow(clippy::arithmetic_side_effects)] // partial sums of scratch_len's terms
    fn q_offset(&self, layer: usize) -> usize {
        (1..layer).map(|l| self.shape.positions(l)).sum()
    }

    /// Byte offset of layer `layer`'s ring in `Work::rings`.
    #[allow(clippy::arithmetic_side_effects)] // partial sums of scratch_len's terms
    fn ring_offset(&self, layer: usize) -> usize {
        (1..layer)
            .map(|l| 3 * self.shape.grid(l).1 * RING_ENTRY_BYTES)
            .sum()
    }

    /// `u_j = sum_k patch[k] W[k][j]`, requantised.
    ///
    /// Bound: |u| <= 9 c * 255 * 128 <= i32::MAX (`MAX_CHANNELS`).
    #[allow(clippy::arithmetic_side_effects)] // see the bound above
    #[inline]
    fn project(&self, patch: &[u8], j: usize) -> i32 {
        let mut u = 0i32;
        for (&p, &w) in patch
            .iter()
            .zip(self.w.iter().skip(j).step_by(self.rank.max(1)))
        {
            u += i32::from(p) * i32::from(w as i8);
        }
        i32::from(requantise(u, self.u_mult))
    }

    /// Copies the patch at grid position `(i, j)` of `img` (packed at
    /// `bits`) in kernel order: channel, row offset, column offset.
    ///
    /// Indices are below `c * H * W` (`i, j` are grid positions of layer 1,
    /// so `i + 2 < H`, `j + 2 < W`), which `Shape::new` checked.
    #[allow(clippy::arithmetic_side_effects)] // see above
    fn gather(&self, img: &[u8], bits: u8, i: usize, j: usize, patch: &mut [u8]) {
        let (h, w) = (self.shape.height(), self.shape.width());
        let plane = h * w;
        let mut rows = patch.chunks_exact_mut(PATCH);
        for ch in 0..self.shape.channels() {
            for a in 0..PATCH {
                let base = ch * plane + (i + a) * w + j;
                let Some(dst) = rows.next() else { return };
                if bits == 8 {
                    if let Some(src) = img.get(base..base + PATCH) {
                        copy(dst, src);
                    }
                } else {
                    for (b, d) in dst.iter_mut().enumerate() {
                        *d = unpack(bits, img, base + b);
                    }
                }
            }
        }
    }

    /// Query maps: `uq` at layer 1 and `q^l` for every layer.
    ///
    /// Bounds: `q^1 <= r * 127^2`, `q^l <= 9^(l-1) r 127^2 <= i32::MAX`
    /// (`kernel_bounds`, checked in `from_bytes`); indices are below the
    /// map sizes that `scratch_len` counted.
    #[allow(clippy::arithmetic_side_effects)] // see above
    fn prepare_query(&self, image: &[u8], work: &mut Work<'_>) {
        let s = &self.shape;
        let r = self.rank;
        let (rows, cols) = s.grid(1);
        for i in 0..rows {
            for j in 0..cols {
                let p = i * cols + j;
                self.gather(image, 8, i, j, work.patch);
                let mut q = 0i32;
                if let Some(uz) = work.uqz.get_mut(p * r..p * r + r) {
                    for (jj, slot) in uz.iter_mut().enumerate() {
                        let uq = self.project(work.patch, jj);
                        *slot = uq as i8 as u8;
                        q += uq * uq;
                    }
                }
                set_word(work.qz, p, q);
            }
        }
        for layer in 2..=s.depth() {
            let (src_off, dst_off) = (self.q_offset(layer - 1), self.q_offset(layer));
            let src_cols = s.grid(layer - 1).1;
            let (rows, cols) = s.grid(layer);
            for i in 0..rows {
                for j in 0..cols {
                    let mut q = 0i32;
                    for a in 0..PATCH {
                        for b in 0..PATCH {
                            q += get_word(work.qz, src_off + (i + a) * src_cols + j + b);
                        }
                    }
                    set_word(work.qz, dst_off + i * cols + j, q);
                }
            }
        }
    }

    /// `kernel(z, x_centre)` with the query maps already in `work`.
    ///
    /// Bounds (`kernel_bounds`, checked in `from_bytes`): every `K`, `q`,
    /// `Khat` map is at most `B_l = 9^(l-1) r 127^2` in magnitude and every
    /// `Theta`, `Thetahat` at most `l B_l`, with `L B_L <= i32::MAX`, so the
    /// i32 sums below cannot overflow (partial sums are bounded by the sum
    /// of magnitudes); the readout is at most `P_L (L + 1) B_L <= 2^47`.
    /// Indices stay inside the maps that `scratch_len` counted.
    #[allow(clippy::arithmetic_side_effects)] // see above
    fn pair_kernel(&self, centre: usize, work: &mut Work<'_>) -> i64 {
        let s = &self.shape;
        let depth = s.depth();
        let r = self.rank;
        let img = self.centre_bytes(centre).unwrap_or(&[]);
        let (rows, cols) = s.grid(1);
        let mut readout = 0i64;
        for i in 0..rows {
            for j in 0..cols {
                let p = i * cols + j;
                self.gather(img, self.pixel_bits, i, j, work.patch);
                let (mut k1, mut qx) = (0i32, 0i32);
                if let Some(uz) = work.uqz.get(p * r..p * r + r) {
                    for (jj, &z) in uz.iter().enumerate() {
                        let uq = self.project(work.patch, jj);
                        k1 += uq * i32::from(z as i8);
                        qx += uq * uq;
                    }
                }
                let qz = get_word(work.qz, p);
                let (kh, th) = relu_step(k1, k1, qz as u32, qx as u32);
                if depth == 1 {
                    readout += self.readout_term(kh, th);
                } else {
                    let e = ((i % 3) * cols + j) * 3;
                    set_word(work.rings, e, kh);
                    set_word(work.rings, e + 1, th);
                    set_word(work.rings, e + 2, qx);
                }
            }
            if depth > 1 {
                readout += self.cascade(i, work);
            }
        }
        readout
    }

    /// After row `row` of layer 1 is in its ring: computes every row of
    /// the layers above that became computable, returning their readout
    /// contribution. Same bounds as [`Model::pair_kernel`].
    #[allow(clippy::arithmetic_side_effects)] // see pair_kernel
    fn cascade(&self, row: usize, work: &mut Work<'_>) -> i64 {
        let s = &self.shape;
        let depth = s.depth();
        let mut readout = 0i64;
        let (mut layer, mut row) = (1, row);
        while layer < depth && row >= 2 {
            let out_row = row - 2;
            let next = layer + 1;
            let src_cols = s.grid(layer).1;
            let cols = s.grid(next).1;
            let q_off = self.q_offset(next) + out_row * cols;
            let (lo, hi) = work
                .rings
                .split_at_mut(self.ring_offset(next).min(work.rings.len()));
            let src = lo.get(self.ring_offset(layer)..).unwrap_or(&[]);
            for j in 0..cols {
                let (mut k, mut th, mut qx) = (0i32, 0i32, 0i32);
                for a in 0..PATCH {
                    let slot = (out_row + a) % 3;
                    for b in 0..PATCH {
                        let e = (slot * src_cols + j + b) * 3;
                        k += get_word(src, e);
                        th += get_word(src, e + 1);
                        qx += get_word(src, e + 2);
                    }
                }
                th += k;
                let qz = get_word(work.qz, q_off + j);
                let (kh, thh) = relu_step(k, th, qz as u32, qx as u32);
                if next == depth {
                    readout += self.readout_term(kh, thh);
                } else {
                    let e = ((out_row % 3) * cols + j) * 3;
                    set_word(hi, e, kh);
                    set_word(hi, e + 1, thh);
                    set_word(hi, e + 2, qx);
                }
            }
            layer = next;
            row = out_row;
        }
        readout
    }

    #[inline]
    fn readout_term(&self, khat: i32, thetahat: i32) -> i64 {
        match self.kind {
            // Both are below 2^31 in magnitude: the i64 sum cannot overflow.
            KernelKind::Ntk => i64::from(khat).saturating_add(i64::from(thetahat)),
            KernelKind::Nngp => i64::from(khat),
        }
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
