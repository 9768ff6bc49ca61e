//! Any bytes into the picture conversion (PNG, JPEG, BMP, PNM, detected
//! from the content), gray and RGB, with resizing: an error, or exactly
//! `c x H x W` bytes.
#![no_main]

use convrfm_train::data::pictures::{PictureFormat, ResizeFilter, decode_picture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (channels, filter) in [(1, ResizeFilter::Triangle), (3, ResizeFilter::Lanczos3)] {
        let format = PictureFormat {
            channels,
            height: 7,
            width: 5,
            filter,
        };
        if let Ok(px) = decode_picture(data, &format) {
            assert_eq!(px.len(), channels * 7 * 5);
        }
    }
});
