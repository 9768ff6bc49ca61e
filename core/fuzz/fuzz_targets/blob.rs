//! Any bytes into `Model::from_bytes`; when they parse, `predict`,
//! `predict_scores` and `kernel_value` on an image derived from the input,
//! and a re-encode from the accessors that must reproduce the blob exactly
//! (the format is canonical: a parsed model has one encoding).
//!
//! Each input is tried twice: as given, and with its total-length field and
//! CRC trailer recomputed, so mutations reach the validation behind the CRC.
#![no_main]

use convrfm_core::{BlobParts, Model, crc32, encode, encoded_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 76 {
        let mut fixed = data.to_vec();
        let n = fixed.len();
        fixed[36..40].copy_from_slice(&(n as u32).to_le_bytes());
        let crc = crc32(&fixed[..n - 4]);
        fixed[n - 4..].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});

fn check(bytes: &[u8]) {
    let Ok(model) = Model::from_bytes(bytes) else {
        return;
    };
    assert!(model.classes() >= 2 && model.centres() >= 1);
    assert_eq!(model.class_names().count(), model.classes());

    let pixels = model.shape().pixels();
    let image: Vec<u8> = (0..pixels).map(|i| bytes[i % bytes.len()]).collect();
    let mut scratch = vec![0u8; model.scratch_len()];
    let p = model.predict(&image, &mut scratch).expect("valid inputs");
    assert!(usize::from(p.class) < model.classes());
    assert!(p.margin >= 0);
    let mut scores = vec![0i64; model.classes()];
    let q = model
        .predict_scores(&image, &mut scratch, &mut scores)
        .expect("valid inputs");
    assert_eq!(p, q);
    assert_eq!(scores[usize::from(p.class)], p.score);
    model
        .kernel_value(&image, model.centres() - 1, &mut scratch)
        .expect("valid inputs");

    // Re-encode from the accessors.
    let s = model.shape();
    let d = s.patch_dim();
    let w: Vec<i8> = model.w_bytes().iter().map(|&b| b as i8).collect();
    assert_eq!(w.len(), d * model.rank());
    let mut centres = Vec::new();
    for i in 0..model.centres() {
        centres.extend_from_slice(model.centre_bytes(i).expect("centre"));
    }
    let alpha: Vec<i16> = (0..model.centres())
        .flat_map(|i| (0..model.classes()).map(move |o| (i, o)))
        .map(|(i, o)| model.alpha(i, o).expect("alpha"))
        .collect();
    let names: Vec<&str> = model.class_names().collect();
    let parts = BlobParts {
        channels: s.channels() as u16,
        height: s.height() as u16,
        width: s.width() as u16,
        depth: s.depth() as u8,
        pixel_bits: model.pixel_bits(),
        rank: model.rank() as u8,
        kind: model.kind(),
        resize: model.resize_filter(),
        u_mult: model.u_mult(),
        alpha_scale: model.alpha_scale(),
        expected_accuracy_bp: model.expected_accuracy_bp().unwrap_or(0),
        centre_count: model.centres() as u16,
        w: &w,
        centres: &centres,
        alpha: &alpha,
        class_names: &names,
    };
    let n = encoded_len(&parts).expect("length");
    let mut out = vec![0u8; n];
    assert_eq!(encode(&parts, &mut out), Ok(bytes.len()));
    assert_eq!(out, bytes, "re-encoding changed the blob");
}
