//! Properties of the device protocol (`convrfm_core::wire`): its parsers
//! take any bytes without panicking, and what the encoders write parses
//! back to the same values.

// Tests and their helpers: a panic is a test failure, which is what we want.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used
)]

use convrfm_core::Model;
use convrfm_core::wire::{
    INFO_HEADER_LEN, Info, MAX_RECORD_CLASSES, Record, info_header, record_len, write_record,
};
use proptest::prelude::*;

const BLOB: &[u8] = include_bytes!("../../firmware/blobs/fashion-mnist-m0.blob");

fn encode_record(class: u8, scores: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    write_record::<()>(class, scores, |b| {
        out.extend_from_slice(b);
        Ok(())
    })
    .unwrap();
    out
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..400), classes in 0usize..300) {
        if let Ok(info) = Info::parse(&bytes) {
            prop_assert_eq!(bytes.len(), INFO_HEADER_LEN);
            prop_assert!((1..=MAX_RECORD_CLASSES).contains(&info.classes));
            let _ = info.names(&bytes);
        }
        if let Ok(r) = Record::parse(&bytes, classes) {
            prop_assert_eq!(bytes.len(), record_len(classes));
            prop_assert!(r.class() < classes);
            prop_assert_eq!(r.scores().len(), classes);
        }
    }

    #[test]
    fn records_round_trip(scores in proptest::collection::vec(any::<i64>(), 1..=MAX_RECORD_CLASSES), pick in any::<usize>()) {
        let class = (pick % scores.len()) as u8;
        let bytes = encode_record(class, &scores);
        let r = Record::parse(&bytes, scores.len()).unwrap();
        prop_assert_eq!(r.class(), usize::from(class));
        prop_assert_eq!(r.scores().collect::<Vec<_>>(), scores);
    }

    #[test]
    fn a_flipped_info_byte_is_refused_or_still_consistent(at in 0usize..INFO_HEADER_LEN, bit in 0u8..8) {
        let model = Model::from_bytes(BLOB).unwrap();
        let mut header = info_header(&model);
        header[at] ^= 1 << bit;
        // Magic and version flips are refused; a flipped filter or size
        // either is refused or yields a header whose own sizes agree.
        if let Ok(info) = Info::parse(&header) {
            prop_assert!(at >= 5);
            prop_assert_eq!(info.image_len(), info.channels * info.height * info.width);
            prop_assert_eq!(info.record_len(), 1 + 8 * info.classes);
        }
    }
}
