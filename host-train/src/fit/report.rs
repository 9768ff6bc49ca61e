//! What a training run reports: per lambda, per iteration (with seconds
//! per phase) and per Deep ConvRFM layer.

use super::model::IterationRecord;
use super::selection::{Score, Selection};
use crate::data::ImageDims;

/// One lambda's outcome in one iteration.
#[derive(Clone, Debug)]
pub struct LambdaResult {
    /// Ridge value.
    pub lambda: f64,
    /// Jitter Cholesky needed beyond lambda (0 if none).
    pub jitter: f64,
    /// Its score on training data under the run's [`Selection`] (standard
    /// protocol).
    pub selection: Option<Score>,
    /// Test accuracy, when a test set was given (never used to choose).
    pub test_accuracy: Option<f64>,
}

/// Wall-clock seconds per phase of one iteration.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseTimes {
    /// `K(X, X)`.
    pub ktrain: f64,
    /// `K(Z, X)` for validation and test images.
    pub ktest: f64,
    /// Cholesky solves, all lambdas.
    pub solve: f64,
    /// Scoring every lambda for selection (leave-one-out's
    /// eigendecomposition, k-fold's solves, a split's predictions).
    pub select: f64,
    /// Patch gradients and AGOP.
    pub agop: f64,
    /// Eigendecomposition for the metric square root.
    pub eigh: f64,
}

impl PhaseTimes {
    /// Sum of all phases.
    pub fn total(&self) -> f64 {
        self.ktrain + self.ktest + self.solve + self.select + self.agop + self.eigh
    }
}

/// What one ConvRFM iteration did.
#[derive(Clone, Debug)]
pub struct IterationReport {
    /// 1-based Deep ConvRFM layer (1 for plain ConvRFM).
    pub layer: usize,
    /// 0-based; iteration 0 is the plain convolutional kernel (`S = I`).
    pub iteration: usize,
    /// One entry per lambda tried.
    pub results: Vec<LambdaResult>,
    /// Index into `results` of the lambda this iteration uses.
    pub chosen: usize,
    /// Seconds per phase.
    pub times: PhaseTimes,
}

impl IterationReport {
    /// What a model keeps of this iteration: the chosen lambda's figures.
    pub fn record(&self) -> IterationRecord {
        let chosen = self.results.get(self.chosen);
        IterationRecord {
            layer: self.layer,
            iteration: self.iteration,
            lambda: chosen.map_or(f64::NAN, |r| r.lambda),
            selection_accuracy: chosen.and_then(|r| r.selection).map(|s| s.accuracy),
            test_accuracy: chosen.and_then(|r| r.test_accuracy),
        }
    }
}

/// What one layer of a (Deep) ConvRFM run ended with.
#[derive(Clone, Debug)]
pub struct LayerSummary {
    /// 1-based layer number.
    pub layer: usize,
    /// Kernel depth of this layer.
    pub depth: usize,
    /// The shape of the images this layer's kernel sees.
    pub dims: ImageDims,
    /// Iteration (within the layer) whose metric was kept.
    pub best_iteration: usize,
    /// Ridge of the kept fit.
    pub lambda: f64,
    /// How lambda and the iteration were chosen (resolved: never `Auto`).
    pub selection: Selection,
    /// The selection accuracy of that iteration (standard protocol).
    pub selection_accuracy: Option<f64>,
    /// Test accuracy of this layer's model, when a test set was given.
    pub test_accuracy: Option<f64>,
}

impl LayerSummary {
    /// Column headings of [`LayerSummary::table_row`].
    pub const TABLE_HEADER: &'static str =
        "kernel input  depth  best_iter  lambda    sel_%  test_%";

    /// The summary as one line of a table under [`Self::TABLE_HEADER`].
    pub fn table_row(&self) -> String {
        let pct = |a: Option<f64>| a.map_or("     -".into(), |a| format!("{:>6.2}", 100.0 * a));
        format!(
            "{:>12}  {:>5}  {:>9}  {:<7.0e}  {}  {}",
            self.dims.to_string(),
            self.depth,
            self.best_iteration,
            self.lambda,
            pct(self.selection_accuracy),
            pct(self.test_accuracy)
        )
    }
}
