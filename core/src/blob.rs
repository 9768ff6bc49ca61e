//! The model blob, format v3: constants, [`encode`], and the checked parse
//! [`Model::from_bytes`] with its infallible accessors.
//!
//! This module is the one place the format lives; `docs/blob-format.md`
//! specifies it byte by byte. All integers are little-endian.
//!
//! ```text
//! offset size field
//!      0    8 magic "CRFMBLOB"
//!      8    2 format version (3)
//!     10    2 header length (76)
//!     12    2 channels c            14  2 height H        16  2 width W
//!     18    1 depth L               19  1 pixel bits (8 or 4)
//!     20    2 classes               22  2 centres m
//!     24    1 rank r                25  1 kind (0 = NTK, 1 = NNGP)
//!     26    4 u_mult                30  4 alpha_scale (f32 bits)
//!     34    2 expected accuracy, basis points (0 = unknown)
//!     36    4 total length
//!     40   32 section table: (offset u32, length u32) for W, centres,
//!             alpha, class names
//!     72    1 resize filter (0 nearest, 1 triangle, 2 catmull-rom,
//!             3 gaussian, 4 lanczos3)    73  3 reserved, zero
//!     76      sections, in that order, each starting at the next multiple
//!             of 4 after the previous one, gaps zero
//! total-4    4 CRC-32 of bytes [0, total - 4)
//! ```
//!
//! Validation happens once, in [`Model::from_bytes`]; the [`Model`] it
//! returns holds the validated slices, so accessors and prediction cannot
//! fail on the model's account (smoltcp's `new_checked` pattern). The
//! layout is canonical: a model has exactly one valid encoding.

use core::fmt;

use crate::crc::crc32;
use crate::fixed::{U_LIMIT, kernel_bounds};
use crate::scratch::{Dims, scratch_len_for, scratch_len_of};
use crate::shape::{PATCH, Shape, ShapeError};

/// First 8 bytes of every blob.
pub const MAGIC: [u8; 8] = *b"CRFMBLOB";

/// The format version this crate reads and writes. Version 3 added the
/// input record (the resize filter) after the section table; version 2
/// changed the integer arithmetic of the kernel (`docs/blob-format.md`,
/// §5). Older blobs are refused with a message naming both versions.
pub const FORMAT_VERSION: u16 = 3;

/// Bytes from the start of the blob to the end of the input record; the
/// first section starts here.
pub const HEADER_LEN: usize = 76;

/// Sections start at multiples of this.
pub const SECTION_ALIGN: usize = 4;

/// Length of the CRC-32 trailer.
pub const CRC_LEN: usize = 4;

/// Largest channel count: `9 c * 255 * 128` (a patch projection with u8
/// pixels and i8 weights) must fit the i32 accumulator.
pub const MAX_CHANNELS: usize = (U_LIMIT / (255 * 128 * 9)) as usize;

// Header field offsets (see the module doc and docs/blob-format.md).
const OFF_VERSION: usize = 8;
const OFF_HEADER_LEN: usize = 10;
const OFF_CHANNELS: usize = 12;
const OFF_HEIGHT: usize = 14;
const OFF_WIDTH: usize = 16;
const OFF_DEPTH: usize = 18;
const OFF_PIXEL_BITS: usize = 19;
const OFF_CLASSES: usize = 20;
const OFF_CENTRES: usize = 22;
const OFF_RANK: usize = 24;
const OFF_KIND: usize = 25;
const OFF_U_MULT: usize = 26;
const OFF_ALPHA_SCALE: usize = 30;
const OFF_ACCURACY: usize = 34;
const OFF_TOTAL_LEN: usize = 36;
const OFF_SECTIONS: usize = 40;
const OFF_RESIZE: usize = 72;
const OFF_RESERVED: usize = 73;

/// [`Dims`] read from the first [`HEADER_LEN`] bytes, unvalidated
/// (`const`, for [`scratch_len_for_blob`]); `None` if shorter.
const fn header_dims(blob: &[u8]) -> Option<Dims> {
    let Some(h) = blob.first_chunk::<HEADER_LEN>() else {
        return None;
    };
    Some(Dims {
        channels: u16::from_le_bytes([h[OFF_CHANNELS], h[OFF_CHANNELS + 1]]) as usize,
        height: u16::from_le_bytes([h[OFF_HEIGHT], h[OFF_HEIGHT + 1]]) as usize,
        width: u16::from_le_bytes([h[OFF_WIDTH], h[OFF_WIDTH + 1]]) as usize,
        depth: h[OFF_DEPTH] as usize,
        rank: h[OFF_RANK] as usize,
        classes: u16::from_le_bytes([h[OFF_CLASSES], h[OFF_CLASSES + 1]]) as usize,
    })
}

/// [`crate::scratch_len_for_dims`] read from a blob's header (only the first
/// `HEADER_LEN` bytes are looked at; nothing is validated). For a blob
/// that `Model::from_bytes` accepts this equals `Model::scratch_len`, so
/// firmware can size its buffer at compile time with
/// `const N: usize = match scratch_len_for_blob(BLOB) { Some(n) => n, None => panic!() };`
/// and keep `[u8; N]` in a `static` (e.g. through `cortex_m::singleton!`)
/// or on the stack.
pub const fn scratch_len_for_blob(blob: &[u8]) -> Option<usize> {
    match header_dims(blob) {
        Some(dims) => scratch_len_of(dims),
        None => None,
    }
}

/// Which kernel the readout computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum KernelKind {
    /// Neural tangent kernel: `sum (Thetahat^L + Khat^L)` (what ConvRFM uses).
    Ntk = 0,
    /// Gaussian-process kernel: `sum Khat^L`.
    Nngp = 1,
}

impl KernelKind {
    /// The header byte of this kind.
    pub const fn to_byte(self) -> u8 {
        self as u8
    }

    /// The kind of a header byte, if it names one.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Ntk),
            1 => Some(Self::Nngp),
            _ => None,
        }
    }
}

