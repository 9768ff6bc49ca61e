//! Helpers shared by the integration tests: an owned model description that
//! encodes to a blob, a seeded RNG, and an independent reference
//! implementation of the integer kernel (full maps, wide integers, written
//! from the spec in docs/blob-format.md, sharing nothing with `predict` but
//! the two checked-in tables).
// Test helpers: a panic here is a test failure, which is what we want.
#![allow(
    dead_code,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic
)]

use convrfm_core::fixed::{RHO_TABLE, RSQRT_TABLE, W_TABLE};
use convrfm_core::{BlobParts, KernelKind, ResizeFilter, encode, encoded_len, pack_pixels};

/// xorshift64*: small, seeded, reproducible.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

/// A model description owning its data.
#[derive(Clone, Debug)]
pub struct Owned {
    pub channels: u16,
    pub height: u16,
    pub width: u16,
    pub depth: u8,
    pub pixel_bits: u8,
    pub rank: u8,
    pub kind: KernelKind,
    pub u_mult: u32,
    pub alpha_scale: f32,
    pub accuracy: u16,
    pub w: Vec<i8>,
    /// Centre pixel values: 0..=255 for 8-bit, 0..=15 for 4-bit.
    pub centres: Vec<Vec<u8>>,
    pub alpha: Vec<i16>,
    pub names: Vec<&'static str>,
}

impl Owned {
    pub fn pixels(&self) -> usize {
        usize::from(self.channels) * usize::from(self.height) * usize::from(self.width)
    }

    pub fn d(&self) -> usize {
        usize::from(self.channels) * 9
    }

