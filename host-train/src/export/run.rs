//! Running a blob on the host through `convrfm-core`, the one
//! implementation of the device's integer arithmetic: what `eval --blob`,
//! `predict` and the export's integer test figures use.

use anyhow::Result;
use rayon::prelude::*;

use super::device::to_u8;
use crate::data::{ImageDims, Images, PixelType};
use crate::output::Progress;

/// A parsed blob's integer predictions, in parallel over images: per image
/// the predicted class and every class's integer score. The images must
/// have the blob's shape and be byte images (the pixel type blobs are made
/// for).
pub fn blob_predict(
    model: &convrfm_core::Model<'_>,
    images: &Images,
    progress: Progress,
) -> Result<Vec<(usize, Vec<i64>)>> {
    images.ensure_like(
        ImageDims::of(&model.shape()),
        PixelType::U8,
        "images",
        "the blob expects",
    )?;
    let phase = progress.bar("Blob", images.len() as u64);
    images
        .pixels
        .par_chunks(images.pixels_per_image())
        .map_init(
            || (vec![0u8; model.scratch_len()], vec![0i64; model.classes()]),
            |(scratch, scores), img| {
                let px: Vec<u8> = img.iter().map(|v| to_u8(*v)).collect();
                let p = model.predict_scores(&px, scratch, scores)?;
                phase.inc(1);
                Ok((usize::from(p.class), scores.clone()))
            },
        )
        .collect()
}