/// The payload sections, in blob order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Section {
    /// Patch projection `W`, `d x r` i8, row-major.
    W,
    /// Centre images, packed pixels.
    Centres,
    /// Weights `alpha`, `m x classes` i16, row-major.
    Alpha,
    /// Class names, length-prefixed UTF-8.
    ClassNames,
}

impl Section {
    /// All sections in blob order.
    pub const ALL: [Section; 4] = [
        Section::W,
        Section::Centres,
        Section::Alpha,
        Section::ClassNames,
    ];

    const fn name(self) -> &'static str {
        match self {
            Self::W => "W",
            Self::Centres => "centres",
            Self::Alpha => "alpha",
            Self::ClassNames => "class names",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a class-name entry is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NameError {
    /// The entry runs past the end of the section.
    Truncated,
    /// The bytes are not UTF-8.
    NotUtf8,
}

/// How a picture of another size is resized to the blob's `H x W` before
/// it is classified (the filters of the host's `image` crate). The device
/// takes `c x H x W` bytes as they are; this records what the model was
/// trained with, so a camera pipeline or the host's `predict` on photos
/// can match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ResizeFilter {
    /// Nearest neighbour.
    Nearest = 0,
    /// Linear (bilinear) interpolation.
    Triangle = 1,
    /// Catmull-Rom cubic.
    CatmullRom = 2,
    /// Gaussian.
    Gaussian = 3,
    /// Lanczos with window 3.
    Lanczos3 = 4,
}

impl ResizeFilter {
    /// The header byte of this filter.
    pub const fn to_byte(self) -> u8 {
        self as u8
    }

    /// The filter of a header byte, if it names one.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Nearest),
            1 => Some(Self::Triangle),
            2 => Some(Self::CatmullRom),
            3 => Some(Self::Gaussian),
            4 => Some(Self::Lanczos3),
            _ => None,
        }
    }
}

/// Why a byte slice is not a valid blob. Each variant names what is
/// wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum BlobError {
    /// Fewer bytes than the header or the declared total length needs.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The first 8 bytes are not `CRFMBLOB`.
    BadMagic,
    /// A format version this crate does not read.
    UnsupportedVersion(u16),
    /// The header-length field is not [`HEADER_LEN`].
    BadHeaderLength {
        /// What the format requires.
        expected: u16,
        /// What the blob says.
        got: u16,
    },
    /// More bytes than the declared total length, or a declared length too
    /// small to hold a header and a CRC.
    TotalLength {
        /// The total-length field.
        declared: u32,
        /// Bytes given.
        got: usize,
    },
    /// The CRC-32 trailer does not match the contents.
    BadCrc {
        /// CRC stored in the last 4 bytes.
        stored: u32,
        /// CRC of the bytes before it.
        computed: u32,
    },
    /// Channels, height, width or depth are not a usable geometry.
    InvalidShape(ShapeError),
    /// More channels than [`MAX_CHANNELS`].
    TooManyChannels(u16),
    /// Pixel bits other than 4 or 8.
    BadPixelBits(u8),
    /// A kind byte other than 0 (NTK) or 1 (NNGP).
    BadKind(u8),
    /// A resize-filter byte that names no [`ResizeFilter`].
    BadResizeFilter(u8),
    /// A reserved header byte (offsets 73 to 75) that is not zero.
    NonZeroReserved {
        /// Offset of the first nonzero reserved byte.
        offset: usize,
    },
    /// Rank 0 or larger than the patch dimension `d = 9 c`.
    BadRank {
        /// The rank field.
        rank: u8,
        /// The patch dimension.
        patch_dim: usize,
    },
    /// Fewer than 2 classes.
    TooFewClasses(u16),
    /// No centres.
    NoCentres,
    /// `u_mult` is 0 (every projection would quantise to 0).
    ZeroUMult,
    /// `alpha_scale` is not a finite positive number (its bits).
    BadAlphaScale(u32),
    /// Expected accuracy above 10000 basis points.
    BadAccuracy(u16),
    /// Depth, rank and image size are too large for the integer kernel:
    /// its maps would not fit i32, or one pair's kernel value 2^47.
    KernelRange {
        /// Depth field.
        depth: u8,
        /// Rank field.
        rank: u8,
    },
    /// A size computed from the header does not fit `usize` / `u32`.
    SizeOverflow(Section),
    /// A section's length does not match what the header implies.
    SizeMismatch {
        /// Which section.
        section: Section,
        /// Length implied by the header (or, for class names, by the
        /// entries).
        expected: usize,
        /// Length in the section table.
        got: usize,
    },
    /// A section extends past the CRC trailer.
    SectionOutOfBounds {
        /// Which section.
        section: Section,
        /// Its offset.
        offset: u32,
        /// Its length.
        len: u32,
        /// Where the payload ends (offset of the CRC).
        limit: usize,
    },
    /// A section does not start at a multiple of [`SECTION_ALIGN`].
    SectionMisaligned {
        /// Which section.
        section: Section,
        /// Its offset.
        offset: u32,
    },
    /// A section starts before the previous one (or the header) ends.
    SectionOverlap {
        /// Which section.
        section: Section,
        /// Its offset.
        offset: u32,
        /// Where the previous section (or the header) ends.
        previous_end: usize,
    },
    /// A section does not start at the first aligned offset after the
    /// previous one (the format leaves no gaps beyond alignment padding).
    SectionGap {
        /// Which section.
        section: Section,
        /// Its offset.
        offset: u32,
        /// The offset the format requires.
        expected: usize,
    },
    /// The CRC does not follow the last section (after padding).
    TrailingBytes {
        /// Where the CRC should start.
        expected_crc_offset: usize,
        /// Where it starts (`total - 4`).
        crc_offset: usize,
    },
    /// A padding byte (alignment gap, or the unused high nibble of a
    /// 4-bit image with an odd pixel count) is not zero.
    NonZeroPadding {
        /// Offset of the byte in the blob.
        offset: usize,
    },
    /// A class name is invalid.
    BadClassName {
        /// Index of the class.
        index: u16,
        /// What is wrong.
        reason: NameError,
    },
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, got } => {
                write!(f, "blob truncated: needs {needed} bytes, got {got}")
            }
            Self::BadMagic => write!(f, "not a convrfm blob (bad magic)"),
            Self::UnsupportedVersion(v) => write!(
                f,
                "blob format version {v}, this build reads version {FORMAT_VERSION} only \
                 (re-export the model with this build of convrfm)"
            ),
            Self::BadHeaderLength { expected, got } => {
                write!(f, "header length {got}, the format requires {expected}")
            }
            Self::TotalLength { declared, got } => write!(
                f,
                "blob declares {declared} bytes but {got} were given (or too few for a header)"
            ),
            Self::BadCrc { stored, computed } => write!(
                f,
                "CRC mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupt blob)"
            ),
            Self::InvalidShape(e) => write!(f, "invalid image shape: {e}"),
            Self::TooManyChannels(c) => {
                write!(f, "{c} channels, at most {MAX_CHANNELS} supported")
            }
            Self::BadPixelBits(b) => write!(f, "pixel bits {b}, must be 4 or 8"),
            Self::BadKind(k) => write!(f, "kernel kind {k}, must be 0 (NTK) or 1 (NNGP)"),
            Self::BadResizeFilter(b) => write!(f, "resize filter {b}, must be 0 to 4"),
            Self::NonZeroReserved { offset } => {
                write!(f, "reserved header byte at offset {offset} is not zero")
            }
            Self::BadRank { rank, patch_dim } => {
                write!(f, "rank {rank}, must be in 1..={patch_dim}")
            }
            Self::TooFewClasses(n) => write!(f, "{n} classes, at least 2 needed"),
            Self::NoCentres => write!(f, "no centres"),
            Self::ZeroUMult => write!(f, "u_mult is 0"),
            Self::BadAlphaScale(bits) => write!(
                f,
                "alpha_scale {} is not a finite positive number",
                f32::from_bits(bits)
            ),
            Self::BadAccuracy(bp) => write!(f, "expected accuracy {bp} bp is above 10000"),
            Self::KernelRange { depth, rank } => write!(
                f,
                "depth {depth} with rank {rank} exceeds the integer kernel's range"
            ),
            Self::SizeOverflow(s) => write!(f, "size of section {s} overflows"),
            Self::SizeMismatch {
                section,
                expected,
                got,
            } => write!(
                f,
                "section {section} is {got} bytes, the header implies {expected}"
            ),
            Self::SectionOutOfBounds {
                section,
                offset,
                len,
                limit,
            } => write!(
                f,
                "section {section} ({len} bytes at {offset}) runs past the payload end {limit}"
            ),
            Self::SectionMisaligned { section, offset } => {
                write!(f, "section {section} at {offset} is not 4-byte aligned")
            }
            Self::SectionOverlap {
                section,
                offset,
                previous_end,
            } => write!(
                f,
                "section {section} at {offset} overlaps what ends at {previous_end}"
            ),
            Self::SectionGap {
                section,
                offset,
                expected,
            } => write!(f, "section {section} at {offset}, expected at {expected}"),
            Self::TrailingBytes {
                expected_crc_offset,
                crc_offset,
            } => write!(
                f,
                "CRC at {crc_offset}, expected right after the last section at {expected_crc_offset}"
            ),
            Self::NonZeroPadding { offset } => {
                write!(f, "padding byte at offset {offset} is not zero")
            }
            Self::BadClassName { index, reason } => match reason {
                NameError::Truncated => write!(f, "class name {index} runs past its section"),
                NameError::NotUtf8 => write!(f, "class name {index} is not UTF-8"),
            },
        }
    }
}

