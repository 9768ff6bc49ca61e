//! The model file format against a checked-in model (as the blob has its
//! hex golden): it loads, re-encodes to the same bytes, predicts what it
//! predicted when it was written, and every corruption is refused.
//!
//! `tests/data/tiny-fashion.convrfm` was written by
//! `convrfm train --train-limit 24 --test-limit 10 --iterations 2 --depth 2 --agop-images 8`
//! (test accuracy on the first 10 Fashion-MNIST test images: 60.00 %; format 5,
//! leave-one-out selection).
// Tests and their helpers: a panic is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use convrfm_train::data::{PixelType, Split, vendored_fashion_mnist};
use convrfm_train::fit::Model;
use convrfm_train::fit::model_file::FORMAT_VERSION;
use convrfm_train::output::Progress;

const FILE: &[u8] = include_bytes!("data/tiny-fashion.convrfm");

#[test]
fn checked_in_model_loads_round_trips_and_predicts_as_written() {
    let m = Model::from_bytes(FILE).unwrap();
    assert_eq!(m.dims().to_string(), "1x28x28");
    assert_eq!(m.pixel_type(), PixelType::U8);
    assert_eq!(m.training_data().len(), 24);
    assert_eq!(m.classes(), 10);
    assert_eq!(m.class_names()[9], "Ankle boot");
    assert_eq!((m.depth, m.history.len()), (2, 2));
    // u8 training pixels are stored as bytes and come back exactly.
    assert_eq!(
        m.training_data().images,
        vendored_fashion_mnist(Split::Train).take(24).images
    );
    assert_eq!(m.to_bytes().unwrap(), FILE);
    let test = vendored_fashion_mnist(Split::Test).take(10);
    let acc = m.accuracy(&test, Progress { quiet: true }).unwrap();
    assert!((acc - 0.6).abs() < 1e-12, "accuracy {acc}");
}

#[test]
fn every_corruption_is_refused_with_its_reason() {
    let err = |b: &[u8]| format!("{:#}", Model::from_bytes(b).unwrap_err());
    // Single-byte changes anywhere past the magic: the CRC catches them.
    for at in (12..FILE.len()).step_by(97) {
        let mut b = FILE.to_vec();
        b[at] ^= 0x10;
        assert!(err(&b).contains("CRC-32 mismatch"), "byte {at}");
    }
    let mut b = FILE.to_vec();
    b.push(0);
    assert!(err(&b).contains("CRC-32 mismatch"));
    for len in [0, 5, 12, 15, FILE.len() / 2, FILE.len() - 1] {
        assert!(Model::from_bytes(&FILE[..len]).is_err(), "prefix {len}");
    }
    let mut b = FILE.to_vec();
    b[8..12].copy_from_slice(&(FORMAT_VERSION - 1).to_le_bytes());
    let msg = err(&b);
    assert!(
        msg.contains("version 4") && msg.contains("re-train"),
        "{msg}"
    );
    assert!(err(b"CRFMBLOB and more bytes").contains("give it with --blob"));
}

/// `body` framed as a model file: magic, version, body, a correct CRC.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = FILE[..12].to_vec();
    out.extend_from_slice(body);
    let crc = convrfm_core::crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_are_an_error_never_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400)
        ) {
            prop_assert!(Model::from_bytes(&bytes).is_err());
            // Past the CRC: random bodies are refused by the decoder or
            // the validation.
            prop_assert!(Model::from_bytes(&framed(&bytes)).is_err());
        }

        #[test]
        fn bit_flips_are_caught(at in 0usize..FILE.len(), bit in 0u8..8) {
            let mut b = FILE.to_vec();
            b[at] ^= 1 << bit;
            prop_assert!(Model::from_bytes(&b).is_err());
        }

        /// A byte of the body changed and the CRC recomputed (a crafted
        /// file): refused, or a model that passed every check and then
        /// predicts without panicking.
        #[test]
        fn crafted_bodies_are_refused_or_usable(at in 12usize..FILE.len() - 4, v in any::<u8>()) {
            let mut body = FILE[12..FILE.len() - 4].to_vec();
            body[at - 12] = v;
            if let Ok(m) = Model::from_bytes(&framed(&body)) {
                let one = vendored_fashion_mnist(Split::Test).take(1);
                let _ = m.scores(&one.images, Progress { quiet: true });
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for len in 0..FILE.len() {
            assert!(Model::from_bytes(&FILE[..len]).is_err(), "prefix {len}");
        }
    }
}
