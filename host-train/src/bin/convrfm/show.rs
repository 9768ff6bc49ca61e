//! `convrfm data show`: what convrfm sees in a data set, so a user can
//! check a folder, CSV or NumPy file before training on it: source,
//! shape, pixel type and range, class counts, the first images drawn as
//! text, and optionally a PNG grid of the first images of every class.

use std::path::Path;

use anyhow::{Result, ensure};
use convrfm_train::data::{Images, Source, Split, holds_labels, load_image_file};
use convrfm_train::inspect::sample_grid;
use convrfm_train::output::{Progress, check_writable};

use crate::args::FormatArgs;
use crate::load::{DataSpec, labelled};

/// Darkest to brightest.
const RAMP: &[u8] = b" .:-=+*#%@";
/// Widest text preview; larger images are sampled.
const PREVIEW_COLUMNS: usize = 56;

/// What `data show` draws.
pub struct Preview<'a> {
    /// Images drawn as text.
    pub text: usize,
    /// A PNG grid of the first images of every class, written here.
    pub png: Option<&'a Path>,
    /// Images per class in the grid.
    pub per_class: usize,
}

/// Runs the command: a labelled set when PATH names one (or labels are
/// given), else unlabelled IDX or `.npy` images.
pub fn show_data(
    path: &Path,
    labels: Option<&Path>,
    preview: Preview<'_>,
    format: &FormatArgs,
    progress: Progress,
) -> Result<()> {
    if let Some(png) = preview.png {
        check_writable(png)?;
    }
    let read = format.read_options();
    if labels.is_none() && !holds_labels(path) {
        let images = load_image_file(path, &read.numpy)?;
        say!(
            "{}: {} images {} ({}), no labels",
            path.display(),
            images.len(),
            images.dims,
            images.pixel_type
        );
        say_range(&images)?;
        ensure!(
            preview.png.is_none(),
            "--png draws images by class: give the labels too"
        );
        for i in 0..preview.text.min(images.len()) {
            say!("image {i}:");
            draw(&images, i)?;
        }
        return Ok(());
    }
    let set = labelled(
        DataSpec {
            source: Some(Source::detect(path, labels)?),
            split: Split::Train,
            limit: None,
            limit_flag: "",
            what: "data",
            read: &read,
            like: None,
        },
        progress,
    )?;
    say_range(&set.images)?;
    let mut counts = vec![0usize; set.num_classes()];
    for &l in &set.labels {
        if let Some(c) = counts.get_mut(usize::from(l)) {
            *c += 1;
        }
    }
    say!("class  images  name");
    for (c, (n, name)) in counts.iter().zip(&set.class_names).enumerate() {
        say!("{c:>5}  {n:>6}  {}", name.escape_debug());
    }
    for i in 0..preview.text.min(set.len()) {
        let l = usize::from(set.labels[i]);
        say!(
            "image {i}: class {l} {}",
            set.class_names
                .get(l)
                .map_or("?".into(), |n| n.escape_debug().to_string())
        );
        draw(&set.images, i)?;
    }
    if let Some(png) = preview.png {
        sample_grid(&set, preview.per_class)?.save(png)?;
        say!("wrote {}", png.display());
    }
    Ok(())
}

fn say_range(images: &Images) -> Result<()> {
    let (lo, hi) = images
        .pixels
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    say!("pixel values from {lo} to {hi} (as the model sees them)");
    Ok(())
}

/// Draws image `i` as text: the channels' mean, scaled to the image's own
/// range, sampled down to at most [`PREVIEW_COLUMNS`] columns.
fn draw(images: &Images, i: usize) -> Result<()> {
    let d = images.dims;
    let img = images.image(i);
    let plane = d.height * d.width;
    let mean: Vec<f32> = (0..plane)
        .map(|p| (0..d.channels).map(|c| img[c * plane + p]).sum::<f32>() / d.channels as f32)
        .collect();
    let (lo, hi) = mean
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let step = d.width.div_ceil(PREVIEW_COLUMNS).max(1);
    // Text cells are about twice as tall as wide: every other sampled row.
    for y in (0..d.height).step_by(2 * step) {
        let line: String = (0..d.width)
            .step_by(step)
            .map(|x| {
                let v = mean[y * d.width + x];
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
                let k = ((t * (RAMP.len() - 1) as f32).round() as usize).min(RAMP.len() - 1);
                char::from(RAMP[k])
            })
            .collect();
        say!("  |{line}|");
    }
    Ok(())
}
