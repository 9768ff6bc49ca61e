//! The trained model's scores on the fit images: the teacher's targets for
//! distillation. On 60,000 images they are a kernel block against every
//! training image of the model (minutes), so they are cached in a file
//! keyed by the model and the images, and a second export with another
//! budget reads them back.
//!
//! ```text
//! cache file, little-endian:
//!      0   8 magic "CRFMTEAC"         8  4 version (1)
//!     12   4 CRC-32 of the model file's bytes
//!     16   4 CRC-32 of the fit images' pixels (f32) and labels
//!     20   8 rows n                  28  8 columns (classes)
//!     36 8nk scores, f64, row-major
//! ```
//!
//! A cache that is missing, unreadable, malformed or made for another
//! model or fit set is not an error: the scores are recomputed and the file
//! rewritten (all or nothing), and the reason is reported.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use convrfm_core::Crc32;

use crate::data::LabelledImages;
use crate::fit::Model;
use crate::matrix::Matrix;
use crate::output::{Progress, write_atomic};

const MAGIC: &[u8; 8] = b"CRFMTEAC";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 36;

/// Where the scores came from, for the report.
#[derive(Debug)]
pub enum TeacherSource {
    /// Read from the cache file.
    Cache(PathBuf),
    /// Computed (and written to the cache file, if one was given); the
    /// reason a cache file present could not be used, if any.
    Computed {
        /// The cache file written.
        cache: Option<PathBuf>,
        /// Why an existing cache file was not used.
        ignored: Option<String>,
    },
}

impl fmt::Display for TeacherSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cache(p) => write!(f, "read from {}", p.display()),
            Self::Computed { cache, ignored } => {
                f.write_str("computed")?;
                if let Some(why) = ignored {
                    write!(f, " ({why})")?;
                }
                if let Some(p) = cache {
                    write!(f, ", cached in {}", p.display())?;
                }
                Ok(())
            }
        }
    }
}

/// The model's scores on `fit` (`n x classes`), from `cache` when it holds
/// them for this model and these images, else computed (and cached).
pub fn teacher_scores(
    model: &Model,
    fit: &LabelledImages,
    cache: Option<&Path>,
    progress: Progress,
) -> Result<(Matrix, TeacherSource)> {
    let key = Key::of(model, fit)?;
    let ignored = match cache.map(|p| read_cache(p, key, fit.len(), model.classes())) {
        Some(Ok(scores)) => {
            let path = cache.map(Path::to_path_buf).unwrap_or_default();
            return Ok((scores, TeacherSource::Cache(path)));
        }
        Some(Err(why)) => why,
        None => None,
    };
    let scores = model
        .scores(&fit.images, progress)
        .context("the model's scores on the fit images")?;
    if let Some(path) = cache {
        write_atomic(path, |w| {
            w.write_all(&header(key, scores.rows(), scores.cols()))?;
            for v in scores.as_slice() {
                w.write_all(&v.to_le_bytes())?;
            }
            Ok(())
        })
        .with_context(|| format!("writing the teacher cache {}", path.display()))?;
    }
    Ok((
        scores,
        TeacherSource::Computed {
            cache: cache.map(Path::to_path_buf),
            ignored,
        },
    ))
}

/// What a cache is valid for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    model: u32,
    images: u32,
}

impl Key {
    fn of(model: &Model, fit: &LabelledImages) -> Result<Self> {
        let model = Crc32::new().update(&model.to_bytes()?).finish();
        let mut crc = Crc32::new();
        let mut buf = Vec::with_capacity(4 << 12);
        for chunk in fit.images.pixels.chunks(1 << 12) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            crc = crc.update(&buf);
        }
        let images = crc.update(&fit.labels).finish();
        Ok(Self { model, images })
    }
}

fn header(key: Key, rows: usize, cols: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&key.model.to_le_bytes());
    h.extend_from_slice(&key.images.to_le_bytes());
    h.extend_from_slice(&(rows as u64).to_le_bytes());
    h.extend_from_slice(&(cols as u64).to_le_bytes());
    h
}

