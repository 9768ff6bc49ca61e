//! Regenerates `data/fashion-mnist/` (the subset built into `convrfm` for
//! the offline demo and the tests) from Debian's `dataset-fashion-mnist`:
//! the first 2,000 training and first 1,000 t10k images and labels, pixel
//! and label bytes unchanged, only the count in each header reduced.
//!
//! `cargo run -p convrfm-train --example regenerate_vendored_subset`

use std::path::Path;

use anyhow::{Context, Result, bail};
use convrfm_train::data::FASHION_MNIST_DEBIAN_DIR;
use convrfm_train::data::idx::{IdxArray, IdxData, read_idx, write_idx};

fn main() -> Result<()> {
    let src = Path::new(FASHION_MNIST_DEBIAN_DIR);
    let dst = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fashion-mnist");
    std::fs::create_dir_all(&dst).with_context(|| format!("creating {}", dst.display()))?;
    for (split, n) in [("train", 2000usize), ("t10k", 1000)] {
        for kind in ["images-idx3", "labels-idx1"] {
            let name = format!("{split}-{kind}-ubyte.gz");
            let full = read_idx(&src.join(&name))
                .with_context(|| "install the Debian package dataset-fashion-mnist")?;
            let IdxData::U8(bytes) = &full.data else {
                bail!("{name}: expected u8 data");
            };
            let per_item: usize = full.dims[1..].iter().product();
            let mut dims = full.dims.clone();
            dims[0] = n;
            let subset = IdxArray {
                dims,
                data: IdxData::U8(bytes[..n * per_item].to_vec()),
            };
            write_idx(&dst.join(&name), &subset, true)
                .with_context(|| format!("writing {name}"))?;
            println!("wrote {}", dst.join(&name).display());
        }
    }
    Ok(())
}
