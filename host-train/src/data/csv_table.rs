//! Labelled sets from CSV, in the layout of the MNIST-family CSV exports:
//! one image per row, `label,pixel1,...,pixelN`, with or without a header
//! row (a first row whose label field is not a number is a header). Read
//! with the `csv` crate.
//!
//! Pixels are channel-major. When every pixel is a whole number from 0 to
//! 255 the set has `u8` pixels (scaled to `[0, 1]` like IDX bytes);
//! otherwise every pixel must be a finite number and the set has `f32`
//! pixels, kept as written. The image shape is `--shape CxHxW`, or square
//! one-channel images when N is a square number.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use super::files::{check_image_shape, images_from_values, pair};
use super::idx::IdxData;
use super::images::{ImageDims, LabelledImages};

/// Reads a CSV file of labelled images.
pub fn load_csv(path: &Path, shape: Option<ImageDims>) -> Result<LabelledImages> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    parse_csv(
        std::io::BufReader::new(file),
        &path.display().to_string(),
        shape,
    )
}

/// Reads CSV text of labelled images; `name` identifies it in messages.
pub fn parse_csv(
    reader: impl Read,
    name: &str,
    shape: Option<ImageDims>,
) -> Result<LabelledImages> {
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let mut labels = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut fields: Option<usize> = shape.map(|s| s.pixels() + 1);
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        let more = rows
            .read_record(&mut record)
            .with_context(|| format!("{name}: not readable as CSV"))?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, csv::Position::line);
        let label_field = record.get(0).unwrap_or("");
        if std::mem::take(&mut first) && label_field.parse::<f64>().is_err() {
            continue; // a header row
        }
        if record.len() == 1 && label_field.is_empty() {
            continue; // a blank line
        }
        let expected = *fields.get_or_insert(record.len());
        ensure!(
            record.len() == expected,
            "{name}: row {line} has {} fields, expected {expected} (a label and {} pixels)",
            record.len(),
            expected - 1
        );
        let label: u8 = label_field.parse().with_context(|| {
            format!("{name}: row {line}: label {label_field:?} is not a class number 0 to 255")
        })?;
        labels.push(label);
        for (col, field) in record.iter().enumerate().skip(1) {
            let v: f32 = field
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .with_context(|| {
                    format!(
                        "{name}: row {line}, column {}: pixel {field:?} is not a finite number",
                        col + 1
                    )
                })?;
            values.push(v);
        }
    }
    let pixels = fields.map_or(0, |f| f - 1);
    ensure!(!labels.is_empty(), "{name}: contains no rows of images");
    let dims = match shape {
        Some(d) => d,
        None => square(pixels).with_context(|| {
            format!("{name}: {pixels} pixels per row is not a square image: give --shape CxHxW")
        })?,
    };
    let n = labels.len();
    let shape4 = (n, dims.channels, dims.height, dims.width);
    check_image_shape(shape4, name)?;
    let bytes = values
        .iter()
        .all(|&v| v.fract() == 0.0 && (0.0..=255.0).contains(&v));
    let data = if bytes {
        IdxData::U8(values.into_iter().map(|v| v as u8).collect())
    } else {
        IdxData::F32(values)
    };
    let images = images_from_values(data, shape4, name)?;
    pair(images, labels, name, name)
}

/// One-channel `s x s` images of `pixels` pixels, if it is a square.
fn square(pixels: usize) -> Option<ImageDims> {
    let s = (pixels as f64).sqrt().round() as usize;
    (s > 0 && s * s == pixels).then_some(ImageDims {
        channels: 1,
        height: s,
        width: s,
    })
}

