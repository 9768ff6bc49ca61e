//! The byte protocol between a host and a device that runs a blob: the
//! result record every firmware writes per image, and the request/reply
//! exchange of a serial link (`convrfm serial` on the host, the board
//! examples and the QEMU firmware's `serve` on the device).
//!
//! It lives here, beside the blob format, so that both ends build and
//! parse it with the same code; `docs/boards.md` specifies it.
//!
//! ```text
//! record (device -> host, one per image), record_len(classes) bytes:
//!      0    1 class
//!      1 8*classes scores, i64 little-endian, in class order
//!
//! requests (host -> device), one byte each:
//!     '?'  info: the device replies with the info below
//!     'C'  classify: c*H*W pixel bytes follow; the device replies with a record
//!     other: the device replies '!' and waits for the next request
//!
//! info (device -> host), INFO_HEADER_LEN bytes then the names:
//!      0    4 magic "CRFM"          4  1 protocol version (1)
//!      5    1 resize filter         6  2 channels c
//!      8    2 height H             10  2 width W
//!     12    2 classes              14  4 alpha_scale (f32 bits)
//!     18    4 the blob's CRC-32    22  4 the blob's length
//!     26    4 N, bytes of class names that follow
//!     30    N class names, each a length byte then UTF-8 (the blob's own
//!             class-name section)
//! ```
//!
//! All integers little-endian. A record's scores times `alpha_scale` are
//! the model's float scores. The CRC and length identify the blob, so a
//! host can tell which model the board runs.

use core::fmt;

use crate::blob::{BlobError, ClassNames, Model, ResizeFilter, check_names};

/// Request: reply with the device's info.
pub const REQUEST_INFO: u8 = b'?';
/// Request: an image follows; reply with its record.
pub const REQUEST_CLASSIFY: u8 = b'C';
/// Reply to a request byte the device does not know.
pub const REPLY_UNKNOWN: u8 = b'!';
/// First bytes of an info reply.
pub const INFO_MAGIC: [u8; 4] = *b"CRFM";
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes of an info reply before its class names.
pub const INFO_HEADER_LEN: usize = 30;
/// Most classes a record can carry (its class is one byte).
pub const MAX_RECORD_CLASSES: usize = 256;

/// Bytes of one record for a model with `classes` classes (saturates for
/// absurd class counts, which [`Record::parse`] refuses anyway).
pub const fn record_len(classes: usize) -> usize {
    classes.saturating_mul(8).saturating_add(1)
}

/// Writes the record of one prediction through `put`, in pieces (no
/// buffer): the class byte, then each score. `class` must be below
/// [`MAX_RECORD_CLASSES`] for the record to be parseable; the callers
/// check the class count once, up front.
pub fn write_record<E>(
    class: u8,
    scores: &[i64],
    mut put: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    put(&[class])?;
    for score in scores {
        put(&score.to_le_bytes())?;
    }
    Ok(())
}

