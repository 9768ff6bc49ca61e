//! Labelled sets from a folder of pictures, in the ImageFolder convention
//! of torchvision and Keras: `DIR/<class name>/**/<picture>`.
//!
//! Classes are the sub-folders of `DIR`, sorted by name (byte order);
//! pictures are sorted by path inside each class, so a folder always gives
//! the same set in the same order. Class folders are walked recursively,
//! following symbolic links (a link back to a folder being walked is an
//! error). Names starting with `.` are ignored (`.DS_Store`, `.git`), as
//! are plain files directly in `DIR`. Every other file in a class folder
//! must be a picture ([`super::pictures::PICTURE_EXTENSIONS`]) that
//! decodes, unless `skip_unreadable` is set: then the unreadable ones are
//! left out and counted.
//!
//! Loading reads every picture's header first (channels, size), settles the
//! format (the given `--channels`/`--size`, or the one the pictures agree
//! on), and only then decodes, in parallel with a progress bar.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use rayon::prelude::*;

use super::images::{ImageDims, Images, LabelledImages, PixelType};
use super::pictures::{
    PictureFormat, PictureHeader, ResizeFilter, is_picture, read_header, read_picture,
};
use crate::limits::ensure_fits;
use crate::output::Progress;

/// Most classes a model can have: labels are bytes.
pub const MAX_CLASSES: usize = 256;

/// How pictures become images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PictureOptions {
    /// 1 (luma) or 3 (RGB); `None`: what the pictures have (all must agree).
    pub channels: Option<usize>,
    /// `(height, width)`; `None`: the pictures' own size (all must agree).
    pub size: Option<(usize, usize)>,
    /// Used when a picture's size differs from `size`; `None`: the
    /// default ([`ResizeFilter::Triangle`]).
    pub filter: Option<ResizeFilter>,
    /// Leave out files that are not readable pictures (counted) instead of
    /// failing.
    pub skip_unreadable: bool,
}

impl PictureOptions {
    /// The format these options fix for a model of `dims`: used to read a
    /// test folder or photos like the training set.
    pub fn for_dims(dims: ImageDims, filter: ResizeFilter, skip_unreadable: bool) -> Self {
        Self {
            channels: Some(dims.channels),
            size: Some((dims.height, dims.width)),
            filter: Some(filter),
            skip_unreadable,
        }
    }
}

