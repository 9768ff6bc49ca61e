//! Picture files (PNG, JPEG, BMP, PGM/PPM) as model input: the one
//! conversion from a picture to `c x H x W` bytes, used alike by training
//! on a folder, by `predict` on photos and by `data convert`, so a picture
//! gives the same pixels everywhere.
//!
//! The conversion, in order: decode (the `image` crate, with its default
//! memory limits against decompression bombs), turn upright by the EXIF
//! orientation, convert to the channel count (1: luma, 3: RGB; alpha is
//! dropped, 16-bit samples are scaled to 8 bits), resize to `H x W` with
//! the recorded [`ResizeFilter`] when the size differs, lay out
//! channel-major. Pixels stay bytes: models scale them by 1/255 like IDX
//! bytes, and the device takes them as they are.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use image::{DynamicImage, ImageDecoder, ImageReader, imageops::FilterType};
use serde::{Deserialize, Serialize};

/// File name extensions read as pictures (compared case-insensitively).
pub const PICTURE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "pgm", "ppm", "pnm"];

/// Whether `path`'s extension is `ext`, ignoring case.
pub fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Whether `path` names a picture file by its extension.
pub fn is_picture(path: &Path) -> bool {
    PICTURE_EXTENSIONS
        .iter()
        .any(|ext| has_extension(path, ext))
}

/// How a picture of another size is resized to the model's: recorded in
/// the model file and the blob, applied by every command that reads
/// pictures. The filters are the `image` crate's.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
pub enum ResizeFilter {
    /// Nearest neighbour.
    Nearest,
    /// Linear (bilinear) interpolation: the default.
    #[default]
    Triangle,
    /// Catmull-Rom cubic.
    CatmullRom,
    /// Gaussian.
    Gaussian,
    /// Lanczos with window 3.
    Lanczos3,
}

impl ResizeFilter {
    /// All filters, in the order of their blob codes.
    pub const ALL: [ResizeFilter; 5] = [
        ResizeFilter::Nearest,
        ResizeFilter::Triangle,
        ResizeFilter::CatmullRom,
        ResizeFilter::Gaussian,
        ResizeFilter::Lanczos3,
    ];

    fn image_filter(self) -> FilterType {
        match self {
            ResizeFilter::Nearest => FilterType::Nearest,
            ResizeFilter::Triangle => FilterType::Triangle,
            ResizeFilter::CatmullRom => FilterType::CatmullRom,
            ResizeFilter::Gaussian => FilterType::Gaussian,
            ResizeFilter::Lanczos3 => FilterType::Lanczos3,
        }
    }

    /// The filter's code in the blob header (`convrfm_core::ResizeFilter`).
    pub fn to_core(self) -> convrfm_core::ResizeFilter {
        match self {
            ResizeFilter::Nearest => convrfm_core::ResizeFilter::Nearest,
            ResizeFilter::Triangle => convrfm_core::ResizeFilter::Triangle,
            ResizeFilter::CatmullRom => convrfm_core::ResizeFilter::CatmullRom,
            ResizeFilter::Gaussian => convrfm_core::ResizeFilter::Gaussian,
            ResizeFilter::Lanczos3 => convrfm_core::ResizeFilter::Lanczos3,
        }
    }

    /// The filter a blob records.
    pub fn from_core(f: convrfm_core::ResizeFilter) -> Self {
        match f {
            convrfm_core::ResizeFilter::Nearest => ResizeFilter::Nearest,
            convrfm_core::ResizeFilter::Triangle => ResizeFilter::Triangle,
            convrfm_core::ResizeFilter::CatmullRom => ResizeFilter::CatmullRom,
            convrfm_core::ResizeFilter::Gaussian => ResizeFilter::Gaussian,
            convrfm_core::ResizeFilter::Lanczos3 => ResizeFilter::Lanczos3,
        }
    }
}

impl fmt::Display for ResizeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResizeFilter::Nearest => "nearest",
            ResizeFilter::Triangle => "triangle",
            ResizeFilter::CatmullRom => "catmull-rom",
            ResizeFilter::Gaussian => "gaussian",
            ResizeFilter::Lanczos3 => "lanczos3",
        })
    }
}