impl core::error::Error for BlobError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::InvalidShape(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`encode`] cannot write a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is shorter than [`encoded_len`].
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// More than `u16::MAX` class names.
    TooManyClasses(usize),
    /// A class name longer than 255 bytes.
    ClassNameTooLong {
        /// Index of the class.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// The blob would exceed `u32::MAX` bytes.
    TooLarge,
    /// A 4-bit pixel value above 15 given to [`pack_pixels`].
    PixelOutOfRange {
        /// Index of the pixel.
        index: usize,
        /// Its value.
        value: u8,
    },
    /// The parts do not make a valid blob: the error `Model::from_bytes`
    /// would report (wrong section sizes, bad shape, rank, counts...).
    Invalid(BlobError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BufferTooSmall { needed, got } => {
                write!(
                    f,
                    "output buffer holds {got} bytes, the blob needs {needed}"
                )
            }
            Self::TooManyClasses(n) => write!(f, "{n} classes, at most 65535"),
            Self::ClassNameTooLong { index, len } => {
                write!(f, "class name {index} is {len} bytes, at most 255")
            }
            Self::TooLarge => write!(f, "blob would exceed 4 GiB"),
            Self::PixelOutOfRange { index, value } => {
                write!(f, "4-bit pixel {index} has value {value}, above 15")
            }
            Self::Invalid(e) => write!(f, "invalid model: {e}"),
        }
    }
}

impl core::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BlobError> for EncodeError {
    fn from(e: BlobError) -> Self {
        Self::Invalid(e)
    }
}

/// Everything a blob holds, borrowed: what the host exporter fills in and
/// hands to [`encode`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlobParts<'a> {
    /// Image channels `c`.
    pub channels: u16,
    /// Image height `H` (rows).
    pub height: u16,
    /// Image width `W` (columns).
    pub width: u16,
    /// Kernel depth `L`.
    pub depth: u8,
    /// Bits per centre pixel: 8, or 4 (value `v` stands for `17 v`).
    pub pixel_bits: u8,
    /// Rank `r` of the patch projection, `1..=d`.
    pub rank: u8,
    /// NTK or NNGP readout.
    pub kind: KernelKind,
    /// How pictures of another size were resized for training.
    pub resize: ResizeFilter,
    /// Requantisation multiplier of `u = P . W` (see [`crate::fixed::requantise`]).
    pub u_mult: u32,
    /// Informational: real score = integer score * `alpha_scale`. Finite, > 0.
    pub alpha_scale: f32,
    /// Informational: expected accuracy in basis points, 0 = unknown.
    pub expected_accuracy_bp: u16,
    /// Number of centres `m`.
    pub centre_count: u16,
    /// `W`, `d x r` row-major, `d = 9 c` in patch order (channel, row
    /// offset, column offset).
    pub w: &'a [i8],
    /// The `m` centre images, each packed with [`pack_pixels`] and starting
    /// on a byte boundary: `m * image_bytes(pixel_bits, c H W)` bytes.
    pub centres: &'a [u8],
    /// `alpha`, `m x classes` row-major.
    pub alpha: &'a [i16],
    /// One UTF-8 name per class (at most 255 bytes each); their count is
    /// the class count.
    pub class_names: &'a [&'a str],
}

