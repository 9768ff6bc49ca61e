//! What the command prints: the per-iteration table of a training run,
//! the training summary, the export tables, peak memory.

use std::path::Path;
use std::time::Instant;

use std::fmt;
use std::io::{self, Write};

use anyhow::{Context, Result};
use convrfm_train::data::LabelledImages;
use convrfm_train::export::{Readout, Realised};
use convrfm_train::fit::report::IterationReport;
use convrfm_train::fit::report::LayerSummary;
use convrfm_train::fit::selection::LOO_MAX_IMAGES;
use convrfm_train::fit::train;
use convrfm_train::fit::{CheckedParams, Protocol, Selection};
use convrfm_train::kernel::Precision;
use convrfm_train::output::Progress;

/// Writes one line to stdout; a failed write is an error naming stdout.
pub fn say(args: fmt::Arguments<'_>) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .context("writing to standard output")
}

/// Column headings of [`describe_realised`].
pub const REALISED_HEADER: &str = "   bytes     m   r  bits   lambda  label_w   val_%  float_test_%  int_test_%  same_class_%  insns_M";

/// One row of the export tables under [`REALISED_HEADER`].
pub fn describe_realised(r: &Realised) -> String {
    let c = &r.candidate;
    let test_cols = r
        .test
        .as_ref()
        .map_or(String::from("      -        -        -"), |t| {
            format!(
                "{:>7.2}  {:>7.2}  {:>7.2}",
                100.0 * t.float_accuracy,
                100.0 * t.int_accuracy,
                100.0 * t.same_class
            )
        });
    format!(
        "{:>8}  {:>4}  {:>2}  {:>4}  {:>7.0e}  {:>7.2}  {:>6.2}  {test_cols}  {:>7.1}",
        r.blob.len(),
        c.m,
        c.rank,
        c.pixel_bits,
        c.lambda,
        c.label_weight,
        100.0 * c.val_accuracy,
        c.instructions as f64 / 1e6
    )
}

/// The lines under the row of `r`: how its centres were learned and how
/// its readout was chosen, each when there is something to say.
pub fn describe_build(r: &Realised) -> impl Iterator<Item = String> {
    [describe_learning(r), describe_readout(r)]
        .into_iter()
        .flatten()
}

/// How the centres of `r` were learned.
fn describe_learning(r: &Realised) -> Option<String> {
    r.learned.map(|l| {
        format!(
            "learned centres: {} steps; pool loss {:.4} -> {:.4}, validation {:.2} % -> {:.2} % \
             (kept: step {})",
            l.steps,
            l.first.pool_loss,
            l.kept.pool_loss,
            100.0 * l.first.val_accuracy,
            100.0 * l.kept.val_accuracy,
            l.kept.step
        )
    })
}

/// Which readout fitted the alpha of `r` and how the readouts scored in
/// cross-validation (when the softmax was tried).
fn describe_readout(r: &Realised) -> Option<String> {
    r.readout.map(|o| {
        let used = match o.used {
            Readout::LeastSquares => "least squares",
            _ => "softmax",
        };
        let ls = o
            .least_squares_cv
            .map_or(String::new(), |a| format!(", least squares {:.2} %", 100.0 * a));
        format!(
            "readout: {used}; {}-fold accuracy on the fit images: softmax {:.2} % (ridge {:.0e}){ls}",
            convrfm_train::export::softmax::FOLDS,
            100.0 * o.softmax.cv_accuracy,
            o.softmax.ridge,
        )
    })
}

