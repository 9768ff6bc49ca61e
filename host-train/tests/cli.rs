//! The `convrfm` command line: a full train -> eval run on IDX files, and
//! bad input giving one clear error line (no panic, no backtrace, no
//! half-written output).
// Tests and their helpers: a panic is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use convrfm_train::data::idx::{IdxArray, IdxData, write_idx};
use convrfm_train::data::{Split, vendored_fashion_mnist};

mod common;
use common::{assert_clean_error, convrfm};

/// The percentage of `eval`'s `accuracy N % on ...` line.
fn accuracy_line(out: &str) -> f64 {
    let line = out.lines().find(|l| l.starts_with("accuracy ")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes the first `n` vendored images of `split` as IDX files in `dir`.
fn write_subset(dir: &Path, split: Split, n: usize) -> (String, String) {
    let set = vendored_fashion_mnist(split).take(n);
    let pixels = set
        .images
        .pixels
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let images = dir.join(format!("{split}-images.gz"));
    let labels = dir.join(format!("{split}-labels"));
    write_idx(
        &images,
        &IdxArray {
            dims: vec![n, 28, 28],
            data: IdxData::U8(pixels),
        },
        true,
    )
    .unwrap();
    write_idx(
        &labels,
        &IdxArray {
            dims: vec![n],
            data: IdxData::U8(set.labels.clone()),
        },
        false,
    )
    .unwrap();
    (images.display().to_string(), labels.display().to_string())
}

#[test]
fn train_then_eval_on_idx_files() {
    let dir = tempfile::tempdir().unwrap();
    let (ti, tl) = write_subset(dir.path(), Split::Train, 300);
    let (vi, vl) = write_subset(dir.path(), Split::Test, 200);
    let model = dir.path().join("m.convrfm").display().to_string();
    let o = convrfm(&[
        "train",
        "--train-images",
        &ti,
        "--train-labels",
        &tl,
        "--test-images",
        &vi,
        "--test-labels",
        &vl,
        "--iterations",
        "2",
        "--depth",
        "2",
        "--agop-images",
        "20",
        "--out",
        &model,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("iter  lambda"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("test accuracy of the saved model"))
        .unwrap();
    let trained: f64 = line.split_whitespace().nth(6).unwrap().parse().unwrap();
    assert!(
        trained >= 65.0,
        "accuracy {trained} % below the floor for n = 300"
    );

    let o = convrfm(&["eval", "--model", &model, "--images", &vi, "--labels", &vl]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let evaluated = accuracy_line(&out);
    assert_eq!(evaluated, trained, "eval disagrees with training: {out}");

    // Export within 16 KiB, with the frontier; then the blob through the core.
    let blob = dir.path().join("m.blob").display().to_string();
    let o = convrfm(&[
        "export",
        "--model",
        &model,
        "--max-flash",
        "16KiB",
        "--sweep",
        "--learn-steps",
        "10",
        "--test-images",
        &vi,
        "--test-labels",
        &vl,
        "--out",
        &blob,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("frontier") && out.contains("chosen for --max-flash 16384"),
        "{out}"
    );
    // Each frontier point and the chosen blob had their centres learned.
    assert!(
        out.lines()
            .filter(|l| l.contains("learned centres: 10 steps"))
            .count()
            >= 2,
        "{out}"
    );
    let size = std::fs::metadata(&blob).unwrap().len();
    assert!(size <= 16 << 10, "blob of {size} bytes exceeds the budget");
    // The chosen line's integer accuracy is what eval --blob reports.
    let chosen = out
        .lines()
        .skip_while(|l| !l.starts_with("chosen"))
        .nth(2)
        .unwrap();
    let int_acc: f64 = chosen.split_whitespace().nth(7).unwrap().parse().unwrap();
    let o = convrfm(&["eval", "--blob", &blob, "--images", &vi, "--labels", &vl]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let evaluated = accuracy_line(&out);
    assert_eq!(
        evaluated, int_acc,
        "eval --blob disagrees with export: {out}"
    );
    let o = convrfm(&["predict", "--blob", &blob, &vi]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.lines().count(), 200, "one line per image");
}

#[test]
fn missing_and_truncated_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gz").display().to_string();
    let o = convrfm(&[
        "train",
        "--train-images",
        &missing,
        "--train-labels",
        &missing,
    ]);
    assert_clean_error(&o, &["nope.gz"]);

    let (ti, tl) = write_subset(dir.path(), Split::Train, 20);
    let bytes = std::fs::read(&tl).unwrap();
    std::fs::write(&tl, &bytes[..bytes.len() - 5]).unwrap();
    let o = convrfm(&["train", "--train-images", &ti, "--train-labels", &tl]);
    assert_clean_error(&o, &["train-labels", "truncated"]);
}

#[test]
fn bad_model_and_bad_parameters_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.convrfm");
    std::fs::write(&bogus, b"definitely not a model").unwrap();
    let o = convrfm(&["eval", "--model", &bogus.display().to_string()]);
    assert_clean_error(&o, &["bogus.convrfm", "not a convrfm model file"]);

    let o = convrfm(&["train", "--depth", "0"]);
    assert_clean_error(&o, &["depth must be at least 1"]);
    for bad in ["split:1.5", "kfold:1", "loo:3", "half"] {
        let o = convrfm(&["train", "--selection", bad]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("kfold:K (K >= 2) or split:F"), "{bad}: {err}");
    }
    for bad in ["0", "2", "4"] {
        let o = convrfm(&["train", "--patch-size", bad]);
        assert_clean_error(
            &o,
            &[&format!(
                "patch-size must be one of odd numbers 1, 3, 5, ..., got {bad}"
            )],
        );
    }
    // A patch larger than the 28x28 images, and a patch size and depth whose
    // last grid is empty: refused once the images are known, before any
    // kernel work (no progress, no table).
    for (args, needle) in [
        (
            ["--patch-size", "29", "--depth", "1"],
            "a depth-1 kernel on 29x29 patches needs images of at least 29x29",
        ),
        (
            ["--patch-size", "11", "--depth", "3"],
            "a depth-3 kernel on 11x11 patches needs images of at least 31x31",
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let model = out.path().join("m.convrfm").display().to_string();
        let mut all = vec![
            "train",
            "--train-limit",
            "20",
            "--test-limit",
            "10",
            "--out",
            &model,
        ];
        all.extend(args);
        let o = convrfm(&all);
        assert_clean_error(&o, &[needle, "1x28x28 images"]);
        assert!(!String::from_utf8_lossy(&o.stdout).contains("sel_%"));
        assert!(!out.path().join("m.convrfm").exists());
    }
    let o = convrfm(&["train", "--protocol", "reference", "--lambdas", "1e-3"]);
    assert_clean_error(&o, &["--lambdas cannot be given with it"]);
    // Export options are checked before the model is even read.
    let o = convrfm(&["export", "--model", "missing.convrfm", "--lambdas=-1"]);
    assert_clean_error(&o, &["lambdas must be finite and non-negative, got -1"]);
}

#[test]
fn failed_train_leaves_no_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ti, tl) = write_subset(dir.path(), Split::Train, 20);
    // An output path inside a missing directory: the run fails at the end
    // and nothing is written anywhere.
    let out = dir.path().join("missing/m.convrfm").display().to_string();
    let o = convrfm(&[
        "train",
        "--train-images",
        &ti,
        "--train-labels",
        &tl,
        "--iterations",
        "1",
        "--depth",
        "1",
        "--out",
        &out,
    ]);
    assert_clean_error(&o, &["m.convrfm"]);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "unexpected files: {names:?}");
}

/// Trains a small model with `args` (plus 2 iterations, 10 AGOP images)
/// into `dir/m.convrfm`, draws it with `inspect` (every figure a real PNG)
/// and checks that `export` refuses it naming `refusal`, leaving no blob.
/// Returns the model's path and the training output.
fn train_inspect_and_refuse_export(
    dir: &std::path::Path,
    args: &[&str],
    refusal: &[&str],
) -> (String, String) {
    let model = dir.join("m.convrfm").display().to_string();
    let mut all = vec!["train"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--iterations", "2", "--agop-images", "10", "--out", &model]);
    let o = convrfm(&all);
    let (trained, err) = text(&o);
    assert!(o.status.success(), "stdout: {trained}\nstderr: {err}");
    assert!(
        trained.contains("test accuracy of the saved model"),
        "{trained}"
    );

    let pics = dir.join("pics");
    let o = convrfm(&["inspect", &model, "--out", &pics.display().to_string()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    for name in ["metric", "eigenvectors", "gradients", "accuracy"] {
        let path = pics.join(format!("{name}.png"));
        let (w, h) =
            image::image_dimensions(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(w >= 300 && h >= 150, "{name}.png is {w}x{h}");
    }

    let blob = dir.join("m.blob");
    let o = convrfm(&[
        "export",
        "--model",
        &model,
        "--no-test",
        "--out",
        &blob.display().to_string(),
    ]);
    assert_clean_error(&o, refusal);
    assert!(!blob.exists());
    (model, trained)
}

/// `--patch-size 5` end to end, with a Deep ConvRFM layer of 5x5 filters:
/// the table says so, the model file keeps it (inspect draws 5x5 tiles from
/// the loaded model, eval reproduces the training run's test accuracy), and
/// export refuses it by name.
#[test]
fn patch_size_five_trains_inspects_and_is_refused_by_export() {
    let dir = tempfile::tempdir().unwrap();
    let (model, out) = train_inspect_and_refuse_export(
        dir.path(),
        &[
            "--train-limit",
            "60",
            "--test-limit",
            "40",
            "--patch-size",
            "5",
            "--depth",
            "2",
            "--layers",
            "2",
            "--filters",
            "4",
        ],
        &["5x5 patches cannot be exported", "--patch-size 3"],
    );
    assert!(
        out.contains("Deep ConvRFM (2 layers, 4 filters each)"),
        "{out}"
    );
    assert!(dir.path().join("pics/filters-layer-1.png").exists());
    assert!(out.contains("patch 5x5, depth 2"), "{out}");
    assert!(out.contains("selection loo"), "{out}");
    let trained = out
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy of the saved model: "))
        .unwrap();
    let o = convrfm(&["eval", "--model", &model, "--limit", "40"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains(&format!("accuracy {trained} on 40 images")),
        "{out} vs {trained}"
    );
}

#[test]
fn generated_data_trains_and_inspects_to_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rows").display().to_string();
    let o = convrfm(&[
        "data", "gen", "toy-rows", "--train", "60", "--test", "40", "--out", &data,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("60 images 1x16x32 (f32 pixels), 2 classes"),
        "{out}"
    );
    // Float images cannot go into a blob.
    train_inspect_and_refuse_export(
        dir.path(),
        &["--data", &data, "--depth", "1"],
        &["trained on f32 pixels cannot be exported"],
    );
}

#[test]
fn experiment_prints_the_three_methods_and_deep_filters_draw() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models").display().to_string();
    let o = convrfm(&[
        "experiment",
        "--out",
        &models,
        "toy-rows",
        "--train",
        "40",
        "--test",
        "40",
        "--depth",
        "2",
        "--iterations",
        "2",
        "--filters",
        "4",
        "--agop-images",
        "10",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    for method in ["CNTK (M = I)", "ConvRFM", "Deep ConvRFM (2 layers)"] {
        assert!(
            out.lines().any(|l| l.starts_with(method)),
            "{method} missing: {out}"
        );
    }
    assert!(out.contains("layer 2 (Deep ConvRFM):"), "{out}");

    let deep = dir.path().join("models/deep-2-layers.convrfm");
    let pics = dir.path().join("pics");
    let o = convrfm(&[
        "inspect",
        &deep.display().to_string(),
        "--out",
        &pics.display().to_string(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    let (w, h) = image::image_dimensions(pics.join("filters-layer-1.png")).unwrap();
    assert!(w >= 200 && h >= 100, "filters-layer-1.png is {w}x{h}");
}

/// `export --format c`: NAME.h and NAME.c that a strict C99 compiler
/// accepts with every warning an error, whose array is the blob the same
/// export writes as a file; a name that gives no C identifier is refused
/// before any work.
#[test]
fn export_as_c_writes_a_header_and_source_a_c_compiler_accepts() {
    const MODEL: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tiny-fashion.convrfm"
    );
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("m.blob");
    // 300 fit images: the default for this Fashion-MNIST model would be
    // Debian's 60,000 where installed.
    let export = |more: &[&str]| {
        let mut args = vec![
            "export",
            "--model",
            MODEL,
            "--no-test",
            "--fit-limit",
            "300",
            "--no-learn",
        ];
        args.extend_from_slice(more);
        convrfm(&args)
    };
    let o = export(&["--out", &blob.display().to_string()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    let name = dir.path().join("fm-tiny");
    let o = export(&["--format", "c", "--out", &name.display().to_string()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("identifiers fm_tiny_*"), "{out}");
    let header = std::fs::read_to_string(dir.path().join("fm-tiny.h")).unwrap();
    let source = std::fs::read_to_string(dir.path().join("fm-tiny.c")).unwrap();
    let bytes = std::fs::read(&blob).unwrap();
    assert!(
        header.contains(&format!("#define FM_TINY_BLOB_LEN {}u", bytes.len())),
        "{header}"
    );
    assert!(header.contains("#define FM_TINY_CLASSES 10u"), "{header}");
    let hex: String = bytes
        .iter()
        .take(8)
        .map(|b| format!("0x{b:02x}, "))
        .collect();
    assert!(source.contains(hex.trim_end()), "{hex} not in the array");

    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let object = dir.path().join("fm-tiny.o");
    let c = std::process::Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c"])
        .arg(dir.path().join("fm-tiny.c"))
        .arg("-o")
        .arg(&object)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e} (install a C compiler)"));
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert!(object.exists());

    let o = convrfm(&[
        "export",
        "--model",
        "missing.convrfm",
        "--format",
        "c",
        "--out=-+.c",
    ]);
    assert_clean_error(&o, &["gives no C identifier"]);
}
