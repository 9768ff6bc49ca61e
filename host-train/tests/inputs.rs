//! Every input format against IDX: a folder of PNGs, CSV rows and NumPy
//! arrays holding the same pixels load the same set and train the same
//! model; pictures are converted (JPEG, RGB, resizing) as documented;
//! `predict` on pictures agrees with `predict` on the IDX of the same
//! pixels; and every bad input is one clear error naming the file.
//! All files are written by the tests from the shipped Fashion-MNIST
//! subset or from generated pixels.
// Tests and their helpers: a panic is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use convrfm_train::data::folder::save_picture_folder;
use convrfm_train::data::idx::{IdxArray, IdxData, write_idx};
use convrfm_train::data::numpy::NumpyOptions;
use convrfm_train::data::pictures::{PictureFormat, ResizeFilter, read_picture};
use convrfm_train::data::{
    LabelledImages, PixelType, ReadOptions, Source, Split, vendored_fashion_mnist,
};
use convrfm_train::fit::Model;
use convrfm_train::output::Progress;
use npyz::WriterBuilder;

mod common;
use common::{assert_clean_error, convrfm};

const QUIET: Progress = Progress { quiet: true };

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The first `n` vendored training images, stably sorted by class: the
/// order a picture folder of them loads in.
fn by_class(n: usize) -> LabelledImages {
    let set = vendored_fashion_mnist(Split::Train).take(n);
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.sort_by_key(|&i| set.labels[i]);
    let mut sorted = set.select(&order);
    sorted.class_names = (0..10).map(|c| c.to_string()).collect();
    sorted
}

fn bytes_of(set: &LabelledImages) -> Vec<u8> {
    set.images
        .pixels
        .iter()
        .map(|&v| PixelType::to_byte(v))
        .collect()
}

/// Writes `set` as `dir/<class name>/<index>.png`.
fn write_png_folder(set: &LabelledImages, dir: &Path) {
    save_picture_folder(set, dir).unwrap();
}

