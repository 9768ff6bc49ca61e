//! What the command-line tests share: running `convrfm` and checking that
//! a failure is one clean error line.

use std::process::{Command, Output};

/// Runs `convrfm --quiet ARGS`.
pub fn convrfm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convrfm"))
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run convrfm")
}

/// Exit status 1, an `error:` line naming every needle, no panic or
/// backtrace.
pub fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "stderr: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{n:?} missing from: {err}");
    }
}
