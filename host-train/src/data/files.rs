//! Labelled sets from and to IDX files (gzip or raw): rank and type
//! checks, pixel scaling, matching counts; every error names the file.

use std::path::Path;

use anyhow::{Context, bail, ensure};

use super::idx::{IdxArray, IdxData, read_idx, read_idx_dims, write_idx};
use super::images::{ImageDims, Images, LabelledImages, PixelType};
use crate::limits::{MAX_PATCH_DIM, ensure_fits};

/// Converts a rank-3 `(n, H, W)` or rank-4 `(n, C, H, W)` IDX array to
/// images; `name` identifies its origin in error messages.
pub(super) fn images_from_idx(array: IdxArray, name: &str) -> anyhow::Result<Images> {
    let dims = match *array.dims.as_slice() {
        [n, h, w] => (n, 1, h, w),
        [n, c, h, w] => (n, c, h, w),
        _ => bail!(
            "{name}: expected images of rank 3 (count, height, width) or 4 \
             (count, channels, height, width), found rank {} with dimensions {:?}",
            array.dims.len(),
            array.dims
        ),
    };
    check_image_shape(dims, name)?;
    images_from_values(array.data, dims, name)
}

/// The shape checks of every image loader: `(n, c, h, w)` nonempty, and a
/// channel count whose 3x3 patches the learned metric can hold.
pub(super) fn check_image_shape(
    (n, channels, height, width): (usize, usize, usize, usize),
    name: &str,
) -> anyhow::Result<()> {
    let patch = channels.saturating_mul(9);
    ensure!(
        patch <= MAX_PATCH_DIM,
        "{name}: {channels} channels make 3x3 patches of {patch} values; at most \
         {MAX_PATCH_DIM} (the learned metric is a patch x patch matrix)"
    );
    ensure!(n > 0, "{name}: contains no images");
    ensure!(
        channels > 0 && height > 0 && width > 0,
        "{name}: images of {channels}x{height}x{width} have no pixels"
    );
    Ok(())
}

/// Images of shape `(n, c, h, w)` from their values as stored, channel-major:
/// bytes are scaled to `[0, 1]`, floats kept but must be finite.
pub(super) fn images_from_values(
    data: IdxData,
    (n, channels, height, width): (usize, usize, usize, usize),
    name: &str,
) -> anyhow::Result<Images> {
    let per_image = channels * height * width;
    ensure!(
        data.len() == n * per_image,
        "{name}: {} values for {n} images of {channels}x{height}x{width}",
        data.len()
    );
    let (pixel_type, pixels) = match data {
        IdxData::U8(bytes) => (
            PixelType::U8,
            bytes.into_iter().map(PixelType::from_byte).collect(),
        ),
        IdxData::F32(values) => {
            if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
                let (image, within) = (pos / per_image, pos % per_image);
                let (c, y, x) = (
                    within / (height * width),
                    within / width % height,
                    within % width,
                );
                bail!(
                    "{name}: image {image} has a non-finite pixel ({}) at channel {c}, row {y}, column {x}",
                    values[pos]
                );
            }
            (PixelType::F32, values)
        }
    };
    Ok(Images {
        dims: ImageDims {
            channels,
            height,
            width,
        },
        pixel_type,
        pixels,
    })
}

/// Converts a rank-1 `u8` IDX array to labels; `name` identifies its origin
/// in error messages.
pub(super) fn labels_from_idx(array: IdxArray, name: &str) -> anyhow::Result<Vec<u8>> {
    ensure!(
        array.dims.len() == 1,
        "{name}: expected labels of rank 1 (count), found rank {} with dimensions {:?}",
        array.dims.len(),
        array.dims
    );
    match array.data {
        IdxData::U8(labels) if !labels.is_empty() => Ok(labels),
        IdxData::U8(_) => bail!("{name}: contains no labels"),
        IdxData::F32(_) => {
            bail!("{name}: labels must be unsigned bytes (IDX type 0x08), found floats (0x0d)")
        }
    }
}