/// What a picture file holds, read from its header only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PictureHeader {
    /// 1 (gray, with or without alpha) or 3 (colour, with or without alpha).
    pub channels: usize,
    /// Rows, upright (after the EXIF orientation).
    pub height: usize,
    /// Columns, upright.
    pub width: usize,
}

/// The pixels a model takes: channels, size and the filter that gets a
/// picture there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PictureFormat {
    /// 1 (luma) or 3 (RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Used when a picture's size differs.
    pub filter: ResizeFilter,
}

/// Largest picture side read, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Most pixels a picture may have (64 megapixels, above any camera's
/// photo): a few hundred bytes of JPEG can declare 168 megapixels and take
/// seconds to decode into memory the `image` crate's default limit allows.
pub const MAX_PIXELS: u64 = 64 << 20;

/// A decoder for the picture `reader` holds, its declared size checked
/// against [`MAX_SIDE`] and [`MAX_PIXELS`] before any pixel is decoded.
fn decoder<'a, R: std::io::BufRead + std::io::Seek + 'a>(
    reader: ImageReader<R>,
) -> Result<impl ImageDecoder + 'a> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    let mut reader = reader.with_guessed_format().context("cannot read")?;
    reader.limits(limits);
    let decoder = reader.into_decoder().context("not a readable picture")?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        bail!("{w}x{h} pixels: more than the {MAX_PIXELS} read (64 megapixels)");
    }
    Ok(decoder)
}

fn open(path: &Path) -> Result<impl ImageDecoder> {
    decoder(ImageReader::open(path).context("cannot open")?)
}

fn upright(dims: (u32, u32), orientation: image::metadata::Orientation) -> (u32, u32) {
    use image::metadata::Orientation as O;
    match orientation {
        O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH => (dims.1, dims.0),
        _ => dims,
    }
}

fn channels_of(colour: image::ColorType) -> usize {
    if colour.has_color() { 3 } else { 1 }
}

/// Reads a picture's header: channels and upright size, without decoding
/// the pixels. Errors name the file.
pub fn read_header(path: &Path) -> Result<PictureHeader> {
    let inner = || -> Result<PictureHeader> {
        let mut decoder = open(path)?;
        let orientation = decoder.orientation().context("bad orientation tag")?;
        let (width, height) = upright(decoder.dimensions(), orientation);
        Ok(PictureHeader {
            channels: channels_of(decoder.color_type()),
            height: height as usize,
            width: width as usize,
        })
    };
    inner().with_context(|| path.display().to_string())
}

/// Decodes the picture at `path` into `format`: `channels * height *
/// width` bytes, channel-major. Errors name the file.
pub fn read_picture(path: &Path, format: &PictureFormat) -> Result<Vec<u8>> {
    let inner = || -> Result<Vec<u8>> {
        let bytes = std::fs::read(path).context("cannot open")?;
        decode_picture(&bytes, format)
    };
    inner().with_context(|| path.display().to_string())
}

/// Decodes a picture held in memory (for tests and fuzzing: the same
/// steps as [`read_picture`] without a file).
pub fn decode_picture(bytes: &[u8], format: &PictureFormat) -> Result<Vec<u8>> {
    let mut decoder = decoder(ImageReader::new(std::io::Cursor::new(bytes)))?;
    let orientation = decoder.orientation().context("bad orientation tag")?;
    let mut picture = DynamicImage::from_decoder(decoder).context("corrupt picture")?;
    picture.apply_orientation(orientation);
    Ok(convert(&picture, format))
}

