//! Blob format: round trip, accessors, and that malformed input of every
//! kind is rejected with the specific error, never a panic.
// Tests and their helpers: a panic is a test failure, which is what we want.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::{Owned, Rng};
use convrfm_core::blob::{CRC_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC};
use convrfm_core::{
    BlobError, EncodeError, KernelKind, Model, NameError, ResizeFilter, Section, ShapeError, Sizes,
    crc32, declared_len, encode, encoded_len, encoded_len_for, scratch_len_for_blob,
};
use proptest::prelude::*;

/// Recomputes the CRC trailer after editing a blob.
fn fix_crc(blob: &mut [u8]) {
    let n = blob.len();
    let crc = crc32(&blob[..n - CRC_LEN]);
    blob[n - CRC_LEN..].copy_from_slice(&crc.to_le_bytes());
}

fn set_u16(blob: &mut [u8], at: usize, v: u16) {
    blob[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn set_u32(blob: &mut [u8], at: usize, v: u32) {
    blob[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn sample(seed: u64) -> Owned {
    Owned::random(&mut Rng(seed))
}

fn assert_matches(m: &Model<'_>, o: &Owned) {
    let s = m.shape();
    assert_eq!(s.channels(), usize::from(o.channels));
    assert_eq!(s.height(), usize::from(o.height));
    assert_eq!(s.width(), usize::from(o.width));
    assert_eq!(s.depth(), usize::from(o.depth));
    assert_eq!(m.pixel_bits(), o.pixel_bits);
    assert_eq!(m.rank(), usize::from(o.rank));
    assert_eq!(m.kind(), o.kind);
    assert_eq!(m.u_mult(), o.u_mult);
    assert_eq!(m.alpha_scale().to_bits(), o.alpha_scale.to_bits());
    assert_eq!(
        m.expected_accuracy_bp(),
        (o.accuracy != 0).then_some(o.accuracy)
    );
    assert_eq!(m.centres(), o.centres.len());
    assert_eq!(m.classes(), o.names.len());
    let d = o.d();
    let r = usize::from(o.rank);
    for row in 0..d {
        for col in 0..r {
            assert_eq!(m.w(row, col), Some(o.w[row * r + col]));
        }
    }
    assert_eq!(m.w(d, 0), None);
    assert_eq!(m.w(0, r), None);
    for i in 0..o.centres.len() {
        for cl in 0..o.names.len() {
            assert_eq!(m.alpha(i, cl), Some(o.alpha[i * o.names.len() + cl]));
        }
        let vals = o.centre_values(i);
        for (p, &v) in vals.iter().enumerate() {
            assert_eq!(m.centre_pixel(i, p), Some(v));
        }
        assert_eq!(m.centre_pixel(i, vals.len()), None);
    }
    assert_eq!(m.alpha(o.centres.len(), 0), None);
    assert_eq!(m.alpha(0, o.names.len()), None);
    assert_eq!(m.centre_bytes(o.centres.len()), None);
    assert_eq!(m.class_names().collect::<Vec<_>>(), o.names);
    for (i, n) in o.names.iter().enumerate() {
        assert_eq!(m.class_name(i), Some(*n));
    }
    assert_eq!(m.class_name(o.names.len()), None);
}

#[test]
fn crc_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn round_trip_preserves_every_field() {
    for seed in 1..200u64 {
        let o = sample(seed);
        let blob = o.encode();
        let m = Model::from_bytes(&blob).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(m.as_bytes(), &blob[..]);
        assert_matches(&m, &o);
        assert_eq!(declared_len(&blob), Ok(blob.len()));
        assert_eq!(scratch_len_for_blob(&blob), Some(m.scratch_len()));
        assert_eq!(blob.len() % 4, 0);
        assert_eq!(&blob[..8], &MAGIC);
    }
}

#[test]
fn header_hex_example_is_what_encode_writes() {
    // The worked example of docs/blob-format.md: 1x28x28, depth 3, 4-bit,
    // 10 classes, 100 centres, r = 9, NTK, u_mult = 0x00012345,
    // alpha_scale = 1e-9, accuracy 84.25 %.
    let names: Vec<&'static str> = vec![
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];
    let o = Owned {
        channels: 1,
        height: 28,
        width: 28,
        depth: 3,
        pixel_bits: 4,
        rank: 9,
        kind: KernelKind::Ntk,
        u_mult: 0x0001_2345,
        alpha_scale: 1e-9,
        accuracy: 8425,
        w: vec![1; 81],
        centres: vec![vec![0; 784]; 100],
        alpha: vec![0; 1000],
        names,
    };
    let blob = o.encode();
    let hex: String = blob[..HEADER_LEN]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    let expected = "43 52 46 4d 42 4c 4f 42 03 00 4c 00 01 00 1c 00 \
                    1c 00 03 04 0a 00 64 00 09 00 45 23 01 00 5f 70 \
                    89 30 e9 20 e0 a1 00 00 4c 00 00 00 51 00 00 00 \
                    a0 00 00 00 20 99 00 00 c0 99 00 00 d0 07 00 00 \
                    90 a1 00 00 4c 00 00 00 01 00 00 00";
    assert_eq!(
        hex,
        expected.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    assert_eq!(blob.len(), 0xa1e0);
    let m = Model::from_bytes(&blob).unwrap();
    assert_eq!(m.scratch_len(), scratch_len_for_blob(&blob).unwrap());
    println!(
        "example blob: {} bytes, scratch {}",
        blob.len(),
        m.scratch_len()
    );
}

#[test]
fn declared_len_cuts_a_blob_out_of_a_region() {
    let blob = sample(7).encode();
    let mut region = blob.clone();
    region.extend_from_slice(&[0xFF; 100]);
    let n = declared_len(&region).unwrap();
    assert!(Model::from_bytes(&region[..n]).is_ok());
    assert_eq!(
        Model::from_bytes(&region),
        Err(BlobError::TotalLength {
            declared: blob.len() as u32,
            got: region.len()
        })
    );
    assert_eq!(
        declared_len(b"CRFM"),
        Err(BlobError::Truncated {
            needed: HEADER_LEN,
            got: 4
        })
    );
    assert_eq!(declared_len(b"PNG"), Err(BlobError::BadMagic));
}

#[test]
fn encode_rejects_bad_parts() {
    let o = sample(3);
    o.with_parts(|p| {
        let n = encoded_len(p).unwrap();
        let mut small = vec![0; n - 1];
        assert_eq!(
            encode(p, &mut small),
            Err(EncodeError::BufferTooSmall {
                needed: n,
                got: n - 1
            })
        );
        let mut out = vec![0; n];
        let mut q = *p;
        q.w = &p.w[1..];
        assert!(matches!(
            encode(&q, &mut out),
            Err(EncodeError::Invalid(BlobError::SizeMismatch {
                section: Section::W,
                ..
            }))
        ));
        let mut q = *p;
        q.centre_count += 1;
        assert!(matches!(
            encode(&q, &mut out),
            Err(EncodeError::Invalid(BlobError::SizeMismatch {
                section: Section::Centres,
                ..
            }))
        ));
        let mut q = *p;
        q.alpha_scale = f32::NAN;
        assert!(matches!(
            encode(&q, &mut out),
            Err(EncodeError::Invalid(BlobError::BadAlphaScale(_)))
        ));
        let mut q = *p;
        q.rank = 0;
        assert!(matches!(
            encode(&q, &mut out),
            Err(EncodeError::Invalid(BlobError::BadRank { rank: 0, .. }))
        ));
        let long = "x".repeat(256);
        let names = [long.as_str(), "b"];
        let mut q = *p;
        q.class_names = &names;
        assert_eq!(
            encoded_len(&q),
            Err(EncodeError::ClassNameTooLong { index: 0, len: 256 })
        );
        let one = ["only"];
        let mut q = *p;
        q.class_names = &one;
        let mut out = vec![0; encoded_len(&q).unwrap()];
        assert!(matches!(encode(&q, &mut out), Err(EncodeError::Invalid(_))));
    });
}

#[test]
fn every_truncation_is_truncated() {
    for seed in [1u64, 2, 3, 4] {
        let blob = sample(seed).encode();
        for n in 0..blob.len() {
            let e = Model::from_bytes(&blob[..n]).unwrap_err();
            let needed = if n < HEADER_LEN {
                HEADER_LEN
            } else {
                blob.len()
            };
            assert_eq!(e, BlobError::Truncated { needed, got: n }, "prefix {n}");
        }
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    for seed in [11u64, 12, 13, 14, 15] {
        let blob = sample(seed).encode();
        let total = blob.len();
        for bit in 0..blob.len() * 8 {
            let mut b = blob.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let e = Model::from_bytes(&b).expect_err("a flipped blob parsed");
            let at = bit / 8;
            let ok = match at {
                0..8 => e == BlobError::BadMagic,
                8..10 => matches!(e, BlobError::UnsupportedVersion(_)),
                10..12 => matches!(e, BlobError::BadHeaderLength { .. }),
                36..40 => matches!(
                    e,
                    BlobError::Truncated { .. } | BlobError::TotalLength { .. }
                ),
                _ => matches!(e, BlobError::BadCrc { .. }),
            };
            assert!(ok, "seed {seed} byte {at}/{total}: {e:?}");
        }
    }
}

#[test]
fn bad_versions_and_header_lengths() {
    let blob = sample(21).encode();
    for v in [0u16, 1, 2, 4, 0x0300, u16::MAX] {
        let mut b = blob.clone();
        set_u16(&mut b, 8, v);
        fix_crc(&mut b);
        assert_eq!(Model::from_bytes(&b), Err(BlobError::UnsupportedVersion(v)));
    }
    for h in [0u16, 72, 75, 77, 80, u16::MAX] {
        let mut b = blob.clone();
        set_u16(&mut b, 10, h);
        fix_crc(&mut b);
        assert_eq!(
            Model::from_bytes(&b),
            Err(BlobError::BadHeaderLength {
                expected: 76,
                got: h
            })
        );
    }
    assert_eq!(FORMAT_VERSION, 3);
    // A version-2 blob (no input record) gets a message that names both
    // versions.
    let mut b = blob.clone();
    set_u16(&mut b, 8, 2);
    fix_crc(&mut b);
    let msg = Model::from_bytes(&b).unwrap_err().to_string();
    assert!(
        msg.contains("version 2") && msg.contains("version 3"),
        "{msg}"
    );
}

#[test]
fn resize_filter_and_reserved_bytes() {
    let blob = tiny().encode();
    assert_eq!(blob[72], ResizeFilter::Triangle.to_byte());
    let with = |at: usize, v: u8| {
        let mut b = blob.clone();
        b[at] = v;
        fix_crc(&mut b);
        Model::from_bytes(&b).map(|m| m.resize_filter())
    };
    for (code, filter) in [
        (0, ResizeFilter::Nearest),
        (1, ResizeFilter::Triangle),
        (2, ResizeFilter::CatmullRom),
        (3, ResizeFilter::Gaussian),
        (4, ResizeFilter::Lanczos3),
    ] {
        assert_eq!(with(72, code), Ok(filter));
        assert_eq!(ResizeFilter::from_byte(code), Some(filter));
    }
    for code in [5, 0x80, 0xFF] {
        assert_eq!(with(72, code), Err(BlobError::BadResizeFilter(code)));
    }
    for at in 73..76 {
        assert_eq!(with(at, 1), Err(BlobError::NonZeroReserved { offset: at }));
    }
}

/// A fixed model whose numbers the table below refers to: 1x8x8, depth 2,
/// 8-bit, r = 2, m = 3, 2 classes.
fn tiny() -> Owned {
    let mut rng = Rng(99);
    Owned {
        channels: 1,
        height: 8,
        width: 8,
        depth: 2,
        pixel_bits: 8,
        rank: 2,
        kind: KernelKind::Ntk,
        u_mult: 1 << 20,
        alpha_scale: 1.0,
        accuracy: 0,
        w: (0..18).map(|_| rng.range_i64(-100, 100) as i8).collect(),
        centres: (0..3)
            .map(|_| (0..64).map(|_| rng.below(256) as u8).collect())
            .collect(),
        alpha: vec![100, -100, -50, 50, 7, 8],
        names: vec!["no", "yes"],
    }
}

#[test]
fn huge_and_bad_header_values_with_valid_crc() {
    let blob = tiny().encode();
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = blob.clone();
        edit(&mut b);
        fix_crc(&mut b);
        Model::from_bytes(&b).map(|m| m.as_bytes().len())
    };
    use BlobError::*;
    // Geometry.
    assert_eq!(
        with(&|b| set_u16(b, 12, 0)),
        Err(InvalidShape(ShapeError::ZeroDimension))
    );
    assert_eq!(
        with(&|b| set_u16(b, 12, u16::MAX)),
        Err(TooManyChannels(u16::MAX))
    );
    assert_eq!(
        with(&|b| b[18] = 255),
        Err(InvalidShape(ShapeError::TooSmallForDepth {
            patch: 3,
            depth: 255,
            min_side: 511
        }))
    );
    assert_eq!(
        with(&|b| b[18] = 0),
        Err(InvalidShape(ShapeError::ZeroDepth))
    );
    assert_eq!(
        with(&|b| set_u16(b, 14, u16::MAX)),
        Err(SizeMismatch {
            section: Section::Centres,
            expected: 3 * 65535 * 8,
            got: 192
        })
    );
    assert_eq!(
        with(&|b| {
            set_u16(b, 14, u16::MAX);
            set_u16(b, 16, u16::MAX);
        }),
        Err(KernelRange { depth: 2, rank: 2 })
    );
    // Counts.
    assert_eq!(with(&|b| b[19] = 2), Err(BadPixelBits(2)));
    assert_eq!(with(&|b| b[25] = 2), Err(BadKind(2)));
    assert_eq!(
        with(&|b| b[24] = 0),
        Err(BadRank {
            rank: 0,
            patch_dim: 9
        })
    );
    assert_eq!(
        with(&|b| b[24] = 255),
        Err(BadRank {
            rank: 255,
            patch_dim: 9
        })
    );
    assert_eq!(
        with(&|b| b[24] = 3),
        Err(SizeMismatch {
            section: Section::W,
            expected: 27,
            got: 18
        })
    );
    assert_eq!(with(&|b| set_u16(b, 20, 1)), Err(TooFewClasses(1)));
    assert_eq!(with(&|b| set_u16(b, 20, 0)), Err(TooFewClasses(0)));
    assert_eq!(
        with(&|b| set_u16(b, 20, u16::MAX)),
        Err(SizeMismatch {
            section: Section::Alpha,
            expected: 3 * 65535 * 2,
            got: 12
        })
    );
    assert_eq!(with(&|b| set_u16(b, 22, 0)), Err(NoCentres));
    assert_eq!(
        with(&|b| set_u16(b, 22, u16::MAX)),
        Err(SizeMismatch {
            section: Section::Centres,
            expected: 65535 * 64,
            got: 192
        })
    );
    assert_eq!(with(&|b| set_u32(b, 26, 0)), Err(ZeroUMult));
    for bits in [
        f32::NAN.to_bits(),
        f32::INFINITY.to_bits(),
        0,
        (-1.0f32).to_bits(),
    ] {
        assert_eq!(with(&|b| set_u32(b, 30, bits)), Err(BadAlphaScale(bits)));
    }
    assert_eq!(with(&|b| set_u16(b, 34, 10_001)), Err(BadAccuracy(10_001)));
    // Informational fields accept any sane value.
    assert_eq!(with(&|b| set_u16(b, 34, 10_000)), Ok(blob.len()));
    assert_eq!(with(&|b| set_u16(b, 34, 0)), Ok(blob.len()));
}

#[test]
fn section_table_errors_are_specific() {
    let blob = tiny().encode();
    // Sections of `tiny`: W 18 bytes at 76, centres 192 at 96, alpha 12 at
    // 288, names 8 at 300; CRC at 308; total 312.
    let m = Model::from_bytes(&blob).unwrap();
    assert_eq!(blob.len(), 312, "{m:?}");
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = blob.clone();
        edit(&mut b);
        fix_crc(&mut b);
        Model::from_bytes(&b).map(|m| m.as_bytes().len())
    };
    use BlobError::*;
    assert_eq!(
        with(&|b| set_u32(b, 48, 97)),
        Err(SectionMisaligned {
            section: Section::Centres,
            offset: 97
        })
    );
    assert_eq!(
        with(&|b| set_u32(b, 48, 92)),
        Err(SectionOverlap {
            section: Section::Centres,
            offset: 92,
            previous_end: 94
        })
    );
    assert_eq!(
        with(&|b| set_u32(b, 48, 100)),
        Err(SectionGap {
            section: Section::Centres,
            offset: 100,
            expected: 96
        })
    );
    assert_eq!(
        with(&|b| set_u32(b, 48, u32::MAX - 3)),
        Err(SectionOutOfBounds {
            section: Section::Centres,
            offset: u32::MAX - 3,
            len: 192,
            limit: 308
        })
    );
    assert_eq!(
        with(&|b| set_u32(b, 68, 9)),
        Err(SectionOutOfBounds {
            section: Section::ClassNames,
            offset: 300,
            len: 9,
            limit: 308
        })
    );
    assert_eq!(
        with(&|b| set_u32(b, 68, 4)),
        Err(TrailingBytes {
            expected_crc_offset: 304,
            crc_offset: 308
        })
    );
    assert_eq!(
        with(&|b| set_u32(b, 44, u32::MAX)),
        Err(SizeMismatch {
            section: Section::W,
            expected: 18,
            got: u32::MAX as usize
        })
    );
    assert_eq!(with(&|b| b[94] = 1), Err(NonZeroPadding { offset: 94 }));
    // Class names: "no" (2), "yes" (3) -> [2 n o 3 y e s] + 1 padding byte? No:
    // 1 + 2 + 1 + 3 = 7 bytes, then 1 byte of padding at 307.
    assert_eq!(with(&|b| b[307] = 7), Err(NonZeroPadding { offset: 307 }));
    assert_eq!(
        with(&|b| b[301] = 0xFF),
        Err(BadClassName {
            index: 0,
            reason: NameError::NotUtf8
        })
    );
    assert_eq!(
        with(&|b| b[303] = 9),
        Err(BadClassName {
            index: 1,
            reason: NameError::Truncated
        })
    );
    assert_eq!(
        with(&|b| b[303] = 1),
        Err(SizeMismatch {
            section: Section::ClassNames,
            expected: 5,
            got: 7
        })
    );
    // Total length field.
    assert_eq!(
        with(&|b| set_u32(b, 36, 8)),
        Err(TotalLength {
            declared: 8,
            got: 312
        })
    );
}

#[test]
fn four_bit_padding_nibble_must_be_zero() {
    let mut o = tiny();
    o.height = 7;
    o.width = 7; // 49 pixels: odd, 25 bytes per image
    o.pixel_bits = 4;
    o.centres = (0..3)
        .map(|i| (0..49).map(|p| ((p + i) % 16) as u8).collect())
        .collect();
    let blob = o.encode();
    let m = Model::from_bytes(&blob).unwrap();
    assert_eq!(m.centre_bytes(0).unwrap().len(), 25);
    let c_off = u32::from_le_bytes(blob[48..52].try_into().unwrap()) as usize;
    let mut b = blob.clone();
    b[c_off + 25 + 24] |= 0x10; // high nibble of centre 1's last byte
    fix_crc(&mut b);
    assert_eq!(
        Model::from_bytes(&b),
        Err(BlobError::NonZeroPadding { offset: c_off + 49 })
    );
}

#[test]
fn fuzz_seeds_are_valid_blobs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/blob");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let m = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut scratch = vec![0u8; m.scratch_len()];
        m.predict(&vec![128; m.shape().pixels()], &mut scratch)
            .unwrap();
        n += 1;
    }
    assert!(
        n >= 4,
        "seed corpus missing: run `cargo run -p convrfm-core --example write_fuzz_seeds`"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The exporter prices candidates from dimensions alone: the same
    /// length as encoding the parts.
    #[test]
    fn length_from_sizes_is_the_encoded_length(seed in 1u64..1000) {
        let o = sample(seed);
        o.with_parts(|p| {
            let sizes = Sizes {
                channels: p.channels,
                height: p.height,
                width: p.width,
                pixel_bits: p.pixel_bits,
                rank: p.rank,
                centre_count: p.centre_count,
            };
            assert_eq!(encoded_len_for(sizes, p.class_names), encoded_len(p));
        });
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Model::from_bytes(&bytes);
        let _ = declared_len(&bytes);
        let _ = scratch_len_for_blob(&bytes);
    }

    /// Random bytes behind a valid preamble and CRC: everything past the
    /// CRC check is exercised.
    #[test]
    fn random_bodies_with_valid_crc(body in proptest::collection::vec(any::<u8>(), 60..800)) {
        let mut b = Vec::from(MAGIC);
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&72u16.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&[0; 4]);
        let n = b.len() as u32;
        set_u32(&mut b, 36, n);
        fix_crc(&mut b);
        match Model::from_bytes(&b) {
            Ok(m) => {
                // Whatever parsed must be usable.
                let mut scratch = vec![0u8; m.scratch_len()];
                let img = vec![0x5A; m.shape().pixels()];
                prop_assert!(m.predict(&img, &mut scratch).is_ok());
            }
            Err(BlobError::BadCrc { .. }) => prop_assert!(false, "CRC was fixed"),
            Err(_) => {}
        }
    }

    /// A valid blob with one header byte or section-table byte replaced
    /// and the CRC recomputed: a specific error, or a model whose fields
    /// are exactly what the header now says.
    #[test]
    fn header_mutations(seed in 1u64..1000, at in 12usize..72, v in any::<u8>()) {
        let o = sample(seed);
        let mut b = o.encode();
        let before = b[at];
        b[at] = v;
        fix_crc(&mut b);
        match Model::from_bytes(&b) {
            Ok(m) => {
                let changed = before != v;
                // Only informational or degenerate-but-valid fields may change:
                // the depth (no section depends on it), kind, scales, accuracy.
                prop_assert!(!changed || matches!(at, 18 | 25..=35), "byte {} {}->{} parsed: {:?}", at, before, v, m);
                if at == 18 { prop_assert_eq!(m.shape().depth(), usize::from(v)); }
                if at == 25 { prop_assert_eq!(m.kind().to_byte(), v); }
            }
            Err(BlobError::BadCrc { .. }) => prop_assert!(false, "CRC was fixed"),
            Err(_) => {}
        }
    }

    #[test]
    fn single_bit_flips_in_random_models(seed in 1u64..10_000, bit in any::<u32>()) {
        let b0 = sample(seed).encode();
        let mut b = b0.clone();
        let bit = bit as usize % (b.len() * 8);
        b[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Model::from_bytes(&b).is_err());
    }
}