/// A folder's labelled set, with the files left out.
#[derive(Debug)]
pub struct FolderSet {
    /// Images (`u8` pixels), labels and class names (the folder names).
    pub set: LabelledImages,
    /// Files left out with `skip_unreadable`, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Reads a picture folder; `classes`, when given, are the class names the
/// labels must use (a test folder read against a training set: each of
/// its class folders must be one of them).
pub fn load_picture_folder(
    dir: &Path,
    classes: Option<&[String]>,
    opts: &PictureOptions,
    progress: Progress,
) -> Result<FolderSet> {
    if let Some(c) = opts.channels {
        ensure!(c == 1 || c == 3, "--channels {c}: 1 (gray) or 3 (RGB)");
    }
    let found = class_folders(dir)?;
    let class_names: Vec<String> = match classes {
        Some(names) => names.to_vec(),
        None => found.iter().map(|(name, _)| name.clone()).collect(),
    };
    if classes.is_none() {
        ensure!(
            found.len() >= 2,
            "{}: only one class folder ({:?}); a classifier needs at least two",
            dir.display(),
            found.first().map_or("", |(n, _)| n.as_str())
        );
        ensure!(
            found.len() <= MAX_CLASSES,
            "{}: {} class folders; at most {MAX_CLASSES} classes (labels are bytes)",
            dir.display(),
            found.len()
        );
    }
    let mut files: LabelledFiles = Vec::new();
    let mut skipped = Vec::new();
    for (name, path) in &found {
        let label = class_names
            .iter()
            .position(|c| c == name)
            .with_context(|| {
                format!(
                    "{}: class folder {name:?} is not one of the trained classes ({})",
                    dir.display(),
                    class_names.join(", ")
                )
            })?;
        let label = u8::try_from(label).context("class index")?;
        let mut pictures = Vec::new();
        walk(path, &mut vec![canonical(path)?], &mut pictures)?;
        pictures.sort();
        let before = files.len();
        for p in pictures {
            if is_picture(&p) {
                files.push((p, label));
            } else if opts.skip_unreadable {
                skipped.push((p, "not a picture file".to_string()));
            } else {
                bail!(
                    "{}: not a picture file (expected one of .png .jpg .jpeg .bmp .pgm .ppm \
                     .pnm; --skip-unreadable leaves such files out)",
                    p.display()
                );
            }
        }
        ensure!(
            files.len() > before,
            "class folder {} has no pictures",
            path.display()
        );
    }

    // Headers first: the format is settled before any pixel is decoded.
    let headers: Vec<Result<PictureHeader>> =
        files.par_iter().map(|(p, _)| read_header(p)).collect();
    let (files, headers) = keep_readable(files, headers, opts.skip_unreadable, &mut skipped)?;
    let format = settle_format(&files, &headers, opts)?;
    let per_image = format.channels * format.height * format.width;
    ensure_fits(
        &format!(
            "{} pictures of {}x{}x{} (give --size HxW to shrink them)",
            files.len(),
            format.channels,
            format.height,
            format.width
        ),
        (files.len() as u128) * (per_image as u128) * 5,
    )?;

    let bar = progress.bar("Decoding", files.len() as u64);
    let decoded: Vec<Result<Vec<u8>>> = files
        .par_iter()
        .map(|(p, _)| {
            let r = read_picture(p, &format);
            bar.inc(1);
            r
        })
        .collect();
    drop(bar);
    let (files, pixels) = keep_readable(files, decoded, opts.skip_unreadable, &mut skipped)?;
    for (name, path) in &found {
        ensure!(
            files
                .iter()
                .any(|(_, l)| class_names.get(usize::from(*l)) == Some(name)),
            "class folder {} has no readable pictures",
            path.display()
        );
    }
    let labels = files.iter().map(|(_, l)| *l).collect();
    let pixels = pixels
        .into_iter()
        .flatten()
        .map(PixelType::from_byte)
        .collect();
    Ok(FolderSet {
        set: LabelledImages {
            images: Images {
                dims: ImageDims {
                    channels: format.channels,
                    height: format.height,
                    width: format.width,
                },
                pixel_type: PixelType::U8,
                pixels,
            },
            labels,
            class_names,
        },
        skipped,
    })
}

/// Writes `set` as a picture folder that [`load_picture_folder`] reads
/// back: `dir/<class name>/<index>.png`, the index (five digits or more)
/// being the image's place in `set`. The pixels must be bytes, with 1
/// (gray) or 3 (RGB) channels; class names must be folder names (not
/// empty, no `/`, not starting with `.`). Only classes with images get a
/// folder. Writes into `dir` as it is: give it a fresh directory (e.g.
/// through `output::replace_dir`).
pub fn save_picture_folder(set: &LabelledImages, dir: &Path) -> Result<()> {
    let d = set.images.dims;
    ensure!(
        set.images.pixel_type == PixelType::U8,
        "pictures hold bytes: the set has {}",
        set.images.pixel_type
    );
    ensure!(
        d.channels == 1 || d.channels == 3,
        "pictures are gray or RGB: the set has {} channels",
        d.channels
    );
    let (w, h) = (u32::try_from(d.width)?, u32::try_from(d.height)?);
    let mut folders = Vec::with_capacity(set.num_classes());
    for (c, name) in set.class_names.iter().enumerate() {
        ensure!(
            !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']),
            "class {c} ({name:?}) is not a folder name"
        );
        let folder = dir.join(name);
        if set.labels.iter().any(|&l| usize::from(l) == c) {
            std::fs::create_dir_all(&folder)
                .with_context(|| format!("creating {}", folder.display()))?;
        }
        folders.push(folder);
    }
    let plane = d.height * d.width;
    (0..set.len()).into_par_iter().try_for_each(|i| {
        let bytes: Vec<u8> = set
            .images
            .image(i)
            .iter()
            .map(|&v| PixelType::to_byte(v))
            .collect();
        let path = folders[usize::from(set.labels[i])].join(format!("{i:05}.png"));
        let saved = if d.channels == 1 {
            image::GrayImage::from_raw(w, h, bytes).map(|p| p.save(&path))
        } else {
            // Channel-major to interleaved.
            let rgb = (0..3 * plane)
                .map(|k| bytes[(k % 3) * plane + k / 3])
                .collect();
            image::RgbImage::from_raw(w, h, rgb).map(|p| p.save(&path))
        };
        saved
            .context("image size")?
            .with_context(|| format!("writing {}", path.display()))
    })
}

/// The class folders of `dir`, sorted by name: sub-folders (or links to
/// folders) whose names do not start with `.`.
fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading folder {}", dir.display()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            bail!(
                "{}: class folder name {:?} is not valid UTF-8 (class names go into the \
                 model and the blob as text): rename it",
                dir.display(),
                entry.file_name()
            );
        };
        if name.starts_with('.') {
            continue;
        }
        // `metadata` follows links: a link to a folder is a class folder.
        let meta =
            std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            found.push((name, path));
        }
    }
    ensure!(
        !found.is_empty(),
        "{} has no class folders: expected {}/<class name>/<pictures>",
        dir.display(),
        dir.display()
    );
    found.sort();
    Ok(found)
}

fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))
}

/// Collects the files under `dir` (names starting with `.` left out);
/// `ancestors` are the canonical folders being walked, so a link back to
/// one of them is reported instead of followed forever.
fn walk(dir: &Path, ancestors: &mut Vec<PathBuf>, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading folder {}", dir.display()))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let meta =
            std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            let real = canonical(&path)?;
            if let Some(a) = ancestors.iter().find(|a| **a == real) {
                bail!(
                    "{}: symbolic link loop (leads back to {}, which contains it)",
                    path.display(),
                    a.display()
                );
            }
            ancestors.push(real);
            walk(&path, ancestors, out)?;
            ancestors.pop();
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Picture files with their labels, in set order.
type LabelledFiles = Vec<(PathBuf, u8)>;

/// Drops the files whose step failed when skipping (recording why), or
/// returns the first failure in file order.
fn keep_readable<T>(
    files: LabelledFiles,
    results: Vec<Result<T>>,
    skip: bool,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<(LabelledFiles, Vec<T>)> {
    let mut kept = Vec::with_capacity(files.len());
    let mut values = Vec::with_capacity(files.len());
    for (file, r) in files.into_iter().zip(results) {
        match r {
            Ok(v) => {
                kept.push(file);
                values.push(v);
            }
            Err(e) if skip => skipped.push((file.0, format!("{e:#}"))),
            Err(e) => {
                return Err(
                    e.context("unreadable picture (--skip-unreadable leaves such files out)")
                );
            }
        }
    }
    Ok((kept, values))
}

/// The format all pictures are read in: the options', or what every
/// picture agrees on (else an error naming two files that differ).
fn settle_format(
    files: &[(PathBuf, u8)],
    headers: &[PictureHeader],
    opts: &PictureOptions,
) -> Result<PictureFormat> {
    let first = headers.first().context("no readable pictures")?;
    let differing = |key: &dyn Fn(&PictureHeader) -> (usize, usize)| {
        headers
            .iter()
            .position(|h| key(h) != key(first))
            .map(|i| (&files[0].0, &files[i].0, &headers[i]))
    };
    let channels = match opts.channels {
        Some(c) => c,
        None => {
            if let Some((a, b, h)) = differing(&|h| (h.channels, 0)) {
                bail!(
                    "pictures differ in colour: {} has {} channel(s), {} has {}; give \
                     --channels 1 (gray) or 3 (RGB) to convert them all",
                    a.display(),
                    first.channels,
                    b.display(),
                    h.channels
                );
            }
            first.channels
        }
    };
    let (height, width) = match opts.size {
        Some(s) => s,
        None => {
            if let Some((a, b, h)) = differing(&|h| (h.height, h.width)) {
                bail!(
                    "pictures differ in size: {} is {}x{}, {} is {}x{} (height x width); give \
                     --size HxW to resize them all",
                    a.display(),
                    first.height,
                    first.width,
                    b.display(),
                    h.height,
                    h.width
                );
            }
            (first.height, first.width)
        }
    };
    Ok(PictureFormat {
        channels,
        height,
        width,
        filter: opts.filter.unwrap_or_default(),
    })
}
