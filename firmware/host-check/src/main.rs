//! Host reference for the firmware test: classifies raw images with
//! `convrfm-core` on the build machine and writes exactly what the firmware
//! writes, so `cmp` can prove the two agree bit for bit.
//!
//! ```text
//! convrfm-host-check BLOB IMAGES OUT [LABELS]
//! ```
//!
//! - `IMAGES`: `n * c*H*W` bytes, images back to back (no header);
//! - `OUT`: per image, the class (1 byte) then every class score (i64,
//!   little-endian): `convrfm_core::wire`'s record, which the firmware
//!   writes;
//! - `LABELS` (optional): `n` label bytes; prints the blob's accuracy.

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Instant;
use std::{env, fs};

use convrfm_core::Model;
use convrfm_core::wire::{MAX_RECORD_CLASSES, record_len, write_record};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convrfm-host-check: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = env::args().skip(1).collect();
    let (blob_path, images_path, out_path, labels_path) = match args.as_slice() {
        [b, i, o] => (b, i, o, None),
        [b, i, o, l] => (b, i, o, Some(l)),
        _ => return Err("usage: convrfm-host-check BLOB IMAGES OUT [LABELS]".into()),
    };
    let read = |p: &str| fs::read(p).map_err(|e| format!("reading {p}: {e}"));
    let blob = read(blob_path)?;
    let model = Model::from_bytes(&blob).map_err(|e| format!("{blob_path}: {e}"))?;
    let images = read(images_path)?;
    let pixels = model.shape().pixels();
    if images.is_empty() || images.len() % pixels != 0 {
        return Err(format!(
            "{images_path}: {} bytes is not a whole number of {pixels}-byte images",
            images.len()
        ));
    }
    // The firmware's output format stores the class in one byte.
    if model.classes() > MAX_RECORD_CLASSES {
        return Err(format!(
            "{} classes do not fit a class byte",
            model.classes()
        ));
    }
    let labels = labels_path.map(|p| read(p)).transpose()?;
    let n = images.len() / pixels;
    if let Some(l) = &labels
        && l.len() < n
    {
        return Err(format!("{} labels for {n} images", l.len()));
    }

    let mut scratch = vec![0u8; model.scratch_len()];
    let mut scores = vec![0i64; model.classes()];
    let mut out = Vec::with_capacity(n * record_len(model.classes()));
    let mut correct = 0usize;
    let start = Instant::now();
    for (i, image) in images.chunks_exact(pixels).enumerate() {
        let p = model
            .predict_scores(image, &mut scratch, &mut scores)
            .map_err(|e| format!("image {i}: {e}"))?;
        let class = u8::try_from(p.class).map_err(|_| format!("class {}", p.class))?;
        let Ok(()) = write_record::<Infallible>(class, &scores, |bytes| {
            out.extend_from_slice(bytes);
            Ok(())
        });
        if labels.as_ref().and_then(|l| l.get(i)) == Some(&class) {
            correct += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    fs::write(out_path, &out).map_err(|e| format!("writing {out_path}: {e}"))?;

    println!(
        "host: {n} images, {} centres, rank {}, {:.2} ms per inference on this machine",
        model.centres(),
        model.rank(),
        1e3 * secs / n as f64
    );
    if labels.is_some() {
        println!(
            "host accuracy: {:.2} % ({correct}/{n})",
            100.0 * correct as f64 / n as f64
        );
    }
    Ok(())
}
