//! Any bytes into the IDX reader (raw or gzip, detected from the magic):
//! an error, or an array whose element count matches its dimensions and
//! that writes back and reads again to the same bytes (compared as bytes:
//! a NaN pixel is not equal to itself).
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
    let again = parse_idx(&bytes).expect("and reads again");
    let mut bytes_again = Vec::new();
    write_idx_to(&mut bytes_again, &again).expect("writes back again");
    assert_eq!(bytes, bytes_again);
});