/// Writes `set` as an IDX pair in `dir`.
fn write_idx_pair(set: &LabelledImages, dir: &Path) -> (PathBuf, PathBuf) {
    let d = set.images.dims;
    let (images, labels) = (dir.join("images.idx"), dir.join("labels.idx"));
    write_idx(
        &images,
        &IdxArray {
            dims: vec![set.len(), d.height, d.width],
            data: IdxData::U8(bytes_of(set)),
        },
        false,
    )
    .unwrap();
    write_idx(
        &labels,
        &IdxArray {
            dims: vec![set.len()],
            data: IdxData::U8(set.labels.clone()),
        },
        false,
    )
    .unwrap();
    (images, labels)
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    data: &[T],
) {
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(std::io::BufWriter::new(
            std::fs::File::create(path).unwrap(),
        ))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn load(source: Source, read: &ReadOptions) -> LabelledImages {
    source.load(read, None, QUIET).unwrap().set
}

const SMALL_RUN: [&str; 8] = [
    "--iterations",
    "2",
    "--depth",
    "2",
    "--agop-images",
    "8",
    "--threads",
    "2",
];

#[test]
fn png_folder_trains_the_model_idx_trains_and_predicts_alike() {
    let dir = tempfile::tempdir().unwrap();
    let set = by_class(120);
    let folder = dir.path().join("pictures");
    write_png_folder(&set, &folder);
    let (images, labels) = write_idx_pair(&set, dir.path());

    // Same pixels, labels and class order.
    let from_folder = load(Source::Folder(folder.clone()), &ReadOptions::default());
    assert_eq!(from_folder, set);

    let train = |args: &[&str], out: &Path| {
        let mut a = vec!["train"];
        a.extend_from_slice(args);
        a.extend_from_slice(&SMALL_RUN);
        let out_s = s(out);
        a.extend_from_slice(&["--out", &out_s]);
        ok(&convrfm(&a))
    };
    let (m_folder, m_idx) = (dir.path().join("f.convrfm"), dir.path().join("i.convrfm"));
    let printed = train(&["--train-dir", &s(&folder)], &m_folder);
    assert!(printed.contains("picture folder"), "{printed}");
    train(
        &["--train-images", &s(&images), "--train-labels", &s(&labels)],
        &m_idx,
    );
    let model_bytes = std::fs::read(&m_folder).unwrap();
    assert_eq!(model_bytes, std::fs::read(&m_idx).unwrap());

    // predict on three PNGs = predict on the IDX of the same pixels, with
    // the model and with a blob.
    let blob = dir.path().join("m.blob");
    ok(&convrfm(&[
        "export",
        "--model",
        &s(&m_folder),
        "--out",
        &s(&blob),
        "--max-flash",
        "16KiB",
        "--no-test",
        "--no-learn",
    ]));
    let picks = [0usize, 50, 119];
    let pngs: Vec<String> = picks
        .iter()
        .map(|&i| {
            s(&folder
                .join(&set.class_names[usize::from(set.labels[i])])
                .join(format!("{i:05}.png")))
        })
        .collect();
    let three = set.select(&picks);
    let three_dir = dir.path().join("three");
    std::fs::create_dir(&three_dir).unwrap();
    let (three_idx, _) = write_idx_pair(&three, &three_dir);
    for flag in ["--blob", "--model"] {
        let with = if flag == "--blob" {
            s(&blob)
        } else {
            s(&m_folder)
        };
        let mut args = vec!["predict", flag, &with];
        args.extend(pngs.iter().map(String::as_str));
        let from_png = ok(&convrfm(&args));
        let from_idx = ok(&convrfm(&["predict", flag, &with, &s(&three_idx)]));
        let answers = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| l.rsplit_once(": ").unwrap().1.to_string())
                .collect()
        };
        assert_eq!(answers(&from_png).len(), 3, "{from_png}");
        assert_eq!(answers(&from_png), answers(&from_idx), "{flag}");
        assert!(from_png.contains(&pngs[0]) && from_png.contains("margin"));
        // JSON lines carry the same classes.
        let mut json_args = args.clone();
        json_args.push("--json");
        let json = ok(&convrfm(&json_args));
        for (line, text) in json.lines().zip(answers(&from_png)) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let class = v["class"].as_u64().unwrap().to_string();
            assert!(text.starts_with(&format!("{class} ")), "{line} vs {text}");
            assert_eq!(v["scores"].as_array().unwrap().len(), 10);
        }
    }
}