    pub fn packed_centres(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.centres {
            let mut buf = vec![0u8; c.len()];
            let n = pack_pixels(self.pixel_bits, c, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    pub fn with_parts<T>(&self, f: impl FnOnce(&BlobParts<'_>) -> T) -> T {
        let packed = self.packed_centres();
        let parts = BlobParts {
            channels: self.channels,
            height: self.height,
            width: self.width,
            depth: self.depth,
            pixel_bits: self.pixel_bits,
            rank: self.rank,
            kind: self.kind,
            resize: ResizeFilter::Triangle,
            u_mult: self.u_mult,
            alpha_scale: self.alpha_scale,
            expected_accuracy_bp: self.accuracy,
            centre_count: self.centres.len() as u16,
            w: &self.w,
            centres: &packed,
            alpha: &self.alpha,
            class_names: &self.names,
        };
        f(&parts)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.with_parts(|p| {
            let n = encoded_len(p).unwrap();
            let mut out = vec![0xAA; n + 7];
            let written = encode(p, &mut out).unwrap();
            assert_eq!(written, n);
            out.truncate(n);
            out
        })
    }

    /// Centre `i` as the 8-bit values the kernel sees.
    pub fn centre_values(&self, i: usize) -> Vec<u8> {
        let mul = if self.pixel_bits == 4 { 17 } else { 1 };
        self.centres[i].iter().map(|&v| v * mul).collect()
    }

    /// A random valid model (small dims unless told otherwise).
    pub fn random(rng: &mut Rng) -> Self {
        let depth = rng.range_i64(1, 3) as u8;
        let min_side = 2 * i64::from(depth) + 1;
        let channels = rng.range_i64(1, 3) as u16;
        let height = rng.range_i64(min_side, min_side + 5) as u16;
        let width = rng.range_i64(min_side, min_side + 5) as u16;
        let pixel_bits = if rng.below(2) == 0 { 4 } else { 8 };
        let d = usize::from(channels) * 9;
        let rank = rng.range_i64(1, d.min(12) as i64) as u8;
        let m = rng.range_i64(1, 4) as usize;
        let classes = rng.range_i64(2, 4) as usize;
        let pixels = usize::from(channels) * usize::from(height) * usize::from(width);
        let maxv = if pixel_bits == 4 { 15 } else { 255 };
        let centres = (0..m)
            .map(|_| (0..pixels).map(|_| rng.range_i64(0, maxv) as u8).collect())
            .collect();
        let w = (0..d * usize::from(rank))
            .map(|_| rng.range_i64(-128, 127) as i8)
            .collect();
        let alpha = (0..m * classes)
            .map(|_| rng.range_i64(-32768, 32767) as i16)
            .collect();
        const POOL: [&str; 8] = [
            "t-shirt", "trouser", "pullover", "dress", "coat", "été", "", "猫",
        ];
        let names = (0..classes)
            .map(|_| POOL[rng.below(POOL.len() as u64) as usize])
            .collect();
        Owned {
            channels,
            height,
            width,
            depth,
            pixel_bits,
            rank,
            kind: if rng.below(2) == 0 {
                KernelKind::Ntk
            } else {
                KernelKind::Nngp
            },
            u_mult: rng.range_i64(1, 1 << 22) as u32,
            alpha_scale: 1.5e-6,
            accuracy: rng.range_i64(0, 10_000) as u16,
            w,
            centres,
            alpha,
            names,
        }
    }
}

// ---- Independent reference of the integer kernel (spec, full maps) ----

/// Linear interpolation between packed table nodes `i`, `i + 1` (field
/// `half`: 0 = low 16 bits, 1 = high), `f` in 1/65536ths, rounded down.
fn lerp(table: &[u32], i: u128, half: u32, f: u128) -> u128 {
    let i = i as usize;
    let field = |v: u32| u128::from((v >> (16 * half)) & 0xFFFF);
    let (lo, hi) = (field(table[i]), field(table[i + 1]));
    if hi >= lo {
        lo + (((hi - lo) * f) >> 16)
    } else {
        lo - (((lo - hi) * f) >> 16)
    }
}

/// The ReLU step, from the spec (docs/blob-format.md), in u128/i128.
pub fn ref_relu(k: i64, theta: i64, qz: i64, qx: i64) -> (i64, i64) {
    let q = (qz as u128) * (qx as u128);
    let a = u128::from(k.unsigned_abs());
    let hi = |x: u128| x >> 32;
    let (kd, khat): (u128, u128) = if q == 0 {
        (16384, 0)
    } else if a * a >= q {
        if k > 0 { (32768, a) } else { (0, 0) }
    } else {
        // Normalise Q to [2^62, 2^64) with an even shift.
        let mut n = 0;
        while q << (n + 2) < 1 << 64 {
            n += 2;
        }
        let (h, p) = (n / 2, q << n);
        let qn = hi(p);
        let i = (qn >> 23) as usize;
        let (t0, t1) = (u128::from(RSQRT_TABLE[i]), u128::from(RSQRT_TABLE[i + 1]));
        // Position in the interval: the 23 low bits of Qn.
        let r = t0 - (((t0 - t1) * (qn & 0x7F_FFFF)) >> 23);
        let an = a << h;
        let p_rho = hi(an * r);
        let (kd, khat) = if p_rho < 3 << 28 {
            let (i, f) = (p_rho >> 23, (p_rho >> 7) & 0xFFFF);
            let kd = 16384 + ((lerp(&RHO_TABLE, i, 0, f) + 2) >> 2);
            let j = lerp(&RHO_TABLE, i, 1, f);
            let t = hi((hi(qn * r) << 2) * (j << 16));
            // Round half up of t / 2^h.
            (kd, if h == 0 { t } else { (t + (1 << (h - 1))) >> h })
        } else {
            let dn = hi(p - an * an);
            let w = ((((dn * r) >> 31) * r) >> 30) as u32;
            let (kd, g) = if w == 0 {
                (32768, 0)
            } else {
                let z = w.leading_zeros();
                let m = u128::from(w << z);
                let i = u128::from(31 - z) * 16 + ((m >> 27) & 15);
                let f = (m >> 11) & 0xFFFF;
                (
                    32768 - ((lerp(&W_TABLE, i, 0, f) + 2) >> 2),
                    lerp(&W_TABLE, i, 1, f),
                )
            };
            (kd, a + ((a * g + (1 << 18)) >> 19))
        };
        if k < 0 {
            (32768 - kd, khat.saturating_sub(a))
        } else {
            (kd, khat)
        }
    };
    let thetahat = (theta * kd as i64 + (1 << 14)) >> 15;
    (khat.min(i32::MAX as u128) as i64, thetahat)
}

/// Integer kernel of `(z, x)` (8-bit values, channel-major), full maps.
pub fn ref_kernel(m: &Owned, z: &[u8], x: &[u8]) -> i64 {
    let (c, h, w) = (
        usize::from(m.channels),
        usize::from(m.height),
        usize::from(m.width),
    );
    let r = usize::from(m.rank);
    let depth = usize::from(m.depth);
    let uq = |img: &[u8], i: usize, jj: usize, col: usize| -> i64 {
        let mut u = 0i64;
        for ch in 0..c {
            for a in 0..3 {
                for b in 0..3 {
                    let k = ch * 9 + a * 3 + b;
                    let p = i64::from(img[ch * h * w + (i + a) * w + jj + b]);
                    u += p * i64::from(m.w[k * r + col]);
                }
            }
        }
        ((u * i64::from(m.u_mult) + (1 << 23)) >> 24).clamp(-127, 127)
    };
    let (mut rows, mut cols) = (h - 2, w - 2);
    let n = rows * cols;
    let (mut kk, mut th, mut qz, mut qx) = (vec![0; n], vec![0; n], vec![0; n], vec![0; n]);
    for i in 0..rows {
        for j in 0..cols {
            let p = i * cols + j;
            for col in 0..r {
                let (a, b) = (uq(z, i, j, col), uq(x, i, j, col));
                kk[p] += a * b;
                qz[p] += a * a;
                qx[p] += b * b;
            }
            th[p] = kk[p];
        }
    }
    for layer in 1..=depth {
        let mut kh = vec![0; rows * cols];
        let mut thh = vec![0; rows * cols];
        for p in 0..rows * cols {
            (kh[p], thh[p]) = ref_relu(kk[p], th[p], qz[p], qx[p]);
        }
        if layer == depth {
            return match m.kind {
                KernelKind::Ntk => kh.iter().zip(&thh).map(|(a, b)| a + b).sum(),
                KernelKind::Nngp => kh.iter().sum(),
            };
        }
        let wsum = |src: &[i64]| -> Vec<i64> {
            let mut out = vec![0; (rows - 2) * (cols - 2)];
            for i in 0..rows - 2 {
                for j in 0..cols - 2 {
                    for a in 0..3 {
                        for b in 0..3 {
                            out[i * (cols - 2) + j] += src[(i + a) * cols + j + b];
                        }
                    }
                }
            }
            out
        };
        kk = wsum(&kh);
        th = wsum(&thh).iter().zip(&kk).map(|(a, b)| a + b).collect();
        qz = wsum(&qz);
        qx = wsum(&qx);
        rows -= 2;
        cols -= 2;
    }
    unreachable!("depth >= 1")
}

/// Scores from the reference kernel (i128, no saturation needed here).
pub fn ref_scores(m: &Owned, z: &[u8]) -> Vec<i64> {
    let classes = m.names.len();
    let mut s = vec![0i128; classes];
    for i in 0..m.centres.len() {
        let k = ref_kernel(m, z, &m.centre_values(i));
        for (o, acc) in s.iter_mut().enumerate() {
            *acc += i128::from(m.alpha[i * classes + o]) * i128::from(k);
        }
    }
    s.into_iter()
        .map(|v| v.clamp(i64::MIN.into(), i64::MAX.into()) as i64)
        .collect()
}
