//! Labelled sets from NumPy files: images and labels as two `.npy` files,
//! or as two arrays of one `.npz` archive (read with the `npyz` crate).
//!
//! Images are `uint8` (scaled to `[0, 1]` like IDX bytes) or `float32`
//! (kept, must be finite), shaped `(n, H, W)`, `(n, c, H, W)`, or
//! channels-last `(n, H, W, c)` when asked; labels are any integer type,
//! shape `(n,)`, values 0 to 255. Fortran-ordered arrays are refused
//! (`np.ascontiguousarray` makes a C-ordered copy).

use std::io::{Read, Seek};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use npyz::{DType, NpyFile, Order, TypeChar};

use super::files::{check_image_shape, images_from_values, pair};
use super::idx::IdxData;
use super::images::{Images, LabelledImages};
use crate::limits::ensure_fits;

/// How NumPy arrays are read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumpyOptions {
    /// Rank-4 images are `(n, H, W, c)` instead of `(n, c, H, W)`.
    pub channels_last: bool,
    /// `.npz`: the images array (default: the only array of rank 3 or 4).
    pub images_key: Option<String>,
    /// `.npz`: the labels array (default: the only array of rank 1).
    pub labels_key: Option<String>,
}

/// Images from a `.npy` file.
pub fn load_npy_images(path: &Path, opts: &NumpyOptions) -> Result<Images> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("reading {name}"))?;
    images_from_npy(&bytes, &name, opts.channels_last)
}

/// Images and labels from two `.npy` files.
pub fn load_npy_pair(images: &Path, labels: &Path, opts: &NumpyOptions) -> Result<LabelledImages> {
    let (images_name, labels_name) = (images.display().to_string(), labels.display().to_string());
    let label_bytes = std::fs::read(labels).with_context(|| format!("reading {labels_name}"))?;
    let labels = labels_from_npy(&label_bytes, &labels_name)?;
    let images = load_npy_images(images, opts)?;
    pair(images, labels, &images_name, &labels_name)
}

/// Images and labels from two arrays of a `.npz` archive.
pub fn load_npz(path: &Path, opts: &NumpyOptions) -> Result<LabelledImages> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("reading {name}"))?;
    parse_npz(std::io::BufReader::new(file), &name, opts)
}

