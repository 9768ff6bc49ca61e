//! Criterion benchmark of `convrfm-core` prediction on the host: the
//! default firmware blob (`firmware/blobs/fashion-mnist.blob`: 1x28x28,
//! depth 3, 192 centres at 4 bits, rank 2) on the first vendored
//! Fashion-MNIST test images, through the same integer code the firmware
//! runs.
//!
//! `cargo bench -p convrfm-benches --bench core_predict` (add `-- --quick`
//! for a fast pass). Criterion reports the time per prediction and the
//! throughput in centres (`per_centre`) and in centre-positions
//! (`per_centre_position`: centres x the 676 + 576 + 484 grid positions of
//! the three layers), the units the device cost scales with. Instruction
//! counts on the microcontrollers come from `scripts/firmware-test.sh`.

use std::hint::black_box;

use convrfm_core::Model;
use convrfm_train::data::{Split, vendored_fashion_mnist};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The blob the firmware embeds by default.
static BLOB: &[u8] = include_bytes!("../../firmware/blobs/fashion-mnist.blob");

/// Test images cycled through, so one lucky image does not set the figure.
const IMAGES: usize = 16;

fn core_predict(c: &mut Criterion) {
    let model = Model::from_bytes(BLOB).expect("the default blob is valid");
    let test = vendored_fashion_mnist(Split::Test);
    let pixels = model.shape().pixels();
    let images: Vec<Vec<u8>> = (0..IMAGES)
        .map(|i| {
            test.images
                .image(i)
                .iter()
                .map(|&p| (p * 255.0).round() as u8)
                .collect()
        })
        .collect();
    assert!(images.iter().all(|im| im.len() == pixels));
    let mut scratch = vec![0u8; model.scratch_len()];
    let s = model.shape();
    let positions: usize = (1..=s.depth()).map(|l| s.positions(l)).sum();
    let centres = model.centres() as u64;
    for (name, per) in [
        ("per_centre", centres),
        ("per_centre_position", centres * positions as u64),
    ] {
        let mut group = c.benchmark_group("core_predict_default_blob");
        group.throughput(Throughput::Elements(per));
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % IMAGES;
                model.predict(black_box(&images[i]), &mut scratch)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, core_predict);
criterion_main!(benches);
