//! A blob as C source (`convrfm export --format c`): `NAME.h` declares it
//! with `#define`s a C project sizes its buffers by, `NAME.c` holds it as a
//! 4-byte-aligned `const uint8_t` array (flash on a microcontroller) and
//! the class names as C strings. With `core/ffi`'s `convrfm.h` and
//! `libconvrfm_ffi.a` that is all a C project needs (`docs/c-api.md`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

/// What `convrfm export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The blob file itself.
    Blob,
    /// `NAME.h` and `NAME.c` with the blob as a C array.
    C,
}

/// The `NAME.h` and `NAME.c` paths for `--out NAME` (a `.c`, `.h` or
/// `.blob` extension given with NAME is dropped), and the file stem the C
/// identifiers come from.
pub fn c_paths(out: &Path) -> (PathBuf, PathBuf, String) {
    let base = match out.extension().and_then(|e| e.to_str()) {
        Some("c" | "h" | "blob") => out.with_extension(""),
        _ => out.to_path_buf(),
    };
    let stem = base
        .file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let with = |ext: &str| {
        let mut p = base.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    (with(".h"), with(".c"), stem)
}

/// The two files of a blob as C source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSource {
    /// The C identifier every name is built from.
    pub ident: String,
    /// `NAME.h`.
    pub header: String,
    /// `NAME.c`.
    pub source: String,
}

/// `name` made a C identifier: letters, digits and `_` kept, anything else
/// `_`, a leading digit prefixed with `_`; an error when nothing is left.
pub fn c_identifier(name: &str) -> Result<String> {
    let mut ident: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    ensure!(
        ident.chars().any(|c| c.is_ascii_alphanumeric()),
        "{name:?} gives no C identifier: name the output with letters or digits"
    );
    if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, '_');
    }
    Ok(ident)
}

/// `blob` (validated here) as `NAME.h` and `NAME.c`, identifiers from `name`
/// (the output's file stem); `header_file` is what `NAME.c` includes.
pub fn c_source(blob: &[u8], name: &str, header_file: &str) -> Result<CSource> {
    let model = convrfm_core::Model::from_bytes(blob).context("the blob to write as C")?;
    let ident = c_identifier(name)?;
    let upper = ident.to_ascii_uppercase();
    let shape = model.shape();
    let names: Vec<&str> = model.class_names().collect();
    let guard = format!("{upper}_H");
    let mut h = String::new();
    let _ = writeln!(
        h,
        "/* {ident}: a convrfm blob as C source, written by `convrfm export --format c`.\n \
         * Classify with core/ffi's convrfm.h and libconvrfm_ffi.a:\n \
         *   convrfm_model_init({ident}_blob, {upper}_BLOB_LEN, &model); */\n\
         #ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n"
    );
    for (key, value) in [
        ("BLOB_LEN", blob.len()),
        ("SCRATCH_BYTES", model.scratch_len()),
        ("CHANNELS", shape.channels()),
        ("HEIGHT", shape.height()),
        ("WIDTH", shape.width()),
        ("IMAGE_BYTES", shape.pixels()),
        ("CLASSES", model.classes()),
    ] {
        let _ = writeln!(h, "#define {upper}_{key} {value}u");
    }
    let _ = writeln!(
        h,
        "\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n\
         /* The blob, 4-byte aligned, in read-only memory. */\n\
         extern const uint8_t {ident}_blob[{upper}_BLOB_LEN];\n\
         /* Class names, NUL-terminated, in class order. */\n\
         extern const char *const {ident}_class_names[{upper}_CLASSES];\n\n\
         #ifdef __cplusplus\n}}\n#endif\n\n#endif /* {guard} */"
    );
    let mut c = String::new();
    let _ = writeln!(
        c,
        "/* {ident}: written by `convrfm export --format c`; do not edit. */\n\
         #include \"{header_file}\"\n\n\
         #if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L\n\
         #define {upper}_ALIGNED _Alignas(4)\n\
         #elif defined(__GNUC__) || defined(__clang__)\n\
         #define {upper}_ALIGNED __attribute__((aligned(4)))\n\
         #else\n\
         #error \"align {ident}_blob to 4 bytes for this compiler\"\n\
         #endif\n\n\
         {upper}_ALIGNED const uint8_t {ident}_blob[{upper}_BLOB_LEN] = {{"
    );
    for row in blob.chunks(16) {
        let bytes: Vec<String> = row.iter().map(|b| format!("0x{b:02x}")).collect();
        let _ = writeln!(c, "  {},", bytes.join(", "));
    }
    let _ = writeln!(
        c,
        "}};\n\nconst char *const {ident}_class_names[{upper}_CLASSES] = {{"
    );
    for n in &names {
        let _ = writeln!(c, "  \"{}\",", c_string(n));
    }
    let _ = writeln!(c, "}};");
    Ok(CSource {
        ident,
        header: h,
        source: c,
    })
}

/// `s` escaped for a C string literal: backslash, quote and every byte
/// outside printable ASCII as an octal escape (UTF-8 bytes survive).
fn c_string(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b' '..=b'~' if b != b'?' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &[u8] = include_bytes!("../../../firmware/blobs/fashion-mnist-m0.blob");

    /// The hex bytes of the array in `source`, read back.
    fn array_bytes(source: &str) -> Vec<u8> {
        let start = source.find("_blob[").unwrap();
        let body = &source[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find("};").unwrap()];
        body.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| u8::from_str_radix(t.trim_start_matches("0x"), 16).unwrap())
            .collect()
    }

    #[test]
    fn the_array_is_the_blob_and_the_defines_its_sizes() {
        let c = c_source(BLOB, "fm-m0", "fm-m0.h").unwrap();
        assert_eq!(c.ident, "fm_m0");
        assert_eq!(array_bytes(&c.source), BLOB);
        let model = convrfm_core::Model::from_bytes(BLOB).unwrap();
        for line in [
            format!("#define FM_M0_BLOB_LEN {}u", BLOB.len()),
            format!("#define FM_M0_SCRATCH_BYTES {}u", model.scratch_len()),
            "#define FM_M0_IMAGE_BYTES 784u".to_string(),
            "#define FM_M0_CHANNELS 1u".to_string(),
            "#define FM_M0_CLASSES 10u".to_string(),
        ] {
            assert!(
                c.header.contains(&line),
                "{line} missing from:\n{}",
                c.header
            );
        }
        assert!(c.source.contains("#include \"fm-m0.h\""));
        assert!(c.source.contains("\"T-shirt/top\",") && c.source.contains("\"Ankle boot\","));
        let mut bad = BLOB.to_vec();
        bad[100] ^= 1;
        assert!(c_source(&bad, "x", "x.h").is_err());
    }

    #[test]
    fn names_become_identifiers_and_strings_escape() {
        assert_eq!(c_identifier("my model.v2").unwrap(), "my_model_v2");
        assert_eq!(c_identifier("64k").unwrap(), "_64k");
        assert!(c_identifier("--").is_err());
        assert_eq!(c_string("a\"b\\c?é"), "a\\\"b\\\\c\\077\\303\\251");
        let (h, c, stem) = c_paths(Path::new("out/fm.c"));
        assert_eq!(
            (h, c, stem.as_str()),
            (PathBuf::from("out/fm.h"), PathBuf::from("out/fm.c"), "fm")
        );
        let (h, _, stem) = c_paths(Path::new("fm.v2"));
        assert_eq!((h, stem.as_str()), (PathBuf::from("fm.v2.h"), "fm.v2"));
    }
}
