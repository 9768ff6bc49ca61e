//! The C API from C, on the host: `tests/c/classify.c` is compiled as
//! strict C99 and as C++ with every warning an error, linked against this
//! crate's static library, checks every kind of bad input (null pointers,
//! short buffers, a corrupt blob, a wrong image length; each must return
//! its status code), then classifies 300 Fashion-MNIST test images; its
//! records must be byte-identical to `convrfm-core`'s, computed here.
//!
//! Needs a C and a C++ compiler (`cc`, `c++`, or `$CC`, `$CXX`);
//! `scripts/test.sh` installs them on a bare machine. A missing compiler
//! fails the test.
// Tests: a panic is a failing test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use convrfm_core::Model;

const IMAGES: usize = 300;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The static library cargo built with this test: `cargo test` leaves it
/// in `deps/` beside the test binary, named with a hash, so the newest.
fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    std::fs::read_dir(deps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libconvrfm_ffi-") && name.ends_with(".a")
        })
        .max_by_key(|p| p.metadata().unwrap().modified().unwrap())
        .unwrap_or_else(|| panic!("no libconvrfm_ffi-*.a in {}", deps.display()))
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install a C toolchain)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `n` vendored Fashion-MNIST test images, raw bytes.
fn test_images(n: usize) -> Vec<u8> {
    let path = manifest().join("../../data/fashion-mnist/t10k-images-idx3-ubyte.gz");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    raw[16..16 + n * 784].to_vec()
}

/// Records as the firmware writes them, computed by `convrfm-core`.
fn reference_records(blob: &[u8], images: &[u8]) -> Vec<u8> {
    let model = Model::from_bytes(blob).unwrap();
    let mut scratch = vec![0u8; model.scratch_len()];
    let mut scores = vec![0i64; model.classes()];
    let mut out = Vec::new();
    for image in images.chunks_exact(model.shape().pixels()) {
        let p = model
            .predict_scores(image, &mut scratch, &mut scores)
            .unwrap();
        out.push(u8::try_from(p.class).unwrap());
        for s in &scores {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

fn compile(compiler: &str, language: &[&str], exe: &Path) {
    let include = manifest().join("include");
    run(Command::new(compiler)
        .args(language)
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-I"])
        .arg(&include)
        .arg(manifest().join("tests/c/classify.c"))
        .args(["-x", "none"])
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(exe));
}

#[test]
fn c_and_cpp_callers_get_status_codes_and_the_core_s_records() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = manifest().join("../../firmware/blobs/fashion-mnist-m0.blob");
    let blob = std::fs::read(&blob_path).unwrap();
    let images = test_images(IMAGES);
    let images_path = dir.path().join("images.raw");
    std::fs::write(&images_path, &images).unwrap();
    let want = reference_records(&blob, &images);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    for (compiler, language, name) in [
        (cc.as_str(), ["-x", "c", "-std=c99"], "classify-c"),
        (cxx.as_str(), ["-x", "c++", "-std=c++11"], "classify-cpp"),
    ] {
        let exe = dir.path().join(name);
        compile(compiler, &language, &exe);
        let out = dir.path().join(format!("{name}.records"));
        run(Command::new(&exe)
            .arg(&blob_path)
            .arg(&images_path)
            .arg(&out));
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got.len(), want.len(), "{name}: record bytes");
        assert!(got == want, "{name}: records differ from convrfm-core's");
    }
}
