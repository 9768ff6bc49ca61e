//! What one prediction of `convrfm-core` costs on a Cortex-M, from a
//! blob's dimensions alone: the latency side of `export`'s budget
//! (`--max-instructions`) and `convrfm cost`.
//!
//! Per centre the core walks every grid position of every layer (the
//! ReLU step, the window sums) and, at layer 1, projects the centre's
//! patches onto `W` once per filter, two filters per pass for 4-bit
//! grayscale centres of even width (`docs/firmware.md`, "Where the
//! instructions go"). So
//!
//! `instructions = per_image + m (per_position (P_1 + ... + P_L) + per_pass P_1 passes)`
//!
//! with `passes = ceil(r / 2)` on the 4-bit grayscale path, `r` on the
//! byte path (8-bit, or 4-bit of odd width), `r c` for `c` channels.
//! The coefficients are least-squares fits (relative error) to QEMU
//! instruction counts (`-icount`, the firmware's `classify`) of
//! twenty-four runs, twelve blobs on each core: 28x28 depth-3 blobs, 4-
//! and 8-bit, ranks 2-9, 16-512 centres, learned and picked ([`tests`]
//! holds them); every one is predicted within 7 %. Positions under a
//! blank query field skip the ReLU step and blank centre patches take its
//! fast path, so the figures are means for images like Fashion-MNIST's
//! (the firmware's min-max spread is about -30/+15 %). Multi-channel
//! blobs are an extrapolation (the byte path's per-pass cost times `c`);
//! not measured.

use convrfm_core::Shape;

/// A core the cost model knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Cpu {
    /// Cortex-M4F (`thumbv7em-none-eabihf`): 32x32->64 multiply, CLZ.
    CortexM4f,
    /// Cortex-M0/M0+ (`thumbv6m-none-eabi`): neither.
    CortexM0,
}

impl Cpu {
    /// Both, in the order `convrfm cost` prints them.
    pub const ALL: [Cpu; 2] = [Cpu::CortexM4f, Cpu::CortexM0];

    /// The name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Cpu::CortexM4f => "cortex-m4f",
            Cpu::CortexM0 => "cortex-m0",
        }
    }

    fn coefficients(self) -> Coefficients {
        // Fitted on 28x28 depth-3 blobs: P_1 = 676, P_1 + P_2 + P_3 = 1736.
        match self {
            Cpu::CortexM4f => Coefficients {
                per_image: 0.431e6,
                per_position: 195_508.0 / 1736.0,
                per_pair_pass: 70_907.0 / 676.0,
                per_byte_pass: 39_821.0 / 676.0,
            },
            Cpu::CortexM0 => Coefficients {
                per_image: 0.503e6,
                per_position: 593_175.0 / 1736.0,
                per_pair_pass: 91_323.0 / 676.0,
                per_byte_pass: 54_079.0 / 676.0,
            },
        }
    }
}

/// Instructions per unit of work.
struct Coefficients {
    /// Start-up, the query's maps, the argmax.
    per_image: f64,
    /// Per centre and grid position of any layer.
    per_position: f64,
    /// Per centre, layer-1 position and pass of the 4-bit grayscale path.
    per_pair_pass: f64,
    /// Per centre, layer-1 position and pass of the byte path.
    per_byte_pass: f64,
}

/// The dimensions of a blob that its prediction cost depends on.
#[derive(Clone, Copy, Debug)]
pub struct BlobDims {
    /// Image geometry and kernel depth.
    pub shape: Shape,
    /// Metric rank.
    pub rank: usize,
    /// Centre pixel bits (4 or 8).
    pub pixel_bits: u8,
    /// Centres.
    pub centres: usize,
}

impl BlobDims {
    /// The dimensions of a validated blob.
    pub fn of(model: &convrfm_core::Model<'_>) -> Self {
        Self {
            shape: model.shape(),
            rank: model.rank(),
            pixel_bits: model.pixel_bits(),
            centres: model.centres(),
        }
    }