#[test]
fn csv_and_numpy_load_what_idx_loads() {
    let dir = tempfile::tempdir().unwrap();
    let set = vendored_fashion_mnist(Split::Train).take(40);
    let (images, labels) = write_idx_pair(&set, dir.path());
    let idx = load(
        Source::Idx {
            images: images.clone(),
            labels: labels.clone(),
        },
        &ReadOptions::default(),
    );
    let bytes = bytes_of(&set);

    // CSV with a header row, as the MNIST-family exports.
    let csv = dir.path().join("set.csv");
    let mut text = String::from("label");
    for p in 1..=784 {
        text.push_str(&format!(",pixel{p}"));
    }
    text.push('\n');
    for (i, l) in set.labels.iter().enumerate() {
        text.push_str(&l.to_string());
        for b in &bytes[i * 784..(i + 1) * 784] {
            text.push_str(&format!(",{b}"));
        }
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    assert_eq!(load(Source::Csv(csv.clone()), &ReadOptions::default()), idx);

    // .npy pair (int64 labels, as numpy writes by default) and .npz.
    let (xn, yn) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    write_npy(&xn, &[40, 28, 28], &bytes);
    let wide: Vec<i64> = set.labels.iter().map(|&l| i64::from(l)).collect();
    write_npy(&yn, &[40], &wide);
    let npy = Source::detect(&xn, Some(&yn)).unwrap();
    assert_eq!(load(npy, &ReadOptions::default()), idx);

    let npz = dir.path().join("set.npz");
    {
        let mut z = npyz::npz::NpzWriter::create(&npz).unwrap();
        let opts = zip::write::FileOptions::default();
        let mut w = z
            .array::<u8>("x_train", opts)
            .unwrap()
            .default_dtype()
            .shape(&[40, 28, 28])
            .begin_nd()
            .unwrap();
        w.extend(bytes.iter().copied()).unwrap();
        w.finish().unwrap();
        let mut w = z
            .array::<i64>("y_train", opts)
            .unwrap()
            .default_dtype()
            .shape(&[40])
            .begin_nd()
            .unwrap();
        w.extend(wide.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    assert_eq!(load(Source::Npz(npz.clone()), &ReadOptions::default()), idx);

    // Channels-last RGB: (n, H, W, 3) is transposed to channel-major.
    let hwc: Vec<u8> = (0..2 * 2 * 3 * 3).map(|v| v as u8).collect();
    let (xc, yc) = (dir.path().join("xc.npy"), dir.path().join("yc.npy"));
    write_npy(&xc, &[2, 2, 3, 3], &hwc);
    write_npy(&yc, &[2], &[0u8, 1]);
    let read = ReadOptions {
        numpy: NumpyOptions {
            channels_last: true,
            ..NumpyOptions::default()
        },
        ..ReadOptions::default()
    };
    let rgb = load(Source::detect(&xc, Some(&yc)).unwrap(), &read);
    assert_eq!(rgb.images.dims.to_string(), "3x2x3");
    // Image 0, channel 1, row 0, column 2 is element (0, 0, 2, 1) = 7.
    assert_eq!(PixelType::to_byte(rgb.images.image(0)[6 + 2]), 7);
    // RGB pictures written as a folder read back the same.
    let rgb_dir = dir.path().join("rgb");
    save_picture_folder(&rgb, &rgb_dir).unwrap();
    assert_eq!(load(Source::Folder(rgb_dir), &ReadOptions::default()), rgb);

    // `data convert` writes the IDX pair and class names; training on it
    // reads them back.
    let out = dir.path().join("converted");
    ok(&convrfm(&["data", "convert", &s(&csv), "--out", &s(&out)]));
    let back = load(
        Source::Idx {
            images: out.join("images.idx.gz"),
            labels: out.join("labels.idx.gz"),
        },
        &ReadOptions::default(),
    );
    assert_eq!(back, idx);
    let shown = ok(&convrfm(&["data", "show", &s(&npz)]));
    assert!(shown.contains("40 images 1x28x28"), "{shown}");
    assert!(shown.contains("image 0: class 9"), "{shown}");
}

#[test]
fn jpeg_rgb_and_resizing() {
    let dir = tempfile::tempdir().unwrap();
    // Three colour classes of 12x10 RGB JPEGs and PNGs.
    let colours = [[200u8, 30, 30], [30, 200, 30], [30, 30, 200]];
    let root = dir.path().join("rgb");
    for (c, colour) in colours.iter().enumerate() {
        let class = root.join(format!("c{c}"));
        std::fs::create_dir_all(&class).unwrap();
        for k in 0..6u8 {
            let picture = image::RgbImage::from_fn(10, 12, |x, y| {
                let shade = (x as u8 + y as u8 + k) % 8;
                image::Rgb(colour.map(|v| v.saturating_add(shade)))
            });
            let ext = if k % 2 == 0 { "jpg" } else { "png" };
            picture.save(class.join(format!("{k}.{ext}"))).unwrap();
        }
    }
    let set = load(Source::Folder(root.clone()), &ReadOptions::default());
    assert_eq!(set.images.dims.to_string(), "3x12x10");
    assert_eq!(set.class_names, ["c0", "c1", "c2"]);
    // JPEG is lossy: a flat-ish red picture stays near red in channel 0
    // and near 30 in channel 2.
    let first = set.images.image(0);
    let plane = 12 * 10;
    assert!((f32::from(PixelType::to_byte(first[0])) - 200.0).abs() < 16.0);
    assert!((f32::from(PixelType::to_byte(first[2 * plane])) - 30.0).abs() < 16.0);

    // --channels 1 --size 6x5: luma, halved with the triangle filter.
    let m = dir.path().join("rgb.convrfm");
    ok(&convrfm(&[
        "train",
        "--train-dir",
        &s(&root),
        "--channels",
        "1",
        "--size",
        "6x5",
        "--resize-filter",
        "nearest",
        "--iterations",
        "1",
        "--depth",
        "1",
        "--out",
        &s(&m),
    ]));
    let model = Model::load(&m).unwrap();
    assert_eq!(model.dims().to_string(), "1x6x5");
    assert_eq!(model.resize, ResizeFilter::Nearest);
    assert_eq!(model.class_names(), ["c0", "c1", "c2"]);
    // The model's first training image is the documented conversion of
    // the first picture.
    let format = PictureFormat {
        channels: 1,
        height: 6,
        width: 5,
        filter: ResizeFilter::Nearest,
    };
    let expected = read_picture(&root.join("c0/0.jpg"), &format).unwrap();
    let got: Vec<u8> = model
        .training_data()
        .images
        .image(0)
        .iter()
        .map(|&v| PixelType::to_byte(v))
        .collect();
    assert_eq!(got, expected);

    // eval reads a folder as the model was trained (gray, 6x5, nearest);
    // a flag that says otherwise is an error.
    let evaluated = ok(&convrfm(&[
        "eval",
        "--model",
        &s(&m),
        "--images",
        &s(&root),
    ]));
    assert!(evaluated.contains("on 18 images"), "{evaluated}");
    let o = convrfm(&[
        "eval",
        "--model",
        &s(&m),
        "--images",
        &s(&root),
        "--resize-filter",
        "triangle",
    ]);
    assert_clean_error(&o, &["--resize-filter triangle", "records nearest"]);
    let o = convrfm(&[
        "eval",
        "--model",
        &s(&m),
        "--images",
        &s(&root),
        "--size",
        "12x10",
    ]);
    assert_clean_error(&o, &["--size 12x10", "takes 6x5 pictures"]);

    // A PNG grid of what the tool sees: three rows (classes) of 4 tiles.
    let grid = dir.path().join("grid.png");
    let shown = ok(&convrfm(&[
        "data",
        "show",
        &s(&root),
        "--png",
        &s(&grid),
        "--per-class",
        "4",
    ]));
    assert!(shown.contains("c2") && shown.contains("wrote"), "{shown}");
    let picture = image::open(&grid).unwrap();
    assert!(picture.width() >= 4 * 10 && picture.height() >= 3 * 12);

    // Pictures of two sizes without --size: an error naming both files.
    image::RgbImage::new(7, 7)
        .save(root.join("c1/odd.png"))
        .unwrap();
    let o = convrfm(&["data", "show", &s(&root)]);
    assert_clean_error(&o, &["differ in size", "odd.png", "--size"]);
    // A gray picture among colour ones, without --channels.
    std::fs::remove_file(root.join("c1/odd.png")).unwrap();
    image::GrayImage::new(10, 12)
        .save(root.join("c2/gray.png"))
        .unwrap();
    let o = convrfm(&["data", "show", &s(&root)]);
    assert_clean_error(&o, &["differ in colour", "gray.png", "--channels"]);
}

/// A folder with classes `a` and `b` of two 4x4 gray PNGs each.
fn small_folder(root: &Path) {
    for class in ["a", "b"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for k in 0..2u8 {
            image::GrayImage::from_pixel(4, 4, image::Luma([k * 50]))
                .save(root.join(class).join(format!("{k}.png")))
                .unwrap();
        }
    }
}

#[test]
fn bad_picture_folders_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let train = |root: &Path, extra: &[&str]| {
        let out = root.with_extension("convrfm");
        let mut a = vec!["train", "--train-dir"];
        let r = s(root);
        a.push(&r);
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--iterations", "1", "--depth", "1"]);
        let o = s(&out);
        a.extend_from_slice(&["--out", &o]);
        let res = convrfm(&a);
        (res, out)
    };
    let case = |name: &str| {
        let root = dir.path().join(name);
        small_folder(&root);
        root
    };

    // Truncated picture: refused, nothing written.
    let root = case("truncated");
    let bytes = std::fs::read(root.join("a/0.png")).unwrap();
    std::fs::write(root.join("a/0.png"), &bytes[..bytes.len() / 2]).unwrap();
    let (o, out) = train(&root, &[]);
    assert_clean_error(&o, &["a/0.png", "--skip-unreadable"]);
    assert!(!out.exists());

    // Not a picture: refused, or left out and counted.
    let root = case("notes");
    std::fs::write(root.join("b/notes.txt"), "hello").unwrap();
    std::fs::write(root.join("b/fake.png"), "not a png").unwrap();
    let (o, _) = train(&root, &[]);
    assert_clean_error(&o, &["notes.txt", "not a picture file"]);
    let (o, out) = train(&root, &["--skip-unreadable"]);
    assert!(ok(&o).contains("left out 2 unreadable file(s)"));
    assert!(out.exists());

    // Empty class folder; a single class; no class folders.
    let root = case("empty");
    std::fs::create_dir(root.join("c")).unwrap();
    assert_clean_error(
        &train(&root, &[]).0,
        &["class folder", "/c has no pictures"],
    );
    let root = case("single");
    std::fs::remove_dir_all(root.join("b")).unwrap();
    assert_clean_error(&train(&root, &[]).0, &["only one class folder", "\"a\""]);
    let root = dir.path().join("none");
    std::fs::create_dir(&root).unwrap();
    assert_clean_error(&train(&root, &[]).0, &["has no class folders"]);

    // More classes than labels (and the blob) hold.
    let root = dir.path().join("many");
    for c in 0..257 {
        let class = root.join(format!("{c:03}"));
        std::fs::create_dir_all(&class).unwrap();
        image::GrayImage::new(3, 3)
            .save(class.join("x.png"))
            .unwrap();
    }
    assert_clean_error(&train(&root, &[]).0, &["257 class folders", "at most 256"]);

    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        // A class folder name that is not UTF-8.
        let root = case("latin1");
        std::fs::create_dir(root.join(std::ffi::OsStr::from_bytes(b"caf\xe9"))).unwrap();
        assert_clean_error(&train(&root, &[]).0, &["not valid UTF-8"]);
        // A symbolic link back to its own class folder.
        let root = case("loop");
        std::os::unix::fs::symlink(root.join("a"), root.join("a/again")).unwrap();
        assert_clean_error(&train(&root, &[]).0, &["symbolic link loop", "again"]);
    }

    // A test folder whose class is not a training class.
    let root = case("tr");
    let test = case("te");
    std::fs::rename(test.join("b"), test.join("z")).unwrap();
    let (o, _) = train(&root, &["--test-dir", &s(&test)]);
    assert_clean_error(&o, &["\"z\" is not one of the trained classes"]);
}

#[test]
fn bad_csv_and_numpy_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let show = |args: &[&str]| {
        let mut a = vec!["data", "show"];
        a.extend_from_slice(args);
        convrfm(&a)
    };
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "0,1,2,3,4\n1,5,6,7,8\n1,5,6,7\n").unwrap();
    assert_clean_error(
        &show(&[&s(&csv)]),
        &["bad.csv", "row 3 has 4 fields, expected 5"],
    );

    // A label outside the declared classes.
    std::fs::write(&csv, "0,1,2,3,4\n5,5,6,7,8\n").unwrap();
    let o = convrfm(&["train", "--train-images", &s(&csv), "--classes", "3"]);
    assert_clean_error(&o, &["label 5 of image 1 is out of range", "--classes"]);

    let x = dir.path().join("x.npy");
    let y = dir.path().join("y.npy");
    write_npy(&y, &[2], &[0u8, 1]);
    write_npy(&x, &[2, 2, 2], &[1.0f64; 8]);
    assert_clean_error(
        &show(&[&s(&x), "--labels", &s(&y)]),
        &["x.npy", "pixel type '<f8'", "uint8 or float32"],
    );
    write_npy(&x, &[8], &[1u8; 8]);
    assert_clean_error(&show(&[&s(&x), "--labels", &s(&y)]), &["x.npy", "shape"]);
    write_npy(&x, &[2, 2, 2], &[1u8; 8]);
    write_npy(&y, &[2], &[0.5f32, 1.0]);
    assert_clean_error(
        &show(&[&s(&x), "--labels", &s(&y)]),
        &["y.npy", "integer type"],
    );
    write_npy(&y, &[3], &[0u8, 1, 1]);
    assert_clean_error(
        &show(&[&s(&x), "--labels", &s(&y)]),
        &["2 images", "3 labels"],
    );
    // Without labels, images are shown as they are.
    assert!(ok(&show(&[&s(&x)])).contains("2 images 1x2x2"));
}