/// Images and labels from the bytes of a `.npz` archive; `name` for
/// messages.
pub fn parse_npz<R: Read + Seek>(
    reader: R,
    name: &str,
    opts: &NumpyOptions,
) -> Result<LabelledImages> {
    let mut archive = npyz::npz::NpzArchive::new(reader)
        .with_context(|| format!("{name}: not a readable .npz (zip) archive"))?;
    let names: Vec<String> = archive.array_names().map(str::to_owned).collect();
    let mut arrays = Vec::with_capacity(names.len());
    for key in &names {
        arrays.push((key.clone(), read_entry(&mut archive, key, name)?));
    }
    // Arrays that are not plain numeric ones (strings, objects) have no
    // rank here: they are listed, never picked by default.
    let ranks: Vec<(String, Option<usize>)> = arrays
        .iter()
        .map(|(k, bytes)| {
            (
                k.clone(),
                open_npy(bytes, name).ok().map(|n| n.shape().len()),
            )
        })
        .collect();
    let listing = || {
        ranks
            .iter()
            .map(|(k, r)| match r {
                Some(r) => format!("{k} (rank {r})"),
                None => format!("{k} (not read)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pick = |given: &Option<String>, want: &dyn Fn(usize) -> bool, what: &str, flag: &str| {
        if let Some(k) = given {
            return ranks
                .iter()
                .position(|(n, _)| n == k)
                .with_context(|| format!("{name}: no array {k:?}; it holds {}", listing()));
        }
        let matching: Vec<usize> = (0..ranks.len())
            .filter(|&i| ranks[i].1.is_some_and(want))
            .collect();
        match matching.as_slice() {
            [i] => Ok(*i),
            [] => bail!("{name}: no {what} array; it holds {}", listing()),
            _ => bail!(
                "{name}: more than one {what} array ({}); name one with {flag}",
                listing()
            ),
        }
    };
    let i = pick(
        &opts.images_key,
        &|r| r == 3 || r == 4,
        "images (rank 3 or 4)",
        "--npz-images KEY",
    )?;
    let l = pick(
        &opts.labels_key,
        &|r| r == 1,
        "labels (rank 1)",
        "--npz-labels KEY",
    )?;
    let (images_name, labels_name) = (
        format!("{name}[{}]", arrays[i].0),
        format!("{name}[{}]", arrays[l].0),
    );
    let labels = labels_from_npy(&arrays[l].1, &labels_name)?;
    let images = images_from_npy(&arrays[i].1, &images_name, opts.channels_last)?;
    pair(images, labels, &images_name, &labels_name)
}

/// One array's bytes, its declared size checked against this machine
/// first and never exceeded (a zip entry can declare any size, and a
/// compressed one can inflate to more than it declares).
fn read_entry<R: Read + Seek>(
    archive: &mut npyz::npz::NpzArchive<R>,
    key: &str,
    name: &str,
) -> Result<Vec<u8>> {
    let zip = archive.zip_archive();
    let entry = zip
        .by_name(&npyz::npz::file_name_from_array_name(key))
        .with_context(|| format!("{name}: reading array {key:?}"))?;
    let declared = entry.size();
    ensure_fits(&format!("{name}: array {key:?}"), u128::from(declared))?;
    let mut bytes = Vec::new();
    entry
        .take(declared.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("{name}: array {key:?} is corrupt"))?;
    ensure!(
        bytes.len() as u64 == declared,
        "{name}: array {key:?} holds {} bytes, its entry declares {declared}",
        bytes.len()
    );
    Ok(bytes)
}

/// Deepest bracket nesting accepted in a `.npy` header (a structured
/// dtype nests 3 or 4 deep; plain arrays 2).
const MAX_HEADER_NESTING: usize = 4;

/// The header of `.npy` bytes, its shape checked first: `npyz` multiplies
/// the dimensions without overflow checks, so a hostile header must not
/// reach it with dimensions whose product exceeds the bytes present.
fn open_npy<'b>(bytes: &'b [u8], name: &str) -> Result<NpyFile<&'b [u8]>> {
    let dims = header_shape(bytes).with_context(|| format!("{name}: not a .npy array"))?;
    // Every partial product (npyz's strides) must fit in u64, and the value
    // count must not exceed the bytes present.
    let too_many = || {
        format!(
            "{name}: shape {dims:?} holds more values than the file's {} bytes",
            bytes.len()
        )
    };
    let nonzero = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |p, &d| p.checked_mul(d))
        .with_context(too_many)?;
    let count = if dims.contains(&0) { 0 } else { nonzero };
    ensure!(count <= bytes.len() as u64, too_many());
    let npy = NpyFile::new(bytes).with_context(|| format!("{name}: malformed .npy header"))?;
    ensure!(
        npy.order() == Order::C,
        "{name}: Fortran-ordered array; save a C-ordered copy (np.ascontiguousarray)"
    );
    Ok(npy)
}

/// The `shape` tuple of a `.npy` header (format versions 1 to 3), read
/// only to bound it before `npyz` parses the header.
fn header_shape(bytes: &[u8]) -> Result<Vec<u64>> {
    ensure!(bytes.starts_with(b"\x93NUMPY"), "bad magic");
    let major = *bytes.get(6).context("truncated header")?;
    let (len, start): (usize, usize) = match major {
        1 => (
            usize::from(u16::from_le_bytes([
                *bytes.get(8).context("truncated header")?,
                *bytes.get(9).context("truncated header")?,
            ])),
            10,
        ),
        2 | 3 => {
            let b = bytes.get(8..12).context("truncated header")?;
            (
                u32::from_le_bytes(b.try_into().context("header length")?) as usize,
                12,
            )
        }
        v => bail!("format version {v} (1 to 3 are read)"),
    };
    let dict = bytes
        .get(start..start.saturating_add(len))
        .context("truncated header")?;
    let dict = std::str::from_utf8(dict).context("header is not text")?;
    // npyz's header parser takes exponential time in bracket nesting; a
    // plain array's header nests two deep (the dict, the shape tuple).
    let mut depth = 0usize;
    for ch in dict.chars() {
        match ch {
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        ensure!(
            depth <= MAX_HEADER_NESTING,
            "header nests brackets more than {MAX_HEADER_NESTING} deep (not a plain array)"
        );
    }
    let after = dict
        .split_once("'shape'")
        .or_else(|| dict.split_once("\"shape\""))
        .context("header has no shape")?
        .1;
    let tuple = after
        .split_once('(')
        .and_then(|(_, t)| t.split_once(')'))
        .context("header shape is not a tuple")?
        .0;
    tuple
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<u64>()
                .with_context(|| format!("shape entry {s:?}"))
        })
        .collect()
}

