//! The IDX array format used by MNIST and Fashion-MNIST.
//!
//! Layout: two zero bytes, a type byte, a rank byte; then `rank` big-endian
//! `u32` dimensions; then the elements, big-endian, row-major. Files are
//! often gzip-compressed; [`read_idx`] and [`decode_idx`] detect that from
//! the gzip magic `1f 8b` rather than from the file name.
//!
//! Only the two types the project needs are supported: `0x08` (unsigned
//! byte, the images and labels of the MNIST family) and `0x0D` (`f32`, for
//! feature maps and preprocessed images).
//!
//! Reading never trusts the header's element count for an allocation: the
//! body is read through a limit of `header + 1` bytes, so a lying header (or
//! a gzip bomb) can make us allocate no more than the data that is really
//! there, and never more than [`MAX_DATA_BYTES`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::bufread::GzDecoder;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::output::write_atomic;

/// Type byte of unsigned 8-bit elements.
pub const TYPE_U8: u8 = 0x08;
/// Type byte of big-endian IEEE 754 single-precision elements.
pub const TYPE_F32: u8 = 0x0D;
/// Largest rank accepted. The format allows up to 255, but nothing we read
/// (labels, images, multi-channel images) has more than 4 axes, so a larger
/// rank is far more likely to be a corrupt header than a real file.
pub const MAX_RANK: usize = 4;
/// Largest data section accepted (16 GiB). Far beyond any data set this
/// project trains on in memory, yet small enough that a corrupt header
/// claiming petabytes is rejected before any reading starts.
pub const MAX_DATA_BYTES: u64 = 1 << 34;

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Longest possible header: magic, type, rank, and `MAX_RANK` dimensions.
const MAX_HEADER_BYTES: usize = 4 + 4 * MAX_RANK;

/// Elements of an IDX array, in file order.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    /// Type `0x08`.
    U8(Vec<u8>),
    /// Type `0x0D`.
    F32(Vec<f32>),
}

impl IdxData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::U8(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The IDX type byte of these elements.
    pub fn type_code(&self) -> u8 {
        match self {
            Self::U8(_) => TYPE_U8,
            Self::F32(_) => TYPE_F32,
        }
    }
}

/// An n-dimensional array read from or written to an IDX file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// Axis lengths, outermost first (for images: count, rows, columns).
    pub dims: Vec<usize>,
    /// The elements, row-major; `data.len()` is the product of `dims`.
    pub data: IdxData,
}

