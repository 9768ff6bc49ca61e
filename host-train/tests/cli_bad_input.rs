//! Bad input, bad flags and bad output paths at the command line: each
//! gives one clear error line, exit status 1, before any heavy work, and
//! nothing half-written (issue "nothing lost, nothing panics").
// Tests and their helpers: a panic is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use convrfm_train::data::idx::{IdxArray, IdxData, write_idx};
use convrfm_train::data::{Split, vendored_fashion_mnist};

mod common;
use common::{assert_clean_error, convrfm};

const BLOB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../firmware/blobs/fashion-mnist-m0.blob"
);
const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tiny-fashion.convrfm"
);
const TEST_IMAGES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/fashion-mnist/t10k-images-idx3-ubyte.gz"
);

/// `n` images of 28x28 with the given labels, as IDX files in `dir`.
fn write_set(dir: &Path, labels: &[u8]) -> (String, String) {
    let n = labels.len();
    let set = vendored_fashion_mnist(Split::Test).take(n);
    let pixels = set.images.pixels.iter().map(|v| (v * 255.0).round() as u8);
    let images = dir.join("images.idx");
    let label_file = dir.join("labels.idx");
    let array = |dims, data| IdxArray { dims, data };
    write_idx(
        &images,
        &array(vec![n, 28, 28], IdxData::U8(pixels.collect())),
        false,
    )
    .unwrap();
    write_idx(
        &label_file,
        &array(vec![n], IdxData::U8(labels.to_vec())),
        false,
    )
    .unwrap();
    (
        images.display().to_string(),
        label_file.display().to_string(),
    )
}

#[test]
fn a_failed_write_to_stdout_is_an_error_not_a_panic() {
    let full = std::fs::File::create("/dev/full").expect("/dev/full");
    let o = Command::new(env!("CARGO_BIN_EXE_convrfm"))
        .args(["predict", "--blob", BLOB, TEST_IMAGES])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_clean_error(&o, &["writing to standard output"]);
}

#[test]
fn zero_images_are_an_error_not_zero_percent() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = write_set(dir.path(), &[0, 1, 2, 3]);
    for args in [
        vec![
            "eval", "--model", MODEL, "--images", &images, "--labels", &labels, "--limit", "0",
        ],
        vec![
            "eval", "--blob", BLOB, "--images", &images, "--labels", &labels, "--limit", "0",
        ],
        vec!["eval", "--model", MODEL, "--limit", "0"],
    ] {
        let o = convrfm(&args);
        assert_clean_error(&o, &["0"]);
        assert!(!String::from_utf8_lossy(&o.stdout).contains("accuracy"));
    }
}

#[test]
fn labels_outside_the_models_classes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = write_set(dir.path(), &[0, 1, 200, 3]);
    for what in ["--model", "--blob"] {
        let file = if what == "--model" { MODEL } else { BLOB };
        let o = convrfm(&["eval", what, file, "--images", &images, "--labels", &labels]);
        assert_clean_error(&o, &["label 200 of image 2 is out of range", "10 classes"]);
    }
}

