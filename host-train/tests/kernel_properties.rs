//! Properties of the kernel, its patch gradient and the patch-AGOP that hold
//! for any input, checked on seeded random images and metrics.
//!
//! Where the golden tests compare against fixed reference numbers, these
//! check mathematical identities: the analytic gradient against finite
//! differences, the AGOP against its definition, symmetry, positive
//! semi-definiteness, homogeneity, invariance under orthogonal changes of
//! the patch space and under image flips, lane padding, and f32 against f64.
//! Every tolerance is about 5-20x the worst error measured when it was set;
//! each test's doc comment gives the measured value, and each test prints it
//! (`cargo test --test kernel_properties -- --nocapture`).
// Tests and their helpers: a panic is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use convrfm_core::Shape;
use convrfm_train::kernel::KernelBlocks;
use convrfm_train::kernel::Real;
use convrfm_train::kernel::{Kernel, KernelKind, LANES, Metric};
use convrfm_train::matrix::Matrix;
use convrfm_train::output::Phase;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Classes of the random predictors.
const CLASSES: usize = 3;

const KINDS: [KernelKind; 2] = [KernelKind::Ntk, KernelKind::Nngp];

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn shape(c: usize, h: usize, w: usize, depth: usize) -> Shape {
    Shape::new(c, h, w, depth).unwrap()
}

fn shape_with_patch(c: usize, h: usize, w: usize, ps: usize, depth: usize) -> Shape {
    Shape::with_patch(c, h, w, ps, depth).unwrap()
}

/// `n` images of `shape` with pixels uniform in `[lo, hi)`, flat.
fn images(rng: &mut ChaCha8Rng, n: usize, shape: &Shape, lo: f64, hi: f64) -> Vec<f64> {
    (0..n * shape.pixels())
        .map(|_| rng.random_range(lo..hi))
        .collect()
}

/// `rows x cols` matrix with entries uniform in `[-1, 1)`, row-major.
fn uniform_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Vec<f64> {
    (0..rows * cols)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect()
}

/// `a b` for square `d x d` row-major matrices.
fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

fn transpose(a: &[f64], d: usize) -> Vec<f64> {
    (0..d * d).map(|idx| a[(idx % d) * d + idx / d]).collect()
}

/// A random SPD metric `S = A A^T + 0.1 I`, Frobenius norm 1 (like the
/// normalised `sqrtM` of ConvRFM).
fn spd_rows(rng: &mut ChaCha8Rng, d: usize) -> Vec<f64> {
    let a = uniform_matrix(rng, d, d);
    let mut s = matmul(&a, &transpose(&a, d), d);
    for i in 0..d {
        s[i * d + i] += 0.1;
    }
    let norm = s.iter().map(|v| v * v).sum::<f64>().sqrt();
    s.iter().map(|v| v / norm).collect()
}

/// A random non-symmetric metric (entries uniform in `[-1, 1)`, Frobenius
/// norm 1): `u = P S` and `g = du S^T` must not be confused with `S P`,
/// `du S`.
fn general_rows(rng: &mut ChaCha8Rng, d: usize) -> Vec<f64> {
    let a = uniform_matrix(rng, d, d);
    let norm = a.iter().map(|v| v * v).sum::<f64>().sqrt();
    a.iter().map(|v| v / norm).collect()
}

/// A random orthogonal `d x d` matrix: Gram-Schmidt (applied twice, for
/// orthogonality to rounding) of the columns of a random matrix.
fn orthogonal(rng: &mut ChaCha8Rng, d: usize) -> Vec<f64> {
    let a = uniform_matrix(rng, d, d);
    let mut cols: Vec<Vec<f64>> = (0..d)
        .map(|j| (0..d).map(|i| a[i * d + j]).collect())
        .collect();
    for j in 0..d {
        for _ in 0..2 {
            for k in 0..j {
                let dot: f64 = cols[j].iter().zip(&cols[k]).map(|(x, y)| x * y).sum();
                let ck = cols[k].clone();
                for (x, y) in cols[j].iter_mut().zip(&ck) {
                    *x -= dot * y;
                }
            }
        }
        let norm = cols[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        for x in &mut cols[j] {
            *x /= norm;
        }
    }
    (0..d * d).map(|idx| cols[idx % d][idx / d]).collect()
}

fn kernel(shape: Shape, kind: KernelKind, rows: &[f64]) -> Kernel {
    let metric = Metric::from_rows(shape.patch_dim(), rows.to_vec()).unwrap();
    Kernel::new(shape, kind, metric)
}

/// `K(Z, X)` (`m x n`) in precision `R`.
fn cross<R: Real>(k: &Kernel, x: &[f64], z: &[f64]) -> Vec<f64> {
    KernelBlocks::<R>::new(k, x)
        .cross(z, &Phase::hidden())
        .into_vec()
}

/// `K(X, X)` (`n x n`) in precision `R`.
fn gram<R: Real>(k: &Kernel, x: &[f64]) -> Vec<f64> {
    KernelBlocks::<R>::new(k, x)
        .gram(x, &Phase::hidden())
        .into_vec()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// `max |got - want| / max |want|`: the error on the scale of the values.
fn scaled_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    diff / max_abs(want)
}

/// `max |got - want| / |want|`, entry by entry.
fn entry_rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max)
}

/// Eigenvalues (ascending) of a symmetric `n x n` row-major matrix.
fn eigenvalues(m: &[f64], n: usize) -> Vec<f64> {
    faer::Mat::from_fn(n, n, |i, j| m[i * n + j])
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .unwrap()
}

