//! Any bytes into the CSV reader: an error, or a set whose pixel count is
//! its image count times its shape and whose labels name its classes.
#![no_main]

use convrfm_train::data::csv_table::parse_csv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = parse_csv(data, "fuzz.csv", None) {
        assert_eq!(
            set.images.pixels.len(),
            set.len() * set.images.dims.pixels()
        );
        assert!(set.labels.iter().all(|&l| usize::from(l) < set.num_classes()));
        assert!(set.images.pixels.iter().all(|v| v.is_finite()));
    }
});