#[test]
fn a_stray_label_is_not_a_256_class_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut labels: Vec<u8> = (0..12).map(|i| i % 2).collect();
    labels[5] = 255;
    let (images, label_file) = write_set(dir.path(), &labels);
    let out = dir.path().join("m.convrfm").display().to_string();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--train-images",
            &images,
            "--train-labels",
            &label_file,
        ];
        args.extend_from_slice(&["--iterations", "1", "--depth", "1", "--out", &out]);
        args.extend_from_slice(extra);
        convrfm(&args)
    };
    assert_clean_error(
        &train(&[]),
        &[
            "labels.idx",
            "253 of those 256 classes have no image",
            "--classes",
        ],
    );
    assert!(!Path::new(&out).exists());
    assert_clean_error(
        &train(&["--classes", "2"]),
        &["label 255 of image 5", "--classes"],
    );
    let o = train(&["--classes", "256"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn conflicting_and_unbounded_flags_are_usage_errors() {
    let o = convrfm(&["train", "--data", "d", "--train-labels", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    assert_clean_error(
        &convrfm(&["--threads", "100000", "eval", "--model", MODEL]),
        &["--threads 100000"],
    );
    assert_clean_error(
        &convrfm(&["train", "--classes", "5"]),
        &["--classes", "Fashion-MNIST"],
    );
}

#[test]
fn output_paths_are_checked_before_any_work_and_special_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing/m.convrfm").display().to_string();
    let start = std::time::Instant::now();
    assert_clean_error(
        &convrfm(&["train", "--train-limit", "2000", "--out", &missing]),
        &["missing"],
    );
    let o = convrfm(&[
        "export",
        "--model",
        MODEL,
        "--out",
        &dir.path().display().to_string(),
    ]);
    assert_clean_error(&o, &["is a directory"]);
    let o = convrfm(&["export", "--model", MODEL, "--out", "/dev/null"]);
    assert_clean_error(&o, &["/dev/null", "not a regular file"]);
    // Refused before training or searching: well under a training run.
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn cost_predicts_the_shipped_blobs_and_refuses_a_model() {
    let o = convrfm(&["cost", BLOB]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("cortex-m4f: ") && out.contains("cortex-m0: "),
        "{out}"
    );
    // This blob (16 centres, rank 4, 4-bit) measured 5.9 M (M4F) and
    // 13.2 M (M0) instructions in QEMU (docs/firmware.md, docs/export.md):
    // the model within 10 %.
    for (cpu, measured) in [("cortex-m4f", 5.896e6), ("cortex-m0", 13.2e6)] {
        let o = convrfm(&["cost", "--cpu", cpu, BLOB]);
        let n: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
        assert!((n / measured - 1.0).abs() < 0.10, "{cpu}: {n}");
    }
    assert_clean_error(&convrfm(&["cost", MODEL]), &["is a model file"]);
}

#[test]
fn a_model_given_as_a_blob_and_the_reverse_get_a_hint() {
    assert_clean_error(
        &convrfm(&["eval", "--blob", MODEL]),
        &["is a model file", "--model"],
    );
    assert_clean_error(
        &convrfm(&["eval", "--model", BLOB]),
        &["device blob", "--blob"],
    );
}

#[test]
fn sizes_are_checked_from_the_headers_before_any_payload() {
    let dir = tempfile::tempdir().unwrap();
    // 4 images of 100000 x 3 x 3: a 900000 x 900000 metric.
    let wide = dir.path().join("wide.idx");
    let data = IdxData::U8(vec![0; 4 * 100_000 * 9]);
    write_idx(
        &wide,
        &IdxArray {
            dims: vec![4, 100_000, 3, 3],
            data,
        },
        false,
    )
    .unwrap();
    let labels = dir.path().join("labels.idx");
    let four = IdxData::U8(vec![0, 1, 0, 1]);
    write_idx(
        &labels,
        &IdxArray {
            dims: vec![4],
            data: four,
        },
        false,
    )
    .unwrap();
    let (w, l) = (wide.display().to_string(), labels.display().to_string());
    let o = convrfm(&[
        "train",
        "--train-images",
        &w,
        "--train-labels",
        &l,
        "--out",
        "/tmp/never",
    ]);
    assert_clean_error(&o, &["wide.idx", "100000 channels", "at most 4096"]);

    // A header promising a million images (no payload: a gzip bomb would
    // be read here) against 4 labels: refused from the headers.
    let big = dir.path().join("big.idx");
    let mut header = vec![0, 0, 8, 3];
    for d in [1_000_000u32, 28, 28] {
        header.extend_from_slice(&d.to_be_bytes());
    }
    std::fs::write(&big, header).unwrap();
    let b = big.display().to_string();
    let o = convrfm(&[
        "train",
        "--train-images",
        &b,
        "--train-labels",
        &l,
        "--out",
        "/tmp/never",
    ]);
    assert_clean_error(
        &o,
        &["big.idx has 1000000 images but", "labels.idx has 4 labels"],
    );
}

#[test]
fn export_tries_only_what_the_blob_can_hold_and_fails_before_searching() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("d6.convrfm").display().to_string();
    let blob = dir.path().join("d6.blob").display().to_string();
    let o = convrfm(&[
        "train",
        "--train-limit",
        "30",
        "--test-limit",
        "10",
        "--depth",
        "6",
        "--iterations",
        "1",
        "--out",
        &deep,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = convrfm(&["export", "--model", &deep, "--out", &blob, "--no-test"]);
    assert_clean_error(&o, &["no rank tried fits", "depth 6 with rank 2 exceeds"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("KernelRange"));
    let o = convrfm(&[
        "export",
        "--model",
        MODEL,
        "--max-flash",
        "100",
        "--no-test",
        "--out",
        &blob,
    ]);
    assert_clean_error(
        &o,
        &["smallest blob for this model needs", "--max-flash 100"],
    );
    let o = convrfm(&["export", "--model", MODEL, "--lambdas=nan", "--out", &blob]);
    assert_clean_error(&o, &["lambdas must be finite and non-negative, got NaN"]);
    let o = convrfm(&[
        "export",
        "--model",
        MODEL,
        "--time-budget",
        "0s",
        "--out",
        &blob,
    ]);
    assert_clean_error(&o, &["time-budget must be longer than 0 s"]);
    let o = convrfm(&[
        "export",
        "--model",
        MODEL,
        "--learning-rate",
        "0",
        "--out",
        &blob,
    ]);
    assert_clean_error(&o, &["learning-rate must be finite and positive, got 0"]);
    let o = convrfm(&[
        "export",
        "--model",
        MODEL,
        "--max-instructions",
        "1k",
        "--out",
        &blob,
    ]);
    assert_clean_error(
        &o,
        &[
            "cheapest blob",
            "on a cortex-m4f",
            "--max-instructions 1000",
        ],
    );
    // Unparsable values are clap usage errors (status 2) naming the flag.
    let usage = |more: &[&str], needle: &str| {
        let o = convrfm(&[&["export", "--model", MODEL, "--out", &blob][..], more].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{err}");
    };
    usage(&["--time-budget", "soon"], "--time-budget");
    usage(&["--max-instructions=-5"], "--max-instructions");
    usage(&["--no-learn", "--learn-steps", "3"], "cannot be used with");
    assert!(!Path::new(&blob).exists());
}

#[test]
fn generated_data_and_figures_are_written_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("toy");
    let o = convrfm(&[
        "data",
        "gen",
        "toy-rows",
        "--train",
        "10",
        "--test",
        "0",
        "--out",
        &out.display().to_string(),
    ]);
    assert_clean_error(&o, &["0 test images"]);
    assert!(!out.exists(), "a half dataset was written");
    let figs = dir.path().join("figs");
    let o = convrfm(&[
        "inspect",
        MODEL,
        "--samples",
        "0",
        "--out",
        &figs.display().to_string(),
    ]);
    assert_clean_error(&o, &["no sample images"]);
    assert!(!figs.exists(), "an empty figure directory was left");
    // Output that is not ours is never replaced.
    std::fs::create_dir(&figs).unwrap();
    std::fs::write(figs.join("notes.txt"), b"mine").unwrap();
    let o = convrfm(&["inspect", MODEL, "--out", &figs.display().to_string()]);
    assert_clean_error(&o, &["notes.txt", "refusing to replace it"]);
    assert_eq!(std::fs::read(figs.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary files left"
    );
}

#[test]
fn float_images_are_refused_by_blobs_and_huge_pixels_named() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("f32.idx");
    let labels = dir.path().join("labels.idx");
    let mut pixels = vec![0.5f32; 4 * 28 * 28];
    pixels[100] = 3e38;
    write_idx(
        &images,
        &IdxArray {
            dims: vec![4, 28, 28],
            data: IdxData::F32(pixels),
        },
        false,
    )
    .unwrap();
    write_idx(
        &labels,
        &IdxArray {
            dims: vec![4],
            data: IdxData::U8(vec![0, 1, 0, 1]),
        },
        false,
    )
    .unwrap();
    let (i, l) = (images.display().to_string(), labels.display().to_string());
    let o = convrfm(&["eval", "--blob", BLOB, "--images", &i, "--labels", &l]);
    assert_clean_error(&o, &["images have f32 pixels", "u8 pixels"]);
    let o = convrfm(&["predict", "--blob", BLOB, &i]);
    assert_clean_error(&o, &["f32 pixels"]);
    let out = dir.path().join("m.convrfm").display().to_string();
    let o = convrfm(&[
        "train",
        "--train-images",
        &i,
        "--train-labels",
        &l,
        "--iterations",
        "1",
        "--depth",
        "1",
        "--selection",
        "split:0.5",
        "--out",
        &out,
    ]);
    assert_clean_error(&o, &["overflows", "largest |pixel| is 3e38"]);
}

#[test]
fn a_fit_set_that_does_not_fit_the_model_is_refused_before_any_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("m.blob").display().to_string();
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--model", MODEL, "--no-test", "--out", &blob];
        args.extend_from_slice(extra);
        convrfm(&args)
    };
    // Another image shape.
    let images = dir.path().join("small.idx");
    let labels = dir.path().join("small-labels.idx");
    write_idx(
        &images,
        &IdxArray {
            dims: vec![12, 16, 16],
            data: IdxData::U8(vec![9; 12 * 256]),
        },
        false,
    )
    .unwrap();
    write_idx(
        &labels,
        &IdxArray {
            dims: vec![12],
            data: IdxData::U8((0..12).map(|i| i % 10).collect()),
        },
        false,
    )
    .unwrap();
    let (i, l) = (images.to_str().unwrap(), labels.to_str().unwrap());
    assert_clean_error(
        &export(&["--fit-images", i, "--fit-labels", l]),
        &["1x16x16", "1x28x28"],
    );
    // Labels outside the model's classes.
    let (i, l) = write_set(dir.path(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3]);
    assert_clean_error(
        &export(&["--fit-images", &i, "--fit-labels", &l]),
        &["label 10", "10 classes"],
    );
    // Too few images for a validation split, and none at all.
    let (i, l) = write_set(dir.path(), &[0, 1, 2]);
    assert_clean_error(
        &export(&["--fit-images", &i, "--fit-labels", &l]),
        &["the fit set holds 3 images; at least 10"],
    );
    assert_clean_error(&export(&["--fit-limit", "0"]), &["--fit-limit 0"]);
    // Label weights outside [0, 1].
    assert_clean_error(
        &export(&["--label-weights", "1,1.5"]),
        &["label-weights must be in [0, 1], got 1.5"],
    );
    assert!(!Path::new(&blob).exists());
    assert!(!dir.path().join("m.blob.teacher").exists());
}
