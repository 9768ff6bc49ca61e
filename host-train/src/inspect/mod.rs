//! A trained model as pictures (`convrfm inspect`): what the patch-AGOP
//! learned and where the predictor looks.
//!
//! - `metric.png`: the learned `M = S^2` (the normalised AGOP of the kept
//!   iteration), index `channel*9 + row*3 + column`.
//! - `eigenvectors.png`: the top eigenvectors of `M` as 3x3 filters, the
//!   patch directions the kernel is most sensitive to.
//! - `gradients.png`: sample images and, per class, the magnitude of the
//!   class score's gradient with respect to every input pixel.
//! - `filters-layer-N.png`: for Deep ConvRFM, each feature layer's filters.
//! - `accuracy.png`: validation and test accuracy per iteration (and layer).

pub mod render;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use faer::MatRef;

use self::render::{Figure, Scale, Series, Tile, heat_map, line_chart, tile_grid};
use crate::data::{Images, LabelledImages};
use crate::fit::Model;
use crate::fit::features::featurise;
use crate::fit::linalg::symmetric_eigen;
use crate::fit::model::IterationRecord;
use crate::kernel::KernelBlocks;
use crate::kernel::agop::ImageIndex;
use crate::output::{Progress, replace_dir};

/// What `inspect` draws.
#[derive(Clone, Debug)]
pub struct InspectOptions {
    /// Eigenvectors of `M` drawn (largest first).
    pub eigenvectors: usize,
    /// Filters drawn per Deep ConvRFM feature layer.
    pub filters: usize,
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            eigenvectors: 8,
            filters: 16,
        }
    }
}

/// Up to `n` images of `set`, the first of each class in class order (so
/// the gradient maps show different classes).
pub fn one_per_class(set: &LabelledImages, n: usize) -> LabelledImages {
    let idx: Vec<usize> = (0..set.num_classes())
        .filter_map(|c| set.labels.iter().position(|&l| usize::from(l) == c))
        .take(n)
        .collect();
    set.select(&idx)
}

/// The first `per_class` images of every class of `set`, one row per
/// class, captioned with the class name: what `convrfm data show --png`
/// draws so a user sees the pictures as the model will.
pub fn sample_grid(set: &LabelledImages, per_class: usize) -> Result<Figure> {
    ensure!(per_class >= 1, "at least one image per class");
    let d = set.images.dims;
    let plane = d.height * d.width;
    let mut tiles = Vec::new();
    for c in 0..set.num_classes() {
        let members: Vec<usize> = (0..set.len())
            .filter(|&i| usize::from(set.labels[i]) == c)
            .take(per_class)
            .collect();
        for k in 0..per_class {
            let name = set.class_names.get(c).map_or("?", String::as_str);
            let (values, scale) = match members.get(k) {
                Some(&i) if d.channels == 3 => (set.images.image(i).to_vec(), Scale::Rgb),
                // Other channel counts: the first channel.
                Some(&i) => (set.images.image(i)[..plane].to_vec(), Scale::Gray),
                None => (vec![0.0; plane], Scale::Gray),
            };
            tiles.push(Tile {
                caption: if members.get(k).is_some() {
                    name.to_string()
                } else {
                    String::new()
                },
                height: d.height,
                width: d.width,
                values,
                scale,
                range: None,
            });
        }
    }
    tile_grid(
        &format!(
            "{} images {}, {} classes (first of each)",
            set.len(),
            d,
            set.num_classes()
        ),
        &tiles,
        per_class,
    )
}

