//! Any bytes into the NumPy readers: as `.npy` images (channel-first and
//! channels-last), as `.npy` labels, and as a `.npz` archive. Each is an
//! error or consistent: pixel counts match shapes, pixels are finite.
#![no_main]

use convrfm_train::data::numpy::{NumpyOptions, images_from_npy, labels_from_npy, parse_npz};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for channels_last in [false, true] {
        if let Ok(images) = images_from_npy(data, "fuzz.npy", channels_last) {
            assert_eq!(images.pixels.len(), images.len() * images.dims.pixels());
            assert!(images.pixels.iter().all(|v| v.is_finite()));
        }
    }
    let _ = labels_from_npy(data, "fuzz.npy");
    if let Ok(set) = parse_npz(std::io::Cursor::new(data), "fuzz.npz", &NumpyOptions::default()) {
        assert_eq!(set.images.pixels.len(), set.len() * set.images.dims.pixels());
    }
});