/// Bytes of one image of `pixels` pixels at `pixel_bits` (8: one byte per
/// pixel; 4: two pixels per byte, rounded up). `None` for other bit counts.
pub const fn image_bytes(pixel_bits: u8, pixels: usize) -> Option<usize> {
    match pixel_bits {
        8 => Some(pixels),
        4 => Some(pixels.div_ceil(2)),
        _ => None,
    }
}

/// Nearest 4-bit level of an 8-bit pixel: `round(p / 17)`, so that the
/// device's `17 v` expansion is the closest representable value.
#[allow(clippy::arithmetic_side_effects)] // p + 8 <= 263 in u16; division by a non-zero constant
pub const fn pixel_to_4bit(p: u8) -> u8 {
    // (p + 8) / 17 <= 263 / 17 = 15; 17 is odd, so there are no ties.
    ((p as u16 + 8) / 17) as u8
}

/// Packs one image's pixel values for the centres section: 8-bit copies
/// them; 4-bit takes values `0..=15` (see [`pixel_to_4bit`]), two per byte,
/// low nibble first, the unused high nibble of an odd count zero. Returns
/// the bytes written.
pub fn pack_pixels(pixel_bits: u8, values: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    let needed =
        image_bytes(pixel_bits, values.len()).ok_or(BlobError::BadPixelBits(pixel_bits))?;
    let got = out.len();
    let out = out
        .get_mut(..needed)
        .ok_or(EncodeError::BufferTooSmall { needed, got })?;
    if pixel_bits == 8 {
        copy(out, values);
        return Ok(needed);
    }
    for (i, (byte, pair)) in out.iter_mut().zip(values.chunks(2)).enumerate() {
        let mut b = 0u8;
        for (half, &v) in pair.iter().enumerate() {
            if v > 15 {
                return Err(EncodeError::PixelOutOfRange {
                    // i < values.len() / 2 + 1, half < 2: no overflow.
                    index: i.saturating_mul(2).saturating_add(half),
                    value: v,
                });
            }
            b |= if half == 0 { v } else { v << 4 };
        }
        *byte = b;
    }
    Ok(needed)
}

/// Offsets and lengths of the sections of a blob, computed with checked
/// arithmetic from the section lengths.
#[derive(Clone, Copy, Debug)]
struct Layout {
    sections: [(usize, usize); 4],
    total: usize,
}

const fn align_up(n: usize) -> Option<usize> {
    match n.checked_add(SECTION_ALIGN - 1) {
        Some(v) => Some(v & !(SECTION_ALIGN - 1)),
        None => None,
    }
}

impl Layout {
    fn from_lens(lens: [usize; 4]) -> Option<Self> {
        let mut sections = [(0usize, 0usize); 4];
        let mut end = HEADER_LEN;
        for (slot, len) in sections.iter_mut().zip(lens) {
            let off = align_up(end)?;
            *slot = (off, len);
            end = off.checked_add(len)?;
        }
        let total = align_up(end)?.checked_add(CRC_LEN)?;
        // Every offset and length must be representable as u32.
        u32::try_from(total).ok()?;
        Some(Self { sections, total })
    }
}

/// Bytes of the class-names section, with the checks that only the
/// encoder can make (name lengths and count).
fn names_len(class_names: &[&str]) -> Result<usize, EncodeError> {
    let len = class_names
        .iter()
        .enumerate()
        .try_fold(0usize, |acc, (index, name)| {
            if name.len() > usize::from(u8::MAX) {
                return Err(EncodeError::ClassNameTooLong {
                    index,
                    len: name.len(),
                });
            }
            acc.checked_add(1)
                .and_then(|a| a.checked_add(name.len()))
                .ok_or(EncodeError::TooLarge)
        })?;
    u16::try_from(class_names.len()).map_err(|_| EncodeError::TooManyClasses(class_names.len()))?;
    Ok(len)
}

/// Section lengths implied by the parts.
fn part_lens(parts: &BlobParts<'_>) -> Result<[usize; 4], EncodeError> {
    let alpha_len = parts
        .alpha
        .len()
        .checked_mul(2)
        .ok_or(EncodeError::TooLarge)?;
    Ok([
        parts.w.len(),
        parts.centres.len(),
        alpha_len,
        names_len(parts.class_names)?,
    ])
}

/// Length in bytes of the blob [`encode`] writes for `parts`.
///
/// Only checks what is needed to compute the length; [`encode`] validates
/// the rest.
pub fn encoded_len(parts: &BlobParts<'_>) -> Result<usize, EncodeError> {
    let lens = part_lens(parts)?;
    Layout::from_lens(lens)
        .map(|l| l.total)
        .ok_or(EncodeError::TooLarge)
}

/// Whether the integer kernel can hold a model of this shape at this rank
/// (every map within its word, see `docs/blob-format.md`): what
/// [`Model::from_bytes`] checks, for an exporter to try only valid
/// candidates.
pub fn kernel_fits(shape: &Shape, rank: usize) -> Result<(), BlobError> {
    let depth = u8::try_from(shape.depth()).unwrap_or(u8::MAX);
    let rank8 = u8::try_from(rank).unwrap_or(u8::MAX);
    let positions = u64::try_from(shape.positions(shape.depth())).unwrap_or(u64::MAX);
    kernel_bounds(u64::from(rank8), u64::from(depth), positions)
        .map(|_| ())
        .ok_or(BlobError::KernelRange { depth, rank: rank8 })
}