/// The `n x classes` predictor weights, uniform in `[-1, 1)`.
fn alpha(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    uniform_matrix(rng, n, CLASSES)
}

/// `alpha` values (`n x CLASSES`, row-major) as a matrix.
fn mat(alpha: &[f64]) -> Matrix {
    Matrix::from_row_major(alpha.len() / CLASSES, CLASSES, alpha.to_vec()).unwrap()
}

/// `f_o(z) = sum_n alpha[n][o] K(z, x_n)` for each row of `kzx` (`m x n`):
/// `m x classes`.
fn predict(kzx: &[f64], alpha: &[f64], n: usize) -> Vec<f64> {
    kzx.chunks_exact(n)
        .flat_map(|row| {
            (0..CLASSES).map(move |o| (0..n).map(|j| row[j] * alpha[j * CLASSES + o]).sum())
        })
        .collect()
}

/// A copy of `flat` with exact zeros: the top-left 4x4 corner (all
/// channels) of every third image, and the whole last image.
fn with_zero_regions(flat: &[f64], s: &Shape) -> Vec<f64> {
    let (h, w) = (s.height(), s.width());
    let mut out = flat.to_vec();
    let n = flat.len() / s.pixels();
    for (i, im) in out.chunks_exact_mut(s.pixels()).enumerate() {
        if i + 1 == n {
            im.fill(0.0);
        } else if i % 3 == 0 {
            for ch in 0..s.channels() {
                for r in 0..4 {
                    im[ch * h * w + r * w..][..4].fill(0.0);
                }
            }
        }
    }
    out
}

/// `z + h e_pix` then `z - h e_pix` for every pixel `pix` of the image `z`,
/// flat (`2 * pixels` images).
fn perturbations(z: &[f64], h: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(2 * z.len() * z.len());
    for pix in 0..z.len() {
        for step in [h, -h] {
            let start = out.len();
            out.extend_from_slice(z);
            out[start + pix] += step;
        }
    }
    out
}

/// Pixel gradients `classes x pixels` from patch gradients `classes x
/// positions x d`: a pixel's gradient is the sum of the entries of every
/// patch that contains it (the patches share the pixel).
fn pixel_gradient(patch_grads: &[f64], s: &Shape) -> Vec<f64> {
    let (h, w, d, ps) = (s.height(), s.width(), s.patch_dim(), s.patch());
    let (p, q) = s.grid(1);
    let mut out = vec![0.0; CLASSES * s.pixels()];
    for o in 0..CLASSES {
        for i in 0..p {
            for j in 0..q {
                let g = &patch_grads[(o * p * q + i * q + j) * d..][..d];
                for ch in 0..s.channels() {
                    for a in 0..ps {
                        for b in 0..ps {
                            let pix = ch * h * w + (i + a) * w + (j + b);
                            out[o * s.pixels() + pix] += g[ch * ps * ps + a * ps + b];
                        }
                    }
                }
            }
        }
    }
    out
}

/// `(NTK(x, x), NNGP(x, x))` in closed form: with `rho = 1` every ReLU
/// step has `Khat = K = q`, `Kdot = 1`, so `K^l = q^l` and
/// `Theta^l = wsum(Theta^{l-1}) + q^l`, from `q^1_p = |P_p S|^2 / c`.
fn self_kernel(s: &Shape, rows: &[f64], image: &[f64]) -> (f64, f64) {
    let (h, w, d, ps) = (s.height(), s.width(), s.patch_dim(), s.patch());
    let (mut r, mut c) = s.grid(1);
    let mut q = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            let mut patch = Vec::with_capacity(d);
            for ch in 0..s.channels() {
                for a in 0..ps {
                    for b in 0..ps {
                        patch.push(image[ch * h * w + (i + a) * w + j + b]);
                    }
                }
            }
            let u2: f64 = (0..d)
                .map(|m| {
                    (0..d)
                        .map(|k| patch[k] * rows[k * d + m])
                        .sum::<f64>()
                        .powi(2)
                })
                .sum();
            q[i * c + j] = u2 / s.channels() as f64;
        }
    }
    let mut theta = q.clone();
    let wsum = |m: &[f64], r: usize, c: usize| -> Vec<f64> {
        let (or, oc) = (r + 1 - ps, c + 1 - ps);
        let mut out = Vec::with_capacity(or * oc);
        for i in 0..or {
            for j in 0..oc {
                out.push((0..ps * ps).map(|t| m[(i + t / ps) * c + j + t % ps]).sum());
            }
        }
        out
    };
    for _ in 1..s.depth() {
        q = wsum(&q, r, c);
        theta = wsum(&theta, r, c)
            .iter()
            .zip(&q)
            .map(|(t, k)| t + k)
            .collect();
        (r, c) = (r + 1 - ps, c + 1 - ps);
    }
    let mean = |m: &[f64]| m.iter().sum::<f64>() / m.len() as f64;
    (mean(&theta) + mean(&q), mean(&q))
}

/// One image symmetry and the matching maps on patches: the image is
/// `out[ch][r][c] = in[pixel(ch, r, c)]`, the patch at grid position `pos`
/// of the transformed image is the patch at `position(pos)` of the original
/// with its entries permuted, `P'[k] = P[perm(k)]`, and the metric that
/// keeps every kernel value is `S'[k][l] = S[perm(k)][perm(l)]`.
struct Symmetry {
    name: &'static str,
    pixel: fn(&Shape, usize, usize, usize) -> (usize, usize, usize),
    perm: fn(&Shape, usize) -> usize,
    position: fn(&Shape, usize, usize) -> (usize, usize),
}