#[test]
fn predict_resizes_a_picture_with_the_recorded_filter() {
    let dir = tempfile::tempdir().unwrap();
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tiny-fashion.convrfm"
    );
    // A 56x40 picture (twice the rows, other columns) of a test image.
    let test = vendored_fashion_mnist(Split::Test).take(1);
    let small = bytes_of(&test);
    let big = image::GrayImage::from_fn(40, 56, |x, y| {
        image::Luma([small[(y as usize / 2) * 28 + (x as usize * 28 / 40)]])
    });
    let png = dir.path().join("photo.png");
    big.save(&png).unwrap();
    // What the model's preprocessing makes of it, as an IDX file.
    let m = Model::load(Path::new(model)).unwrap();
    let format = PictureFormat {
        channels: 1,
        height: 28,
        width: 28,
        filter: m.resize,
    };
    let px = read_picture(&png, &format).unwrap();
    assert_eq!(px.len(), 784);
    let idx = dir.path().join("photo.idx");
    write_idx(
        &idx,
        &IdxArray {
            dims: vec![1, 28, 28],
            data: IdxData::U8(px),
        },
        false,
    )
    .unwrap();
    let answer = |file: &Path| {
        let out = ok(&convrfm(&["predict", "--model", model, &s(file)]));
        out.rsplit_once(": ").unwrap().1.to_string()
    };
    assert_eq!(answer(&png), answer(&idx));
    // An RGB photo is converted to the model's one channel.
    let rgb = dir.path().join("rgb.jpg");
    image::DynamicImage::ImageLuma8(big)
        .to_rgb8()
        .save(&rgb)
        .unwrap();
    assert!(answer(&rgb).contains("margin"));
}

