//! Checked parameters: every parameter set of the crate (training, export,
//! bench) is validated once by a `check` that returns a checked type or a
//! [`ParamError`] naming the parameter, before any heavy work (linfa's
//! `ParamGuard` pattern). The helpers are the rules they share.

/// Why a parameter set was refused; names the parameter as the command
/// line spells it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A count below its minimum.
    #[error("{name} must be at least {min}, got {got}")]
    TooSmall {
        /// Parameter name.
        name: &'static str,
        /// Smallest allowed value.
        min: usize,
        /// Given value.
        got: usize,
    },
    /// A count above its maximum.
    #[error("{name} must be at most {max}, got {got}")]
    TooLarge {
        /// Parameter name.
        name: &'static str,
        /// Largest allowed value.
        max: usize,
        /// Given value.
        got: usize,
    },
    /// A fraction outside the open interval (0, 1).
    #[error("{name} must be in (0, 1), got {got}")]
    NotAFraction {
        /// Parameter name.
        name: &'static str,
        /// Given value.
        got: f64,
    },
    /// A weight outside the closed interval [0, 1].
    #[error("{name} must be in [0, 1], got {got}")]
    NotAWeight {
        /// Parameter name.
        name: &'static str,
        /// Given value.
        got: f64,
    },
    /// A list that needs at least one value is empty.
    #[error("{name}: at least one value is needed")]
    Empty {
        /// Parameter name.
        name: &'static str,
    },
    /// A value that must be finite and non-negative is not.
    #[error("{name} must be finite and non-negative, got {got}")]
    NotFiniteNonNegative {
        /// Parameter name.
        name: &'static str,
        /// Given value.
        got: f64,
    },
    /// A value outside a fixed set of choices.
    #[error("{name} must be one of {allowed}, got {got}")]
    NotAllowed {
        /// Parameter name.
        name: &'static str,
        /// The choices, as text.
        allowed: &'static str,
        /// Given value.
        got: usize,
    },
    /// A value that must be finite and positive is not.
    #[error("{name} must be finite and positive, got {got}")]
    NotPositive {
        /// Parameter name.
        name: &'static str,
        /// Given value.
        got: f64,
    },
    /// A duration of zero where some time is needed.
    #[error("{name} must be longer than 0 s (leave learning out with --no-learn)")]
    ZeroDuration {
        /// Parameter name.
        name: &'static str,
    },
    /// Two parameters that cannot be given together.
    #[error("{0}")]
    Conflict(&'static str),
}

/// `got >= min`.
pub fn at_least(name: &'static str, got: usize, min: usize) -> Result<(), ParamError> {
    if got >= min {
        Ok(())
    } else {
        Err(ParamError::TooSmall { name, min, got })
    }
}

/// `got <= max`.
pub fn at_most(name: &'static str, got: usize, max: usize) -> Result<(), ParamError> {
    if got <= max {
        Ok(())
    } else {
        Err(ParamError::TooLarge { name, max, got })
    }
}

/// `0 < got < 1` (NaN is refused).
pub fn fraction(name: &'static str, got: f64) -> Result<(), ParamError> {
    if got > 0.0 && got < 1.0 {
        Ok(())
    } else {
        Err(ParamError::NotAFraction { name, got })
    }
}

/// A weight in the closed interval `[0, 1]`.
pub fn unit_interval(name: &'static str, got: f64) -> Result<(), ParamError> {
    if (0.0..=1.0).contains(&got) {
        Ok(())
    } else {
        Err(ParamError::NotAWeight { name, got })
    }
}

/// A finite, positive value (a step size).
pub fn positive(name: &'static str, got: f64) -> Result<(), ParamError> {
    if got.is_finite() && got > 0.0 {
        Ok(())
    } else {
        Err(ParamError::NotPositive { name, got })
    }
}

/// A nonempty list of finite, non-negative values (ridge values).
pub fn ridge_values(name: &'static str, values: &[f64]) -> Result<(), ParamError> {
    if values.is_empty() {
        return Err(ParamError::Empty { name });
    }
    match values.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        Some(&got) => Err(ParamError::NotFiniteNonNegative { name, got }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accept_and_refuse_at_their_bounds() {
        assert!(at_least("depth", 1, 1).is_ok());
        assert_eq!(
            at_least("depth", 0, 1).unwrap_err().to_string(),
            "depth must be at least 1, got 0"
        );
        assert!(at_most("rank", 9, 9).is_ok() && at_most("rank", 10, 9).is_err());
        assert!(fraction("val-fraction", 0.2).is_ok());
        for bad in [0.0, 1.0, f64::NAN, -0.1] {
            assert!(fraction("val-fraction", bad).is_err(), "{bad}");
        }
        assert!(ridge_values("lambdas", &[0.0, 1e-3]).is_ok());
        assert_eq!(
            ridge_values("lambdas", &[]),
            Err(ParamError::Empty { name: "lambdas" })
        );
        assert!(positive("learning-rate", 0.01).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(positive("learning-rate", bad).is_err(), "{bad}");
        }
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(ridge_values("lambdas", &[1e-3, bad]).is_err(), "{bad}");
        }
    }
}