const SYMMETRIES: [Symmetry; 3] = [
    Symmetry {
        name: "horizontal flip",
        pixel: |s, ch, r, c| (ch, r, s.width() - 1 - c),
        perm: |s, k| k - k % s.patch() + (s.patch() - 1 - k % s.patch()),
        position: |s, i, j| (i, s.grid(1).1 - 1 - j),
    },
    Symmetry {
        name: "vertical flip",
        pixel: |s, ch, r, c| (ch, s.height() - 1 - r, c),
        perm: |s, k| {
            let ps = s.patch();
            let (ch, a, b) = (k / (ps * ps), k / ps % ps, k % ps);
            ch * ps * ps + (ps - 1 - a) * ps + b
        },
        position: |s, i, j| (s.grid(1).0 - 1 - i, j),
    },
    Symmetry {
        name: "channel reversal",
        pixel: |s, ch, r, c| (s.channels() - 1 - ch, r, c),
        perm: |s, k| {
            let plane = s.patch() * s.patch();
            (s.channels() - 1 - k / plane) * plane + k % plane
        },
        position: |_, i, j| (i, j),
    },
];

impl Symmetry {
    fn images(&self, s: &Shape, flat: &[f64]) -> Vec<f64> {
        let (h, w) = (s.height(), s.width());
        flat.chunks_exact(s.pixels())
            .flat_map(|im| {
                (0..s.pixels()).map(move |idx| {
                    let (ch, r, c) = (idx / (h * w), idx / w % h, idx % w);
                    let (ch, r, c) = (self.pixel)(s, ch, r, c);
                    im[ch * h * w + r * w + c]
                })
            })
            .collect()
    }

    fn metric(&self, s: &Shape, rows: &[f64]) -> Vec<f64> {
        let d = s.patch_dim();
        (0..d * d)
            .map(|idx| rows[(self.perm)(s, idx / d) * d + (self.perm)(s, idx % d)])
            .collect()
    }

    /// Patch gradients of the original query, rearranged into those the
    /// transformed query must have.
    fn patch_grads(&self, s: &Shape, g: &[f64]) -> Vec<f64> {
        let d = s.patch_dim();
        let (p, q) = s.grid(1);
        (0..CLASSES * p * q * d)
            .map(|idx| {
                let (o, pos, k) = (idx / (p * q * d), idx / d % (p * q), idx % d);
                let (i, j) = (self.position)(s, pos / q, pos % q);
                g[(o * p * q + i * q + j) * d + (self.perm)(s, k)]
            })
            .collect()
    }
}

/// The analytic patch gradient is the derivative of the kernel predictor:
/// summed over the patches sharing a pixel, it equals the central finite
/// difference of `f_o(z) = sum_n alpha[n][o] K(z, x_n)` in that pixel, for
/// every pixel, class, depth 1-3, both kernels, square and non-square
/// multi-channel images, with a random SPD metric, a random non-symmetric
/// metric and `S = I`. A second training set has exact-zero regions (a 4x4
/// corner in every third image, and one all-zero image): the degenerate
/// `q_x = 0` corner, where `f` is still smooth in `z`. The query has no zero pixel (pixels in
/// [0.1, 1)), so it stays away from the kink at `q_z = 0`. Patch sizes 3,
/// 5 (5x5 windows at every layer, as `Vanilla(5, depth)`) and 1. Patch size
/// 1 uses 4 channels: with 2, `u` is 2-D, 1x1 windows average nothing
/// between ReLU steps, and by depth 3 some positions are so near collinear
/// that `r = sqrt(q q - K^2)` is a cancellation (the README's 1/r caveat;
/// measured 9e-8 for every h from 3e-5 to 3e-6: the gradient's own
/// rounding, not truncation).
///
/// Measured (h = 1e-5): worst error 1.3e-9 of the class's largest pixel
/// gradient at patch size 3, 3.4e-9 at 5, 2.9e-9 at 1 (truncation error of
/// the difference quotient); tolerance 1e-8.
#[test]
fn patch_gradient_matches_finite_differences() {
    let h = 1e-5;
    let mut rng = rng(1);
    let mut worst = 0.0f64;
    let cases = [
        (3, 1, 8, 8, 3),
        (3, 2, 7, 9, 3),
        (5, 1, 14, 14, 3),
        (5, 2, 10, 12, 2),
        (1, 4, 5, 6, 3),
    ];
    for (ps, c, height, width, depths) in cases {
        for depth in 1..=depths {
            let s = shape_with_patch(c, height, width, ps, depth);
            let d = s.patch_dim();
            let n = 19;
            let x = images(&mut rng, n, &s, 0.1, 1.0);
            let z = images(&mut rng, 1, &s, 0.1, 1.0);
            let alpha = alpha(&mut rng, n);
            let spd = spd_rows(&mut rng, d);
            let general = general_rows(&mut rng, d);
            for x in [x.clone(), with_zero_regions(&x, &s)] {
                for rows in [&spd, &general, Metric::identity(d).rows()] {
                    for kind in KINDS {
                        let k = kernel(s, kind, rows);
                        let set = KernelBlocks::<f64>::new(&k, &x);
                        let grads = set.patch_gradients(&mat(&alpha), &z, &[]);
                        let analytic = pixel_gradient(&grads, &s);
                        let f = predict(&cross::<f64>(&k, &x, &perturbations(&z, h)), &alpha, n);
                        for o in 0..CLASSES {
                            let fd: Vec<f64> = (0..s.pixels())
                                .map(|pix| {
                                    let (plus, minus) =
                                        (2 * pix * CLASSES, (2 * pix + 1) * CLASSES);
                                    (f[plus + o] - f[minus + o]) / (2.0 * h)
                                })
                                .collect();
                            let err = scaled_err(&fd, &analytic[o * s.pixels()..][..s.pixels()]);
                            worst = worst.max(err);
                            assert!(
                                err < 1e-8,
                                "ps {ps} {c}x{height}x{width} depth {depth} {kind:?} class {o}: \
                                 finite differences differ from the patch gradient by {err:e}"
                            );
                        }
                    }
                }
            }
        }
    }
    eprintln!("finite differences: worst scaled error {worst:e}");
}