/// The dimensions that fix a blob's length, besides its class names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Image channels `c`.
    pub channels: u16,
    /// Image height `H`.
    pub height: u16,
    /// Image width `W`.
    pub width: u16,
    /// Bits per centre pixel (4 or 8).
    pub pixel_bits: u8,
    /// Rank `r` of the patch projection.
    pub rank: u8,
    /// Number of centres `m`.
    pub centre_count: u16,
}

/// Length in bytes of the blob [`encode`] writes for parts of these
/// dimensions and class names, without building them: what an exporter
/// prices a candidate with. Equals [`encoded_len`] of such parts.
pub fn encoded_len_for(sizes: Sizes, class_names: &[&str]) -> Result<usize, EncodeError> {
    let c = usize::from(sizes.channels);
    let m = usize::from(sizes.centre_count);
    let pixels = c
        .checked_mul(usize::from(sizes.height))
        .and_then(|v| v.checked_mul(usize::from(sizes.width)))
        .ok_or(EncodeError::TooLarge)?;
    let image =
        image_bytes(sizes.pixel_bits, pixels).ok_or(BlobError::BadPixelBits(sizes.pixel_bits))?;
    let lens = [
        c.checked_mul(PATCH * PATCH * usize::from(sizes.rank)),
        m.checked_mul(image),
        m.checked_mul(class_names.len())
            .and_then(|v| v.checked_mul(2)),
    ];
    let [Some(w), Some(centres), Some(alpha)] = lens else {
        return Err(EncodeError::TooLarge);
    };
    Layout::from_lens([w, centres, alpha, names_len(class_names)?])
        .map(|l| l.total)
        .ok_or(EncodeError::TooLarge)
}

/// Writes the blob of `parts` into the start of `out` and returns its
/// length. The written bytes are then parsed with [`Model::from_bytes`], so
/// `encode` never produces a blob the device would reject: any
/// inconsistency comes back as [`EncodeError::Invalid`].
pub fn encode(parts: &BlobParts<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    let lens = part_lens(parts)?;
    let layout = Layout::from_lens(lens).ok_or(EncodeError::TooLarge)?;
    let got = out.len();
    let blob = out
        .get_mut(..layout.total)
        .ok_or(EncodeError::BufferTooSmall {
            needed: layout.total,
            got,
        })?;
    blob.fill(0);
    // Class count fits u16: checked in `part_lens`.
    let classes = u16::try_from(parts.class_names.len()).unwrap_or(u16::MAX);
    // Layout::from_lens checked every offset and length against u32.
    let u32_of = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let mut header = [0u8; HEADER_LEN];
    put(&mut header, 0, &MAGIC);
    put(&mut header, OFF_VERSION, &FORMAT_VERSION.to_le_bytes());
    put(
        &mut header,
        OFF_HEADER_LEN,
        &(HEADER_LEN as u16).to_le_bytes(),
    );
    put(&mut header, OFF_CHANNELS, &parts.channels.to_le_bytes());
    put(&mut header, OFF_HEIGHT, &parts.height.to_le_bytes());
    put(&mut header, OFF_WIDTH, &parts.width.to_le_bytes());
    put(&mut header, OFF_DEPTH, &[parts.depth]);
    put(&mut header, OFF_PIXEL_BITS, &[parts.pixel_bits]);
    put(&mut header, OFF_CLASSES, &classes.to_le_bytes());
    put(&mut header, OFF_CENTRES, &parts.centre_count.to_le_bytes());
    put(&mut header, OFF_RANK, &[parts.rank]);
    put(&mut header, OFF_KIND, &[parts.kind.to_byte()]);
    put(&mut header, OFF_RESIZE, &[parts.resize.to_byte()]);
    put(&mut header, OFF_U_MULT, &parts.u_mult.to_le_bytes());
    put(
        &mut header,
        OFF_ALPHA_SCALE,
        &parts.alpha_scale.to_bits().to_le_bytes(),
    );
    put(
        &mut header,
        OFF_ACCURACY,
        &parts.expected_accuracy_bp.to_le_bytes(),
    );
    put(
        &mut header,
        OFF_TOTAL_LEN,
        &u32_of(layout.total).to_le_bytes(),
    );
    for (i, &(off, len)) in layout.sections.iter().enumerate() {
        // i < 4: at most 40 + 3 * 8 + 4, inside the header.
        let at = OFF_SECTIONS.saturating_add(i.saturating_mul(8));
        put(&mut header, at, &u32_of(off).to_le_bytes());
        put(
            &mut header,
            at.saturating_add(4),
            &u32_of(len).to_le_bytes(),
        );
    }
    put(blob, 0, &header);
    let [(w_off, _), (c_off, _), (a_off, _), (n_off, _)] = layout.sections;
    if let Some(dst) = blob.get_mut(w_off..) {
        for (d, &v) in dst.iter_mut().zip(parts.w) {
            *d = v as u8;
        }
    }
    put(blob, c_off, parts.centres);
    if let Some(dst) = blob.get_mut(a_off..) {
        for (d, v) in dst.chunks_exact_mut(2).zip(parts.alpha) {
            copy(d, &v.to_le_bytes());
        }
    }
    let mut at = n_off;
    for name in parts.class_names {
        // Name lengths were checked to be <= 255 in `part_lens`.
        put(blob, at, &[name.len() as u8]);
        at = at.saturating_add(1);
        put(blob, at, name.as_bytes());
        at = at.saturating_add(name.len());
    }
    let crc_at = layout.total.saturating_sub(CRC_LEN);
    let crc = crc32(blob.get(..crc_at).unwrap_or(&[]));
    put(blob, crc_at, &crc.to_le_bytes());
    Model::from_bytes(blob)?;
    Ok(layout.total)
}

