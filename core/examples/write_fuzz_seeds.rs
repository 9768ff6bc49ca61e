//! Writes the seed corpus of the fuzz target `blob`:
//! `cargo run -p convrfm-core --example write_fuzz_seeds` (from anywhere;
//! the files go to `core/fuzz/corpus/blob/seed-*.blob`). The test
//! `fuzz_seeds_are_valid_blobs` checks they still parse.

// A host tool, not device code: the crate's no-panic lints do not apply.
#![allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use convrfm_core::{BlobParts, KernelKind, ResizeFilter, encode, encoded_len, pack_pixels};

struct Seed {
    name: &'static str,
    dims: (u16, u16, u16),
    depth: u8,
    pixel_bits: u8,
    rank: u8,
    kind: KernelKind,
    centres: u16,
    names: &'static [&'static str],
}

const SEEDS: [Seed; 4] = [
    Seed {
        name: "seed-1x8x8-d2-8bit-ntk",
        dims: (1, 8, 8),
        depth: 2,
        pixel_bits: 8,
        rank: 2,
        kind: KernelKind::Ntk,
        centres: 3,
        names: &["no", "yes"],
    },
    Seed {
        name: "seed-3x7x9-d3-4bit-nngp",
        dims: (3, 7, 9),
        depth: 3,
        pixel_bits: 4,
        rank: 5,
        kind: KernelKind::Nngp,
        centres: 2,
        names: &["cat", "dog", "été"],
    },
    Seed {
        name: "seed-1x5x5-d1-8bit-r1",
        dims: (1, 5, 5),
        depth: 1,
        pixel_bits: 8,
        rank: 1,
        kind: KernelKind::Ntk,
        centres: 1,
        names: &["a", ""],
    },
    Seed {
        name: "seed-2x6x6-d2-4bit-ntk",
        dims: (2, 6, 6),
        depth: 2,
        pixel_bits: 4,
        rank: 18,
        kind: KernelKind::Ntk,
        centres: 4,
        names: &["猫", "dog", "bird", "fish"],
    },
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/blob");
    std::fs::create_dir_all(&dir)?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for s in &SEEDS {
        let (c, h, w) = s.dims;
        let pixels = usize::from(c) * usize::from(h) * usize::from(w);
        let d = usize::from(c) * 9;
        let levels = if s.pixel_bits == 4 { 16 } else { 256 };
        let mut centres = Vec::new();
        for _ in 0..s.centres {
            let vals: Vec<u8> = (0..pixels).map(|_| (next() % levels) as u8).collect();
            let mut buf = vec![0u8; pixels];
            let n = pack_pixels(s.pixel_bits, &vals, &mut buf)?;
            centres.extend_from_slice(&buf[..n]);
        }
        let wts: Vec<i8> = (0..d * usize::from(s.rank))
            .map(|_| (next() % 256) as u8 as i8)
            .collect();
        let alpha: Vec<i16> = (0..usize::from(s.centres) * s.names.len())
            .map(|_| (next() % 65536) as u16 as i16)
            .collect();
        let parts = BlobParts {
            channels: c,
            height: h,
            width: w,
            depth: s.depth,
            pixel_bits: s.pixel_bits,
            rank: s.rank,
            kind: s.kind,
            resize: ResizeFilter::Triangle,
            u_mult: 1 << 18,
            alpha_scale: 1e-6,
            expected_accuracy_bp: 5000,
            centre_count: s.centres,
            w: &wts,
            centres: &centres,
            alpha: &alpha,
            class_names: s.names,
        };
        let mut out = vec![0u8; encoded_len(&parts)?];
        let n = encode(&parts, &mut out)?;
        let path = dir.join(format!("{}.blob", s.name));
        std::fs::write(&path, &out[..n])?;
        println!("{} ({n} bytes)", path.display());
    }
    Ok(())
}