#[test]
fn folder_limit_spreads_over_classes_and_test_fraction_holds_out() {
    let dir = tempfile::tempdir().unwrap();
    let set = by_class(200);
    let folder = dir.path().join("pictures");
    write_png_folder(&set, &folder);
    let out = dir.path().join("m.convrfm");
    let printed = ok(&convrfm(&[
        "train",
        "--train-dir",
        &s(&folder),
        "--train-limit",
        "50",
        "--test-fraction",
        "0.2",
        "--iterations",
        "1",
        "--depth",
        "1",
        "--out",
        &s(&out),
    ]));
    assert!(
        printed.contains("10 of the 50 training images held out"),
        "{printed}"
    );
    assert!(
        printed.contains("test accuracy of the saved model"),
        "{printed}"
    );
    let m = Model::load(&out).unwrap();
    let train = m.training_data();
    assert_eq!(train.len(), 40);
    let mut classes: Vec<u8> = train.labels.clone();
    classes.dedup();
    assert_eq!(classes.len(), 10, "every class kept: {:?}", train.labels);
    // --test-fraction with a test set is a conflict.
    let o = convrfm(&[
        "train",
        "--train-dir",
        &s(&folder),
        "--test-dir",
        &s(&folder),
        "--test-fraction",
        "0.2",
    ]);
    assert_clean_error(&o, &["--test-fraction", "a test set is given too"]);
}