/// Pairs images with labels, checking the counts agree; classes are named
/// `"0"` to `"k-1"`, with `k` one more than the largest label.
pub(super) fn pair(
    images: Images,
    labels: Vec<u8>,
    images_name: &str,
    labels_name: &str,
) -> anyhow::Result<LabelledImages> {
    ensure!(
        images.len() == labels.len(),
        "{images_name} has {} images but {labels_name} has {} labels",
        images.len(),
        labels.len()
    );
    let num_classes = labels
        .iter()
        .copied()
        .max()
        .map_or(0, |m| usize::from(m) + 1);
    Ok(LabelledImages {
        images,
        labels,
        class_names: (0..num_classes).map(|k| k.to_string()).collect(),
    })
}

/// Loads an image file and a label file in IDX format (gzip or raw).
///
/// Images are rank 3 `(n, H, W)` (one channel) or rank 4 `(n, C, H, W)`, `u8`
/// (scaled to `[0, 1]`) or `f32` (kept as stored, but must be finite); labels
/// are rank 1 `u8`. Classes are named `"0"` to `"k-1"`, `k` being one more
/// than the largest label.
pub fn load_idx_pair(images: &Path, labels: &Path) -> anyhow::Result<LabelledImages> {
    let images_name = images.display().to_string();
    let labels_name = labels.display().to_string();
    // Counts and sizes from the headers first: a mismatched pair or an
    // oversized (or gzip-bomb) image file fails before its payload is read.
    let (image_dims, label_dims) = (read_idx_dims(images)?, read_idx_dims(labels)?);
    if let ([n, _, _] | [n, _, _, _], [m]) = (image_dims.as_slice(), label_dims.as_slice()) {
        ensure!(
            n == m,
            "{images_name} has {n} images but {labels_name} has {m} labels"
        );
    }
    let values: u128 = image_dims.iter().map(|&d| d as u128).product();
    ensure_fits(&format!("{images_name} as f32 pixels"), values * 4)?;
    let image_set = images_from_idx(read_idx(images)?, &images_name)?;
    let label_set = labels_from_idx(read_idx(labels)?, &labels_name)?;
    pair(image_set, label_set, &images_name, &labels_name)
}

/// Writes a labelled set as an IDX image file and an IDX label file (gzip
/// when the name ends in `.gz`), each atomically.
///
/// Images keep their pixel type: `u8` sets are written back as bytes
/// (`round(255 v)`), `f32` sets as floats; rank 3 for one channel, rank 4
/// `(n, C, H, W)` otherwise.
pub fn save_idx_pair(set: &LabelledImages, images: &Path, labels: &Path) -> anyhow::Result<()> {
    let im = &set.images;
    let dims = if im.dims.channels == 1 {
        vec![im.len(), im.dims.height, im.dims.width]
    } else {
        vec![im.len(), im.dims.channels, im.dims.height, im.dims.width]
    };
    let data = match im.pixel_type {
        PixelType::U8 => IdxData::U8(im.pixels.iter().map(|&v| PixelType::to_byte(v)).collect()),
        PixelType::F32 => IdxData::F32(im.pixels.clone()),
    };
    let gz = |p: &Path| p.extension().is_some_and(|e| e == "gz");
    write_idx(images, &IdxArray { dims, data }, gz(images))
        .with_context(|| format!("writing {}", images.display()))?;
    let labels_array = IdxArray {
        dims: vec![set.len()],
        data: IdxData::U8(set.labels.clone()),
    };
    write_idx(labels, &labels_array, gz(labels))
        .with_context(|| format!("writing {}", labels.display()))
}

/// Reads unlabelled images from one IDX file (gz or raw).
pub fn load_idx_images(images: &Path) -> anyhow::Result<Images> {
    let name = images.display().to_string();
    images_from_idx(read_idx(images)?, &name)
}