/// `TrainSet::agop` is its definition, `1/|Z| sum_z sum_o sum_p g g^T` of
/// the patch gradients, including a query equal to a training image (which
/// must get the self-pair convention, as `patch_gradients(.., &[j])`); and
/// it is symmetric positive semi-definite. Both precisions.
///
/// Measured: definition 1.2e-15 of max |AGOP| (summation order; tolerance
/// 1e-13); exactly symmetric (each `g_i g_j` is formed once per order, and
/// the products commute); smallest/largest eigenvalue +1e-9 (tolerance
/// -1e-12).
#[test]
fn agop_is_mean_outer_product_of_patch_gradients_and_psd() {
    fn check<R: Real>() {
        let mut rng = rng(2);
        let s = shape(2, 7, 9, 2);
        let d = s.patch_dim();
        let n = 19;
        let x = images(&mut rng, n, &s, 0.0, 1.0);
        let mut z = images(&mut rng, 5, &s, 0.0, 1.0);
        let copied = 7;
        z.extend_from_slice(&x[copied * s.pixels()..][..s.pixels()]);
        let m = z.len() / s.pixels();
        let alpha = alpha(&mut rng, n);
        let k = kernel(s, KernelKind::Ntk, &spd_rows(&mut rng, d));
        let set = KernelBlocks::<R>::new(&k, &x);
        let agop = set.agop(&mat(&alpha), &x, &z, &Phase::hidden());

        let mut want = vec![0.0; d * d];
        for (qi, query) in z.chunks_exact(s.pixels()).enumerate() {
            let same = if qi == m - 1 { vec![copied] } else { vec![] };
            for g in set
                .patch_gradients(&mat(&alpha), query, &same)
                .chunks_exact(d)
            {
                for i in 0..d {
                    for j in 0..d {
                        want[i * d + j] += g[i] * g[j] / m as f64;
                    }
                }
            }
        }
        let err = scaled_err(&agop, &want);
        eprintln!("{}: AGOP vs definition {err:e}", R::NAME);
        assert!(err < 1e-13, "{}: AGOP differs by {err:e}", R::NAME);
        // The self-pair convention matters: without it the copied query's
        // gradient differs (the kernel has a kink there).
        let last = &z[(m - 1) * s.pixels()..];
        let with = set.patch_gradients(&mat(&alpha), last, &[copied]);
        let without = set.patch_gradients(&mat(&alpha), last, &[]);
        assert_ne!(with, without, "self-pair convention has no effect");

        assert_eq!(agop, transpose(&agop, d), "{}: AGOP not symmetric", R::NAME);
        let ev = eigenvalues(&agop, d);
        let ratio = ev[0] / ev[d - 1];
        eprintln!("{}: AGOP smallest/largest eigenvalue {ratio:e}", R::NAME);
        assert!(
            ev[d - 1] > 0.0 && ratio >= -1e-12,
            "{}: AGOP not PSD: {ev:?}",
            R::NAME
        );
    }
    check::<f64>();
    check::<f32>();
}

/// `gram` is symmetric, and its off-diagonal entries equal `cross` of the
/// same images, in whichever order each pair is evaluated: the recursion
/// is symmetric in its two images although it treats the query side and
/// the lane side differently. Both kernels, both precisions, identity and
/// random metric, n = 20 (two blocks).
///
/// Measured, entry by entry: f64 4.3e-16 relative (tolerance 1e-12), f32
/// 3.4e-7 (tolerance 2e-6).
#[test]
fn gram_is_symmetric_and_matches_cross() {
    fn check<R: Real>(tol: f64) {
        let mut rng = rng(3);
        let s = shape(2, 7, 9, 3);
        let n = 20;
        let x = images(&mut rng, n, &s, 0.0, 1.0);
        let spd = spd_rows(&mut rng, s.patch_dim());
        let mut worst = 0.0f64;
        for rows in [Metric::identity(s.patch_dim()).rows().to_vec(), spd] {
            for kind in KINDS {
                let k = kernel(s, kind, &rows);
                let g = gram::<R>(&k, &x);
                let kxx = cross::<R>(&k, &x, &x);
                assert_eq!(
                    g,
                    transpose(&g, n),
                    "{} {kind:?}: gram not symmetric",
                    R::NAME
                );
                for i in 0..n {
                    for j in (0..n).filter(|&j| j != i) {
                        let err = (g[i * n + j] - kxx[i * n + j]).abs() / g[i * n + j].abs();
                        worst = worst.max(err);
                        assert!(
                            err < tol,
                            "{} {kind:?}: gram[{i}][{j}] = {} but cross = {} ({err:e})",
                            R::NAME,
                            g[i * n + j],
                            kxx[i * n + j]
                        );
                    }
                }
            }
        }
        eprintln!("{}: gram vs cross off-diagonal {worst:e}", R::NAME);
    }
    check::<f64>(1e-12);
    check::<f32>(2e-6);
}

