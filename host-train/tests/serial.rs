//! `convrfm serial` end to end over a real pseudo-terminal: the test holds
//! the master side and answers as a device would (with convrfm-core's
//! wire encoders and predictions), the command opens the slave side as a
//! serial port. (The same command against the QEMU firmware's UART is
//! checked by scripts/firmware-test.sh.)
#![cfg(unix)]
// Tests and their helpers: a panic is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;

use convrfm_core::Model;
use convrfm_core::wire::{
    REPLY_UNKNOWN, REQUEST_CLASSIFY, REQUEST_INFO, info_header, write_record,
};
use convrfm_train::data::idx::{IdxArray, IdxData, write_idx};

mod common;
use common::{assert_clean_error, convrfm};

const BLOB: &[u8] = include_bytes!("../../firmware/blobs/fashion-mnist-m0.blob");
const TEST_IMAGES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/fashion-mnist/t10k-images-idx3-ubyte.gz"
);
const TEST_LABELS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/fashion-mnist/t10k-labels-idx1-ubyte.gz"
);

/// A new pseudo-terminal: its master side and the slave's path.
fn open_pty() -> (File, String) {
    // SAFETY: plain POSIX calls on a descriptor this function owns; the
    // name buffer is NUL-terminated by ptsname_r on success.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
        let path = CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_owned();
        (File::from_raw_fd(fd), path)
    }
}

/// Answers the protocol on `master` as the firmware's `serve` does, until
/// the command closes the port; counts the images it was sent.
fn device(mut master: File, images: Arc<AtomicUsize>) {
    let model = Model::from_bytes(BLOB).unwrap();
    let mut scratch = vec![0u8; model.scratch_len()];
    let mut scores = vec![0i64; model.classes()];
    let mut image = vec![0u8; model.shape().pixels()];
    let mut request = [0u8];
    // A closed slave reads as an error (EIO) on Linux: the run is over.
    while master.read_exact(&mut request).is_ok() {
        match request[0] {
            REQUEST_INFO => {
                master.write_all(&info_header(&model)).unwrap();
                master.write_all(model.class_name_bytes()).unwrap();
            }
            REQUEST_CLASSIFY => {
                if master.read_exact(&mut image).is_err() {
                    return;
                }
                images.fetch_add(1, Ordering::SeqCst);
                let p = model
                    .predict_scores(&image, &mut scratch, &mut scores)
                    .unwrap();
                write_record(p.class as u8, &scores, |b| master.write_all(b)).unwrap();
            }
            _ => master.write_all(&[REPLY_UNKNOWN]).unwrap(),
        }
    }
}

/// Runs `convrfm serial --port PTY ARGS` against a device thread; returns
/// its output and how many images reached the device.
fn serial(args: &[&str]) -> (std::process::Output, usize) {
    let (master, port) = open_pty();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let t = thread::spawn(move || device(master, counter));
    let mut all = vec!["serial", "--port", &port, "--timeout", "20"];
    all.extend_from_slice(args);
    let o = convrfm(&all);
    t.join().unwrap();
    (o, sent.load(Ordering::SeqCst))
}

/// The core's records for the first `n` vendored test images.
fn host_records(n: usize) -> &'static [u8] {
    static RECORDS: OnceLock<Vec<u8>> = OnceLock::new();
    let all = RECORDS.get_or_init(|| {
        let set = convrfm_train::data::vendored_fashion_mnist(convrfm_train::data::Split::Test);
        let model = Model::from_bytes(BLOB).unwrap();
        let mut scratch = vec![0u8; model.scratch_len()];
        let mut scores = vec![0i64; model.classes()];
        let mut out = Vec::new();
        for img in set.images.pixels.chunks_exact(784).take(20) {
            let px: Vec<u8> = img.iter().map(|v| (v * 255.0).round() as u8).collect();
            let p = model
                .predict_scores(&px, &mut scratch, &mut scores)
                .unwrap();
            write_record::<()>(p.class as u8, &scores, |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        }
        out
    });
    &all[..n * 81]
}

#[test]
fn classifies_through_a_serial_port_as_the_core_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("records.bin");
    let (o, sent) = serial(&[
        "--images",
        TEST_IMAGES,
        "--labels",
        TEST_LABELS,
        "--limit",
        "12",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(sent, 12);
    assert_eq!(std::fs::read(&out).unwrap(), host_records(12));
    assert!(stdout.contains("1x28x28 images, 10 classes"), "{stdout}");
    // One line per image with its running accuracy, then the total.
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("accuracy")).collect();
    assert_eq!(lines.len(), 13, "{stdout}");
    assert!(lines[0].contains("[0]: 9 Ankle boot"), "{stdout}");
    assert!(lines[11].contains("/12)"), "{stdout}");
    assert!(lines[12].starts_with("accuracy") && lines[12].contains("on 12 images"));
    // Unlabelled: an IDX image file alone, as JSON lines.
    let (o, sent) = serial(&["--images", TEST_IMAGES, "--limit", "3", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sent, 3);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let json: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 3);
    assert_eq!(json[0]["class"], 9);
    assert!(json[0].get("running_accuracy").is_none());
}

#[test]
fn bad_input_fails_before_any_image_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    // Images of another shape than the board's model.
    let images = dir.path().join("small.idx");
    write_idx(
        &images,
        &IdxArray {
            dims: vec![2, 16, 16],
            data: IdxData::U8(vec![7; 512]),
        },
        false,
    )
    .unwrap();
    let (o, sent) = serial(&["--images", images.to_str().unwrap()]);
    assert_clean_error(&o, &["1x16x16", "the board's model 1x28x28"]);
    assert_eq!(sent, 0);
    // Labels beyond the board's classes.
    let labels = dir.path().join("labels.idx");
    write_idx(
        &labels,
        &IdxArray {
            dims: vec![2],
            data: IdxData::U8(vec![3, 12]),
        },
        false,
    )
    .unwrap();
    let images = dir.path().join("images.idx");
    write_idx(
        &images,
        &IdxArray {
            dims: vec![2, 28, 28],
            data: IdxData::U8(vec![7; 2 * 784]),
        },
        false,
    )
    .unwrap();
    let (o, sent) = serial(&[
        "--images",
        images.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
    ]);
    assert_clean_error(&o, &["label 12", "10 classes"]);
    assert_eq!(sent, 0);

    // Checked before the port is opened.
    let o = convrfm(&["serial", "--port", "/dev/null", "--timeout", "0"]);
    assert_clean_error(&o, &["--timeout must be a number of seconds above 0"]);
    let o = convrfm(&["serial", "--port", "/dev/convrfm-no-such-port"]);
    assert_clean_error(&o, &["opening serial port /dev/convrfm-no-such-port"]);
    // A port where nothing answers: the timeout names the likely causes.
    let (_master, port) = open_pty();
    let o = convrfm(&["serial", "--port", &port, "--timeout", "0.3"]);
    assert_clean_error(&o, &["no info from the board within 0.3 s"]);
}
