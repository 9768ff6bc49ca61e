//! Build script: picks the memory layout for the target, embeds the model
//! blob, and fails the build with a readable message when the blob is
//! invalid or cannot fit that layout (the linker then checks blob + code
//! against FLASH, and statics + the minimum stack against RAM).
//!
//! Environment (each triggers a rebuild when it changes):
//! - `CONVRFM_BLOB`: the blob to embed (default `blobs/fashion-mnist.blob`;
//!   a relative path is relative to `firmware/`);
//! - `CONVRFM_MEMORY_X`: a memory layout replacing `memory-m4.x`
//!   (thumbv7em) / `memory-m0.x` (thumbv6m), e.g. for another part.

use std::env;
use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::exit;

use convrfm_core::Model;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["CONVRFM_BLOB", "CONVRFM_MEMORY_X"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| die("OUT_DIR is not set")));
    let target = env::var("TARGET").unwrap_or_default();

    let memory_path = match env::var_os("CONVRFM_MEMORY_X") {
        Some(p) => PathBuf::from(p),
        None if target.starts_with("thumbv6m") => PathBuf::from("memory-m0.x"),
        None if target.starts_with("thumbv7em") => PathBuf::from("memory-m4.x"),
        None => die(format_args!(
            "no memory layout for target {target:?}: build for thumbv7em-none-eabihf or \
             thumbv6m-none-eabi, or set CONVRFM_MEMORY_X to a memory.x for this part"
        )),
    };
    let memory = read(&memory_path);
    fs::write(out.join("memory.x"), &memory).unwrap_or_else(|e| die(e));
    println!("cargo:rustc-link-search={}", out.display());
    // cortex-m-rt's linker script (it includes memory.x) for the QEMU
    // binary on any bare-metal target: without it a build would link with
    // no vector table. Only this package's binaries: a board example that
    // uses the library passes its own scripts.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
    }

    let blob_path = env::var_os("CONVRFM_BLOB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("blobs/fashion-mnist.blob"));
    let blob = read(&blob_path);
    let model = Model::from_bytes(&blob).unwrap_or_else(|e| {
        die(format_args!(
            "{} is not a valid convrfm blob: {e}",
            blob_path.display()
        ))
    });
    check_budget(
        &model,
        &blob_path,
        &memory_path,
        &String::from_utf8_lossy(&memory),
    );

    fs::write(out.join("model.blob"), &blob).unwrap_or_else(|e| die(e));
    let dims = format!(
        "/// Number of classes of the embedded model.\n\
         pub const CLASSES: usize = {};\n\
         /// Bytes of one input image (`c * H * W`).\n\
         pub const IMAGE_LEN: usize = {};\n",
        model.classes(),
        model.shape().pixels()
    );
    fs::write(out.join("model_dims.rs"), dims).unwrap_or_else(|e| die(e));
}

/// Fails early (before compiling and linking) when the blob alone is
/// larger than FLASH or the model's buffers alone are larger than RAM.
/// Smaller overflows (blob + code, buffers + stack) are left to the linker,
/// which knows the code size.
fn check_budget(model: &Model<'_>, blob_path: &Path, memory_path: &Path, memory: &str) {
    let blob_len = model.as_bytes().len();
    let buffers = model.scratch_len() + model.shape().pixels() + 8 * model.classes();
    for (region, need, what) in [
        ("FLASH", blob_len, "the blob alone"),
        ("RAM", buffers, "its scratch, image and score buffers alone"),
    ] {
        let Some(have) = region_length(memory, region) else {
            println!(
                "cargo:warning=no {region} LENGTH found in {}; the linker alone checks the budget",
                memory_path.display()
            );
            continue;
        };
        if need as u64 > have {
            die(format_args!(
                "{} does not fit the memory layout {}: {region} needed for {what}: {need} bytes, \
                 declared: {have} bytes.\n\
                 Export a smaller blob (convrfm export --max-flash ...) and point CONVRFM_BLOB at it, \
                 or raise {region}'s LENGTH for a larger part (docs/firmware.md).",
                blob_path.display(),
                memory_path.display()
            ))
        }
    }
}

/// `LENGTH` of a `MEMORY` region (`NAME : ORIGIN = ..., LENGTH = 256K`),
/// in bytes; accepts decimal or 0x hex with an optional K or M suffix.
fn region_length(memory: &str, region: &str) -> Option<u64> {
    let line = memory.lines().find(|l| {
        l.trim_start()
            .strip_prefix(region)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })?;
    let value = line
        .split("LENGTH")
        .nth(1)?
        .trim_start()
        .strip_prefix('=')?;
    let value: String = value
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let (digits, scale) = match value.as_bytes().last()? {
        b'K' | b'k' => (&value[..value.len() - 1], 1024),
        b'M' | b'm' => (&value[..value.len() - 1], 1024 * 1024),
        _ => (value.as_str(), 1),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some(n * scale)
}

fn read(path: &Path) -> Vec<u8> {
    println!("cargo:rerun-if-changed={}", path.display());
    fs::read(path).unwrap_or_else(|e| die(format_args!("reading {}: {e}", path.display())))
}

/// Prints `error: MESSAGE` and fails the build script (cargo shows its
/// stderr), instead of a panic's backtrace noise.
fn die(message: impl Display) -> ! {
    eprintln!("error: {message}");
    exit(1)
}