/// Draws every figure of `model` into `dir` (created if missing), with
/// gradient maps on `samples`; returns the files written.
pub fn inspect(
    model: &Model,
    samples: &LabelledImages,
    opts: &InspectOptions,
    dir: &Path,
    progress: Progress,
) -> Result<Vec<PathBuf>> {
    let shape = model.shape()?;
    let (c, d, q) = (shape.channels(), shape.patch_dim(), shape.patch());
    let layer_note = if model.features.is_empty() {
        String::new()
    } else {
        format!(" (layer {})", model.features.len() + 1)
    };
    let s = model.metric.rows();
    let s = MatRef::from_row_major_slice(s, d, d);
    let m_mat = s * s;
    let m: Vec<f64> = (0..d * d).map(|ij| m_mat[(ij / d, ij % d)]).collect();
    let mut figures: Vec<(&str, Figure)> = vec![(
        "metric.png",
        heat_map(
            &format!(
                "Learned M = S^2 (normalised AGOP){layer_note}, index = channel*{} + row*{q} + col",
                q * q
            ),
            &m,
            d,
        )?,
    )];

    let (values, vectors) = symmetric_eigen("M", &m, d)?;
    let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
    let k = opts.eigenvectors.min(d);
    let tiles: Vec<Tile> = (0..k)
        .flat_map(|i| {
            let share = 100.0 * values[i].max(0.0) / total.max(f64::MIN_POSITIVE);
            patch_tiles(&vectors[i], (c, q), &format!("v{} {share:.0}%", i + 1))
        })
        .collect();
    figures.push((
        "eigenvectors.png",
        tile_grid(
            &format!(
                "Top {k} eigenvectors of M as {q}x{q} filters{layer_note} (caption: share of trace; channels of one vector share a scale)"
            ),
            &tiles,
            grid_columns(c),
        )?,
    ));

    figures.push(("gradients.png", gradient_figure(model, samples, progress)?));

    let mut channels = model.dims().channels;
    let layer_names: Vec<String> = (1..=model.features.len())
        .map(|l| format!("filters-layer-{l}.png"))
        .collect();
    for (l, layer) in model.features.iter().enumerate() {
        let n = opts.filters.min(layer.filters());
        let tiles: Vec<Tile> = (0..n)
            .flat_map(|f| {
                let w: Vec<f64> = layer.filter(f).iter().map(|&v| f64::from(v)).collect();
                patch_tiles(&w, (channels, q), &format!("f{}", f + 1))
            })
            .collect();
        figures.push((
            &layer_names[l],
            tile_grid(
                &format!(
                    "Layer {} feature filters W = Z S: first {n} of {}",
                    l + 1,
                    layer.filters()
                ),
                &tiles,
                grid_columns(channels),
            )?,
        ));
        channels = layer.filters();
    }

    if let Some(chart) = accuracy_chart(model)? {
        figures.push(("accuracy.png", chart));
    }

    // Every figure is drawn before anything is written, and the set is
    // written as a whole: a failure leaves no partial set.
    replace_dir(dir, |tmp| {
        for (name, figure) in &figures {
            figure.save(&tmp.join(name))?;
        }
        Ok(())
    })
    .with_context(|| format!("writing the figures to {}", dir.display()))?;
    Ok(figures.iter().map(|(name, _)| dir.join(name)).collect())
}

/// Tiles per grid row: four patch vectors per row.
fn grid_columns(channels: usize) -> usize {
    if channels <= 3 { 4 * channels } else { 8 }
}

/// A patch vector (`channels x side x side`) as tiles: one signed side x
/// side tile per channel for up to 3 channels, else one tile of the
/// per-position norm across channels.
fn patch_tiles(v: &[f64], (channels, side): (usize, usize), caption: &str) -> Vec<Tile> {
    let plane = side * side;
    let bound = v.iter().fold(0.0f64, |m, x| m.max(x.abs())) as f32;
    if channels <= 3 {
        (0..channels)
            .map(|ch| Tile {
                caption: if channels == 1 {
                    caption.to_string()
                } else {
                    format!("{caption} ch{ch}")
                },
                height: side,
                width: side,
                values: v[ch * plane..][..plane].iter().map(|&x| x as f32).collect(),
                scale: Scale::Diverging,
                // The channels of one vector share a scale, so a channel
                // the vector ignores shows as white.
                range: Some((-bound, bound)),
            })
            .collect()
    } else {
        let norms = (0..plane)
            .map(|p| {
                (0..channels)
                    .map(|ch| v[ch * plane + p].powi(2))
                    .sum::<f64>()
                    .sqrt() as f32
            })
            .collect();
        vec![Tile {
            caption: format!("{caption} |.| of {channels} ch"),
            height: side,
            width: side,
            values: norms,
            scale: Scale::Sequential,
            range: None,
        }]
    }
}