fn dtype_of(npy: &NpyFile<&[u8]>) -> Option<(TypeChar, u64)> {
    match npy.dtype() {
        DType::Plain(t) => Some((t.type_char(), t.size_field())),
        _ => None,
    }
}

fn dtype_text(npy: &NpyFile<&[u8]>) -> String {
    npy.dtype().descr()
}

/// Images from the bytes of a `.npy` array; `name` for messages.
pub fn images_from_npy(bytes: &[u8], name: &str, channels_last: bool) -> Result<Images> {
    let npy = open_npy(bytes, name)?;
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{name}: shape too large"))?;
    let (n, c, h, w) = match (shape.as_slice(), channels_last) {
        (&[n, h, w], _) => (n, 1, h, w),
        (&[n, c, h, w], false) => (n, c, h, w),
        (&[n, h, w, c], true) => (n, c, h, w),
        _ => bail!(
            "{name}: images must have shape (n, H, W), (n, c, H, W) or, with \
             --channels-last, (n, H, W, c); found {:?}",
            npy.shape()
        ),
    };
    let dims = (n, c, h, w);
    check_image_shape(dims, name)?;
    let corrupt = || format!("{name}: truncated or corrupt data");
    let values = match dtype_of(&npy) {
        Some((TypeChar::Uint, 1)) => IdxData::U8(channel_major(
            npy.into_vec::<u8>().with_context(corrupt)?,
            dims,
            channels_last,
        )),
        Some((TypeChar::Float, 4)) => IdxData::F32(channel_major(
            npy.into_vec::<f32>().with_context(corrupt)?,
            dims,
            channels_last,
        )),
        _ => bail!(
            "{name}: pixel type {}: uint8 or float32 is read (convert with .astype)",
            dtype_text(&npy)
        ),
    };
    images_from_values(values, dims, name)
}

/// `(n, H, W, c)` values to `(n, c, H, W)` when `channels_last`.
fn channel_major<T: Copy + Default>(
    values: Vec<T>,
    (_, c, h, w): (usize, usize, usize, usize),
    channels_last: bool,
) -> Vec<T> {
    if !channels_last || c == 1 {
        return values;
    }
    let plane = h * w;
    let mut out = vec![T::default(); values.len()];
    for (i, v) in values.into_iter().enumerate() {
        let (image, rest) = (i / (plane * c), i % (plane * c));
        let (pos, ch) = (rest / c, rest % c);
        out[image * plane * c + ch * plane + pos] = v;
    }
    out
}

/// Labels from the bytes of a `.npy` array of any integer type.
pub fn labels_from_npy(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let npy = open_npy(bytes, name)?;
    ensure!(
        npy.shape().len() == 1,
        "{name}: labels must have shape (n,), found {:?}",
        npy.shape()
    );
    let corrupt = || format!("{name}: truncated or corrupt data");
    let wide: Vec<i128> = match dtype_of(&npy) {
        Some((TypeChar::Uint, 1)) => widen(npy.into_vec::<u8>().with_context(corrupt)?),
        Some((TypeChar::Uint, 2)) => widen(npy.into_vec::<u16>().with_context(corrupt)?),
        Some((TypeChar::Uint, 4)) => widen(npy.into_vec::<u32>().with_context(corrupt)?),
        Some((TypeChar::Uint, 8)) => widen(npy.into_vec::<u64>().with_context(corrupt)?),
        Some((TypeChar::Int, 1)) => widen(npy.into_vec::<i8>().with_context(corrupt)?),
        Some((TypeChar::Int, 2)) => widen(npy.into_vec::<i16>().with_context(corrupt)?),
        Some((TypeChar::Int, 4)) => widen(npy.into_vec::<i32>().with_context(corrupt)?),
        Some((TypeChar::Int, 8)) => widen(npy.into_vec::<i64>().with_context(corrupt)?),
        _ => bail!(
            "{name}: label type {}: an integer type is read",
            dtype_text(&npy)
        ),
    };
    ensure!(!wide.is_empty(), "{name}: contains no labels");
    wide.iter()
        .enumerate()
        .map(|(i, &l)| {
            u8::try_from(l).map_err(|_| {
                anyhow::anyhow!("{name}: label {l} of image {i} is not a class number 0 to 255")
            })
        })
        .collect()
}

