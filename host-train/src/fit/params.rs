//! Training parameters, checked once: [`TrainParams::check`] turns what a
//! user gave into [`CheckedParams`], the only thing [`super::train`]
//! accepts (linfa's `ParamGuard` pattern).

use serde::{Deserialize, Serialize};

use super::selection::Selection;
use crate::data::ResizeFilter;
use crate::kernel::{KernelKind, Precision};
use crate::params::{ParamError, at_least, fraction, ridge_values};

/// How lambda, the AGOP images and the iteration are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Protocol {
    /// Chosen on training data only ([`Selection`]); nothing is chosen on
    /// the test set.
    Standard,
    /// The authors' script, reported on the test set (comparison only).
    Reference,
}

/// Training parameters as given; [`TrainParams::check`] turns them into
/// [`CheckedParams`], the only thing [`super::train`] accepts.
#[derive(Clone, Debug)]
pub struct TrainParams {
    /// Patch side `Q` (odd): every layer is a `Q x Q` VALID window.
    pub patch: usize,
    /// Kernel depth `L` (conv layers, including the patch layer).
    pub depth: usize,
    /// ConvRFM iterations (kernel fits); iteration 0 uses `S = I`.
    pub iterations: usize,
    /// Ridge values tried (on the max-normalised kernel); `None`: the
    /// protocol's own ([`STANDARD_LAMBDAS`] or [`REFERENCE_LAMBDAS`]).
    pub lambdas: Option<Vec<f64>>,
    /// How lambda and the iteration are chosen on training data.
    pub selection: Selection,
    /// Training images the AGOP is averaged over (the reference protocol
    /// fixes its own).
    pub agop_images: usize,
    /// Kernel float type.
    pub precision: Precision,
    /// NTK or NNGP.
    pub kind: KernelKind,
    /// Seed of the selection's split or folds and the AGOP image sample.
    pub seed: u64,
    /// Standard or reference protocol.
    pub protocol: Protocol,
    /// Deep ConvRFM layers (1: plain ConvRFM); the kernel depth drops by
    /// one per added layer.
    pub layers: usize,
    /// Filters of each Deep ConvRFM feature layer.
    pub filters: usize,
    /// Recorded in the model: how a picture of another size is resized to
    /// the model's (training data is already at size).
    pub resize: ResizeFilter,
}

/// Ridge values of the standard protocol.
pub const STANDARD_LAMBDAS: [f64; 5] = [1e-6, 1e-4, 1e-3, 1e-2, 1e-1];
/// Ridge values of the reference protocol.
pub const REFERENCE_LAMBDAS: [f64; 3] = [1e-8, 1e-5, 1e-3];
/// AGOP images of the reference protocol (the first ones).
pub const REFERENCE_AGOP_IMAGES: usize = 20;

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            patch: 3,
            depth: 3,
            iterations: 5,
            lambdas: None,
            selection: Selection::Auto,
            agop_images: 100,
            precision: Precision::F32,
            kind: KernelKind::Ntk,
            seed: 0,
            protocol: Protocol::Standard,
            layers: 1,
            filters: 64,
            resize: ResizeFilter::default(),
        }
    }
}

/// Parameters that passed [`TrainParams::check`]: every field valid, the
/// protocol's lambdas and AGOP images filled in.
#[derive(Clone, Debug)]
pub struct CheckedParams {
    params: TrainParams,
    lambdas: Vec<f64>,
}

impl CheckedParams {
    /// The validated parameters.
    pub fn get(&self) -> &TrainParams {
        &self.params
    }

    /// The ridge values tried, in order.
    pub fn lambdas(&self) -> &[f64] {
        &self.lambdas
    }
}

impl TrainParams {
    /// Validates every field; the reference protocol fixes its lambdas and
    /// AGOP images, so giving lambdas with it is a conflict.
    pub fn check(mut self) -> Result<CheckedParams, ParamError> {
        if self.patch % 2 == 0 {
            return Err(ParamError::NotAllowed {
                name: "patch-size",
                allowed: "odd numbers 1, 3, 5, ...",
                got: self.patch,
            });
        }
        at_least("depth", self.depth, 1)?;
        at_least("iterations", self.iterations, 1)?;
        let lambdas = match (self.protocol, &self.lambdas) {
            (Protocol::Reference, Some(_)) => {
                return Err(ParamError::Conflict(
                    "--protocol reference uses the authors' lambdas (1e-8, 1e-5, 1e-3); \
                     --lambdas cannot be given with it",
                ));
            }
            (Protocol::Reference, None) => {
                self.agop_images = REFERENCE_AGOP_IMAGES;
                REFERENCE_LAMBDAS.to_vec()
            }
            (Protocol::Standard, given) => {
                given.clone().unwrap_or_else(|| STANDARD_LAMBDAS.to_vec())
            }
        };
        ridge_values("lambdas", &lambdas)?;
        match self.selection {
            Selection::KFold(k) => at_least("selection kfold:K", k, 2)?,
            Selection::Split(share) => fraction("selection split:F", share)?,
            Selection::Auto | Selection::Loo => {}
        }
        at_least("agop-images", self.agop_images, 1)?;
        at_least("layers", self.layers, 1)?;
        if self.layers > self.depth {
            return Err(ParamError::Conflict(
                "layers must not exceed the kernel depth, since each added layer takes one off it",
            ));
        }
        at_least("filters", self.filters, 1)?;
        Ok(CheckedParams {
            params: self,
            lambdas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_each_bad_field_is_named() {
        let ok = TrainParams::default().check().unwrap();
        assert_eq!(ok.lambdas(), STANDARD_LAMBDAS);
        let bad = |p: TrainParams| p.check().unwrap_err().to_string();
        let d = TrainParams::default;
        assert!(bad(TrainParams { depth: 0, ..d() }).contains("depth"));
        assert!(
            bad(TrainParams {
                iterations: 0,
                ..d()
            })
            .contains("iterations")
        );
        assert!(
            bad(TrainParams {
                lambdas: Some(vec![-1.0]),
                ..d()
            })
            .contains("lambdas")
        );
        assert!(
            bad(TrainParams {
                selection: Selection::KFold(1),
                ..d()
            })
            .contains("kfold:K must be at least 2")
        );
        assert!(
            bad(TrainParams {
                selection: Selection::Split(1.0),
                ..d()
            })
            .contains("split:F must be in (0, 1)")
        );
        for patch in [0, 2, 4] {
            assert!(bad(TrainParams { patch, ..d() }).contains("patch-size must be one of odd"));
        }
        assert!(bad(TrainParams { layers: 4, ..d() }).contains("layers"));
        assert!(bad(TrainParams { filters: 0, ..d() }).contains("filters"));
    }

    #[test]
    fn reference_protocol_fixes_its_lambdas_and_refuses_given_ones() {
        let reference = TrainParams {
            protocol: Protocol::Reference,
            ..TrainParams::default()
        };
        let ok = reference.clone().check().unwrap();
        assert_eq!(ok.lambdas(), REFERENCE_LAMBDAS);
        assert_eq!(ok.get().agop_images, REFERENCE_AGOP_IMAGES);
        let err = TrainParams {
            lambdas: Some(vec![1e-3]),
            ..reference
        }
        .check()
        .unwrap_err();
        assert!(matches!(err, ParamError::Conflict(_)), "{err}");
    }
}