/// The info header describing `model` (the class names, which follow it,
/// are [`Model::class_name_bytes`]).
pub fn info_header(model: &Model<'_>) -> [u8; INFO_HEADER_LEN] {
    let shape = model.shape();
    let bytes = model.as_bytes();
    let crc = bytes
        .len()
        .checked_sub(4)
        .and_then(|at| bytes.get(at..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .unwrap_or([0; 4]);
    let u16_of = |v: usize| u16::try_from(v).unwrap_or(u16::MAX).to_le_bytes();
    let u32_of = |v: usize| u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = [0u8; INFO_HEADER_LEN];
    let fields: [&[u8]; 12] = [
        &INFO_MAGIC,
        &[PROTOCOL_VERSION],
        &[model.resize_filter().to_byte()],
        &u16_of(shape.channels()),
        &u16_of(shape.height()),
        &u16_of(shape.width()),
        &u16_of(model.classes()),
        &model.alpha_scale().to_bits().to_le_bytes(),
        &crc,
        &u32_of(bytes.len()),
        &u32_of(model.class_name_bytes().len()),
        &[],
    ];
    let mut at = 0usize;
    for field in fields {
        let end = at.saturating_add(field.len());
        if let Some(dst) = out.get_mut(at..end) {
            dst.copy_from_slice(field);
        }
        at = end;
    }
    out
}

/// Why bytes from a device are not a valid info header, class-name list or
/// record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WireError {
    /// A reply of the wrong length.
    Length {
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The info does not start with [`INFO_MAGIC`].
    BadMagic,
    /// The device speaks another protocol version.
    UnsupportedVersion {
        /// The version in the reply.
        found: u8,
        /// The version this crate speaks.
        supported: u8,
    },
    /// An unknown resize-filter byte.
    BadResizeFilter(u8),
    /// A zero channel count, height or width.
    EmptyImage,
    /// No classes, or more than a record's class byte can name.
    BadClassCount(usize),
    /// A record's class is not one of the model's.
    ClassOutOfRange {
        /// The class byte.
        class: u8,
        /// The model's classes.
        classes: usize,
    },
    /// The class names are not `classes` length-prefixed UTF-8 strings.
    Names(BlobError),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Length { expected, got } => {
                write!(f, "{got} bytes where {expected} were expected")
            }
            Self::BadMagic => write!(f, "the info reply does not start with \"CRFM\""),
            Self::UnsupportedVersion { found, supported } => write!(
                f,
                "the device speaks protocol version {found}, this side version {supported}"
            ),
            Self::BadResizeFilter(b) => write!(f, "unknown resize filter {b}"),
            Self::EmptyImage => write!(f, "an image with no pixels"),
            Self::BadClassCount(n) => write!(
                f,
                "{n} classes (a device reports 1 to {MAX_RECORD_CLASSES})"
            ),
            Self::ClassOutOfRange { class, classes } => {
                write!(f, "class {class} of a model with {classes} classes")
            }
            Self::Names(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for WireError {}

/// A checked info header: the model a device runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Info {
    /// How pictures are resized to the model's size.
    pub resize: ResizeFilter,
    /// Channels `c`.
    pub channels: usize,
    /// Height `H`.
    pub height: usize,
    /// Width `W`.
    pub width: usize,
    /// Classes (1 to [`MAX_RECORD_CLASSES`]).
    pub classes: usize,
    /// Score scale: a record's scores times this are the float scores.
    pub alpha_scale: f32,
    /// The blob's CRC-32 (its last four bytes).
    pub blob_crc: u32,
    /// The blob's length in bytes.
    pub blob_len: usize,
    /// Bytes of class names that follow the header.
    pub names_len: usize,
}

impl Info {
    /// Checks an info header ([`INFO_HEADER_LEN`] bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let header = <&[u8; INFO_HEADER_LEN]>::try_from(bytes).map_err(|_| WireError::Length {
            expected: INFO_HEADER_LEN,
            got: bytes.len(),
        })?;
        let field = |at: usize, len: usize| header.get(at..at.saturating_add(len)).unwrap_or(&[]);
        let u16_at = |at| {
            usize::from(u16::from_le_bytes(
                field(at, 2).try_into().unwrap_or([0; 2]),
            ))
        };
        let u32_at = |at| u32::from_le_bytes(field(at, 4).try_into().unwrap_or([0; 4]));
        if field(0, 4) != INFO_MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = field(4, 1).first().copied().unwrap_or(0);
        if version != PROTOCOL_VERSION {
            return Err(WireError::UnsupportedVersion {
                found: version,
                supported: PROTOCOL_VERSION,
            });
        }
        let filter = field(5, 1).first().copied().unwrap_or(0);
        let resize = ResizeFilter::from_byte(filter).ok_or(WireError::BadResizeFilter(filter))?;
        let (channels, height, width, classes) = (u16_at(6), u16_at(8), u16_at(10), u16_at(12));
        if channels == 0 || height == 0 || width == 0 {
            return Err(WireError::EmptyImage);
        }
        if classes == 0 || classes > MAX_RECORD_CLASSES {
            return Err(WireError::BadClassCount(classes));
        }
        let as_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Self {
            resize,
            channels,
            height,
            width,
            classes,
            alpha_scale: f32::from_bits(u32_at(14)),
            blob_crc: u32_at(18),
            blob_len: as_usize(u32_at(22)),
            names_len: as_usize(u32_at(26)),
        })
    }

    /// Bytes of one image (`c * H * W`).
    pub fn image_len(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// Bytes of one record of this model.
    pub fn record_len(&self) -> usize {
        record_len(self.classes)
    }

    /// Checks the class names that follow the header (exactly
    /// [`Info::names_len`] bytes) and iterates over them.
    pub fn names<'a>(&self, bytes: &'a [u8]) -> Result<ClassNames<'a>, WireError> {
        if bytes.len() != self.names_len {
            return Err(WireError::Length {
                expected: self.names_len,
                got: bytes.len(),
            });
        }
        let classes = u16::try_from(self.classes).unwrap_or(u16::MAX);
        check_names(bytes, classes).map_err(WireError::Names)?;
        Ok(ClassNames::of(bytes))
    }
}