/// Per sample: the image, then per class `|d f_class / d pixel|` (norm over
/// channels), so the picture shows which pixels move each class score.
fn gradient_figure(model: &Model, samples: &LabelledImages, progress: Progress) -> Result<Figure> {
    ensure!(!samples.is_empty(), "no sample images to draw gradients on");
    model.check_inputs(&samples.images)?;
    let classes = model.classes();
    let grads = input_gradients(model, &samples.images, progress)?;
    let predicted = model.predict(&samples.images, progress)?;
    let im = &samples.images;
    let (h, w) = (im.dims.height, im.dims.width);
    let mut tiles = Vec::new();
    for (i, per_class) in grads.iter().enumerate() {
        let image = im.image(i);
        let (values, scale) = match im.dims.channels {
            3 => (image.to_vec(), Scale::Rgb),
            _ => (image[..h * w].to_vec(), Scale::Gray),
        };
        let name = |c: usize| model.class_names().get(c).map_or("?", |s| s.as_str());
        tiles.push(Tile {
            caption: format!(
                "{} -> {}",
                name(usize::from(samples.labels[i])),
                name(predicted[i])
            ),
            height: h,
            width: w,
            values,
            scale,
            range: None,
        });
        for (c, g) in per_class.iter().enumerate() {
            let magnitude = (0..h * w)
                .map(|p| {
                    (0..im.dims.channels)
                        .map(|ch| g[ch * h * w + p].powi(2))
                        .sum::<f64>()
                        .sqrt() as f32
                })
                .collect();
            tiles.push(Tile {
                caption: format!("d {}", name(c)),
                height: h,
                width: w,
                values: magnitude,
                scale: Scale::Sequential,
                range: None,
            });
        }
    }
    tile_grid(
        "Where the predictor looks: sample (true -> predicted), then |gradient| of each class score",
        &tiles,
        classes + 1,
    )
}

/// Gradient of every class score with respect to every input pixel, per
/// sample image: `samples x classes x (c*H*W)`. Patch gradients (the ones
/// the AGOP averages) are summed back onto the pixels each patch covers,
/// then carried back through the feature layers.
fn input_gradients(
    model: &Model,
    samples: &Images,
    progress: Progress,
) -> Result<Vec<Vec<Vec<f64>>>> {
    let kernel = model.kernel()?;
    let shape = kernel.shape();
    let train = featurise(&model.features, &model.training_data().images)?;
    let queries = featurise(&model.features, samples)?;
    let set = KernelBlocks::<f64>::new(&kernel, &train.pixels);
    let classes = model.classes();
    let per = shape.pixels();
    let index = ImageIndex::new(&train.pixels, per);
    let dims = model.feature_dims()?;
    let mut out = Vec::new();
    let phase = progress.bar("Gradients", samples.len() as u64);
    for query in queries.pixels.chunks_exact(per) {
        let g = set.pixel_gradients(&model.alpha, query, &index.find(query));
        let mut per_class = Vec::with_capacity(classes);
        for mut pixels in g {
            pixels.iter_mut().for_each(|v| *v /= model.scale);
            // Back through the feature layers, last first.
            for (layer, d) in model.features.iter().zip(&dims).rev() {
                pixels = layer.adjoint(&pixels, d.height, d.width);
            }
            per_class.push(pixels);
        }
        out.push(per_class);
        phase.inc(1);
    }
    Ok(out)
}

/// Validation and test accuracy (of each iteration's chosen lambda) per
/// iteration, one pair of lines per layer; `None` without a history.
fn accuracy_chart(model: &Model) -> Result<Option<Figure>> {
    let layers = model.history.iter().map(|r| r.layer).max().unwrap_or(0);
    let mut series = Vec::new();
    for layer in 1..=layers {
        let prefix = if layers > 1 {
            format!("layer {layer} ")
        } else {
            String::new()
        };
        let runs = model.history.iter().filter(|r| r.layer == layer);
        let points = |pick: fn(&IterationRecord) -> Option<f64>| -> Vec<(f64, f64)> {
            runs.clone()
                .filter_map(|r| Some((r.iteration as f64, 100.0 * pick(r)?)))
                .collect()
        };
        for (name, pts) in [
            ("selection", points(|l| l.selection_accuracy)),
            ("test", points(|l| l.test_accuracy)),
        ] {
            if !pts.is_empty() {
                series.push(Series {
                    name: format!("{prefix}{name}"),
                    points: pts,
                });
            }
        }
    }
    if series.is_empty() {
        return Ok(None);
    }
    Ok(Some(line_chart(
        "Accuracy per ConvRFM iteration (iteration 0: M = I)",
        "iteration",
        "accuracy (%)",
        &series,
    )?))
}