/// The Gram matrix is positive semi-definite (it is a kernel), up to the
/// rounding of its entries. On 20 uniform random images the matrix is well
/// conditioned, so the test also uses 20 images in 4 tight clusters (base
/// image plus noise of 1e-3), whose small eigenvalues come from
/// near-collinear pairs (`rho` near 1, where the recursion is most
/// sensitive). Both kernels, depths 1-3, identity and random metric.
///
/// Measured smallest/largest eigenvalue: uniform >= 2.7e-3 in both
/// precisions; clustered >= 3.7e-9 in f64 (tolerance -1e-10), >= -2e-8 in
/// f32 (tolerance -2e-7).
#[test]
fn gram_is_positive_semidefinite() {
    let mut rng = rng(4);
    let n = 20;
    // Worst ratio per (image set, precision).
    let mut worst = [[f64::INFINITY; 2]; 2];
    for depth in 1..=3 {
        let s = shape(1, 8, 8, depth);
        let uniform = images(&mut rng, n, &s, 0.0, 1.0);
        let bases = images(&mut rng, 4, &s, 0.0, 1.0);
        let clustered: Vec<f64> = (0..n * s.pixels())
            .map(|idx| {
                let (i, pix) = (idx / s.pixels(), idx % s.pixels());
                bases[(i % 4) * s.pixels() + pix] + rng.random_range(0.0..1e-3)
            })
            .collect();
        let spd = spd_rows(&mut rng, s.patch_dim());
        for rows in [Metric::identity(s.patch_dim()).rows().to_vec(), spd] {
            for kind in KINDS {
                let k = kernel(s, kind, &rows);
                for (set, (set_name, x)) in [("uniform", &uniform), ("clustered", &clustered)]
                    .into_iter()
                    .enumerate()
                {
                    for (prec, (prec_name, g, tol)) in [
                        ("f64", gram::<f64>(&k, x), 1e-10),
                        ("f32", gram::<f32>(&k, x), 2e-7),
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        let ev = eigenvalues(&g, n);
                        let ratio = ev[0] / ev[n - 1];
                        worst[set][prec] = worst[set][prec].min(ratio);
                        assert!(
                            ratio >= -tol,
                            "{set_name} {prec_name} depth {depth} {kind:?}: gram not PSD, \
                             eigenvalues {ev:?}"
                        );
                    }
                }
            }
        }
    }
    eprintln!(
        "gram min/max eigenvalue: uniform f64 {:e} f32 {:e}, clustered f64 {:e} f32 {:e}",
        worst[0][0], worst[0][1], worst[1][0], worst[1][1]
    );
}

/// The ReLU kernels are positively homogeneous of degree 1 in each image:
/// `K(t x, z) = t K(x, z)`, `K(t x, t z) = t^2 K(x, z)` for `t > 0`. With
/// `t = 2` every intermediate value scales by a power of two, so the result
/// is exact; with other `t` it holds to rounding. The diagonal of `gram`
/// (self-pairs) scales the same way.
///
/// Measured: t = 2 bit for bit; other t 5.7e-16 relative (tolerance
/// 1e-14).
#[test]
fn kernel_is_positively_homogeneous() {
    let mut rng = rng(5);
    let s = shape(2, 7, 9, 3);
    let (n, m) = (6, 4);
    let x = images(&mut rng, n, &s, 0.0, 1.0);
    let z = images(&mut rng, m, &s, 0.0, 1.0);
    let rows = spd_rows(&mut rng, s.patch_dim());
    let scale = |v: &[f64], t: f64| v.iter().map(|p| p * t).collect::<Vec<_>>();
    let mut worst = 0.0f64;
    for kind in KINDS {
        let k = kernel(s, kind, &rows);
        let base = cross::<f64>(&k, &x, &z);
        let base_gram = gram::<f64>(&k, &x);
        for t in [2.0, 0.37, 3.1] {
            let both = cross::<f64>(&k, &scale(&x, t), &scale(&z, t));
            let train = cross::<f64>(&k, &scale(&x, t), &z);
            let query = cross::<f64>(&k, &x, &scale(&z, t));
            let g = gram::<f64>(&k, &scale(&x, t));
            for (got, want, what) in [
                (both, scale(&base, t * t), "both images"),
                (train, scale(&base, t), "training image"),
                (query, scale(&base, t), "query image"),
                (g, scale(&base_gram, t * t), "gram"),
            ] {
                if t == 2.0 {
                    assert_eq!(got, want, "{kind:?} t = 2, {what}: not exact");
                } else {
                    let err = entry_rel_err(&got, &want);
                    worst = worst.max(err);
                    assert!(err < 1e-14, "{kind:?} t = {t}, {what}: off by {err:e}");
                }
            }
        }
    }
    eprintln!("homogeneity: worst {worst:e}");
}