/// Copies `src` to `dst[at..]`; the callers size `dst` from the same layout,
/// so the range always fits (a short `dst` would leave bytes unwritten,
/// which the final `from_bytes` check reports).
fn put(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = at
        .checked_add(src.len())
        .and_then(|end| dst.get_mut(at..end))
    {
        copy(d, src);
    }
}

/// `dst[i] = src[i]` over the common length. `copy_from_slice` would do,
/// but it carries a length-mismatch panic the optimiser cannot always
/// remove; this keeps the release build free of panic paths.
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// Little-endian u16 at `at`; 0 past the end (callers check lengths first).
fn le_u16(b: &[u8], at: usize) -> u16 {
    let v = b.get(at..).and_then(<[u8]>::first_chunk::<2>);
    v.map_or(0, |v| u16::from_le_bytes(*v))
}

/// Little-endian u32 at `at`; 0 past the end (callers check lengths first).
fn le_u32(b: &[u8], at: usize) -> u32 {
    let v = b.get(at..).and_then(<[u8]>::first_chunk::<4>);
    v.map_or(0, |v| u32::from_le_bytes(*v))
}

fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// Reads the total-length field of a blob whose header is at the start of
/// `prefix` (checking magic and version first), so a reader can slice a
/// blob out of a larger region, e.g. a flash partition, before
/// [`Model::from_bytes`]. Needs only the first [`HEADER_LEN`] bytes.
pub fn declared_len(prefix: &[u8]) -> Result<usize, BlobError> {
    check_preamble(prefix)?;
    Ok(le_u32(prefix, OFF_TOTAL_LEN) as usize)
}

fn check_preamble(bytes: &[u8]) -> Result<(), BlobError> {
    let head = bytes.get(..MAGIC.len().min(bytes.len())).unwrap_or(&[]);
    if !MAGIC.starts_with(head) {
        return Err(BlobError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(BlobError::Truncated {
            needed: HEADER_LEN,
            got: bytes.len(),
        });
    }
    let version = le_u16(bytes, OFF_VERSION);
    if version != FORMAT_VERSION {
        return Err(BlobError::UnsupportedVersion(version));
    }
    let header_len = le_u16(bytes, OFF_HEADER_LEN);
    if usize::from(header_len) != HEADER_LEN {
        return Err(BlobError::BadHeaderLength {
            expected: HEADER_LEN as u16,
            got: header_len,
        });
    }
    Ok(())
}

/// A validated model blob, read in place: it borrows the blob and copies
/// nothing. Obtained only from [`Model::from_bytes`], so every accessor and
/// [`Model::predict`] can rely on the sizes and offsets it holds.
#[derive(Clone, Copy)]
pub struct Model<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) shape: Shape,
    pub(crate) kind: KernelKind,
    pub(crate) resize: ResizeFilter,
    pub(crate) pixel_bits: u8,
    pub(crate) classes: usize,
    pub(crate) centres: usize,
    pub(crate) rank: usize,
    pub(crate) u_mult: u32,
    pub(crate) alpha_scale: f32,
    pub(crate) accuracy_bp: u16,
    pub(crate) image_bytes: usize,
    pub(crate) scratch_len: usize,
    pub(crate) w: &'a [u8],
    pub(crate) centre_data: &'a [u8],
    pub(crate) alpha: &'a [u8],
    pub(crate) names: &'a [u8],
}

/// Two models are equal when their blobs are byte-identical (the format is
/// canonical, so this is equality of content).
impl PartialEq for Model<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Model<'_> {}

impl fmt::Debug for Model<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("bytes", &self.bytes.len())
            .field("shape", &self.shape)
            .field("kind", &self.kind)
            .field("resize", &self.resize)
            .field("pixel_bits", &self.pixel_bits)
            .field("classes", &self.classes)
            .field("centres", &self.centres)
            .field("rank", &self.rank)
            .field("u_mult", &self.u_mult)
            .field("alpha_scale", &self.alpha_scale)
            .field("accuracy_bp", &self.accuracy_bp)
            .field("scratch_len", &self.scratch_len)
            .finish()
    }
}

impl<'a> Model<'a> {
    /// Validates a whole blob (exactly one blob: no trailing bytes; see
    /// [`declared_len`] to cut one out of a larger region) and returns the
    /// model reading it in place.
    ///
    /// Checks, in order: magic, version, header length, total length, CRC,
    /// then every header field and section (sizes with checked arithmetic,
    /// bounds, alignment, placement, zero padding, class names). Never
    /// panics, whatever the bytes.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, BlobError> {
        check_preamble(bytes)?;
        let declared = le_u32(bytes, OFF_TOTAL_LEN);
        let total = declared as usize;
        if bytes.len() < total {
            return Err(BlobError::Truncated {
                needed: total,
                got: bytes.len(),
            });
        }
        let min_total = HEADER_LEN.saturating_add(CRC_LEN);
        if bytes.len() > total || total < min_total {
            return Err(BlobError::TotalLength {
                declared,
                got: bytes.len(),
            });
        }
        let crc_at = total.saturating_sub(CRC_LEN);
        let stored = le_u32(bytes, crc_at);
        let computed = crc32(bytes.get(..crc_at).unwrap_or(&[]));
        if stored != computed {
            return Err(BlobError::BadCrc { stored, computed });
        }

        // Header fields.
        let channels = le_u16(bytes, OFF_CHANNELS);
        let height = le_u16(bytes, OFF_HEIGHT);
        let width = le_u16(bytes, OFF_WIDTH);
        let depth = byte(bytes, OFF_DEPTH);
        let pixel_bits = byte(bytes, OFF_PIXEL_BITS);
        let classes = le_u16(bytes, OFF_CLASSES);
        let centres = le_u16(bytes, OFF_CENTRES);
        let rank = byte(bytes, OFF_RANK);
        let kind_byte = byte(bytes, OFF_KIND);
        let u_mult = le_u32(bytes, OFF_U_MULT);
        let scale_bits = le_u32(bytes, OFF_ALPHA_SCALE);
        let accuracy_bp = le_u16(bytes, OFF_ACCURACY);