/// Parses `--shape CxHxW` (e.g. `1x28x28`).
pub fn parse_shape(s: &str) -> Result<ImageDims> {
    let parts: Vec<&str> = s.trim().split(['x', 'X']).collect();
    let [c, h, w] = parts.as_slice() else {
        bail!("shape {s:?}: expected CxHxW, e.g. 1x28x28");
    };
    let num = |v: &str| -> Result<usize> {
        let n: usize = v
            .trim()
            .parse()
            .with_context(|| format!("shape {s:?}: {v:?} is not a number"))?;
        ensure!(n >= 1, "shape {s:?}: every dimension must be at least 1");
        Ok(n)
    };
    Ok(ImageDims {
        channels: num(c)?,
        height: num(h)?,
        width: num(w)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PixelType;
    use proptest::strategy::{Just, Strategy};

    fn parse(text: &str, shape: Option<&str>) -> Result<LabelledImages> {
        parse_csv(
            text.as_bytes(),
            "t.csv",
            shape.map(|s| parse_shape(s).unwrap()),
        )
    }

    #[test]
    fn with_and_without_header() {
        let a = parse("label,p1,p2,p3,p4\n1,0,255,0,51\n0,1,2,3,4\n", None).unwrap();
        let b = parse("1,0,255,0,51\n0,1,2,3,4\n", None).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.images.dims.to_string(), "1x2x2");
        assert_eq!(a.images.pixel_type, PixelType::U8);
        assert_eq!(a.labels, [1, 0]);
        assert_eq!(a.images.pixels[1], 1.0);
        let c = parse("0,1,2,3,4,5,6\n1,1,2,3,4,5,6\n", Some("3x1x2")).unwrap();
        assert_eq!(c.images.dims.to_string(), "3x1x2");
    }

    #[test]
    fn float_pixels_are_kept() {
        let s = parse("0,0.5,1\n1,0.25,-2\n", Some("1x1x2")).unwrap();
        assert_eq!(s.images.pixel_type, PixelType::F32);
        assert_eq!(s.images.pixels, [0.5, 1.0, 0.25, -2.0]);
    }

    #[test]
    fn errors_name_row_and_column() {
        let e = |t: &str, s: Option<&str>| format!("{:#}", parse(t, s).unwrap_err());
        assert!(e("0,1,2,3,4\n1,1,2,3\n", None).contains("row 2 has 4 fields, expected 5"));
        assert!(e("l,a,b,c,d\n0,1,2,3,4\n1,1,2,x,4\n", None).contains("row 3, column 4"));
        assert!(e("0,1,2,3,4\n1.5,1,2,3,4\n", None).contains("row 2: label \"1.5\""));
        assert!(e("0,1,2,3,4\n300,1,2,3,4\n", None).contains("label \"300\""));
        assert!(e("0,1,2,3\n", None).contains("not a square"));
        assert!(e("0,1,2,3,4\n", Some("1x2x3")).contains("expected 7"));
        assert!(e("0,1,nan,3,4\n", None).contains("finite"));
        assert!(e("label,a\n", None).contains("no rows"));
        assert!(e("", None).contains("no rows"));
    }

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("3x32x32").unwrap().to_string(), "3x32x32");
        for bad in ["28x28", "0x1x1", "axbxc", "1x2x3x4"] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn byte_sets_round_trip_through_csv(
            (h, w, rows) in (1usize..5, 1usize..5).prop_flat_map(|(h, w)| {
                (Just(h), Just(w), proptest::collection::vec(
                    (0u8..4, proptest::collection::vec(proptest::num::u8::ANY, h * w)), 1..6))
            }),
            header in proptest::bool::ANY,
        ) {
            use proptest::prelude::*;
            let mut text = String::new();
            if header {
                text.push_str("label");
                for p in 0..h * w {
                    text.push_str(&format!(",p{p}"));
                }
                text.push('\n');
            }
            for (l, px) in &rows {
                text.push_str(&l.to_string());
                for p in px {
                    text.push_str(&format!(",{p}"));
                }
                text.push('\n');
            }
            let shape = ImageDims { channels: 1, height: h, width: w };
            let set = parse_csv(text.as_bytes(), "p.csv", Some(shape)).unwrap();
            prop_assert_eq!(set.len(), rows.len());
            let bytes: Vec<u8> = set.images.pixels.iter().map(|&v| PixelType::to_byte(v)).collect();
            let want: Vec<u8> = rows.iter().flat_map(|(_, px)| px.iter().copied()).collect();
            prop_assert_eq!(bytes, want);
            prop_assert_eq!(set.labels, rows.iter().map(|(l, _)| *l).collect::<Vec<_>>());
        }

        #[test]
        fn any_bytes_are_a_set_or_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(set) = parse_csv(&bytes[..], "p.csv", None) {
                proptest::prop_assert_eq!(set.images.pixels.len(), set.len() * set.images.dims.pixels());
            }
        }
    }
}
