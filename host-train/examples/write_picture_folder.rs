//! Writes Fashion-MNIST (Debian's package when installed, else the shipped
//! subset) as a picture folder, `OUT/<class>/<index>.png`, to try or time
//! the folder workflow on real pictures:
//!
//! ```sh
//! cargo run --release -p convrfm-train --example write_picture_folder -- /tmp/fm-png [LIMIT]
//! time convrfm data convert /tmp/fm-png --out /tmp/fm-idx    # decodes every picture
//! ```
//!
//! Class folders are named `0-T-shirt` ... `9-Ankle boot` (`/` replaced),
//! so their byte order is the label order.

use std::path::PathBuf;

use anyhow::{Context, Result};
use convrfm_train::data::{PixelType, Split, fashion_mnist};
use rayon::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .context("usage: write_picture_folder OUT [LIMIT]")?,
    );
    let limit = args.next().map(|l| l.parse::<usize>()).transpose()?;
    let (set, source) = fashion_mnist(Split::Train, limit)?;
    let folders: Vec<PathBuf> = set
        .class_names
        .iter()
        .enumerate()
        .map(|(c, name)| out.join(format!("{c}-{}", name.replace('/', "-"))))
        .collect();
    for f in &folders {
        std::fs::create_dir_all(f).with_context(|| format!("creating {}", f.display()))?;
    }
    let d = set.images.dims;
    (0..set.len())
        .into_par_iter()
        .try_for_each(|i| -> Result<()> {
            let px: Vec<u8> = set
                .images
                .image(i)
                .iter()
                .map(|&v| PixelType::to_byte(v))
                .collect();
            let path = folders[usize::from(set.labels[i])].join(format!("{i:05}.png"));
            image::GrayImage::from_raw(d.width as u32, d.height as u32, px)
                .context("image size")?
                .save(&path)
                .with_context(|| format!("writing {}", path.display()))
        })?;
    println!(
        "wrote {} pictures of {source} to {}",
        set.len(),
        out.display()
    );
    Ok(())
}
