//! `include/convrfm.h` is what cbindgen generates from `src/lib.rs` now:
//! a stale committed header is a failing test (regenerate with
//! `CONVRFM_BLESS=1 cargo test -p convrfm-ffi --test header`).
// Tests: a panic is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

#[test]
fn committed_header_is_what_cbindgen_generates() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads src/lib.rs")
        .write(&mut generated);
    let path = dir.join("include/convrfm.h");
    if std::env::var_os("CONVRFM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with CONVRFM_BLESS=1 cargo test -p convrfm-ffi --test header",
        path.display()
    );
}