    /// Predicted mean instructions per inference on `cpu`.
    pub fn instructions(&self, cpu: Cpu) -> f64 {
        let c = cpu.coefficients();
        let s = &self.shape;
        let p1 = s.positions(1) as f64;
        let all: usize = (1..=s.depth()).map(|l| s.positions(l)).sum();
        let (r, ch) = (self.rank, s.channels());
        let pair_path = ch == 1 && self.pixel_bits == 4 && s.width() % 2 == 0;
        let passes = if pair_path {
            r.div_ceil(2) as f64 * c.per_pair_pass
        } else {
            (r * ch) as f64 * c.per_byte_pass
        };
        c.per_image + self.centres as f64 * (c.per_position * all as f64 + passes * p1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU means (M instructions per inference) with the core of the
    /// commit that fitted the coefficients: `scripts/firmware-test.sh` (1,000
    /// images) for the shipped blobs (192 centres rank 2, 32 rank 2, 16
    /// rank 4; the M4F figure of the last from the firmware's `classify` on
    /// the first 20 test images), and that `classify` run for the others:
    /// the previously shipped learned blobs (512 r2, 128 r9, 32 r6), one
    /// learned at 128 r2 and one at 512 r9 (`export`), and blobs exported
    /// with `--pixel-bits B --ranks R --max-flash F --no-learn`.
    const MEASURED: [(Cpu, u8, usize, usize, f64); 24] = [
        (Cpu::CortexM4f, 4, 2, 192, 52.7),
        (Cpu::CortexM4f, 4, 2, 32, 8.9),
        (Cpu::CortexM4f, 4, 4, 16, 5.896),
        (Cpu::CortexM4f, 4, 2, 512, 136.907),
        (Cpu::CortexM4f, 4, 9, 128, 69.486),
        (Cpu::CortexM4f, 4, 6, 32, 13.846),
        (Cpu::CortexM4f, 4, 2, 128, 34.447),
        (Cpu::CortexM4f, 4, 9, 512, 276.733),
        (Cpu::CortexM4f, 4, 4, 64, 22.293),
        (Cpu::CortexM4f, 4, 6, 32, 13.496),
        (Cpu::CortexM4f, 8, 2, 32, 8.913),
        (Cpu::CortexM4f, 8, 9, 64, 36.482),
        (Cpu::CortexM0, 4, 2, 192, 136.8),
        (Cpu::CortexM0, 4, 2, 32, 23.0),
        (Cpu::CortexM0, 4, 4, 16, 13.2),
        (Cpu::CortexM0, 4, 2, 512, 351.974),
        (Cpu::CortexM0, 4, 9, 128, 136.233),
        (Cpu::CortexM0, 4, 6, 32, 28.71),
        (Cpu::CortexM0, 4, 2, 128, 88.586),
        (Cpu::CortexM0, 4, 9, 512, 542.705),
        (Cpu::CortexM0, 4, 4, 64, 47.071),
        (Cpu::CortexM0, 4, 6, 32, 27.373),
        (Cpu::CortexM0, 8, 2, 32, 22.299),
        (Cpu::CortexM0, 8, 9, 64, 70.331),
    ];

    #[test]
    fn the_model_predicts_every_measured_blob_within_ten_percent() {
        let shape = Shape::new(1, 28, 28, 3).unwrap();
        for (cpu, pixel_bits, rank, centres, measured) in MEASURED {
            let dims = BlobDims {
                shape,
                rank,
                pixel_bits,
                centres,
            };
            let predicted = dims.instructions(cpu) / 1e6;
            let err = (predicted - measured) / measured;
            assert!(
                err.abs() < 0.10,
                "{} {pixel_bits}-bit rank {rank}, {centres} centres: predicted {predicted:.2} M, \
                 measured {measured} M ({:+.1} %)",
                cpu.name(),
                100.0 * err
            );
        }
    }

    #[test]
    fn cost_grows_with_centres_rank_and_depth() {
        let at = |depth, rank, centres| {
            BlobDims {
                shape: Shape::new(1, 28, 28, depth).unwrap(),
                rank,
                pixel_bits: 4,
                centres,
            }
            .instructions(Cpu::CortexM4f)
        };
        assert!(at(3, 2, 256) > at(3, 2, 128));
        assert!(at(3, 4, 128) > at(3, 2, 128));
        // Ranks 1 and 2 share one pass of the 4-bit path.
        assert_eq!(at(3, 1, 128), at(3, 2, 128));
        assert!(at(3, 2, 128) > at(2, 2, 128));
    }
}
