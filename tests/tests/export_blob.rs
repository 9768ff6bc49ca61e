//! Train -> export -> blob -> integer core on the host, against the float
//! compact model the blob was exported from.

use convrfm_train::data::{Split, vendored_fashion_mnist};
use convrfm_train::export::learn::LearnOptions;
use convrfm_train::export::run::blob_predict;
use convrfm_train::export::{Candidate, ExportOptions, FitSet, Readout, best_under, build, search};
use convrfm_train::fit::TrainParams;
use convrfm_train::fit::readout::argmax_rows;
use convrfm_train::fit::train::train;
use convrfm_train::output::Progress;

const QUIET: Progress = Progress { quiet: true };

#[test]
fn blob_agrees_with_its_float_model() {
    let train_set = vendored_fashion_mnist(Split::Train).take(600);
    let test_set = vendored_fashion_mnist(Split::Test);
    let params = TrainParams {
        iterations: 2,
        agop_images: 20,
        ..TrainParams::default()
    }
    .check()
    .unwrap();
    let model = train(&params, &train_set, None, QUIET, &mut |_| {})
        .unwrap()
        .model;

    let opts = ExportOptions {
        max_flash: 32 << 10,
        ranks: vec![3, 9],
        pixel_bits: vec![4, 8],
        // Learned centres are no longer training images: the integer core
        // must agree with the float model on them too.
        learn: Some(LearnOptions {
            max_steps: 40,
            batch: 64,
            ..LearnOptions::default()
        }),
        ..ExportOptions::default()
    };
    // The model's training images as the fit set, with the model's own
    // scores on them as the teacher's targets.
    let teacher = model.scores(&train_set.images, QUIET).unwrap();
    let fit = FitSet::new(&model, train_set.clone())
        .unwrap()
        .with_teacher(teacher)
        .unwrap();
    let checked = opts.clone().check().unwrap();
    let candidates = search(&model, &fit, &checked, QUIET).unwrap();
    assert!(!candidates.is_empty());
    let chosen = best_under(&candidates, opts.max_flash, None)
        .unwrap()
        .clone();
    assert!(chosen.bytes <= 32 << 10);

    // A latency budget leaves out exactly the candidates over it, before
    // evaluating them; the others are the same candidates.
    let limit = candidates
        .iter()
        .find(|c| c.rank == 3 && c.pixel_bits == 4 && c.m == 64)
        .expect("a 64-centre candidate")
        .instructions;
    let latency_bound = ExportOptions {
        ranks: vec![3],
        pixel_bits: vec![4],
        max_instructions: Some(limit),
        ..opts.clone()
    };
    let bound = search(&model, &fit, &latency_bound.check().unwrap(), QUIET).unwrap();
    let key = |c: &Candidate| (c.m, c.bytes, c.instructions, c.val_accuracy.to_bits());
    let expected: Vec<_> = candidates
        .iter()
        .filter(|c| c.rank == 3 && c.pixel_bits == 4 && c.instructions <= limit)
        .map(key)
        .collect();
    assert_eq!(bound.iter().map(key).collect::<Vec<_>>(), expected);
    assert!(
        candidates
            .iter()
            .any(|c| c.rank == 3 && c.instructions > limit)
    );

    // Least squares, the readout the search ranks candidates by.
    let least_squares = ExportOptions {
        readout: Readout::LeastSquares,
        ..opts.clone()
    };
    let ls = build(
        &model,
        &fit,
        &chosen,
        &least_squares.check().unwrap(),
        QUIET,
    )
    .unwrap();
    let learned = ls.learned.expect("centres were learned");
    assert_eq!(learned.steps, 40);
    assert!(ls.readout.is_none());
    // The learned centres keep the search's ridge and label weight; only
    // their validation accuracy is their own.
    let built = &ls.candidate;
    assert_eq!(
        (built.m, built.bytes, built.lambda, built.label_weight),
        (chosen.m, chosen.bytes, chosen.lambda, chosen.label_weight)
    );
    // Computed twice by different paths: learning's scoring of the kept
    // round (alpha re-fitted on its pool, here every non-validation
    // image, with the starting centres' kernel normaliser) and the
    // build's (alpha on every non-validation image, the learned centres'
    // normaliser). They may part by the normaliser's effect on the ridge,
    // not by more.
    let (kept, val) = (learned.kept.val_accuracy, built.val_accuracy);
    eprintln!("validation accuracy: learning {kept:.4}, build {val:.4}");
    assert!(
        (kept - val).abs() <= 0.02,
        "learning scored the kept centres {kept}, the build {val}"
    );

    // The softmax readout on the same learned centres: the blob it
    // encodes is what the device runs.
    let softmax = ExportOptions {
        readout: Readout::Softmax,
        ..opts.clone()
    };
    let compact = build(&model, &fit, &chosen, &softmax.check().unwrap(), QUIET).unwrap();
    assert_eq!(compact.centres.pixels, ls.centres.pixels);
    let report = compact.readout.expect("the softmax was tried");
    assert_eq!(report.used, Readout::Softmax);
    assert!(report.least_squares_cv.is_none());
    // The default picks the readout that cross-validates better, and
    // reports the held-out accuracy of the one it picked.
    let auto = build(&model, &fit, &chosen, &checked, QUIET).unwrap();
    let picked = auto.readout.expect("auto tries the softmax");
    let ls_cv = picked
        .least_squares_cv
        .expect("auto cross-validates least squares");
    assert_eq!(picked.softmax, report.softmax);
    eprintln!(
        "5-fold accuracy: softmax {:.4} (ridge {:e}), least squares {ls_cv:.4}; \
         validation: softmax {:.4}, least squares {val:.4}",
        report.softmax.cv_accuracy, report.softmax.ridge, compact.candidate.val_accuracy
    );
    let (used, held_out) = if ls_cv > report.softmax.cv_accuracy {
        (Readout::LeastSquares, val)
    } else {
        (Readout::Softmax, compact.candidate.val_accuracy)
    };
    assert_eq!(picked.used, used);
    assert_eq!(auto.candidate.val_accuracy, held_out);
    let blob = compact.encode(None).unwrap();
    assert_eq!(
        blob.len(),
        chosen.bytes,
        "search predicted the exact blob size"
    );
    let core = convrfm_core::Model::from_bytes(&blob).unwrap();
    assert_eq!(core.centres(), chosen.m);
    assert!(core.scratch_len() <= 16 << 10);

    let float_scores = compact.scores(&test_set.images, QUIET);
    let float_pred = argmax_rows(&float_scores);
    let int = blob_predict(&core, &test_set.images, QUIET).unwrap();
    let same = float_pred
        .iter()
        .zip(&int)
        .filter(|(f, i)| **f == i.0)
        .count();
    assert!(
        same >= 995,
        "integer and float classes agree on {same} of 1000 images"
    );

    // Real score = integer score * alpha_scale, to the integer kernel's accuracy.
    let alpha_scale = f64::from(core.alpha_scale());
    let max = float_scores
        .as_slice()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = int
        .iter()
        .flat_map(|(_, s)| s.iter())
        .zip(float_scores.as_slice())
        .map(|(i, f)| (*i as f64 * alpha_scale - f).abs() / max)
        .fold(0.0, f64::max);
    eprintln!("same class {same}/1000, worst score error {worst:.2e} of the largest score");
    assert!(worst < 1e-2, "score error {worst} of the largest score");

    let int_acc = int
        .iter()
        .zip(&test_set.labels)
        .filter(|(p, l)| p.0 == usize::from(**l))
        .count();
    assert!(
        int_acc >= 650,
        "blob accuracy {int_acc}/1000 below the floor for a 32 KiB blob from 600 images"
    );
}