/// A checked record: accessors cannot fail.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    class: u8,
    scores: &'a [u8],
}

impl<'a> Record<'a> {
    /// Checks a record of a model with `classes` classes: its length and
    /// that its class is one of them.
    pub fn parse(bytes: &'a [u8], classes: usize) -> Result<Self, WireError> {
        if classes == 0 || classes > MAX_RECORD_CLASSES {
            return Err(WireError::BadClassCount(classes));
        }
        let expected = record_len(classes);
        let (&class, scores) = bytes
            .split_first()
            .filter(|_| bytes.len() == expected)
            .ok_or(WireError::Length {
                expected,
                got: bytes.len(),
            })?;
        if usize::from(class) >= classes {
            return Err(WireError::ClassOutOfRange { class, classes });
        }
        Ok(Self { class, scores })
    }

    /// The predicted class.
    pub fn class(&self) -> usize {
        usize::from(self.class)
    }

    /// The integer scores, in class order.
    pub fn scores(&self) -> impl ExactSizeIterator<Item = i64> + 'a {
        self.scores
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    const BLOB: &[u8] = include_bytes!("../../firmware/blobs/fashion-mnist-m0.blob");

    #[test]
    fn info_round_trips_the_model() {
        let model = Model::from_bytes(BLOB).unwrap();
        let header = info_header(&model);
        let info = Info::parse(&header).unwrap();
        let shape = model.shape();
        assert_eq!(
            (info.channels, info.height, info.width, info.classes),
            (shape.channels(), shape.height(), shape.width(), 10)
        );
        assert_eq!(info.image_len(), 784);
        assert_eq!(info.record_len(), 81);
        assert_eq!(info.resize, model.resize_filter());
        assert_eq!(info.alpha_scale, model.alpha_scale());
        assert_eq!(info.blob_len, BLOB.len());
        let crc = crate::crc32(&BLOB[..BLOB.len() - 4]);
        assert_eq!(info.blob_crc, crc);
        let names: Vec<&str> = info.names(model.class_name_bytes()).unwrap().collect();
        let expected: Vec<&str> = model.class_names().collect();
        assert_eq!(names, expected);
        assert_eq!(names[0], "T-shirt/top");
    }

    #[test]
    fn bad_info_is_named() {
        let model = Model::from_bytes(BLOB).unwrap();
        let good = info_header(&model);
        let with = |at: usize, b: u8| {
            let mut h = good;
            h[at] = b;
            Info::parse(&h)
        };
        assert_eq!(
            Info::parse(&good[..29]),
            Err(WireError::Length {
                expected: 30,
                got: 29
            })
        );
        assert_eq!(with(0, b'X'), Err(WireError::BadMagic));
        assert_eq!(
            with(4, 2),
            Err(WireError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        );
        assert_eq!(with(5, 9), Err(WireError::BadResizeFilter(9)));
        assert_eq!(with(8, 0), Err(WireError::EmptyImage));
        let mut h = good;
        h[12..14].copy_from_slice(&257u16.to_le_bytes());
        assert_eq!(Info::parse(&h), Err(WireError::BadClassCount(257)));
        let info = Info::parse(&good).unwrap();
        let names = model.class_name_bytes();
        assert!(matches!(
            info.names(&names[..names.len() - 1]),
            Err(WireError::Length { .. })
        ));
        let mut bad = names.to_vec();
        bad[1] = 0xFF;
        assert!(matches!(info.names(&bad), Err(WireError::Names(_))));
    }

    #[test]
    fn records_round_trip_and_are_checked() {
        let scores = [-3i64, i64::MAX, 0, 7];
        let mut bytes = Vec::new();
        write_record::<()>(1, &scores, |b| {
            bytes.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(bytes.len(), record_len(4));
        let r = Record::parse(&bytes, 4).unwrap();
        assert_eq!(r.class(), 1);
        assert_eq!(r.scores().collect::<Vec<_>>(), scores);
        assert!(matches!(
            Record::parse(&bytes[1..], 4),
            Err(WireError::Length { .. })
        ));
        bytes[0] = 4;
        assert_eq!(
            Record::parse(&bytes, 4).unwrap_err(),
            WireError::ClassOutOfRange {
                class: 4,
                classes: 4
            }
        );
        assert_eq!(
            Record::parse(&bytes, 0).unwrap_err(),
            WireError::BadClassCount(0)
        );
    }
}