        let shape = Shape::new(
            usize::from(channels),
            usize::from(height),
            usize::from(width),
            usize::from(depth),
        )
        .map_err(BlobError::InvalidShape)?;
        if usize::from(channels) > MAX_CHANNELS {
            return Err(BlobError::TooManyChannels(channels));
        }
        if pixel_bits != 4 && pixel_bits != 8 {
            return Err(BlobError::BadPixelBits(pixel_bits));
        }
        let kind = KernelKind::from_byte(kind_byte).ok_or(BlobError::BadKind(kind_byte))?;
        let resize_byte = byte(bytes, OFF_RESIZE);
        let resize =
            ResizeFilter::from_byte(resize_byte).ok_or(BlobError::BadResizeFilter(resize_byte))?;
        if let Some(offset) = (OFF_RESERVED..HEADER_LEN).find(|&i| byte(bytes, i) != 0) {
            return Err(BlobError::NonZeroReserved { offset });
        }
        let d = shape.patch_dim();
        if rank == 0 || usize::from(rank) > d {
            return Err(BlobError::BadRank { rank, patch_dim: d });
        }
        if classes < 2 {
            return Err(BlobError::TooFewClasses(classes));
        }
        if centres == 0 {
            return Err(BlobError::NoCentres);
        }
        if u_mult == 0 {
            return Err(BlobError::ZeroUMult);
        }
        let alpha_scale = f32::from_bits(scale_bits);
        if !(alpha_scale.is_finite() && alpha_scale > 0.0) {
            return Err(BlobError::BadAlphaScale(scale_bits));
        }
        if accuracy_bp > 10_000 {
            return Err(BlobError::BadAccuracy(accuracy_bp));
        }
        let final_positions = shape.positions(shape.depth()) as u64;
        kernel_bounds(u64::from(rank), u64::from(depth), final_positions)
            .ok_or(BlobError::KernelRange { depth, rank })?;

        // Expected section sizes.
        let m = usize::from(centres);
        let n_classes = usize::from(classes);
        let w_len = d
            .checked_mul(usize::from(rank))
            .ok_or(BlobError::SizeOverflow(Section::W))?;
        let img_bytes =
            image_bytes(pixel_bits, shape.pixels()).ok_or(BlobError::BadPixelBits(pixel_bits))?;
        let centres_len = img_bytes
            .checked_mul(m)
            .ok_or(BlobError::SizeOverflow(Section::Centres))?;
        let alpha_len = m
            .checked_mul(n_classes)
            .and_then(|v| v.checked_mul(2))
            .ok_or(BlobError::SizeOverflow(Section::Alpha))?;

        // Section placement: canonical, in order, aligned, zero gaps.
        let mut slices: [&'a [u8]; 4] = [&[]; 4];
        let mut starts = [0usize; 4];
        let mut prev_end = HEADER_LEN;
        for (i, section) in Section::ALL.into_iter().enumerate() {
            // i < 4: entries at 40, 48, 56, 64, inside the header.
            let at = OFF_SECTIONS.saturating_add(i.saturating_mul(8));
            let offset = le_u32(bytes, at);
            let len = le_u32(bytes, at.saturating_add(4));
            let expected = match section {
                Section::W => Some(w_len),
                Section::Centres => Some(centres_len),
                Section::Alpha => Some(alpha_len),
                Section::ClassNames => None,
            };
            if let Some(expected) = expected {
                if len as usize != expected {
                    return Err(BlobError::SizeMismatch {
                        section,
                        expected,
                        got: len as usize,
                    });
                }
            }
            let start = offset as usize;
            let end = start
                .checked_add(len as usize)
                .filter(|&e| e <= crc_at)
                .ok_or(BlobError::SectionOutOfBounds {
                    section,
                    offset,
                    len,
                    limit: crc_at,
                })?;
            if start % SECTION_ALIGN != 0 {
                return Err(BlobError::SectionMisaligned { section, offset });
            }
            if start < prev_end {
                return Err(BlobError::SectionOverlap {
                    section,
                    offset,
                    previous_end: prev_end,
                });
            }
            let want = align_up(prev_end).unwrap_or(usize::MAX);
            if start != want {
                return Err(BlobError::SectionGap {
                    section,
                    offset,
                    expected: want,
                });
            }
            check_zero(bytes, prev_end, start)?;
            if let (Some(slot), Some(s)) = (slices.get_mut(i), bytes.get(start..end)) {
                *slot = s;
            }
            if let Some(slot) = starts.get_mut(i) {
                *slot = start;
            }
            prev_end = end;
        }
        let expected_crc_offset = align_up(prev_end).unwrap_or(usize::MAX);
        if expected_crc_offset != crc_at {
            return Err(BlobError::TrailingBytes {
                expected_crc_offset,
                crc_offset: crc_at,
            });
        }
        check_zero(bytes, prev_end, crc_at)?;
        let [w, centre_data, alpha, names] = slices;

        check_names(names, classes)?;
        if pixel_bits == 4 && shape.pixels() % 2 == 1 {
            // Unused high nibble of each image's last byte must be zero.
            let [_, base, _, _] = starts;
            for (i, img) in centre_data.chunks_exact(img_bytes.max(1)).enumerate() {
                if img.last().is_some_and(|b| b >> 4 != 0) {
                    // Inside the centres section: i * img_bytes + img_bytes - 1
                    // < centres_len, already known to fit.
                    let offset = base
                        .saturating_add(i.saturating_mul(img_bytes))
                        .saturating_add(img_bytes.saturating_sub(1));
                    return Err(BlobError::NonZeroPadding { offset });
                }
            }
        }

        let scratch_len = scratch_len_for(shape, usize::from(rank), n_classes)
            .ok_or(BlobError::KernelRange { depth, rank })?;

        Ok(Self {
            bytes: bytes.get(..total).unwrap_or(bytes),
            shape,
            kind,
            resize,
            pixel_bits,
            classes: n_classes,
            centres: m,
            rank: usize::from(rank),
            u_mult,
            alpha_scale,
            accuracy_bp,
            image_bytes: img_bytes,
            scratch_len,
            w,
            centre_data,
            alpha,
            names,
        })
    }