/// The cached scores, `Err(None)` when there is no file, `Err(Some(why))`
/// when there is one that cannot be used. The whole file is checked
/// (header, key, exact length, finite values) before it is used.
fn read_cache(path: &Path, key: Key, rows: usize, cols: usize) -> Result<Matrix, Option<String>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
        Err(e) => return Err(Some(format!("{} unreadable: {e}", path.display()))),
    };
    let why = |what: &str| Some(format!("{} {what}", path.display()));
    let expected = header(key, rows, cols);
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(why("is not a teacher-score cache"));
    }
    if bytes[8..12] != expected[8..12] {
        return Err(why("is of another cache version"));
    }
    if bytes[12..HEADER_LEN] != expected[12..] {
        return Err(why("holds the scores of another model or fit set"));
    }
    let values = bytes.len() - HEADER_LEN;
    if values != rows * cols * 8 {
        return Err(why("is truncated or has trailing bytes"));
    }
    let data: Vec<f64> = bytes[HEADER_LEN..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    if data.iter().any(|v| !v.is_finite()) {
        return Err(why("holds a score that is not finite"));
    }
    Matrix::from_row_major(rows, cols, data).ok_or_else(|| why("does not match its own size"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::data::{Split, vendored_fashion_mnist};

    proptest! {
        /// Any bytes, or a valid cache with one byte changed: used only if
        /// the whole file checks out, never a panic.
        #[test]
        fn any_cache_file_is_used_whole_or_not_at_all(
            junk in proptest::collection::vec(any::<u8>(), 0..200),
            at in 0usize..(HEADER_LEN + 6 * 8),
            flip in 1u8..=255,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c");
            let key = Key { model: 7, images: 9 };
            std::fs::write(&path, &junk).unwrap();
            if let Ok(m) = read_cache(&path, key, 3, 2) {
                prop_assert_eq!((m.rows(), m.cols()), (3, 2));
            }
            let mut good = header(key, 3, 2);
            for v in [0.5f64, -1.0, 2.0, 0.0, 3.5, 1e-3] {
                good.extend_from_slice(&v.to_le_bytes());
            }
            std::fs::write(&path, &good).unwrap();
            prop_assert!(read_cache(&path, key, 3, 2).is_ok());
            good[at] ^= flip;
            std::fs::write(&path, &good).unwrap();
            match read_cache(&path, key, 3, 2) {
                // A changed score may still be a finite number.
                Ok(m) => prop_assert!(at >= HEADER_LEN && m.as_slice().iter().all(|v| v.is_finite())),
                Err(why) => prop_assert!(why.is_some()),
            }
        }
    }

    #[test]
    fn the_cache_is_used_only_for_its_own_model_and_images() {
        let model =
            Model::from_bytes(include_bytes!("../../tests/data/tiny-fashion.convrfm")).unwrap();
        let fit = vendored_fashion_mnist(Split::Test).take(40);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.teacher");
        let q = Progress { quiet: true };
        let (first, src) = teacher_scores(&model, &fit, Some(&path), q).unwrap();
        assert!(matches!(src, TeacherSource::Computed { ignored: None, .. }));
        assert_eq!((first.rows(), first.cols()), (40, model.classes()));
        let direct = model.scores(&fit.images, q).unwrap();
        assert_eq!(first.as_slice(), direct.as_slice());
        let (again, src) = teacher_scores(&model, &fit, Some(&path), q).unwrap();
        assert!(matches!(src, TeacherSource::Cache(_)), "{src}");
        assert_eq!(again.as_slice(), first.as_slice());
        // Other images: recomputed, and said why.
        let other = vendored_fashion_mnist(Split::Test).take(41);
        let (_, src) = teacher_scores(&model, &other, Some(&path), q).unwrap();
        assert!(
            src.to_string().contains("another model or fit set"),
            "{src}"
        );
        // A damaged file: recomputed, never trusted.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let (_, src) = teacher_scores(&model, &other, Some(&path), q).unwrap();
        assert!(src.to_string().contains("truncated"), "{src}");
        std::fs::write(
            &path,
            b"not a cache at all, but long enough to have a header",
        )
        .unwrap();
        let (scores, src) = teacher_scores(&model, &other, Some(&path), q).unwrap();
        assert!(
            src.to_string().contains("is not a teacher-score cache"),
            "{src}"
        );
        assert_eq!(scores.rows(), 41);
    }
}