/// Why bytes are not a usable IDX array.
///
/// Variants carrying an inner error include its message in their own
/// `Display` and deliberately do not report it as `source()`, so that an
/// `anyhow` chain printed with `{:#}` does not repeat it.
#[derive(thiserror::Error, Debug)]
pub enum IdxError {
    /// Reading the underlying file failed.
    #[error("I/O error: {0}")]
    Io(io::Error),
    /// The file starts like gzip but the compressed stream is damaged or cut
    /// short.
    #[error("corrupt gzip stream: {0}")]
    Gzip(io::Error),
    /// Zero bytes (after decompression, for gzip files).
    #[error("file is empty")]
    Empty,
    /// The first two bytes are not `00 00`.
    #[error("not an IDX file: the first two bytes should be 00 00, found {:02x} {:02x}{}",
        found[0], found[1], gzip_hint(*found))]
    BadMagic {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// A type byte other than `0x08` (u8) or `0x0D` (f32).
    #[error("unsupported IDX element type 0x{0:02x} (supported: 0x08 unsigned byte, 0x0d float)")]
    UnsupportedType(u8),
    /// Rank 0, or more than [`MAX_RANK`].
    #[error("unsupported IDX rank {0} (supported: 1 to {MAX_RANK})")]
    BadRank(u8),
    /// A dimension is zero, so the array is empty.
    #[error("dimension {axis} is zero: the array is empty")]
    ZeroDim {
        /// The zero axis, 0 being the outermost.
        axis: usize,
    },
    /// The dimensions describe more than [`MAX_DATA_BYTES`] of data (or their
    /// product overflows).
    #[error("header dimensions {dims:?} describe more than 2^34 bytes (16 GiB) of data")]
    TooLarge {
        /// The dimensions read from the header.
        dims: Vec<u64>,
    },
    /// The file ends early. Both counts are whole-file byte counts
    /// (decompressed, for gzip files); for a cut-off header, `expected` is
    /// the header length as far as it can be known.
    #[error("truncated: expected {expected} bytes, file has only {found}")]
    Truncated {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file is longer than its header says. Whole-file byte counts, as in
    /// [`IdxError::Truncated`].
    /// Bytes after the last complete gzip member that are not another
    /// gzip member.
    #[error("{0} bytes of trailing data after the gzip stream (not another gzip member)")]
    TrailingAfterGzip(u64),
    #[error("trailing bytes: header implies {expected} bytes, file has {found}")]
    TrailingBytes {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
}

/// Tells a user who handed gzip data to [`parse_idx`] what happened.
fn gzip_hint(found: [u8; 2]) -> &'static str {
    if found == GZIP_MAGIC {
        " (this is gzip data; decompress it first)"
    } else {
        ""
    }
}

/// An [`IdxError`] together with the file it came from.
///
/// `Display` is `"<path>: <error>"`, so a message is useful on its own
/// (for example `train-images.gz: truncated: expected 47040016 bytes, file
/// has only 1000`).
#[derive(Debug)]
pub struct IdxFileError {
    /// The file, as given to [`read_idx`].
    pub path: PathBuf,
    /// What is wrong with it.
    pub error: IdxError,
}

impl fmt::Display for IdxFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

// No `source()`: `Display` already contains the inner message (see
// `IdxError`).
impl std::error::Error for IdxFileError {}

/// What the header says, validated.
struct Header {
    /// Type byte, one of the supported ones.
    type_code: u8,
    /// Dimensions, each at least 1.
    dims: Vec<usize>,
    /// Header length in bytes.
    header_len: usize,
    /// Data length in bytes, at most [`MAX_DATA_BYTES`].
    data_len: u64,
}

impl Header {
    fn total_len(&self) -> u64 {
        // Cannot overflow: data_len <= 2^34 and header_len <= 20.
        self.data_len + self.header_len as u64
    }
}

/// Bytes per element of a supported type.
fn element_size(type_code: u8) -> Option<u64> {
    match type_code {
        TYPE_U8 => Some(1),
        TYPE_F32 => Some(4),
        _ => None,
    }
}

/// Validates the header at the start of `bytes`, which may be the whole file
/// or any prefix of it that is at least [`MAX_HEADER_BYTES`] long (or the
/// whole file if shorter).
fn parse_header(bytes: &[u8]) -> Result<Header, IdxError> {
    if bytes.is_empty() {
        return Err(IdxError::Empty);
    }
    if let [a, b, ..] = *bytes {
        if [a, b] != [0, 0] {
            return Err(IdxError::BadMagic { found: [a, b] });
        }
    }
    let (type_code, rank) = match *bytes {
        [_, _, type_code, rank, ..] => (type_code, rank),
        _ => {
            return Err(IdxError::Truncated {
                expected: 4,
                found: bytes.len() as u64,
            });
        }
    };
    let elem = element_size(type_code).ok_or(IdxError::UnsupportedType(type_code))?;
    if rank == 0 || usize::from(rank) > MAX_RANK {
        return Err(IdxError::BadRank(rank));
    }
    let header_len = 4 + 4 * usize::from(rank);
    let Some(dim_bytes) = bytes.get(4..header_len) else {
        return Err(IdxError::Truncated {
            expected: header_len as u64,
            found: bytes.len() as u64,
        });
    };
    let raw_dims: Vec<u64> = dim_bytes
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    if let Some(axis) = raw_dims.iter().position(|&d| d == 0) {
        return Err(IdxError::ZeroDim { axis });
    }
    let data_len = raw_dims
        .iter()
        .try_fold(elem, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_DATA_BYTES);
    let (Some(data_len), Ok(dims)) = (
        data_len,
        raw_dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>(),
    ) else {
        return Err(IdxError::TooLarge { dims: raw_dims });
    };
    Ok(Header {
        type_code,
        dims,
        header_len,
        data_len,
    })
}

/// Reads until `buf` is full or the reader is exhausted; returns the count.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads one IDX array from an uncompressed stream. `wrap` classifies read
/// errors (plain I/O or gzip).
fn read_stream<R: Read>(
    mut reader: R,
    wrap: fn(io::Error) -> IdxError,
) -> Result<IdxArray, IdxError> {
    let mut head = [0u8; MAX_HEADER_BYTES];
    let head_len = read_up_to(&mut reader, &mut head).map_err(wrap)?;
    let head = &head[..head_len];
    let header = parse_header(head)?;

    // The data already read with the header, then the rest through a limit
    // one past what the header promises: enough to see trailing bytes, never
    // an allocation the real data does not back.
    let data_len = header.data_len;
    let mut body = head[header.header_len..].to_vec();
    let limit = (data_len + 1).saturating_sub(body.len() as u64);
    reader
        .by_ref()
        .take(limit)
        .read_to_end(&mut body)
        .map_err(wrap)?;
    let got = body.len() as u64;
    if got < data_len {
        return Err(IdxError::Truncated {
            expected: header.total_len(),
            found: header.header_len as u64 + got,
        });
    }
    if got > data_len {
        // Count the rest without storing it, so the message is exact.
        let rest = io::copy(&mut reader, &mut io::sink()).map_err(wrap)?;
        return Err(IdxError::TrailingBytes {
            expected: header.total_len(),
            found: header.header_len as u64 + got + rest,
        });
    }

    let data = match header.type_code {
        TYPE_F32 => IdxData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        // parse_header admits only the two supported types.
        _ => IdxData::U8(body),
    };
    Ok(IdxArray {
        dims: header.dims,
        data,
    })
}

/// The decompressed bytes of consecutive gzip members; at the first byte
/// after a member that does not start another one, the stream ends and
/// the count of the remaining bytes is kept in `trailing`.
struct GzMembers<R: BufRead> {
    current: Option<GzDecoder<R>>,
    trailing: u64,
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // The member ended: another one, the end, or trailing data.
            let Some(mut inner) = self.current.take().map(GzDecoder::into_inner) else {
                return Ok(0);
            };
            let next = inner.fill_buf()?;
            if next.is_empty() {
                return Ok(0);
            }
            if next.starts_with(&GZIP_MAGIC) {
                self.current = Some(GzDecoder::new(inner));
            } else {
                self.trailing = io::copy(&mut inner, &mut io::sink())?;
                return Ok(0);
            }
        }
    }
}