fn convert(picture: &DynamicImage, format: &PictureFormat) -> Vec<u8> {
    let (w, h) = (format.width as u32, format.height as u32);
    let same_size = picture.width() == w && picture.height() == h;
    let filter = format.filter.image_filter();
    if format.channels == 1 {
        let gray = picture.to_luma8();
        let gray = if same_size {
            gray
        } else {
            image::imageops::resize(&gray, w, h, filter)
        };
        return gray.into_raw();
    }
    let rgb = picture.to_rgb8();
    let rgb = if same_size {
        rgb
    } else {
        image::imageops::resize(&rgb, w, h, filter)
    };
    // Interleaved (row, column, channel) to channel-major.
    let plane = format.height * format.width;
    let mut out = vec![0; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for (c, &v) in px.0.iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
    out
}

/// Parses `--size HxW` (e.g. `28x28`): both at least 1 and at most 4096.
pub fn parse_size(s: &str) -> Result<(usize, usize)> {
    let Some((h, w)) = s.trim().split_once(['x', 'X']) else {
        bail!("size {s:?}: expected HxW, e.g. 28x28");
    };
    let side = |v: &str, what: &str| -> Result<usize> {
        let n: usize = v
            .trim()
            .parse()
            .with_context(|| format!("size {s:?}: {what} {v:?} is not a number"))?;
        if !(1..=4096).contains(&n) {
            bail!("size {s:?}: {what} {n} is out of range (1 to 4096)");
        }
        Ok(n)
    };
    Ok((side(h, "height")?, side(w, "width")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(picture: &DynamicImage) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        picture
            .write_to(&mut bytes, image::ImageFormat::Png)
            .unwrap();
        bytes.into_inner()
    }

    #[test]
    fn gray_png_round_trips_and_rgb_is_channel_major() {
        let gray = image::GrayImage::from_fn(3, 2, |x, y| image::Luma([(10 * x + y) as u8]));
        let format = PictureFormat {
            channels: 1,
            height: 2,
            width: 3,
            filter: ResizeFilter::Triangle,
        };
        let got = decode_picture(&png(&DynamicImage::ImageLuma8(gray.clone())), &format).unwrap();
        assert_eq!(got, gray.into_raw());

        let rgb = image::RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8, 10 + x as u8, 20]));
        let format = PictureFormat {
            channels: 3,
            height: 1,
            width: 2,
            filter: ResizeFilter::Nearest,
        };
        let got = decode_picture(&png(&DynamicImage::ImageRgb8(rgb)), &format).unwrap();
        assert_eq!(got, [0, 1, 10, 11, 20, 20]);
    }

    #[test]
    fn resizes_with_the_filter_and_converts_colour() {
        // A 4x4 picture, left half red, right half blue, to 1x2 gray.
        let rgb = image::RgbImage::from_fn(4, 4, |x, _| {
            if x < 2 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let format = PictureFormat {
            channels: 1,
            height: 1,
            width: 2,
            filter: ResizeFilter::Nearest,
        };
        let got = decode_picture(&png(&DynamicImage::ImageRgb8(rgb)), &format).unwrap();
        // The image crate's luma: 0.2126 R + 0.7152 G + 0.0722 B.
        assert_eq!(got, [54, 18]);
    }

    #[test]
    fn garbage_is_an_error() {
        let format = PictureFormat {
            channels: 1,
            height: 1,
            width: 1,
            filter: ResizeFilter::Triangle,
        };
        assert!(decode_picture(b"not a picture", &format).is_err());
        let mut truncated = png(&DynamicImage::ImageLuma8(image::GrayImage::new(8, 8)));
        truncated.truncate(truncated.len() / 2);
        assert!(decode_picture(&truncated, &format).is_err());
    }

    #[test]
    fn oversized_pictures_are_refused_from_the_header() {
        // A JPEG header declaring 2566 x 65535 pixels (found by fuzzing: it
        // took seconds to decode).
        let bomb = include_bytes!("../../fuzz/corpus/picture/seed-tall-jpeg-header.jpg");
        let format = PictureFormat {
            channels: 1,
            height: 2,
            width: 2,
            filter: ResizeFilter::Triangle,
        };
        let e = format!("{:#}", decode_picture(bomb, &format).unwrap_err());
        assert!(e.contains("65535") || e.contains("limit"), "{e}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("28x28").unwrap(), (28, 28));
        assert_eq!(parse_size(" 32X64 ").unwrap(), (32, 64));
        for bad in ["28", "0x5", "5x", "axb", "5000x1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