    /// The whole blob.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Image geometry and kernel depth.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// NTK or NNGP readout.
    pub fn kind(&self) -> KernelKind {
        self.kind
    }

    /// How pictures of another size were resized for training.
    pub fn resize_filter(&self) -> ResizeFilter {
        self.resize
    }

    /// Bits per stored centre pixel (4 or 8).
    pub fn pixel_bits(&self) -> u8 {
        self.pixel_bits
    }

    /// Number of classes (>= 2).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Number of centres `m` (>= 1).
    pub fn centres(&self) -> usize {
        self.centres
    }

    /// Rank `r` of the patch projection.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Requantisation multiplier of the patch projection.
    pub fn u_mult(&self) -> u32 {
        self.u_mult
    }

    /// Real score = integer score * `alpha_scale` (informational).
    pub fn alpha_scale(&self) -> f32 {
        self.alpha_scale
    }

    /// Expected accuracy in basis points recorded by the exporter, if known.
    pub fn expected_accuracy_bp(&self) -> Option<u16> {
        (self.accuracy_bp != 0).then_some(self.accuracy_bp)
    }

    /// Bytes of scratch [`Model::predict`] needs (see `predict` for the
    /// layout); it does not grow with the number of centres.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// `W[row][col]`, `row < d`, `col < r`.
    pub fn w(&self, row: usize, col: usize) -> Option<i8> {
        if col >= self.rank {
            return None;
        }
        let i = row.checked_mul(self.rank)?.checked_add(col)?;
        self.w.get(i).map(|&b| b as i8)
    }

    /// The raw `W` section (`d * r` two's-complement bytes, row-major).
    pub fn w_bytes(&self) -> &'a [u8] {
        self.w
    }

    /// `alpha[centre][class]`.
    pub fn alpha(&self, centre: usize, class: usize) -> Option<i16> {
        if class >= self.classes {
            return None;
        }
        let i = centre
            .checked_mul(self.classes)?
            .checked_add(class)?
            .checked_mul(2)?;
        let b = self.alpha.get(i..i.checked_add(2)?)?;
        Some(i16::from_le_bytes([
            b.first().copied()?,
            b.get(1).copied()?,
        ]))
    }

    /// Packed bytes of centre `index`.
    pub fn centre_bytes(&self, index: usize) -> Option<&'a [u8]> {
        let start = index.checked_mul(self.image_bytes)?;
        self.centre_data
            .get(start..start.checked_add(self.image_bytes)?)
    }

    /// Pixel `pixel` (channel-major index) of centre `index`, as the 8-bit
    /// value the kernel uses (4-bit values `v` read as `17 v`).
    pub fn centre_pixel(&self, index: usize, pixel: usize) -> Option<u8> {
        if pixel >= self.shape.pixels() {
            return None;
        }
        let img = self.centre_bytes(index)?;
        Some(unpack(self.pixel_bits, img, pixel))
    }

    /// Name of class `index`.
    pub fn class_name(&self, index: usize) -> Option<&'a str> {
        self.class_names().nth(index)
    }

    /// The class names in class order.
    pub fn class_names(&self) -> ClassNames<'a> {
        ClassNames::of(self.names)
    }

    /// The class-name section as stored: each name a length byte, then
    /// its UTF-8 bytes (what a device sends in its info reply, see
    /// [`crate::wire`]).
    pub fn class_name_bytes(&self) -> &'a [u8] {
        self.names
    }
}

/// Pixel `i` of a packed image (no bounds error: 0 past the end, which the
/// validated callers never reach).
#[inline]
pub(crate) fn unpack(pixel_bits: u8, img: &[u8], i: usize) -> u8 {
    if pixel_bits == 8 {
        img.get(i).copied().unwrap_or(0)
    } else {
        let b = img.get(i / 2).copied().unwrap_or(0);
        // The nibble is <= 15, so 17 * nibble <= 255.
        let v = if i % 2 == 0 { b & 0x0F } else { b >> 4 };
        v.wrapping_mul(17)
    }
}

fn check_zero(bytes: &[u8], from: usize, to: usize) -> Result<(), BlobError> {
    let gap = bytes.get(from..to).unwrap_or(&[]);
    match gap.iter().position(|&b| b != 0) {
        Some(p) => Err(BlobError::NonZeroPadding {
            offset: from.saturating_add(p),
        }),
        None => Ok(()),
    }
}

pub(crate) fn check_names(names: &[u8], classes: u16) -> Result<(), BlobError> {
    let mut rest = names;
    for index in 0..classes {
        let (&len, tail) = rest.split_first().ok_or(BlobError::BadClassName {
            index,
            reason: NameError::Truncated,
        })?;
        let len = usize::from(len);
        let name = tail.get(..len).ok_or(BlobError::BadClassName {
            index,
            reason: NameError::Truncated,
        })?;
        core::str::from_utf8(name).map_err(|_| BlobError::BadClassName {
            index,
            reason: NameError::NotUtf8,
        })?;
        rest = tail.get(len..).unwrap_or(&[]);
    }
    if !rest.is_empty() {
        return Err(BlobError::SizeMismatch {
            section: Section::ClassNames,
            expected: names.len().saturating_sub(rest.len()),
            got: names.len(),
        });
    }
    Ok(())
}

/// Iterator over the class names of a [`Model`] (or of a device's info
/// reply, [`crate::wire::Info::names`]).
#[derive(Clone, Debug)]
pub struct ClassNames<'a> {
    rest: &'a [u8],
}

impl<'a> ClassNames<'a> {
    /// Over a name section that [`check_names`] accepted.
    pub(crate) fn of(rest: &'a [u8]) -> Self {
        Self { rest }
    }
}

impl<'a> Iterator for ClassNames<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (&len, tail) = self.rest.split_first()?;
        let len = usize::from(len);
        let name = tail.get(..len)?;
        self.rest = tail.get(len..).unwrap_or(&[]);
        // Validated as UTF-8 in `from_bytes`.
        core::str::from_utf8(name).ok()
    }
}
