//! Any bytes into the IDX reader (raw or gzip, detected from the magic):
//! an error, or an array whose element count matches its dimensions and
//! that writes back and reads again unchanged.
#![no_main]

use convrfm_train::data::idx::{decode_idx, parse_idx, write_idx_to};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(array) = decode_idx(data) else {
        let _ = parse_idx(data);
        return;
    };
    let count: usize = array.dims.iter().product();
    assert_eq!(count, array.data.len());
    let mut bytes = Vec::new();
    write_idx_to(&mut bytes, &array).expect("a parsed array writes back");
    assert_eq!(parse_idx(&bytes).expect("and reads again"), array);
});