/// Trains, prints each iteration and the summary, and saves the model to
/// `out` if given.
pub fn train_and_report(
    params: &CheckedParams,
    train: &LabelledImages,
    test: Option<&LabelledImages>,
    progress: Progress,
    out: Option<&Path>,
) -> Result<()> {
    let p = params.get();
    let reference = p.protocol == Protocol::Reference;
    let method = if p.layers > 1 {
        format!(
            "Deep ConvRFM ({} layers, {} filters each)",
            p.layers, p.filters
        )
    } else {
        "ConvRFM".to_string()
    };
    say!(
        "training {method}: {} images {} ({}), {} classes, patch {q}x{q}, depth {}, {} iterations, {} kernel, {} protocol, {} threads",
        train.len(),
        train.images.dims,
        train.images.pixel_type,
        train.num_classes(),
        p.depth,
        p.iterations,
        match p.precision {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        },
        if reference { "reference" } else { "standard" },
        rayon::current_num_threads(),
        q = p.patch
    );
    if !reference {
        say!("{}", selection_note(p.selection, train.len()));
    }
    let mut printer = IterationPrinter::new(reference);
    let t = Instant::now();
    let outcome = train::train(params, train, test, progress, &mut |r| printer.print(r))?;
    printer.finish()?;
    if outcome.layers.len() > 1 {
        say!(
            "per layer (lambda and iteration chosen on training data; test of the layer's model):"
        );
        say!("layer  {}", LayerSummary::TABLE_HEADER);
        for s in &outcome.layers {
            say!("{:>5}  {}", s.layer, s.table_row());
        }
    }
    if let Some(last) = outcome.layers.last().filter(|_| !reference) {
        let refit = if last.selection.fits_all() {
            format!(
                "its fit on all {} training images is the model",
                train.len()
            )
        } else {
            format!(
                "re-fitted on all {} training images in {:.2} s",
                train.len(),
                outcome.refit_seconds
            )
        };
        say!(
            "best iteration by {}: {} (lambda {:e}, selection accuracy {:.2} %); {refit}",
            last.selection,
            outcome.best_iteration,
            outcome.model.lambda,
            100.0 * last.selection_accuracy.unwrap_or(f64::NAN),
        );
    }
    if let Some(acc) = outcome.final_test_accuracy {
        say!("test accuracy of the saved model: {:.2} %", 100.0 * acc);
    }
    match peak_rss_mib() {
        Some(mib) => say!(
            "total {:.1} s, peak memory (RSS) {mib:.0} MiB",
            t.elapsed().as_secs_f64()
        ),
        None => say!("total {:.1} s", t.elapsed().as_secs_f64()),
    }
    if let Some(out) = out {
        outcome.model.save(out)?;
        say!("model written to {}", out.display());
    }
    Ok(())
}

/// One line saying how lambda and the iteration are chosen for `n`
/// training images.
pub fn selection_note(selection: Selection, n: usize) -> String {
    let why = if selection == Selection::Auto {
        format!(" (auto: leave-one-out up to {LOO_MAX_IMAGES} images)")
    } else {
        String::new()
    };
    format!(
        "selection {}: lambda and iteration chosen by {}{why}",
        selection.for_images(n),
        selection.describe(n)
    )
}

/// Prints one line per iteration, with a header at each run's or Deep
/// ConvRFM layer's first iteration. Training reports through a callback
/// that cannot fail, so the first failed write is kept and returned by
/// [`IterationPrinter::finish`] (later lines are not attempted).
pub struct IterationPrinter {
    reference: bool,
    failed: Option<anyhow::Error>,
}

impl IterationPrinter {
    /// A printer for the standard (`reference = false`) or reference
    /// protocol's columns.
    pub fn new(reference: bool) -> Self {
        Self {
            reference,
            failed: None,
        }
    }

    /// Prints `r`, unless an earlier write failed.
    pub fn print(&mut self, r: &IterationReport) {
        if self.failed.is_none() {
            self.failed = self.write(r).err();
        }
    }

    /// The first failed write, if any.
    pub fn finish(self) -> Result<()> {
        self.failed.map_or(Ok(()), Err)
    }

    fn write(&self, r: &IterationReport) -> Result<()> {
        let reference = self.reference;
        if r.iteration == 0 {
            if r.layer > 1 {
                say!("layer {} (Deep ConvRFM):", r.layer);
            }
            if reference {
                let cols: Vec<String> = r
                    .results
                    .iter()
                    .map(|l| format!("test@{:e}", l.lambda))
                    .collect();
                say!(
                    "iter  {}  Ktrain_s  Ktest_s  solve_s  AGOP_s  eigh_s",
                    cols.join("  ")
                );
            } else {
                say!(
                    "iter  lambda    sel_%   test_%  Ktrain_s  Ktest_s  solve_s  select_s  AGOP_s  eigh_s"
                );
            }
        }
        let t = &r.times;
        let times = format!(
            "{:>8.2}  {:>7.2}  {:>7.2}  {:>8.2}  {:>6.2}  {:>6.3}",
            t.ktrain, t.ktest, t.solve, t.select, t.agop, t.eigh
        );
        let pct =
            |a: Option<f64>| a.map_or("   -  ".to_string(), |a| format!("{:>6.2}", 100.0 * a));
        if reference {
            let cols: Vec<String> = r
                .results
                .iter()
                .map(|l| format!("{:>10}", pct(l.test_accuracy)))
                .collect();
            say!("{:>4}  {}  {times}", r.iteration, cols.join("  "));
        } else {
            let c = &r.results[r.chosen];
            say!(
                "{:>4}  {:<8.0e}  {}   {}  {times}",
                r.iteration,
                c.lambda,
                pct(c.selection.map(|s| s.accuracy)),
                pct(c.test_accuracy)
            );
        }
        for l in r.results.iter().filter(|l| l.jitter > 0.0) {
            say!(
                "      note: lambda {:e} needed a diagonal jitter of {:e}",
                l.lambda,
                l.jitter
            );
        }
        Ok(())
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
