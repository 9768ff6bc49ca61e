//! The command line: every command, its flags and their defaults, and the
//! conversion of flags into the library's parameter types.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use convrfm_train::data::numpy::NumpyOptions;
use convrfm_train::data::{
    ImageDims, LabelledImages, PictureOptions, ReadOptions, ResizeFilter, Split, csv_table,
    pictures, synth,
};
use convrfm_train::export::c_source::ExportFormat;
use convrfm_train::export::cost::Cpu;
use convrfm_train::export::learn::LearnOptions;
use convrfm_train::export::{ExportOptions, Readout};
use convrfm_train::fit::{Protocol, Selection, TrainParams};
use convrfm_train::inspect::InspectOptions;
use convrfm_train::kernel::{KernelKind, Precision};
use convrfm_train::output::Progress;

use crate::load::{DataSpec, labelled, source};

#[derive(Parser)]
#[command(
    name = "convrfm",
    version,
    about = "Convolutional Recursive Feature Machines: train on a workstation, run on a microcontroller"
)]
pub struct Cli {
    /// Worker threads (absent or 0: all cores; at most 4 x the cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// No progress bars.
    #[arg(long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `convrfm train --help`: the folder workflow first, since it is what
/// most users have.
const TRAIN_EXAMPLES: &str = "\
Examples:
  # A folder of pictures, one sub-folder per class (pictures/cat/*.jpg, ...),
  # resized to 32x32 gray, 20 % held out for testing:
  convrfm train --train-dir pictures --size 32x32 --channels 1 --test-fraction 0.2 --out m.convrfm
  # Separate test pictures with the same class folders:
  convrfm train --train-dir train --test-dir test --out m.convrfm
  # CSV rows label,pixel1,...,pixelN (square one-channel images, or --shape CxHxW):
  convrfm train --train-images train.csv --test-images test.csv
  # NumPy: an .npz archive, or .npy images with .npy labels:
  convrfm train --train-images data.npz --npz-images x_train --npz-labels y_train
  convrfm train --train-images x.npy --train-labels y.npy --channels-last
  # IDX files, or Fashion-MNIST when no data is given:
  convrfm train --train-images train-images.idx.gz --train-labels train-labels.idx.gz
  convrfm train --train-limit 2000
Then: convrfm export --model m.convrfm --max-flash 64KiB, and
convrfm predict --blob model.blob photo.jpg";

#[derive(Subcommand)]
pub enum Command {
    /// Train a ConvRFM and save the model.
    #[command(after_help = TRAIN_EXAMPLES)]
    Train {
        #[command(flatten)]
        data: Box<DataArgs>,
        #[command(flatten)]
        params: ParamArgs,
        /// Model file to write.
        #[arg(long, short, default_value = "model.convrfm")]
        out: PathBuf,
    },
    /// Accuracy of a saved model, or of a blob through the integer core,
    /// on a labelled set.
    Eval {
        /// Model file written by `convrfm train`.
        #[arg(long, required_unless_present = "blob", conflicts_with = "blob")]
        model: Option<PathBuf>,
        /// Blob written by `convrfm export` (evaluated by convrfm-core).
        #[arg(long)]
        blob: Option<PathBuf>,
        /// Labelled images: a picture folder (DIR/<class>/<pictures>), a
        /// CSV or .npz file, or IDX / .npy images with --labels; default:
        /// Fashion-MNIST test images.
        #[arg(long)]
        images: Option<PathBuf>,
        /// IDX or .npy labels matching --images.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Use only the first N images.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Compress a trained model into a microcontroller blob that fits a
    /// flash budget (centres, low-rank metric and bit depth chosen on a
    /// validation split of the model's training images).
    Export {
        /// Model file written by `convrfm train`.
        #[arg(long)]
        model: PathBuf,
        /// Blob file to write (with --format c: NAME, for NAME.h and NAME.c).
        #[arg(long, short, default_value = "model.blob")]
        out: PathBuf,
        /// `blob`: the blob file; `c`: NAME.h (sizes as #defines) and NAME.c
        /// (the blob as an aligned const array, class names as strings) for
        /// a C project with core/ffi's library (docs/c-api.md).
        #[arg(long = "format", value_enum, default_value_t = ExportFormat::Blob)]
        out_format: ExportFormat,
        /// Largest blob allowed (e.g. 65536, 64KiB, 1MiB).
        #[arg(long, default_value = "256KiB", value_parser = parse_size)]
        max_flash: usize,
        /// Most instructions per inference on --cpu (e.g. 12M, 1.5G,
        /// 12000000), by the cost model of `convrfm cost`: a latency budget
        /// beside the flash budget (at one cycle per instruction, 12M is
        /// 150 ms at 80 MHz).
        #[arg(long, value_parser = parse_count)]
        max_instructions: Option<u64>,
        /// The core --max-instructions and the instruction columns are for.
        #[arg(long, value_enum, default_value_t = Cpu::CortexM4f)]
        cpu: Cpu,
        /// Print the accuracy-vs-size frontier at 16, 32, 64, 128, 256 KiB
        /// (each point rebuilt on the fit set and, with test data,
        /// evaluated in float and through the integer core).
        #[arg(long)]
        sweep: bool,
        /// Labelled images the compact model is fitted and validated on, as
        /// for `eval --images` (default: for a Fashion-MNIST model, all
        /// 60,000 training images of Debian's dataset-fashion-mnist when
        /// installed; else the model's own training images).
        #[arg(long)]
        fit_images: Option<PathBuf>,
        /// IDX or .npy labels matching --fit-images.
        #[arg(long, requires = "fit_images")]
        fit_labels: Option<PathBuf>,
        /// Use only the first N fit images.
        #[arg(long)]
        fit_limit: Option<usize>,
        /// Weights of the labels against the model's own scores in the
        /// compact model's targets (distillation), each in [0, 1]; the best
        /// on validation is kept. 1 alone: labels only, no teacher scores.
        #[arg(long, value_delimiter = ',', default_values_t = ExportOptions::default().label_weights)]
        label_weights: Vec<f64>,
        /// How the chosen blob's alpha is fitted once its centres are fixed:
        /// `softmax` (multinomial logistic regression on the labels, ridge
        /// chosen by 5-fold cross-validation over the fit images),
        /// `least-squares` (onto the labels mixed with the teacher's
        /// scores, as the search ranks candidates), or `auto`: the one of
        /// the two that cross-validates better.
        #[arg(long, value_enum, default_value_t = Readout::Auto)]
        readout: Readout,
        /// File caching the model's scores on the fit images, reused by the
        /// next export of the same model and fit set (default: the output
        /// path with `.teacher` appended).
        #[arg(long)]
        teacher_cache: Option<PathBuf>,
        /// Labelled test images for reporting, as for `eval --images`
        /// (default: Fashion-MNIST test set).
        #[arg(long)]
        test_images: Option<PathBuf>,
        /// IDX or .npy test labels.
        #[arg(long)]
        test_labels: Option<PathBuf>,
        /// Use only the first N test images.
        #[arg(long)]
        test_limit: Option<usize>,
        /// Skip test-set reporting.
        #[arg(long)]
        no_test: bool,
        /// Ridge values tried for the Nystroem re-fit (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = ExportOptions::default().lambdas)]
        lambdas: Vec<f64>,
        /// Ranks of the low-rank patch metric tried (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = ExportOptions::default().ranks)]
        ranks: Vec<usize>,
        /// Centre pixel depths tried, 4 and/or 8 bits (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = ExportOptions::default().pixel_bits)]
        pixel_bits: Vec<u8>,
        #[command(flatten)]
        learn: Box<LearnArgs>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Classify pictures (PNG, JPEG, BMP, PGM/PPM) or IDX / .npy image
    /// files with a blob (through the integer core) or a model: class,
    /// score and margin per image. Pictures get the preprocessing the
    /// model recorded (channels, size, resize filter).
    Predict {
        /// Blob written by `convrfm export`.
        #[arg(long, required_unless_present = "model", conflicts_with = "model")]
        blob: Option<PathBuf>,
        /// Model file written by `convrfm train`.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Picture files, or IDX / .npy files of images at the model's shape.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// One JSON object per image instead of text.
        #[arg(long)]
        json: bool,
        /// .npy inputs are (n, H, W, c).
        #[arg(long)]
        channels_last: bool,
    },
    /// Classify images on a board (or QEMU) running a convrfm firmware,
    /// over a serial port: the board says which model it runs, then each
    /// image goes out and its class and scores come back; prints class,
    /// score and running accuracy per image (docs/boards.md).
    Serial(SerialArgs),
    /// Predicted instructions per inference of a blob on a Cortex-M4F and
    /// a Cortex-M0 (the cost model behind `export --max-instructions`;
    /// means for images like Fashion-MNIST's, docs/export.md).
    Cost {
        /// Blob written by `convrfm export`.
        blob: PathBuf,
        /// Only this core, as a bare number (for scripts).
        #[arg(long, value_enum)]
        cpu: Option<Cpu>,
    },
    /// Train on the Fashion-MNIST subset shipped with convrfm (2,000 train,
    /// 1,000 test; no download) and print each iteration.
    Demo {
        /// Also save the model here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Draw a model as PNG figures: learned metric M, its top eigenvectors
    /// as 3x3 filters, per-class gradient maps on sample images, Deep
    /// ConvRFM filters, accuracy per iteration.
    Inspect {
        /// Model file written by `convrfm train`.
        model: PathBuf,
        /// Directory for the PNG files (created if missing).
        #[arg(long, short, default_value = "inspect")]
        out: PathBuf,
        /// Labelled images for the gradient maps, as for `eval --images`
        /// (default: the model's training images).
        #[arg(long)]
        images: Option<PathBuf>,
        /// IDX or .npy labels matching --images.
        #[arg(long)]
        labels: Option<PathBuf>,
        #[command(flatten)]
        format: FormatArgs,
        /// Sample images for gradient maps (the first of each class).
        #[arg(long, default_value_t = 4)]
        samples: usize,
        /// Eigenvectors of M drawn.
        #[arg(long, default_value_t = InspectOptions::default().eigenvectors)]
        eigenvectors: usize,
    },
    /// Data sets: look at one, convert one to IDX, or generate the
    /// paper's synthetic tasks.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// The paper's comparison on a synthetic task: CNTK (M = I), ConvRFM and
    /// Deep ConvRFM (--layers, at least 2), lambda and iteration chosen on
    /// validation, then scored on the test set.
    Experiment {
        #[command(flatten)]
        task: TaskArgs,
        #[command(flatten)]
        params: ParamArgs,
        /// Save each method's model in this directory (for `convrfm inspect`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only CNTK and ConvRFM (Deep ConvRFM's wide feature maps make it
        /// the slow part on large images).
        #[arg(long)]
        no_deep: bool,
    },
    /// Seconds per training phase at a given size (the first iteration of
    /// a run with the authors' protocol: all images fitted, AGOP over the
    /// first 20), on Fashion-MNIST.
    Bench {
        /// Training images.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Test images.
        #[arg(long, default_value_t = 1000)]
        test: usize,
        /// Patch side (odd).
        #[arg(long = "patch-size", default_value_t = 3)]
        patch: usize,
        /// Kernel depth.
        #[arg(long, default_value_t = 3)]
        depth: usize,
        /// Kernel float type.
        #[arg(long, value_enum, default_value_t = Precision::F32)]
        precision: Precision,
    },
}

/// `convrfm serial`'s arguments.
#[derive(Args)]
pub struct SerialArgs {
    /// The board's serial port (/dev/ttyACM0, /dev/ttyUSB0, COM3, or the
    /// pseudo-terminal of QEMU's `-serial pty`).
    #[arg(long)]
    pub port: String,
    /// Baud rate (the board examples use 115200).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Labelled images as for `eval --images` (IDX / .npy with
    /// --labels), or unlabelled: one picture file, or an IDX / .npy
    /// image file without --labels; default: Fashion-MNIST test images.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// IDX or .npy labels matching --images.
    #[arg(long, requires = "images")]
    pub labels: Option<PathBuf>,
    /// Send only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Seconds to wait for the board's info and for each result.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Also write the board's records (class byte and i64 scores per
    /// image, the firmware's format) to this file, once all arrived.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// One JSON object per image instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Print what convrfm sees in a data set: source, shape, pixel type,
    /// class counts and the first images as text.
    Show {
        /// A picture folder, CSV or .npz file, or IDX / .npy images (with
        /// --labels).
        path: PathBuf,
        /// IDX or .npy labels matching PATH.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Images drawn as text.
        #[arg(long, default_value_t = 2)]
        preview: usize,
        /// Also draw the first --per-class images of every class into this
        /// PNG file (one row per class).
        #[arg(long)]
        png: Option<PathBuf>,
        /// Images per class in --png.
        #[arg(long, default_value_t = 8)]
        per_class: usize,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Write a data set (picture folder, CSV, NumPy, IDX) as an IDX pair
    /// `images.idx.gz` and `labels.idx.gz` in --out, with the class names in
    /// `classes.txt`.
    Convert {
        /// A picture folder, CSV or .npz file, or IDX / .npy images (with
        /// --labels).
        path: PathBuf,
        /// IDX or .npy labels matching PATH.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Output directory (created if missing).
        #[arg(long, short)]
        out: PathBuf,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Generate a task's training and test sets (seeded) as IDX files
    /// `train-images.idx.gz`, `train-labels.idx.gz`, `test-images.idx.gz`,
    /// `test-labels.idx.gz` in --out, for `convrfm train --data DIR`.
    Gen {
        #[command(flatten)]
        task: TaskArgs,
        /// Output directory (created if missing).
        #[arg(long, short)]
        out: PathBuf,
    },
}

/// The synthetic local-signal tasks.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Task {
    /// 3x32x32 noise; class 1 has a 7x7 star of ones in two channels.
    Star,
    /// A digit (by default a Fashion-MNIST image) at a random place in a
    /// 42x42 noise frame.
    NoisyDigits,
    /// 1x16x32 noise rows; one row is +-ones/sqrt(32), its sign the class.
    ToyRows,
}

#[derive(Args)]
pub struct TaskArgs {
    /// Which task.
    #[arg(value_enum)]
    pub task: Task,
    /// Training images.
    #[arg(long = "train", default_value_t = 200)]
    pub n_train: usize,
    /// Test images.
    #[arg(long = "test", default_value_t = 1000)]
    pub n_test: usize,
    /// Seed of the generator (training and test sets use separate streams).
    #[arg(long = "data-seed", default_value_t = 0)]
    pub data_seed: u64,
    /// star: largest row and column offset of the star (0-25; 25: anywhere
    /// in the 32x32 frame; 16: the authors' notebook, randint(0, 17)).
    #[arg(long, default_value_t = synth::STAR_MAX_OFFSET)]
    pub max_offset: usize,
    /// toy-rows: noise variance per row, sigma.
    #[arg(long, default_value_t = 1.0)]
    pub sigma: f64,
    /// noisy-digits: IDX training digits (default: Fashion-MNIST training images).
    #[arg(long, requires = "digits_train_labels")]
    pub digits_train_images: Option<PathBuf>,
    /// noisy-digits: labels of --digits-train-images.
    #[arg(long, requires = "digits_train_images")]
    pub digits_train_labels: Option<PathBuf>,
    /// noisy-digits: IDX test digits (default: Fashion-MNIST test images).
    #[arg(long, requires = "digits_test_labels")]
    pub digits_test_images: Option<PathBuf>,
    /// noisy-digits: labels of --digits-test-images.
    #[arg(long, requires = "digits_test_images")]
    pub digits_test_labels: Option<PathBuf>,
}

impl TaskArgs {
    /// The task's set for `split`.
    pub fn generate(&self, split: Split, progress: Progress) -> Result<LabelledImages> {
        let n = match split {
            Split::Train => self.n_train,
            Split::Test => self.n_test,
        };
        if n == 0 {
            bail!("asked for 0 {split} images");
        }
        let seed = self.data_seed;
        match self.task {
            Task::Star => synth::star(n, self.max_offset, seed, split),
            Task::ToyRows => synth::toy_rows(n, self.sigma, seed, split),
            Task::NoisyDigits => {
                let files = match split {
                    Split::Train => (&self.digits_train_images, &self.digits_train_labels),
                    Split::Test => (&self.digits_test_images, &self.digits_test_labels),
                };
                let digits = labelled(
                    DataSpec {
                        source: source(files.0, files.1)?,
                        split,
                        limit: Some(n),
                        limit_flag: if split == Split::Train {
                            "--train"
                        } else {
                            "--test"
                        },
                        what: &format!("{split} digits"),
                        read: &ReadOptions::default(),
                        like: None,
                    },
                    progress,
                )?;
                synth::noisy_digits(
                    &digits,
                    synth::NOISY_DIGITS_FRAME,
                    synth::NOISY_DIGITS_NOISE_STD,
                    seed,
                    split,
                )
            }
        }
    }
}

/// The files `convrfm data gen` writes in `dir`: train images, train
/// labels, test images, test labels.
pub fn synth_files(dir: &Path) -> [PathBuf; 4] {
    ["train-images", "train-labels", "test-images", "test-labels"]
        .map(|name| dir.join(format!("{name}.idx.gz")))
}

#[derive(Args)]
pub struct DataArgs {
    /// Training pictures: DIR/<class name>/<pictures> (PNG, JPEG, BMP,
    /// PGM/PPM); class names are the folder names.
    #[arg(long, conflicts_with_all = ["data", "train_images", "train_labels"])]
    pub train_dir: Option<PathBuf>,
    /// Test pictures, with the training classes' folder names (reported
    /// only, never used to choose anything).
    #[arg(long, conflicts_with_all = ["data", "test_images", "test_labels"])]
    pub test_dir: Option<PathBuf>,
    /// Hold out this share of the training images (stratified by class,
    /// seeded by --seed) as the test set, when no test set is given.
    #[arg(long, conflicts_with = "data")]
    pub test_fraction: Option<f64>,
    /// Directory written by `convrfm data gen` (its train-* and test-* files).
    #[arg(
        long,
        conflicts_with_all = ["train_images", "train_labels", "test_images", "test_labels"]
    )]
    pub data: Option<PathBuf>,
    /// Number of classes of training files whose labels leave some class
    /// without an image (default: one more than the largest label, and
    /// every class must occur).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Training images: a CSV or .npz file, IDX or .npy images with
    /// --train-labels, or a picture folder; default: Fashion-MNIST.
    #[arg(long)]
    pub train_images: Option<PathBuf>,
    /// IDX or .npy training labels.
    #[arg(long)]
    pub train_labels: Option<PathBuf>,
    /// Test images, as --train-images (reported only, never used to choose
    /// anything).
    #[arg(long)]
    pub test_images: Option<PathBuf>,
    /// IDX or .npy test labels.
    #[arg(long)]
    pub test_labels: Option<PathBuf>,
    /// Use only the first N training images (of a picture folder: N spread
    /// over the classes in proportion, the first of each).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images (of a picture folder: spread as
    /// --train-limit).
    #[arg(long)]
    pub test_limit: Option<usize>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// How `export` learns the chosen blob's centres (docs/export.md).
#[derive(Args, Debug)]
pub struct LearnArgs {
    /// Wall-clock bound of learning the centres (e.g. 90s, 5m, 1h); with
    /// --sweep, each frontier point gets its own.
    #[arg(long, default_value = "7m", value_parser = humantime::parse_duration)]
    pub time_budget: Duration,
    /// Most Adam steps (whichever of this and --time-budget ends first; a
    /// run ended by steps is deterministic for a seed and thread count).
    #[arg(long, default_value_t = LearnOptions::default().max_steps)]
    pub learn_steps: usize,
    /// Fit images per step.
    #[arg(long, default_value_t = LearnOptions::default().batch)]
    pub learn_batch: usize,
    /// Adam's step size, in pixel units (pixels are in [0, 1]).
    #[arg(long, default_value_t = LearnOptions::default().learning_rate)]
    pub learning_rate: f64,
    /// Keep the centres pivoted Cholesky picks from the fit images.
    #[arg(long, conflicts_with_all = ["time_budget", "learn_steps", "learn_batch", "learning_rate"])]
    pub no_learn: bool,
}

impl LearnArgs {
    /// The options, `None` with --no-learn (checked with the rest of the
    /// export options).
    pub fn options(&self) -> Option<LearnOptions> {
        (!self.no_learn).then_some(LearnOptions {
            time_budget: self.time_budget,
            max_steps: self.learn_steps,
            batch: self.learn_batch,
            learning_rate: self.learning_rate,
        })
    }
}

/// How data files are read, besides what their paths say.
#[derive(Args)]
pub struct FormatArgs {
    /// Pictures: 1 (gray) or 3 (RGB); default: what the pictures are (all
    /// must agree).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Pictures: resize every picture to HxW, e.g. 28x28; default: their
    /// own size (all must agree).
    #[arg(long, value_parser = pictures::parse_size)]
    pub size: Option<(usize, usize)>,
    /// Pictures: the resize filter [default: triangle] (recorded in the
    /// model and the blob, and applied to every picture a command reads
    /// for it).
    #[arg(long, value_enum)]
    pub resize_filter: Option<ResizeFilter>,
    /// Pictures: leave out (and count) files that are not readable pictures
    /// instead of stopping at the first.
    #[arg(long)]
    pub skip_unreadable: bool,
    /// CSV: image shape CxHxW, e.g. 3x32x32 (default: square, one channel).
    #[arg(long, value_parser = csv_table::parse_shape)]
    pub shape: Option<ImageDims>,
    /// NumPy: rank-4 images are (n, H, W, c) instead of (n, c, H, W).
    #[arg(long)]
    pub channels_last: bool,
    /// .npz: the images array (default: the only one of rank 3 or 4).
    #[arg(long)]
    pub npz_images: Option<String>,
    /// .npz: the labels array (default: the only one of rank 1).
    #[arg(long)]
    pub npz_labels: Option<String>,
}

impl FormatArgs {
    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            pictures: PictureOptions {
                channels: self.channels,
                size: self.size,
                filter: self.resize_filter,
                skip_unreadable: self.skip_unreadable,
            },
            shape: self.shape,
            numpy: NumpyOptions {
                channels_last: self.channels_last,
                images_key: self.npz_images.clone(),
                labels_key: self.npz_labels.clone(),
            },
        }
    }
}

#[derive(Args)]
pub struct ParamArgs {
    /// Patch side Q (odd): the kernel's first layer sees Q x Q patches and
    /// every later layer is a Q x Q window, as the authors' Vanilla(ps,
    /// depth). Blobs hold Q = 3 only.
    #[arg(long = "patch-size", default_value_t = 3)]
    pub patch_size: usize,
    /// Kernel depth (conv layers including the patch layer).
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// ConvRFM iterations (iteration 0 is the plain convolutional kernel).
    #[arg(long, default_value_t = 5)]
    pub iterations: usize,
    /// Ridge values tried (comma-separated; default
    /// 1e-6,1e-4,1e-3,1e-2,1e-1; not with --protocol reference, which has
    /// its own).
    #[arg(long, value_delimiter = ',')]
    pub lambdas: Option<Vec<f64>>,
    /// How lambda and the iteration are chosen on training data: `loo`
    /// (exact leave-one-out, every image fitted), `kfold:K` (stratified),
    /// `split:F` (a stratified held-out share F, then a re-fit on all), or
    /// `auto`: loo up to 5,000 training images, else split:0.2.
    #[arg(long, default_value = "auto")]
    pub selection: Selection,
    /// Training images the AGOP is averaged over.
    #[arg(long, default_value_t = 100)]
    pub agop_images: usize,
    /// Kernel float type.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Kernel.
    #[arg(long, value_enum, default_value_t = KernelKind::Ntk)]
    pub kernel: KernelKind,
    /// Seed of the selection's split or folds and of the AGOP sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `standard` (chosen on training data) or `reference` (the authors'
    /// script, chosen on the test set; for comparison only).
    #[arg(long, value_enum, default_value_t = Protocol::Standard)]
    pub protocol: Protocol,
    /// Deep ConvRFM layers: after each layer, its learned metric becomes a
    /// Q x Q conv layer of --filters filters and ConvRFM runs again on the
    /// feature maps with a kernel one layer shallower.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Filters per Deep ConvRFM feature layer.
    #[arg(long, default_value_t = 64)]
    pub filters: usize,
}

impl ParamArgs {
    pub fn params(&self) -> TrainParams {
        TrainParams {
            patch: self.patch_size,
            depth: self.depth,
            iterations: self.iterations,
            lambdas: self.lambdas.clone(),
            selection: self.selection,
            agop_images: self.agop_images,
            precision: self.precision,
            kind: self.kernel,
            seed: self.seed,
            protocol: self.protocol,
            layers: self.layers,
            filters: self.filters,
            ..TrainParams::default()
        }
    }
}

/// Parses a byte size: `65536`, `64K`, `64KiB`, `1M`, `1MiB` (K = 1024).
/// A count with an optional decimal suffix: 12000000, 12M, 1.5G, 800k.
pub(crate) fn parse_count(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'M')) => (&t[..i], 1e6),
        Some((i, 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| {
            format!("count {s:?}: expected a positive number like 12000000, 12M or 1.5G")
        })?;
    let n = v * mult;
    anyhow::ensure!((1.0..1.8e19).contains(&n), "count {s:?} is out of range");
    Ok(n.round() as u64)
}

pub(crate) fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .with_context(|| format!("size {s:?}: expected a number like 65536 or 64KiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        other => anyhow::bail!("size {s:?}: unknown unit {other:?} (use K/KiB or M/MiB)"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
        assert_eq!(parse_count("12000000").unwrap(), 12_000_000);
        assert_eq!(parse_count("12M").unwrap(), 12_000_000);
        assert_eq!(parse_count("1.5G").unwrap(), 1_500_000_000);
        assert_eq!(parse_count("800k").unwrap(), 800_000);
        for bad in ["0", "-3M", "12 parsecs", "M", "nan", "1e30"] {
            assert!(parse_count(bad).is_err(), "{bad}");
        }
    }
}