/// Parses already-decompressed IDX bytes.
///
/// Gzip data is rejected with [`IdxError::BadMagic`]; use [`decode_idx`] for
/// bytes that may be compressed.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, IdxError> {
    read_stream(bytes, IdxError::Io)
}

/// Reads an IDX array from a stream that may be gzip-compressed (detected
/// from the gzip magic).
pub fn read_idx_from(mut reader: impl BufRead) -> Result<IdxArray, IdxError> {
    let start = reader.fill_buf().map_err(IdxError::Io)?;
    if start.starts_with(&GZIP_MAGIC) {
        // Multi-member, so that files made by concatenating gzip streams (as
        // `cat a.gz b.gz` or some parallel compressors produce) read whole;
        // anything else after a member is trailing data, not corruption.
        let mut members = GzMembers {
            current: Some(GzDecoder::new(reader)),
            trailing: 0,
        };
        let array = read_stream(&mut members, IdxError::Gzip)?;
        match members.trailing {
            0 => Ok(array),
            n => Err(IdxError::TrailingAfterGzip(n)),
        }
    } else {
        read_stream(reader, IdxError::Io)
    }
}

/// Decodes IDX bytes held in memory that may be gzip-compressed (for
/// example data embedded with `include_bytes!`).
pub fn decode_idx(bytes: &[u8]) -> Result<IdxArray, IdxError> {
    read_idx_from(bytes)
}

