//! The paper's comparison on one task: the plain convolutional kernel
//! (CNTK, `M = I`), ConvRFM, and Deep ConvRFM, each with lambda and the
//! iteration chosen on validation and only then scored on the test set.
//!
//! Two training runs: the CNTK is ConvRFM stopped at iteration 0; ConvRFM
//! is layer 1 of the Deep ConvRFM run (the same seed gives the same split
//! and AGOP sample, so a separate single-layer run would repeat it).

use std::fmt;

use anyhow::Result;

use super::params::{CheckedParams, TrainParams};
use super::report::{IterationReport, LayerSummary};
use super::train::train;
use crate::data::LabelledImages;
use crate::fit::Model;
use crate::output::Progress;

/// One method's outcome.
pub struct Row {
    /// "CNTK (M = I)", "ConvRFM", "Deep ConvRFM (2 layers)", ...
    pub method: String,
    /// What its run chose and scored.
    pub summary: LayerSummary,
    /// Its re-fitted model.
    pub model: Model,
}

/// The comparison table.
pub struct Comparison {
    /// CNTK, ConvRFM, then one row per added Deep ConvRFM layer.
    pub rows: Vec<Row>,
}

/// Runs the comparison with `params` (its `layers`, at least 2, sets the
/// Deep ConvRFM depth; without `deep` only CNTK and ConvRFM run),
/// reporting every iteration to `on_iteration`. The two runs' parameters
/// are derived from the checked ones and checked again.
pub fn compare(
    params: &CheckedParams,
    deep: bool,
    train_set: &LabelledImages,
    test: &LabelledImages,
    progress: Progress,
    on_iteration: &mut dyn FnMut(&IterationReport),
) -> Result<Comparison> {
    let p = params.get();
    let cntk = TrainParams {
        iterations: 1,
        layers: 1,
        ..p.clone()
    }
    .check()?;
    let convrfm = TrainParams {
        layers: if deep { p.layers.max(2) } else { 1 },
        ..p.clone()
    }
    .check()?;
    let mut rows = Vec::new();
    for (params, name) in [(cntk, "CNTK (M = I)"), (convrfm, "ConvRFM")] {
        let run = train(&params, train_set, Some(test), progress, on_iteration)?;
        rows.extend(
            run.layers
                .into_iter()
                .zip(run.layer_models)
                .map(|(summary, model)| Row {
                    method: match summary.layer {
                        1 => name.to_string(),
                        l => format!("Deep ConvRFM ({l} layers)"),
                    },
                    summary,
                    model,
                }),
        );
    }
    Ok(Comparison { rows })
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<25}  {}", "method", LayerSummary::TABLE_HEADER)?;
        for r in &self.rows {
            writeln!(f, "{:<25}  {}", r.method, r.summary.table_row())?;
        }
        Ok(())
    }
}