/// The file beside IDX images that names their classes, one per line in
/// label order (written by `convrfm data convert`; IDX has no names).
pub const CLASS_NAMES_FILE: &str = "classes.txt";

/// Writes `names` as a [`CLASS_NAMES_FILE`].
pub fn write_class_names(path: &Path, names: &[String]) -> anyhow::Result<()> {
    let mut text = names.join("\n");
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The class names of a [`CLASS_NAMES_FILE`] beside `images`, if there is
/// one: it must name at least the `classes` the labels use, each once.
pub fn class_names_beside(images: &Path, classes: usize) -> anyhow::Result<Option<Vec<String>>> {
    let path = images
        .parent()
        .unwrap_or(Path::new("."))
        .join(CLASS_NAMES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let names: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    ensure!(
        names.len() >= classes && names.len() <= 256,
        "{}: names {} classes, the labels use {classes} (at most 256)",
        path.display(),
        names.len()
    );
    if let Some(i) = names.iter().position(String::is_empty) {
        bail!("{}: line {} is empty", path.display(), i + 1);
    }
    let mut sorted = names.clone();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        bail!("{}: class {:?} is named twice", path.display(), w[0]);
    }
    Ok(Some(names))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn write(dir: &Path, name: &str, dims: Vec<usize>, data: IdxData) -> PathBuf {
        let path = dir.join(name);
        write_idx(&path, &IdxArray { dims, data }, name.ends_with(".gz")).expect("write");
        path
    }

    fn err_string(r: anyhow::Result<LabelledImages>) -> String {
        format!("{:#}", r.expect_err("should fail"))
    }

    #[test]
    fn loads_u8_rank3_scaled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = write(
            dir.path(),
            "img.gz",
            vec![2, 1, 2],
            IdxData::U8(vec![0, 255, 51, 102]),
        );
        let lab = write(dir.path(), "lab", vec![2], IdxData::U8(vec![3, 0]));
        let set = load_idx_pair(&img, &lab).expect("load");
        assert_eq!(set.len(), 2);
        assert_eq!(
            (
                set.images.dims.channels,
                set.images.dims.height,
                set.images.dims.width
            ),
            (1, 1, 2)
        );
        assert_eq!(set.images.image(0), &[0.0, 1.0]);
        assert_eq!(set.images.image(1), &[0.2, 0.4]);
        assert_eq!(set.num_classes(), 4);
        assert_eq!(set.class_names, ["0", "1", "2", "3"]);
    }

    #[test]
    fn loads_f32_rank4_as_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let px: Vec<f32> = (0..2 * 3 * 2 * 2).map(|i| i as f32 - 5.5).collect();
        let img = write(
            dir.path(),
            "img",
            vec![2, 3, 2, 2],
            IdxData::F32(px.clone()),
        );
        let lab = write(dir.path(), "lab", vec![2], IdxData::U8(vec![1, 1]));
        let set = load_idx_pair(&img, &lab).expect("load");
        assert_eq!(set.images.dims.channels, 3);
        assert_eq!(set.images.pixels_per_image(), 12);
        assert_eq!(set.images.pixels, px);
        assert_eq!(set.images.image(1), &px[12..]);
    }

    #[test]
    fn non_finite_pixel_names_image_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut px = vec![0.5f32; 3 * 4];
        px[4 + 3] = f32::NAN; // image 1, row 1, column 1
        let img = write(dir.path(), "feat.idx", vec![3, 2, 2], IdxData::F32(px));
        let lab = write(dir.path(), "lab", vec![3], IdxData::U8(vec![0, 1, 2]));
        let msg = err_string(load_idx_pair(&img, &lab));
        assert!(msg.contains("feat.idx"), "{msg}");
        assert!(msg.contains("image 1 "), "{msg}");
        assert!(
            msg.contains("NaN") && msg.contains("row 1, column 1"),
            "{msg}"
        );
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = write(dir.path(), "img", vec![2, 1, 1], IdxData::U8(vec![0, 0]));
        let lab = write(dir.path(), "lab", vec![3], IdxData::U8(vec![0, 1, 2]));
        let msg = err_string(load_idx_pair(&img, &lab));
        assert!(
            msg.contains("img has 2 images") && msg.contains("lab has 3 labels"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_ranks_and_label_type_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let flat = write(dir.path(), "flat", vec![4], IdxData::U8(vec![0; 4]));
        let img = write(dir.path(), "img", vec![4, 1, 1], IdxData::U8(vec![0; 4]));
        let lab = write(dir.path(), "lab", vec![4], IdxData::U8(vec![0; 4]));
        let lab2 = write(dir.path(), "lab2", vec![2, 2], IdxData::U8(vec![0; 4]));
        let labf = write(dir.path(), "labf", vec![4], IdxData::F32(vec![0.0; 4]));
        let msg = err_string(load_idx_pair(&flat, &lab));
        assert!(msg.contains("flat: expected images of rank 3"), "{msg}");
        let msg = err_string(load_idx_pair(&img, &lab2));
        assert!(msg.contains("lab2: expected labels of rank 1"), "{msg}");
        let msg = err_string(load_idx_pair(&img, &labf));
        assert!(msg.contains("labf: labels must be unsigned bytes"), "{msg}");
    }

    #[test]
    fn empty_and_corrupt_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lab = write(dir.path(), "lab", vec![1], IdxData::U8(vec![0]));
        let empty = dir.path().join("empty-set");
        // An IDX file with zero images.
        std::fs::write(&empty, [0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]).expect("write");
        let msg = err_string(load_idx_pair(&empty, &lab));
        assert!(msg.contains("empty-set: dimension 0 is zero"), "{msg}");
        let short = dir.path().join("short.gz");
        std::fs::write(&short, b"\x1f\x8b\x08garbage").expect("write");
        let msg = err_string(load_idx_pair(&short, &lab));
        assert!(msg.contains("short.gz: corrupt gzip"), "{msg}");
        let missing = dir.path().join("missing");
        let img = write(dir.path(), "img", vec![1, 1, 1], IdxData::U8(vec![0]));
        let msg = err_string(load_idx_pair(&img, &missing));
        assert!(msg.contains("missing: I/O error"), "{msg}");
    }

    #[test]
    fn float_and_multichannel_sets_round_trip_through_idx() {
        let dir = tempfile::tempdir().expect("tempdir");
        let float = crate::data::synth::star(5, 25, 3, crate::data::Split::Train).unwrap();
        let bytes = LabelledImages {
            images: Images {
                dims: ImageDims {
                    channels: 2,
                    height: 3,
                    width: 4,
                },
                pixel_type: PixelType::U8,
                pixels: (0..3 * 24).map(|i| (i * 7 % 256) as f32 / 255.0).collect(),
            },
            labels: vec![0, 2, 1],
            class_names: vec!["0".into(), "1".into(), "2".into()],
        };
        for (set, ext) in [(&float, "idx.gz"), (&bytes, "idx"), (&float, "idx")] {
            let (i, l) = (
                dir.path().join(format!("i.{ext}")),
                dir.path().join(format!("l.{ext}")),
            );
            save_idx_pair(set, &i, &l).expect("writes");
            let back = load_idx_pair(&i, &l).expect("reads");
            assert_eq!(back.images, set.images);
            assert_eq!(back.labels, set.labels);
        }
        // A rank-4 float file is read as multi-channel float images.
        let i = dir.path().join("i.idx.gz");
        save_idx_pair(&float, &i, &dir.path().join("l.idx.gz")).expect("writes");
        let array = read_idx(&i).expect("reads");
        assert_eq!(
            (array.dims.as_slice(), array.data.type_code()),
            (&[5, 3, 32, 32][..], 0x0D)
        );
    }
}