/// The kernel sees patches only through inner products of `u = P S`, so
/// the metric `S Q` with `Q` orthogonal gives the same kernel and the same
/// patch gradients as `S`. `S Q` is not symmetric: this also pins that the
/// metric acts as `P S` (not `S P`) and the gradient as `du S^T`.
///
/// Measured: kernel 5.1e-16 relative, gradients 5.5e-16 of their max
/// (tolerance 1e-13).
#[test]
fn kernel_and_gradient_invariant_under_right_orthogonal_metric_change() {
    let mut rng = rng(6);
    let mut worst = [0.0f64; 2];
    for depth in [1, 3] {
        let s = shape(2, 7, 9, depth);
        let d = s.patch_dim();
        let n = 19;
        let x = images(&mut rng, n, &s, 0.0, 1.0);
        let z = images(&mut rng, 3, &s, 0.0, 1.0);
        let alpha = alpha(&mut rng, n);
        let rows = spd_rows(&mut rng, d);
        let q = orthogonal(&mut rng, d);
        let rotated = matmul(&rows, &q, d);
        assert!(scaled_err(&rotated, &transpose(&rotated, d)) > 1e-3);
        for kind in KINDS {
            let (k, kq) = (kernel(s, kind, &rows), kernel(s, kind, &rotated));
            let err = entry_rel_err(&cross::<f64>(&kq, &x, &z), &cross::<f64>(&k, &x, &z));
            worst[0] = worst[0].max(err);
            assert!(
                err < 1e-13,
                "depth {depth} {kind:?}: kernel changed by {err:e}"
            );
            let err = entry_rel_err(&gram::<f64>(&kq, &x), &gram::<f64>(&k, &x));
            worst[0] = worst[0].max(err);
            assert!(
                err < 1e-13,
                "depth {depth} {kind:?}: gram changed by {err:e}"
            );
            let (set, setq) = (
                KernelBlocks::<f64>::new(&k, &x),
                KernelBlocks::<f64>::new(&kq, &x),
            );
            for query in z.chunks_exact(s.pixels()) {
                let g = set.patch_gradients(&mat(&alpha), query, &[]);
                let gq = setq.patch_gradients(&mat(&alpha), query, &[]);
                let err = scaled_err(&gq, &g);
                worst[1] = worst[1].max(err);
                assert!(
                    err < 1e-13,
                    "depth {depth} {kind:?}: gradient changed by {err:e}"
                );
            }
        }
    }
    eprintln!("S -> S Q: kernel {:e}, gradients {:e}", worst[0], worst[1]);
}

/// Flipping every image horizontally (or vertically, or reversing the
/// channels), with the metric conjugated by the matching patch-index
/// permutation (`b -> 2 - b`, `a -> 2 - a`, `ch -> c - 1 - ch`), leaves
/// every kernel value unchanged and permutes the patch gradients the same
/// way (grid position and patch index). Catches row / column / channel
/// order mix-ups, on a non-square two-channel image.
///
/// Measured: kernel 5.3e-16 relative, gradients 1.6e-15 of their max
/// (tolerance 1e-13).
#[test]
fn kernel_and_gradient_equivariant_under_flips() {
    let mut rng = rng(7);
    let mut worst = [0.0f64; 2];
    for depth in [1, 2, 3] {
        let s = shape(2, 7, 9, depth);
        let n = 5;
        let x = images(&mut rng, n, &s, 0.0, 1.0);
        let z = images(&mut rng, 3, &s, 0.0, 1.0);
        let alpha = alpha(&mut rng, n);
        let rows = spd_rows(&mut rng, s.patch_dim());
        for sym in &SYMMETRIES {
            let (xs, zs) = (sym.images(&s, &x), sym.images(&s, &z));
            assert_ne!(xs, x);
            for kind in KINDS {
                let (k, ks) = (
                    kernel(s, kind, &rows),
                    kernel(s, kind, &sym.metric(&s, &rows)),
                );
                let err = entry_rel_err(&cross::<f64>(&ks, &xs, &zs), &cross::<f64>(&k, &x, &z));
                worst[0] = worst[0].max(err);
                assert!(
                    err < 1e-13,
                    "{} depth {depth} {kind:?}: kernel off by {err:e}",
                    sym.name
                );
                let (set, sets) = (
                    KernelBlocks::<f64>::new(&k, &x),
                    KernelBlocks::<f64>::new(&ks, &xs),
                );
                for (query, query_s) in z.chunks_exact(s.pixels()).zip(zs.chunks_exact(s.pixels()))
                {
                    let want = sym.patch_grads(&s, &set.patch_gradients(&mat(&alpha), query, &[]));
                    let got = sets.patch_gradients(&mat(&alpha), query_s, &[]);
                    let err = scaled_err(&got, &want);
                    worst[1] = worst[1].max(err);
                    assert!(
                        err < 1e-13,
                        "{} depth {depth} {kind:?}: gradient off by {err:e}",
                        sym.name
                    );
                }
            }
        }
    }
    eprintln!("flips: kernel {:e}, gradients {:e}", worst[0], worst[1]);
}

