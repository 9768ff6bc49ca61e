//! End to end through the library: data -> ConvRFM training -> model file
//! -> loaded model -> predictions, on the vendored Fashion-MNIST subset.

use convrfm_train::data::{Split, vendored_fashion_mnist};
use convrfm_train::fit::Model;
use convrfm_train::fit::train::train;
use convrfm_train::fit::{Protocol, TrainParams};
use convrfm_train::kernel::Precision;
use convrfm_train::output::Progress;

const QUIET: Progress = Progress { quiet: true };

#[test]
fn trains_saves_loads_and_predicts_identically() {
    let train_set = vendored_fashion_mnist(Split::Train).take(500);
    let test_set = vendored_fashion_mnist(Split::Test).take(300);
    let params = TrainParams {
        iterations: 3,
        agop_images: 40,
        ..TrainParams::default()
    }
    .check()
    .unwrap();
    let mut seen = Vec::new();
    let out = train(&params, &train_set, Some(&test_set), QUIET, &mut |r| {
        seen.push(r.iteration)
    })
    .unwrap();
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(out.model.history.len(), 3);
    let acc = out.final_test_accuracy.unwrap();
    assert!(
        acc >= 0.75,
        "test accuracy {acc} below the 75 % floor for n = 500"
    );
    // Every chosen lambda has the best selection score of its iteration.
    for r in &out.history {
        let chosen = r.results[r.chosen].selection.unwrap();
        for l in &r.results {
            assert!(!l.selection.unwrap().better_than(&chosen), "{l:?}");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.convrfm");
    out.model.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    let a = out.model.scores(&test_set.images, QUIET).unwrap();
    let b = loaded.scores(&test_set.images, QUIET).unwrap();
    assert_eq!(a, b, "a loaded model must predict bit-identically");
    assert_eq!(loaded.accuracy(&test_set, QUIET).unwrap(), acc);
}

/// Leave-one-out and k-fold fit every iteration on all training images, so
/// the model is the chosen iteration's fit: re-fitting its metric and
/// lambda on all images gives the same alpha, and no image is held out. A
/// held-out split re-fits; all three record their selection accuracy.
#[test]
fn each_selection_keeps_the_fit_it_chose() {
    use convrfm_train::fit::Selection;
    use convrfm_train::fit::linalg::solve_ridge;
    use convrfm_train::fit::readout::one_hot;
    use convrfm_train::kernel::{Kernel, KernelBlocks};
    use convrfm_train::output::Phase;

    let train_set = vendored_fashion_mnist(Split::Train).take(150);
    for selection in [Selection::Loo, Selection::KFold(4), Selection::Split(0.3)] {
        let params = TrainParams {
            iterations: 2,
            agop_images: 20,
            precision: Precision::F64,
            selection,
            ..TrainParams::default()
        }
        .check()
        .unwrap();
        let out = train(&params, &train_set, None, QUIET, &mut |_| {}).unwrap();
        let layer = &out.layers[0];
        assert_eq!(layer.selection, selection);
        let acc = layer.selection_accuracy.unwrap();
        assert!(acc > 0.5 && acc <= 1.0, "{selection}: {acc}");
        let m = &out.model;
        assert_eq!(m.history[out.best_iteration].selection_accuracy, Some(acc));
        // The model's alpha is the all-data fit of its metric and lambda.
        let kernel = Kernel::new(m.shape().unwrap(), m.kind, m.metric.clone());
        let pixels = &train_set.images.pixels;
        let mut k = KernelBlocks::<f64>::new(&kernel, pixels).gram(pixels, &Phase::hidden());
        k.divide(m.scale);
        let alpha = solve_ridge(&k, &one_hot(&train_set.labels, 10), m.lambda)
            .unwrap()
            .alpha;
        let diff = alpha
            .as_slice()
            .iter()
            .zip(m.alpha.as_slice())
            .fold(0.0f64, |d, (a, b)| d.max((a - b).abs()));
        assert!(diff < 1e-9, "{selection}: alpha differs by {diff:e}");
        assert_eq!(
            out.refit_seconds == 0.0,
            selection.fits_all(),
            "{selection}"
        );
    }
}

#[test]
fn f32_and_f64_models_agree() {
    let train_set = vendored_fashion_mnist(Split::Train).take(200);
    let test_set = vendored_fashion_mnist(Split::Test).take(200);
    let run = |precision| {
        let params = TrainParams {
            iterations: 2,
            agop_images: 20,
            precision,
            ..TrainParams::default()
        }
        .check()
        .unwrap();
        train(&params, &train_set, None, QUIET, &mut |_| {})
            .unwrap()
            .model
    };
    let (m32, m64) = (run(Precision::F32), run(Precision::F64));
    let p32 = m32.predict(&test_set.images, QUIET).unwrap();
    let p64 = m64.predict(&test_set.images, QUIET).unwrap();
    let same = p32.iter().zip(&p64).filter(|(a, b)| a == b).count();
    assert!(
        same >= 196,
        "f32 and f64 agree on only {same} of 200 images"
    );
}

#[test]
fn reference_protocol_reports_each_lambda_on_test() {
    let train_set = vendored_fashion_mnist(Split::Train).take(100);
    let test_set = vendored_fashion_mnist(Split::Test).take(100);
    let params = TrainParams {
        iterations: 2,
        protocol: Protocol::Reference,
        ..TrainParams::default()
    }
    .check()
    .unwrap();
    let out = train(&params, &train_set, Some(&test_set), QUIET, &mut |_| {}).unwrap();
    for r in &out.history {
        let lambdas: Vec<f64> = r.results.iter().map(|l| l.lambda).collect();
        assert_eq!(lambdas, [1e-8, 1e-5, 1e-3]);
        assert!(
            r.results
                .iter()
                .all(|l| l.selection.is_none() && l.test_accuracy.is_some())
        );
        assert_eq!(r.results[r.chosen].lambda, 1e-3);
    }
    // No validation split: the model holds all training images.
    assert_eq!(out.model.training_data().len(), 100);
}

/// Deep ConvRFM end to end on a tiny star set: two layers train, the model
/// records its feature layer and float pixels, survives a save/load
/// bit-identically, refuses inputs of the wrong pixel type, and cannot be
/// exported to a blob.
#[test]
fn two_layer_deep_convrfm_trains_saves_and_guards_its_inputs() {
    use convrfm_train::data::PixelType;
    use convrfm_train::data::synth::star;
    use convrfm_train::export::{ExportOptions, FitSet, search};

    let train_set = star(60, 25, 1, Split::Train).unwrap();
    let test_set = star(100, 25, 1, Split::Test).unwrap();
    let params = TrainParams {
        depth: 2,
        layers: 2,
        filters: 6,
        iterations: 2,
        agop_images: 20,
        ..TrainParams::default()
    }
    .check()
    .unwrap();
    let mut seen = Vec::new();
    let out = train(&params, &train_set, Some(&test_set), QUIET, &mut |r| {
        seen.push((r.layer, r.iteration))
    })
    .unwrap();
    assert_eq!(seen, [(1, 0), (1, 1), (2, 0), (2, 1)]);
    assert_eq!(out.layers.len(), 2);
    assert_eq!(out.layers[0].dims.to_string(), "3x32x32");
    assert_eq!(
        (out.layers[1].dims.to_string(), out.layers[1].depth),
        ("6x30x30".into(), 1)
    );
    let m = &out.model;
    assert_eq!(m.features.len(), 1);
    assert_eq!(
        (m.features[0].in_channels(), m.features[0].filters()),
        (3, 6)
    );
    assert_eq!(m.dims().to_string(), "3x32x32");
    assert_eq!(m.pixel_type(), PixelType::F32);
    assert_eq!(m.metric.dim(), 6 * 9);
    for s in &out.layers {
        let acc = s.test_accuracy.unwrap();
        assert!(acc > 0.6, "layer {} test accuracy {acc}", s.layer);
    }
    assert_eq!(out.final_test_accuracy, out.layers[1].test_accuracy);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.convrfm");
    m.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(
        loaded.scores(&test_set.images, QUIET).unwrap(),
        m.scores(&test_set.images, QUIET).unwrap()
    );

    let mut bytes = test_set.images.clone();
    bytes.pixel_type = PixelType::U8;
    let msg = format!("{:#}", m.scores(&bytes, QUIET).unwrap_err());
    assert!(msg.contains("the model expects f32 pixels"), "{msg}");
    let msg = format!(
        "{:#}",
        search(
            m,
            &FitSet::new(m, m.training_data().clone()).unwrap(),
            &ExportOptions::default().check().unwrap(),
            QUIET
        )
        .unwrap_err()
    );
    assert!(
        msg.contains("Deep ConvRFM model (1 feature layers)"),
        "{msg}"
    );
}
