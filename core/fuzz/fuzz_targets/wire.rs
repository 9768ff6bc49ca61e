//! Any bytes as a device's replies (`convrfm_core::wire`): the first 30 as
//! an info header, the rest as its class names and as a record. A reply
//! that parses must be self-consistent: the names are `classes` strings
//! that re-encode to the bytes given, and a record's scores re-encode to
//! the record.
#![no_main]

use convrfm_core::wire::{INFO_HEADER_LEN, Info, Record, write_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, rest) = data.split_at(data.len().min(INFO_HEADER_LEN));
    if let Ok(info) = Info::parse(header) {
        assert!(info.classes >= 1 && info.classes <= 256);
        assert!(info.image_len() >= 1);
        let names = &rest[..rest.len().min(info.names_len)];
        if let Ok(parsed) = info.names(names) {
            let mut again = Vec::new();
            for name in parsed {
                again.push(name.len() as u8);
                again.extend_from_slice(name.as_bytes());
            }
            assert_eq!(again, names);
        }
    }
    let classes = usize::from(data.first().copied().unwrap_or(0));
    if let Ok(record) = Record::parse(rest, classes) {
        assert!(record.class() < classes);
        let scores: Vec<i64> = record.scores().collect();
        assert_eq!(scores.len(), classes);
        let mut again = Vec::new();
        write_record::<()>(record.class() as u8, &scores, |b| {
            again.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(again, rest);
    }
});
