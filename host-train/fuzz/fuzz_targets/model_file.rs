//! Any bytes into `Model::from_bytes`, as given and with a correct CRC
//! recomputed over them (so mutations reach the decoder and the field
//! validation behind the CRC): an error, or a model that encodes and
//! decodes to itself.
#![no_main]

use convrfm_train::fit::Model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 16 {
        let mut fixed = data.to_vec();
        let n = fixed.len();
        let crc = convrfm_core::crc32(&fixed[..n - 4]);
        fixed[n - 4..].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});

fn check(bytes: &[u8]) {
    let Ok(model) = Model::from_bytes(bytes) else {
        return;
    };
    let again = model.to_bytes().expect("a loaded model encodes");
    assert_eq!(Model::from_bytes(&again).expect("and decodes"), model);
}