/// An all-zero image has kernel exactly 0 with every image, on either side
/// and with itself, and a zero training image (whatever its weight) adds
/// nothing to the patch gradients (measured: exactly nothing; tolerance
/// 1e-14).
#[test]
fn zero_image_has_zero_kernel_and_no_gradient() {
    let mut rng = rng(8);
    let s = shape(2, 7, 9, 3);
    let n = 6;
    let x = images(&mut rng, n, &s, 0.0, 1.0);
    let z = images(&mut rng, 2, &s, 0.0, 1.0);
    let zero = vec![0.0; s.pixels()];
    let rows = spd_rows(&mut rng, s.patch_dim());
    let alpha = alpha(&mut rng, n);
    let mut worst = 0.0f64;
    for kind in KINDS {
        let k = kernel(s, kind, &rows);
        assert!(cross::<f64>(&k, &x, &zero).iter().all(|&v| v == 0.0));
        assert!(cross::<f64>(&k, &zero, &z).iter().all(|&v| v == 0.0));
        assert!(cross::<f32>(&k, &zero, &z).iter().all(|&v| v == 0.0));
        assert_eq!(gram::<f64>(&k, &zero), vec![0.0]);
        // Zero image inserted at index `at` of the training set: its row and
        // column of the Gram matrix are 0, the rest unchanged.
        let at = 3;
        let mut xz = x[..at * s.pixels()].to_vec();
        xz.extend_from_slice(&zero);
        xz.extend_from_slice(&x[at * s.pixels()..]);
        let (g, gz) = (gram::<f64>(&k, &x), gram::<f64>(&k, &xz));
        let old = |i: usize| i - usize::from(i > at);
        for i in 0..=n {
            for j in 0..=n {
                let want = if i == at || j == at {
                    0.0
                } else {
                    g[old(i) * n + old(j)]
                };
                assert_eq!(gz[i * (n + 1) + j], want, "{kind:?}: gram[{i}][{j}]");
            }
        }
        let mut alpha_z = alpha[..at * CLASSES].to_vec();
        alpha_z.extend_from_slice(&[5.0, -7.0, 11.0]);
        alpha_z.extend_from_slice(&alpha[at * CLASSES..]);
        let (set, setz) = (
            KernelBlocks::<f64>::new(&k, &x),
            KernelBlocks::<f64>::new(&k, &xz),
        );
        for query in z.chunks_exact(s.pixels()) {
            let g = set.patch_gradients(&mat(&alpha), query, &[]);
            let gz = setz.patch_gradients(&mat(&alpha_z), query, &[]);
            let err = scaled_err(&gz, &g);
            worst = worst.max(err);
            assert!(
                err < 1e-14,
                "{kind:?}: zero image changed the gradient by {err:e}"
            );
        }
    }
    eprintln!("zero training image: gradient changed by {worst:e}");
}

/// The diagonal of `gram` (self-pair convention, `rho = 1` exactly) equals
/// the closed form of `K(x, x)` to rounding, in both precisions;
/// `cross(x, x)` forms `rho` from rounded values instead, and differs by
/// the `sqrt(eps)` effect the golden README describes (`arccos` of a
/// rounding residue).
///
/// Measured, relative to the closed form: `gram` diagonal 4.9e-16 (f64,
/// tolerance 1e-13) and 2.1e-7 (f32, tolerance 2e-6); `cross(x, x)` 9.2e-9
/// (f64, tolerance 1e-7) and 1.9e-4 (f32, tolerance 1e-3).
#[test]
fn gram_diagonal_is_exact_self_kernel_and_cross_self_pairs_are_close() {
    fn check<R: Real>(tol_gram: f64, tol_cross: f64) -> (f64, f64) {
        let mut rng = rng(9);
        let mut worst = (0.0f64, 0.0f64);
        for (c, h, w, depth) in [(1, 8, 8, 1), (1, 8, 8, 2), (1, 8, 8, 3), (2, 7, 9, 3)] {
            let s = shape(c, h, w, depth);
            let n = 20;
            let x = images(&mut rng, n, &s, 0.0, 1.0);
            let rows = spd_rows(&mut rng, s.patch_dim());
            for kind in KINDS {
                let k = kernel(s, kind, &rows);
                let g = gram::<R>(&k, &x);
                let kxx = cross::<R>(&k, &x, &x);
                for (i, image) in x.chunks_exact(s.pixels()).enumerate() {
                    let (ntk, nngp) = self_kernel(&s, &rows, image);
                    let want = match kind {
                        KernelKind::Ntk => ntk,
                        KernelKind::Nngp => nngp,
                    };
                    let err_gram = (g[i * n + i] - want).abs() / want;
                    let err_cross = (kxx[i * n + i] - want).abs() / want;
                    worst = (worst.0.max(err_gram), worst.1.max(err_cross));
                    assert!(
                        err_gram < tol_gram && err_cross < tol_cross,
                        "{} {kind:?} {c}x{h}x{w} depth {depth}: K(x{i}, x{i}) = {want}, \
                         gram diagonal {} ({err_gram:e}), cross {} ({err_cross:e})",
                        R::NAME,
                        g[i * n + i],
                        kxx[i * n + i]
                    );
                }
            }
        }
        worst
    }
    let (g64, c64) = check::<f64>(1e-13, 1e-7);
    let (g32, c32) = check::<f32>(2e-6, 1e-3);
    eprintln!(
        "self-pairs vs closed form: gram f64 {g64:e} f32 {g32:e}; cross f64 {c64:e} f32 {c32:e}"
    );
}