/// The dimensions an IDX file declares, read from its header alone (at
/// most a few dozen decompressed bytes), so sizes can be checked before any
/// payload is read.
pub fn read_idx_dims(path: &Path) -> Result<Vec<usize>, IdxFileError> {
    let with_path = |error| IdxFileError {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(|e| with_path(IdxError::Io(e)))?;
    let mut reader = BufReader::new(file);
    let start = reader.fill_buf().map_err(|e| with_path(IdxError::Io(e)))?;
    let mut head = [0u8; MAX_HEADER_BYTES];
    let len = if start.starts_with(&GZIP_MAGIC) {
        read_up_to(&mut MultiGzDecoder::new(reader), &mut head)
            .map_err(|e| with_path(IdxError::Gzip(e)))?
    } else {
        read_up_to(&mut reader, &mut head).map_err(|e| with_path(IdxError::Io(e)))?
    };
    parse_header(&head[..len])
        .map(|h| h.dims)
        .map_err(with_path)
}

/// Reads an IDX file, gzip-compressed or raw.
pub fn read_idx(path: &Path) -> Result<IdxArray, IdxFileError> {
    let with_path = |error| IdxFileError {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(|e| with_path(IdxError::Io(e)))?;
    read_idx_from(BufReader::new(file)).map_err(with_path)
}

/// Checks that `array` can be written as an IDX file that [`parse_idx`] will
/// read back: rank 1 to 4, nonzero dimensions that fit in `u32`, and as many
/// elements as the dimensions say.
fn check_writable(array: &IdxArray) -> io::Result<()> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let rank = array.dims.len();
    if rank == 0 || rank > MAX_RANK {
        return Err(invalid(format!(
            "cannot write an IDX array of rank {rank} (supported: 1 to {MAX_RANK})"
        )));
    }
    if let Some(axis) = array.dims.iter().position(|&d| d == 0) {
        return Err(invalid(format!(
            "cannot write an IDX array whose dimension {axis} is zero"
        )));
    }
    if array.dims.iter().any(|&d| u32::try_from(d).is_err()) {
        return Err(invalid(format!(
            "IDX dimensions must fit in u32, got {:?}",
            array.dims
        )));
    }
    let count = array
        .dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(array.data.len()) {
        return Err(invalid(format!(
            "IDX dimensions {:?} do not match the {} elements given",
            array.dims,
            array.data.len()
        )));
    }
    Ok(())
}

/// Writes `array` as uncompressed IDX to `writer`.
pub fn write_idx_to(mut writer: impl Write, array: &IdxArray) -> io::Result<()> {
    check_writable(array)?;
    let rank = u8::try_from(array.dims.len()).map_err(io::Error::other)?;
    writer.write_all(&[0, 0, array.data.type_code(), rank])?;
    for &d in &array.dims {
        let d = u32::try_from(d).map_err(io::Error::other)?;
        writer.write_all(&d.to_be_bytes())?;
    }
    match &array.data {
        IdxData::U8(v) => writer.write_all(v)?,
        IdxData::F32(v) => {
            for x in v {
                writer.write_all(&x.to_be_bytes())?;
            }
        }
    }
    Ok(())
}

/// Writes `array` to `path` as IDX, gzip-compressed if `gzip`.
///
/// Atomic ([`write_atomic`]): a failure never leaves a half-written file.
pub fn write_idx(path: &Path, array: &IdxArray, gzip: bool) -> io::Result<()> {
    check_writable(array)?;
    write_atomic(path, |writer| {
        if gzip {
            let mut encoder = GzEncoder::new(writer, Compression::best());
            write_idx_to(&mut encoder, array)?;
            encoder.finish()?;
            Ok(())
        } else {
            write_idx_to(writer, array)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;

    fn u8_array() -> IdxArray {
        IdxArray {
            dims: vec![3, 2, 2],
            data: IdxData::U8((0..12).map(|i| i * 20).collect()),
        }
    }

    fn f32_array() -> IdxArray {
        IdxArray {
            dims: vec![2, 3],
            data: IdxData::F32(vec![0.0, -1.5, 3.25, f32::MAX, f32::MIN_POSITIVE, -0.0]),
        }
    }

    fn encode(array: &IdxArray) -> Vec<u8> {
        let mut out = Vec::new();
        write_idx_to(&mut out, array).expect("encode");
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).expect("gzip");
        enc.finish().expect("gzip")
    }

    fn round_trip(array: &IdxArray, gz: bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(if gz { "a.idx.gz" } else { "a.idx" });
        write_idx(&path, array, gz).expect("write");
        let bytes = fs::read(&path).expect("read back");
        assert_eq!(bytes.starts_with(&GZIP_MAGIC), gz);
        assert_eq!(&read_idx(&path).expect("read_idx"), array);
        // Only the final file remains: no temporary left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn round_trip_u8_raw() {
        round_trip(&u8_array(), false);
    }

    #[test]
    fn round_trip_u8_gz() {
        round_trip(&u8_array(), true);
    }

    #[test]
    fn round_trip_f32_raw() {
        round_trip(&f32_array(), false);
    }

    #[test]
    fn round_trip_f32_gz() {
        round_trip(&f32_array(), true);
    }

    #[test]
    fn f32_is_big_endian_on_disk() {
        let bytes = encode(&IdxArray {
            dims: vec![1],
            data: IdxData::F32(vec![1.0]),
        });
        assert_eq!(bytes, [0, 0, 0x0d, 1, 0, 0, 0, 1, 0x3f, 0x80, 0, 0]);
    }

    #[test]
    fn write_replaces_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.idx");
        fs::write(&path, b"old").expect("write old");
        write_idx(&path, &u8_array(), false).expect("write");
        assert_eq!(read_idx(&path).expect("read"), u8_array());
    }

    #[test]
    fn write_rejects_inconsistent_array_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.idx");
        let bad = IdxArray {
            dims: vec![2, 2],
            data: IdxData::U8(vec![1, 2, 3]),
        };
        let err = write_idx(&path, &bad, true).expect_err("mismatch");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        for dims in [vec![], vec![1, 1, 1, 1, 1], vec![0]] {
            let bad = IdxArray {
                dims,
                data: IdxData::U8(vec![]),
            };
            assert!(write_idx(&path, &bad, false).is_err());
        }
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn write_into_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("no/such/dir/a.idx");
        assert!(write_idx(&path, &u8_array(), false).is_err());
    }

    #[test]
    fn truncated_header() {
        let bytes = encode(&u8_array());
        // Rank 3: header is 16 bytes.
        let err = parse_idx(&bytes[..10]).expect_err("short header");
        assert!(
            matches!(
                err,
                IdxError::Truncated {
                    expected: 16,
                    found: 10
                }
            ),
            "{err}"
        );
        let err = parse_idx(&bytes[..3]).expect_err("shorter header");
        assert!(
            matches!(
                err,
                IdxError::Truncated {
                    expected: 4,
                    found: 3
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn truncated_data() {
        let bytes = encode(&u8_array());
        let err = parse_idx(&bytes[..20]).expect_err("short data");
        assert!(
            matches!(
                err,
                IdxError::Truncated {
                    expected: 28,
                    found: 20
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "truncated: expected 28 bytes, file has only 20"
        );
    }

    #[test]
    fn truncated_gz_file_names_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("train-images.gz");
        let bytes = encode(&u8_array());
        fs::write(&path, gzip(&bytes[..20])).expect("write");
        let err = read_idx(&path).expect_err("short data");
        assert!(matches!(err.error, IdxError::Truncated { .. }));
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}: truncated", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn wrong_magic() {
        let mut bytes = encode(&u8_array());
        bytes[1] = 7;
        let err = parse_idx(&bytes).expect_err("magic");
        assert!(matches!(err, IdxError::BadMagic { found: [0, 7] }), "{err}");
        let err = parse_idx(&gzip(&bytes)).expect_err("gzip given to parse_idx");
        assert!(err.to_string().contains("gzip"), "{err}");
    }

    #[test]
    fn unsupported_type() {
        let mut bytes = encode(&u8_array());
        bytes[2] = 0x0b; // i16
        let err = parse_idx(&bytes).expect_err("type");
        assert!(matches!(err, IdxError::UnsupportedType(0x0b)), "{err}");
        assert!(err.to_string().contains("0x0b"), "{err}");
    }

    #[test]
    fn rank_zero_and_too_large() {
        let err = parse_idx(&[0, 0, 8, 0]).expect_err("rank 0");
        assert!(matches!(err, IdxError::BadRank(0)), "{err}");
        let err = parse_idx(&[0, 0, 8, 5]).expect_err("rank 5");
        assert!(matches!(err, IdxError::BadRank(5)), "{err}");
    }

    #[test]
    fn zero_dim() {
        let err = parse_idx(&[0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 0]).expect_err("zero dim");
        assert!(matches!(err, IdxError::ZeroDim { axis: 1 }), "{err}");
    }

    #[test]
    fn huge_header_is_rejected_before_reading() {
        let err = parse_idx(&[
            0, 0, 0x0d, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ])
        .expect_err("huge");
        assert!(matches!(err, IdxError::TooLarge { .. }), "{err}");
        // 2^33 elements: within the limit as u8, over it as f32.
        let header = [0, 0, 0x0d, 2, 0, 2, 0, 0, 0, 1, 0, 0];
        let err = parse_idx(&header).expect_err("huge f32");
        assert!(matches!(err, IdxError::TooLarge { .. }), "{err}");
        let mut header = header;
        header[2] = TYPE_U8;
        let err = parse_idx(&header).expect_err("no data");
        assert!(matches!(err, IdxError::Truncated { .. }), "{err}");
    }

    #[test]
    fn lying_header_does_not_allocate_its_claim() {
        // Claims 2^34 bytes of u8 but carries 3: must report truncation
        // (without trying to allocate 16 GiB first).
        let err = parse_idx(&[0, 0, 8, 2, 0, 2, 0, 0, 0, 2, 0, 0, 1, 2, 3]).expect_err("lie");
        assert!(
            matches!(err, IdxError::Truncated { expected, found: 15 } if expected == (1 << 34) + 12),
            "{err}"
        );
    }

    #[test]
    fn data_after_the_gzip_stream_is_trailing_data_not_corruption() {
        let bytes = encode(&u8_array());
        let mut gz = gzip(&bytes);
        gz.extend_from_slice(b"xyz");
        let err = decode_idx(&gz).expect_err("trailing after gz");
        assert!(matches!(err, IdxError::TrailingAfterGzip(3)), "{err}");
        // A second member is not trailing data: the members concatenate.
        let (a, b) = bytes.split_at(10);
        let mut two = gzip(a);
        two.extend_from_slice(&gzip(b));
        assert_eq!(decode_idx(&two).expect("two members"), u8_array());
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = encode(&u8_array());
        bytes.extend_from_slice(&[1, 2, 3]);
        let err = parse_idx(&bytes).expect_err("trailing");
        assert!(
            matches!(
                err,
                IdxError::TrailingBytes {
                    expected: 28,
                    found: 31
                }
            ),
            "{err}"
        );
        let err = decode_idx(&gzip(&bytes)).expect_err("trailing gz");
        assert!(
            matches!(
                err,
                IdxError::TrailingBytes {
                    expected: 28,
                    found: 31
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_file() {
        assert!(matches!(parse_idx(&[]), Err(IdxError::Empty)));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.idx");
        fs::write(&path, b"").expect("write");
        let err = read_idx(&path).expect_err("empty");
        assert!(matches!(err.error, IdxError::Empty));
        assert!(
            err.to_string().ends_with("empty.idx: file is empty"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_gzip() {
        let mut gz = gzip(&encode(&u8_array()));
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        gz[mid + 1] ^= 0x55;
        let err = decode_idx(&gz).expect_err("corrupt");
        assert!(matches!(err, IdxError::Gzip(_)), "{err}");
        // Gzip magic followed by garbage.
        let err = decode_idx(&[0x1f, 0x8b, 1, 2, 3, 4]).expect_err("garbage");
        assert!(matches!(err, IdxError::Gzip(_)), "{err}");
    }

    #[test]
    fn missing_file_is_io_error_naming_path() {
        let err = read_idx(Path::new("/no/such/file.idx")).expect_err("missing");
        assert!(matches!(err.error, IdxError::Io(_)));
        assert!(
            err.to_string().starts_with("/no/such/file.idx: I/O error"),
            "{err}"
        );
    }

    #[test]
    fn multi_member_gzip_reads_whole() {
        let bytes = encode(&u8_array());
        let mut gz = gzip(&bytes[..10]);
        gz.extend(gzip(&bytes[10..]));
        assert_eq!(decode_idx(&gz).expect("multi-member"), u8_array());
    }

    /// Arrays of rank 1..=4 with small dims, u8 or f32.
    fn arb_array() -> impl Strategy<Value = IdxArray> {
        prop::collection::vec(1usize..5, 1..=MAX_RANK).prop_flat_map(|dims| {
            let n: usize = dims.iter().product();
            let u8s = prop::collection::vec(any::<u8>(), n).prop_map(IdxData::U8);
            let f32s = prop::collection::vec(any::<f32>(), n).prop_map(IdxData::F32);
            (Just(dims), prop_oneof![u8s, f32s]).prop_map(|(dims, data)| IdxArray { dims, data })
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_idx(&bytes);
            let _ = decode_idx(&bytes);
        }

        #[test]
        fn plausible_headers_never_panic(
            type_code in prop_oneof![Just(TYPE_U8), Just(TYPE_F32), any::<u8>()],
            rank in 0u8..6,
            rest in prop::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut bytes = vec![0, 0, type_code, rank];
            bytes.extend(rest);
            let _ = parse_idx(&bytes);
            let _ = decode_idx(&gzip(&bytes));
        }

        /// A flipped bit in a gzip file: gzip's own CRC and length catch
        /// it (an error), or it hit a header field that carries no data
        /// (time, OS, flags of absent fields) and the array is the same:
        /// never a silently different array.
        #[test]
        fn gzip_bit_flips_are_an_error_or_harmless(
            array in arb_array(),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut gz = gzip(&encode(&array));
            let i = at.index(gz.len());
            gz[i] ^= 1 << bit;
            if let Ok(got) = decode_idx(&gz) {
                prop_assert_eq!(got, array, "flip at byte {} bit {}", i, bit);
            }
        }

        /// A flipped bit in a raw file's header: an error, or an array
        /// consistent with what the header now says.
        #[test]
        fn header_bit_flips_are_an_error_or_consistent(
            array in arb_array(),
            at in 0usize..20,
            bit in 0u8..8,
        ) {
            let mut bytes = encode(&array);
            let i = at % bytes.len().min(4 + 4 * array.dims.len());
            bytes[i] ^= 1 << bit;
            if let Ok(got) = parse_idx(&bytes) {
                prop_assert_eq!(got.dims.iter().product::<usize>(), got.data.len());
            }
        }

        #[test]
        fn every_truncation_is_an_error(array in arb_array()) {
            let bytes = encode(&array);
            prop_assert_eq!(&parse_idx(&bytes).expect("full file parses"), &array);
            for len in 0..bytes.len() {
                match parse_idx(&bytes[..len]) {
                    Err(IdxError::Truncated { found, .. }) => prop_assert_eq!(found, len as u64),
                    Err(IdxError::Empty) => prop_assert_eq!(len, 0),
                    other => prop_assert!(false, "prefix {} gave {:?}", len, other),
                }
            }
            let gz = gzip(&bytes);
            prop_assert_eq!(&decode_idx(&gz).expect("full gz parses"), &array);
            for len in 0..gz.len() {
                prop_assert!(decode_idx(&gz[..len]).is_err(), "gz prefix {} parsed", len);
            }
        }
    }
}
