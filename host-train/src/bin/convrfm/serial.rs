//! `convrfm serial`: classify images on a board that runs a convrfm
//! firmware, over a serial port (`convrfm_train::link`). The board says
//! which model it runs before any image is read, so images of the wrong
//! shape fail before the first one is sent.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use convrfm_train::data::{ImageDims, Images, Like, PixelType, ResizeFilter, Split, holds_labels};
use convrfm_train::link::Board;
use convrfm_train::output::{Progress, check_writable, write_atomic};

use crate::args::SerialArgs;
use crate::load::{DataSpec, labelled, source, unlabelled};
use crate::predict::{Answer, print_answer};

/// Runs the command.
pub fn serial(args: &SerialArgs, progress: Progress) -> Result<()> {
    ensure!(
        args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 86_400.0,
        "--timeout must be a number of seconds above 0 and at most a day, got {}",
        args.timeout
    );
    ensure!(args.baud > 0, "--baud must be above 0");
    args.out.as_deref().map(check_writable).transpose()?;
    let timeout = Duration::from_secs_f64(args.timeout);
    let port = serialport::new(&args.port, args.baud)
        .timeout(timeout)
        .open()
        .with_context(|| format!("opening serial port {}", args.port))?;
    let mut board =
        Board::connect(port, timeout).with_context(|| format!("the board on {}", args.port))?;
    let info = *board.info();
    let names = board.class_names().to_vec();
    let dims = ImageDims {
        channels: info.channels,
        height: info.height,
        width: info.width,
    };
    say!(
        "board on {}: {dims} images, {} classes, blob of {} bytes with CRC-32 {:08x}",
        args.port,
        info.classes,
        info.blob_len,
        info.blob_crc
    );
    let like = Like {
        dims,
        class_names: &names,
        filter: ResizeFilter::from_core(info.resize),
        what: "the board's model",
    };
    let (images, labels, inputs) = load(args, &like, progress)?;

    let n = images.len();
    let phase = progress.bar("Board", n as u64);
    let mut records = Vec::with_capacity(n * info.record_len());
    let (mut correct, mut seen) = (0, 0);
    for (i, image) in images
        .pixels
        .chunks_exact(images.pixels_per_image())
        .enumerate()
    {
        let bytes: Vec<u8> = image.iter().map(|&v| PixelType::to_byte(v)).collect();
        let reply = board
            .classify(&bytes)
            .with_context(|| format!("{} (image {i} of {n})", inputs.name(i)))?;
        let running = labels.as_ref().and_then(|l| l.get(i)).map(|&label| {
            seen += 1;
            correct += usize::from(usize::from(label) == reply.class);
            (correct, seen)
        });
        let scale = f64::from(info.alpha_scale);
        let answer = Answer {
            class: reply.class,
            scores: reply.scores.iter().map(|&s| s as f64 * scale).collect(),
        };
        print_answer(&inputs.name(i), &answer, &names, args.json, running)?;
        records.extend_from_slice(&reply.record);
        phase.inc(1);
    }
    drop(phase);
    if seen > 0 && !args.json {
        say!(
            "accuracy {:.2} % on {seen} images ({correct} correct)",
            100.0 * correct as f64 / seen as f64
        );
    }
    if let Some(out) = &args.out {
        write_atomic(out, |w| w.write_all(&records))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// How images are named in the output.
enum Inputs {
    /// `FILE[i]`.
    File(PathBuf),
    /// A single picture file.
    Picture(PathBuf),
    /// Fashion-MNIST's test images: `test[i]`.
    Default,
}

impl Inputs {
    fn name(&self, i: usize) -> String {
        match self {
            Inputs::File(p) => format!("{}[{i}]", p.display()),
            Inputs::Picture(p) => p.display().to_string(),
            Inputs::Default => format!("test[{i}]"),
        }
    }
}

/// The images to send and their labels where there are any: a labelled
/// set as `eval --images` reads it (Fashion-MNIST's test images by
/// default), or, without labels, a picture file or an IDX / `.npy` image
/// file as `predict` reads it.
fn load(
    args: &SerialArgs,
    like: &Like<'_>,
    progress: Progress,
) -> Result<(Images, Option<Vec<u8>>, Inputs)> {
    let read = args.format.read_options();
    let unlabelled_file = match &args.images {
        Some(p) if args.labels.is_none() && !holds_labels(p) => Some(p),
        _ => None,
    };
    let Some(path) = unlabelled_file else {
        let set = labelled(
            DataSpec {
                source: source(&args.images, &args.labels)?,
                split: Split::Test,
                limit: args.limit,
                limit_flag: "--limit",
                what: "images",
                read: &read,
                like: Some(*like),
            },
            progress,
        )?;
        set.images
            .ensure_like(like.dims, PixelType::U8, "images", like.what)?;
        set.ensure_labels_below(like.class_names.len(), like.what)?;
        let inputs = args.images.clone().map_or(Inputs::Default, Inputs::File);
        return Ok((set.images, Some(set.labels), inputs));
    };
    let mut images = unlabelled(path, like, PixelType::U8, &read.numpy)?;
    if let Some(limit) = args.limit {
        ensure!(
            (1..=images.len()).contains(&limit),
            "--limit {limit}: {} holds {} images",
            path.display(),
            images.len()
        );
        images.pixels.truncate(limit * images.pixels_per_image());
    }
    let inputs = if convrfm_train::data::pictures::is_picture(path) {
        Inputs::Picture(path.to_path_buf())
    } else {
        Inputs::File(path.to_path_buf())
    };
    Ok((images, None, inputs))
}
