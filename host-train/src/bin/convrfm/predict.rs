//! `convrfm predict`: classify picture files (with the preprocessing the
//! model recorded) or IDX / `.npy` image files, with a blob through the
//! integer core or with a model file. Every input is read and checked
//! before the first line is printed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use convrfm_train::data::numpy::NumpyOptions;
use convrfm_train::data::pictures::is_picture;
use convrfm_train::data::{Images, PixelType};
use convrfm_train::export::run::blob_predict;
use convrfm_train::fit::Model;
use convrfm_train::fit::readout::argmax_rows;
use convrfm_train::output::Progress;
use rayon::prelude::*;

use crate::load::unlabelled;
use crate::{blob_class_names, like_blob, like_model, parse_blob, read_blob};

/// What classifies: a model file or a parsed blob.
enum Classifier<'b> {
    Model(Model),
    Blob(convrfm_core::Model<'b>),
}

/// One classified image.
pub struct Answer {
    /// The predicted class.
    pub class: usize,
    /// Every class's score.
    pub scores: Vec<f64>,
}

/// Runs the command.
pub fn predict(
    blob: Option<&Path>,
    model: Option<&Path>,
    inputs: &[PathBuf],
    json: bool,
    channels_last: bool,
    progress: Progress,
) -> Result<()> {
    let model = model.map(Model::load).transpose()?;
    let bytes = blob
        .map(|b| read_blob(b).map(|bytes| (b, bytes)))
        .transpose()?;
    let core = bytes
        .as_ref()
        .map(|(b, bytes)| parse_blob(b, bytes))
        .transpose()?;
    let classifier = match (model, core) {
        (Some(m), _) => Classifier::Model(m),
        (None, Some(c)) => Classifier::Blob(c),
        (None, None) => anyhow::bail!("give --blob or --model"),
    };
    let blob_names = match &classifier {
        Classifier::Blob(c) => blob_class_names(c),
        Classifier::Model(_) => Vec::new(),
    };
    // Blobs take byte pixels only; a model, its training pixel type.
    let (like, pixel_type) = match &classifier {
        Classifier::Model(m) => (like_model(m), m.pixel_type()),
        Classifier::Blob(c) => (like_blob(c, &blob_names), PixelType::U8),
    };
    let dims = like.dims;
    let numpy = NumpyOptions {
        channels_last,
        ..NumpyOptions::default()
    };
    let sets: Vec<Images> = inputs
        .par_iter()
        .map(|p| unlabelled(p, &like, pixel_type, &numpy))
        .collect::<Result<_>>()?;
    let all = Images {
        dims,
        pixel_type,
        pixels: sets.iter().flat_map(|s| s.pixels.iter().copied()).collect(),
    };
    let answers: Vec<Answer> = match &classifier {
        Classifier::Model(m) => {
            let scores = m.scores(&all, progress)?;
            argmax_rows(&scores)
                .into_iter()
                .enumerate()
                .map(|(i, class)| Answer {
                    class,
                    scores: scores.row(i).to_vec(),
                })
                .collect()
        }
        Classifier::Blob(c) => {
            let scale = f64::from(c.alpha_scale());
            blob_predict(c, &all, progress)?
                .into_iter()
                .map(|(class, s)| Answer {
                    class,
                    scores: s.iter().map(|&v| v as f64 * scale).collect(),
                })
                .collect()
        }
    };
    let mut answers = answers.into_iter();
    for (set, path) in sets.iter().zip(inputs) {
        for i in 0..set.len() {
            let a = answers.next().context("one answer per image")?;
            let label = if is_picture(path) {
                path.display().to_string()
            } else {
                format!("{}[{i}]", path.display())
            };
            print_answer(&label, &a, like.class_names, json, None)?;
        }
    }
    Ok(())
}

/// Prints one answer as text or a JSON line; `running` is the correct
/// answers and labelled images so far, where labels are known.
pub fn print_answer(
    input: &str,
    a: &Answer,
    names: &[String],
    json: bool,
    running: Option<(usize, usize)>,
) -> Result<()> {
    let score = a.scores.get(a.class).copied().unwrap_or(f64::NAN);
    let runner_up = a
        .scores
        .iter()
        .enumerate()
        .filter(|&(c, _)| c != a.class)
        .map(|(_, &v)| v)
        .fold(f64::NEG_INFINITY, f64::max);
    let margin = score - runner_up;
    let name = names.get(a.class).map_or("?", String::as_str);
    let accuracy = running.map(|(correct, seen)| 100.0 * correct as f64 / seen.max(1) as f64);
    if json {
        let mut line = serde_json::json!({
            "input": input,
            "class": a.class,
            "name": name,
            "score": score,
            "margin": margin,
            "scores": a.scores,
        });
        if let (Some(acc), Some(map)) = (accuracy, line.as_object_mut()) {
            map.insert("running_accuracy".into(), acc.into());
        }
        say!("{line}");
    } else {
        let running = match (running, accuracy) {
            (Some((correct, seen)), Some(acc)) => {
                format!("  accuracy {acc:.2} % ({correct}/{seen})")
            }
            _ => String::new(),
        };
        say!(
            "{input}: {} {}  score {score:.4}  margin {margin:.4}{running}",
            a.class,
            name.escape_debug()
        );
    }
    Ok(())
}
