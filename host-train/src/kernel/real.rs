//! The two float types the kernel is computed in.
//!
//! `f64` is the exact path (golden tests, `--precision f64`); `f32` is the
//! fast path, twice the SIMD width. The only operation whose implementation
//! differs is [`Real::arccos`]: `f64` uses the correctly rounded libm routine,
//! `f32` a branch-free polynomial that auto-vectorises.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// Float operations the kernel recursion and its gradient need.
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
    + 'static
{
    /// Name shown to users (`f32` / `f64`).
    const NAME: &'static str;
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Converts from `f64` (rounding for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `arccos(x)`, saturating outside `[-1, 1]` (0 above 1, pi below -1),
    /// so a rounding excess never gives NaN.
    fn arccos(self) -> Self;
    /// The larger of two values.
    fn max(self, other: Self) -> Self;
    /// The smaller of two values.
    fn min(self, other: Self) -> Self;
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn arccos(self) -> Self {
        f64::acos(self.clamp(-1.0, 1.0))
    }
    fn max(self, other: Self) -> Self {
        f64::max(self, other)
    }
    fn min(self, other: Self) -> Self {
        f64::min(self, other)
    }
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    /// Abramowitz & Stegun 4.4.46: `acos(a) = sqrt(1 - a) P7(a)` on `[0, 1]`,
    /// absolute error <= 2e-8, below f32 resolution near `pi/2`; reflected for
    /// negative arguments. No branches, so lane loops vectorise.
    #[allow(clippy::excessive_precision)] // coefficients as published
    fn arccos(self) -> Self {
        let a = self.abs();
        let p = -0.001_262_491_1_f32;
        let p = p * a + 0.006_670_090_1;
        let p = p * a + -0.017_088_125_6;
        let p = p * a + 0.030_891_881_0;
        let p = p * a + -0.050_174_304_6;
        let p = p * a + 0.088_978_987_4;
        let p = p * a + -0.214_598_801_6;
        let p = p * a + 1.570_796_305_0;
        let r = (1.0 - a).max(0.0).sqrt() * p;
        if self < 0.0 {
            std::f32::consts::PI - r
        } else {
            r
        }
    }
    fn max(self, other: Self) -> Self {
        f32::max(self, other)
    }
    fn min(self, other: Self) -> Self {
        f32::min(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_arccos_is_within_two_ulps_of_pi_of_libm() {
        let mut worst = 0.0f64;
        for i in -10_000..=10_000 {
            let x = i as f64 / 10_000.0;
            let err = ((x as f32).arccos() as f64 - (x as f32 as f64).acos()).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "worst arccos error {worst}");
        assert_eq!(1.0f32.arccos(), 0.0);
        assert!((std::f32::consts::PI - (-1.0f32).arccos()).abs() < 1e-6);
    }

    #[test]
    fn arccos_saturates_outside_the_unit_interval() {
        assert_eq!(Real::arccos(1.0 + 1e-7f32), 0.0);
        assert!((Real::arccos(-1.0 - 1e-7f32) - std::f32::consts::PI).abs() < 1e-6);
        assert_eq!(Real::arccos(1.0 + 1e-12f64), 0.0);
        assert_eq!(Real::arccos(-1.0 - 1e-12f64), std::f64::consts::PI);
    }
}