fn widen<T: Into<i128>>(v: Vec<T>) -> Vec<i128> {
    v.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;

    fn npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn u8_and_f32_images_and_channels_last() {
        let im = images_from_npy(&npy(&[2, 1, 2], &[0u8, 255, 51, 102]), "a", false).unwrap();
        assert_eq!(im.dims.to_string(), "1x1x2");
        assert_eq!(im.pixels, [0.0, 1.0, 0.2, 0.4]);
        let im = images_from_npy(&npy(&[1, 1, 1], &[0.5f32]), "b", false).unwrap();
        assert_eq!(
            (im.pixel_type, im.pixels[0]),
            (super::super::PixelType::F32, 0.5)
        );
        // (n=1, H=1, W=2, c=3) -> channel-major.
        let hwc = [1u8, 2, 3, 4, 5, 6];
        let im = images_from_npy(&npy(&[1, 1, 2, 3], &hwc), "c", true).unwrap();
        assert_eq!(im.dims.to_string(), "3x1x2");
        let bytes: Vec<u8> = im
            .pixels
            .iter()
            .map(|&v| (v * 255.0).round() as u8)
            .collect();
        assert_eq!(bytes, [1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn labels_of_any_integer_type() {
        assert_eq!(
            labels_from_npy(&npy(&[3], &[0i64, 2, 1]), "l").unwrap(),
            [0, 2, 1]
        );
        assert_eq!(
            labels_from_npy(&npy(&[2], &[7u16, 255]), "l").unwrap(),
            [7, 255]
        );
        let e = labels_from_npy(&npy(&[2], &[1i32, 300]), "l").unwrap_err();
        assert!(format!("{e:#}").contains("label 300 of image 1"), "{e:#}");
        let e = labels_from_npy(&npy(&[2], &[-1i8, 0]), "l").unwrap_err();
        assert!(format!("{e:#}").contains("label -1"), "{e:#}");
        let e = labels_from_npy(&npy(&[2], &[1.0f32, 0.0]), "l").unwrap_err();
        assert!(format!("{e:#}").contains("integer type"), "{e:#}");
    }

    #[test]
    fn bad_types_ranks_and_headers_are_errors() {
        let msg = |r: Result<Images>| format!("{:#}", r.unwrap_err());
        assert!(
            msg(images_from_npy(&npy(&[1, 1, 1], &[1.0f64]), "x", false))
                .contains("uint8 or float32")
        );
        assert!(msg(images_from_npy(&npy(&[4], &[1u8; 4]), "x", false)).contains("shape"));
        assert!(msg(images_from_npy(&npy(&[1, 1, 1, 1, 1], &[1u8]), "x", false)).contains("shape"));
        assert!(
            msg(images_from_npy(&npy(&[1, 1, 1], &[f32::NAN]), "x", false)).contains("non-finite")
        );
        assert!(msg(images_from_npy(b"not numpy", "x", false)).contains("not a .npy"));
        // A header whose shape overflows, or exceeds the data, is refused
        // before npyz sees it.
        let mut huge = npy(&[1, 1, 1], &[1u8]);
        let text =
            String::from_utf8_lossy(&huge).replace("(1, 1, 1)", "(99999999999999999, 99999, 1)");
        huge = text.into_bytes();
        assert!(images_from_npy(&huge, "x", false).is_err());
        let mut short = npy(&[2, 2, 2], &[1u8; 8]);
        short.truncate(short.len() - 3);
        assert!(msg(images_from_npy(&short, "x", false)).contains("truncated"));
    }

    proptest::proptest! {
        #[test]
        fn bit_flips_are_errors_or_consistent(
            at in 0usize..200,
            bit in 0u8..8,
            channels_last in proptest::bool::ANY,
        ) {
            let mut bytes = npy(&[2, 1, 3, 4], &[7u8; 24]);
            let i = at % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(im) = images_from_npy(&bytes, "p.npy", channels_last) {
                proptest::prop_assert_eq!(im.pixels.len(), im.len() * im.dims.pixels());
            }
            let _ = labels_from_npy(&bytes, "p.npy");
        }

        #[test]
        fn any_bytes_are_images_or_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&bytes);
            let _ = images_from_npy(&b, "p.npy", false);
            let _ = labels_from_npy(&b, "p.npy");
            let _ = parse_npz(std::io::Cursor::new(&bytes[..]), "p.npz", &NumpyOptions::default());
        }
    }
}