/// Blocks of [`LANES`] images padded with zero lanes give, for every real
/// lane, bit for bit what a set holding that image alone gives (`cross`,
/// `gram` including its self-pairs); padding lanes add nothing to patch
/// gradients (which sum over lanes, so agree to rounding). n = 1, 17, 33.
///
/// Measured gradient difference: 4e-16 (f64, tolerance 1e-14) and 2.9e-8
/// (f32, tolerance 3e-7) of the largest entry.
#[test]
fn lane_padding_is_invisible() {
    fn check<R: Real>(tol: f64) -> f64 {
        let mut rng = rng(10);
        let mut worst = 0.0f64;
        let s = shape(1, 8, 8, 2);
        let z = images(&mut rng, 2, &s, 0.0, 1.0);
        let rows = spd_rows(&mut rng, s.patch_dim());
        let per = s.pixels();
        for n in [1, LANES + 1, 2 * LANES + 1] {
            let x = images(&mut rng, n, &s, 0.0, 1.0);
            let alpha = alpha(&mut rng, n);
            for kind in KINDS {
                let k = kernel(s, kind, &rows);
                let kzx = cross::<R>(&k, &x, &z);
                let g = gram::<R>(&k, &x);
                let set = KernelBlocks::<R>::new(&k, &x);
                let grads: Vec<Vec<f64>> = z
                    .chunks_exact(per)
                    .map(|q| set.patch_gradients(&mat(&alpha), q, &[]))
                    .collect();
                let mut summed = vec![vec![0.0; grads[0].len()]; grads.len()];
                for j in 0..n {
                    let xj = &x[j * per..][..per];
                    let alone = cross::<R>(&k, xj, &z);
                    for (m, v) in alone.iter().enumerate() {
                        assert_eq!(
                            kzx[m * n + j],
                            *v,
                            "{} n = {n} {kind:?}: cross[{m}][{j}]",
                            R::NAME
                        );
                    }
                    assert_eq!(
                        g[j * n + j],
                        gram::<R>(&k, xj)[0],
                        "{} n = {n}: gram[{j}][{j}]",
                        R::NAME
                    );
                    for i in j + 1..n {
                        let pair = cross::<R>(&k, &x[i * per..][..per], xj)[0];
                        assert_eq!(g[j * n + i], pair, "{} n = {n}: gram[{j}][{i}]", R::NAME);
                    }
                    let set_j = KernelBlocks::<R>::new(&k, xj);
                    let alpha_j = &alpha[j * CLASSES..][..CLASSES];
                    for (acc, q) in summed.iter_mut().zip(z.chunks_exact(per)) {
                        let gj = set_j.patch_gradients(&mat(alpha_j), q, &[]);
                        for (a, v) in acc.iter_mut().zip(gj) {
                            *a += v;
                        }
                    }
                }
                for (got, want) in grads.iter().zip(&summed) {
                    let err = scaled_err(got, want);
                    worst = worst.max(err);
                    assert!(
                        err < tol,
                        "{} n = {n} {kind:?}: gradient off by {err:e}",
                        R::NAME
                    );
                }
            }
        }
        worst
    }
    let (w64, w32) = (check::<f64>(1e-14), check::<f32>(3e-7));
    eprintln!("lane padding: gradients f64 {w64:e}, f32 {w32:e}");
}

/// The f32 path (polynomial `arccos`, f32 sums) tracks the exact f64 path:
/// every `gram` and `cross` entry (relative), patch gradients and AGOP
/// (relative to their largest entry).
///
/// Measured: gram 3.0e-7, cross 2.7e-7, gradients 2.9e-7, AGOP 1.9e-7;
/// tolerance 2e-6 each (the golden README measured 7e-7 off the diagonal
/// on real Fashion-MNIST images).
#[test]
fn f32_matches_f64() {
    let mut rng = rng(11);
    let mut worst = [0.0f64; 4];
    for (c, h, w, depth) in [(1, 8, 8, 3), (2, 7, 9, 3), (1, 12, 12, 3)] {
        let s = shape(c, h, w, depth);
        let n = 20;
        let x = images(&mut rng, n, &s, 0.0, 1.0);
        let z = images(&mut rng, 4, &s, 0.0, 1.0);
        let alpha = alpha(&mut rng, n);
        let rows = spd_rows(&mut rng, s.patch_dim());
        let hidden = Phase::hidden();
        for kind in KINDS {
            let k = kernel(s, kind, &rows);
            let (s32, s64) = (
                KernelBlocks::<f32>::new(&k, &x),
                KernelBlocks::<f64>::new(&k, &x),
            );
            let errs = [
                entry_rel_err(
                    s32.gram(&x, &hidden).as_slice(),
                    s64.gram(&x, &hidden).as_slice(),
                ),
                entry_rel_err(
                    s32.cross(&z, &hidden).as_slice(),
                    s64.cross(&z, &hidden).as_slice(),
                ),
                z.chunks_exact(s.pixels())
                    .map(|q| {
                        scaled_err(
                            &s32.patch_gradients(&mat(&alpha), q, &[]),
                            &s64.patch_gradients(&mat(&alpha), q, &[]),
                        )
                    })
                    .fold(0.0, f64::max),
                scaled_err(
                    &s32.agop(&mat(&alpha), &x, &z, &hidden),
                    &s64.agop(&mat(&alpha), &x, &z, &hidden),
                ),
            ];
            for (wv, e) in worst.iter_mut().zip(errs) {
                *wv = wv.max(e);
            }
        }
    }
    eprintln!(
        "f32 vs f64: gram {:e}, cross {:e}, gradients {:e}, AGOP {:e}",
        worst[0], worst[1], worst[2], worst[3]
    );
    for (what, err, tol) in [
        ("gram", worst[0], 2e-6),
        ("cross", worst[1], 2e-6),
        ("gradients", worst[2], 2e-6),
        ("AGOP", worst[3], 2e-6),
    ] {
        assert!(err < tol, "f32 {what} off by {err:e}");
    }
}
