//! Writes Fashion-MNIST (Debian's package when installed, else the shipped
//! subset) as a picture folder, `OUT/<class>/<index>.png`, to try or time
//! the folder workflow on real pictures:
//!
//! ```sh
//! cargo run --release -p convrfm-train --example write_picture_folder -- /tmp/fm-png [LIMIT]
//! time convrfm data convert /tmp/fm-png --out /tmp/fm-idx    # decodes every picture
//! ```
//!
//! Class folders are named `0-T-shirt-top` ... `9-Ankle boot` (`/`
//! replaced), so their byte order is the label order.

use std::path::PathBuf;

use anyhow::{Context, Result};
use convrfm_train::data::folder::save_picture_folder;
use convrfm_train::data::{Split, fashion_mnist};
use convrfm_train::output::replace_dir;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .context("usage: write_picture_folder OUT [LIMIT]")?,
    );
    let limit = args.next().map(|l| l.parse::<usize>()).transpose()?;
    let (mut set, source) = fashion_mnist(Split::Train, limit)?;
    set.class_names = (set.class_names.iter().enumerate())
        .map(|(c, name)| format!("{c}-{}", name.replace('/', "-")))
        .collect();
    replace_dir(&out, |tmp| save_picture_folder(&set, tmp))
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} pictures of {source} to {}",
        set.len(),
        out.display()
    );
    Ok(())
}
