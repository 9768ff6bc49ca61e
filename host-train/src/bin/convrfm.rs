//! `convrfm`: train, evaluate and benchmark convolutional Recursive Feature
//! Machines. Run `convrfm --help` for the commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use convrfm_train::data::{self, DataSource, LabelledImages, Split};
use convrfm_train::inspect::{self, InspectOptions};
use convrfm_train::kernel::KernelKind;
use convrfm_train::model::Model;
use convrfm_train::progress::Progress;
use convrfm_train::rfm::{self, IterationReport, Precision, Protocol, TrainParams};
use convrfm_train::{experiment, export, synth};

#[derive(Parser)]
#[command(
    name = "convrfm",
    version,
    about = "Convolutional Recursive Feature Machines: train on a workstation, run on a microcontroller"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// No progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a ConvRFM and save the model.
    Train {
        #[command(flatten)]
        data: DataArgs,
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
        /// IDX images (gz or raw); default: Fashion-MNIST test images.
        #[arg(long, requires = "labels")]
        images: Option<PathBuf>,
        /// IDX labels matching --images.
        #[arg(long, requires = "images")]
        labels: Option<PathBuf>,
        /// Use only the first N images.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Compress a trained model into a microcontroller blob that fits a
    /// flash budget (centres, low-rank metric and bit depth chosen on a
    /// validation split of the model's training images).
    Export {
        /// Model file written by `convrfm train`.
        #[arg(long)]
        model: PathBuf,
        /// Blob file to write.
        #[arg(long, short, default_value = "model.blob")]
        out: PathBuf,
        /// Largest blob allowed (e.g. 65536, 64KiB, 1MiB).
        #[arg(long, default_value = "256KiB", value_parser = export::parse_size)]
        max_flash: usize,
        /// Print the accuracy-vs-size frontier at 16, 32, 64, 128, 256 KiB
        /// (each point rebuilt on all training images and, with test data,
        /// evaluated in float and through the integer core).
        #[arg(long)]
        sweep: bool,
        /// IDX test images for reporting (default: Fashion-MNIST test set).
        #[arg(long, requires = "test_labels")]
        test_images: Option<PathBuf>,
        /// IDX test labels.
        #[arg(long, requires = "test_images")]
        test_labels: Option<PathBuf>,
        /// Use only the first N test images.
        #[arg(long)]
        test_limit: Option<usize>,
        /// Skip test-set reporting.
        #[arg(long)]
        no_test: bool,
        /// Ridge values tried for the Nystroem re-fit (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = export::ExportOptions::default().lambdas)]
        lambdas: Vec<f64>,
    },
    /// Classify IDX images with a blob (through the integer core).
    Predict {
        /// Blob written by `convrfm export`.
        #[arg(long)]
        blob: PathBuf,
        /// IDX image files (gz or raw), `n x H x W` or `n x c x H x W`.
        #[arg(required = true)]
        images: Vec<PathBuf>,
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
        /// IDX images for the gradient maps (default: the model's training images).
        #[arg(long, requires = "labels")]
        images: Option<PathBuf>,
        /// IDX labels matching --images.
        #[arg(long, requires = "images")]
        labels: Option<PathBuf>,
        /// Sample images for gradient maps (the first of each class).
        #[arg(long, default_value_t = 4)]
        samples: usize,
        /// Eigenvectors of M drawn.
        #[arg(long, default_value_t = InspectOptions::default().eigenvectors)]
        eigenvectors: usize,
    },
    /// Synthetic data sets from the paper.
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
    /// Seconds per training phase at a given size (one iteration, plus the
    /// AGOP), on Fashion-MNIST.
    Bench {
        /// Training images.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Test images.
        #[arg(long, default_value_t = 1000)]
        test: usize,
        /// Kernel depth.
        #[arg(long, default_value_t = 3)]
        depth: usize,
        /// AGOP images.
        #[arg(long, default_value_t = 20)]
        agop_images: usize,
        /// Kernel float type.
        #[arg(long, value_enum, default_value_t = Precision::F32)]
        precision: Precision,
    },
}

#[derive(Subcommand)]
enum DataCommand {
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
enum Task {
    /// 3x32x32 noise; class 1 has a 7x7 star of ones in two channels.
    Star,
    /// A digit (by default a Fashion-MNIST image) at a random place in a
    /// 42x42 noise frame.
    NoisyDigits,
    /// 1x16x32 noise rows; one row is +-ones/sqrt(32), its sign the class.
    ToyRows,
}

#[derive(Args)]
struct TaskArgs {
    /// Which task.
    #[arg(value_enum)]
    task: Task,
    /// Training images.
    #[arg(long = "train", default_value_t = 200)]
    n_train: usize,
    /// Test images.
    #[arg(long = "test", default_value_t = 1000)]
    n_test: usize,
    /// Seed of the generator (training and test sets use separate streams).
    #[arg(long = "data-seed", default_value_t = 0)]
    data_seed: u64,
    /// toy-rows: noise variance per row, sigma.
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
    /// noisy-digits: IDX training digits (default: Fashion-MNIST training images).
    #[arg(long, requires = "digits_train_labels")]
    digits_train_images: Option<PathBuf>,
    /// noisy-digits: labels of --digits-train-images.
    #[arg(long, requires = "digits_train_images")]
    digits_train_labels: Option<PathBuf>,
    /// noisy-digits: IDX test digits (default: Fashion-MNIST test images).
    #[arg(long, requires = "digits_test_labels")]
    digits_test_images: Option<PathBuf>,
    /// noisy-digits: labels of --digits-test-images.
    #[arg(long, requires = "digits_test_images")]
    digits_test_labels: Option<PathBuf>,
}

impl TaskArgs {
    /// The task's set for `split`.
    fn generate(&self, split: Split) -> Result<LabelledImages> {
        let n = match split {
            Split::Train => self.n_train,
            Split::Test => self.n_test,
        };
        if n == 0 {
            bail!("asked for 0 {split} images");
        }
        let seed = self.data_seed;
        match self.task {
            Task::Star => Ok(synth::star(n, seed, split)),
            Task::ToyRows => synth::toy_rows(n, self.sigma, seed, split),
            Task::NoisyDigits => {
                let files = match split {
                    Split::Train => (&self.digits_train_images, &self.digits_train_labels),
                    Split::Test => (&self.digits_test_images, &self.digits_test_labels),
                };
                let digits = match files {
                    (Some(i), Some(l)) => limit_set(data::load_idx_pair(i, l)?, Some(n), i)?,
                    _ => {
                        let (set, source) = data::fashion_mnist(split, Some(n))?;
                        println!("{split} digits: {source}");
                        set
                    }
                };
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
fn synth_files(dir: &Path) -> [PathBuf; 4] {
    ["train-images", "train-labels", "test-images", "test-labels"]
        .map(|name| dir.join(format!("{name}.idx.gz")))
}

#[derive(Args)]
struct DataArgs {
    /// Directory written by `convrfm data gen` (its train-* and test-* files).
    #[arg(long, conflicts_with_all = ["train_images", "test_images"])]
    data: Option<PathBuf>,
    /// IDX training images (gz or raw); default: Fashion-MNIST.
    #[arg(long, requires = "train_labels")]
    train_images: Option<PathBuf>,
    /// IDX training labels.
    #[arg(long, requires = "train_images")]
    train_labels: Option<PathBuf>,
    /// IDX test images (reported only, never used to choose anything).
    #[arg(long, requires = "test_labels")]
    test_images: Option<PathBuf>,
    /// IDX test labels.
    #[arg(long, requires = "test_images")]
    test_labels: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
}

#[derive(Args)]
struct ParamArgs {
    /// Kernel depth (conv layers including the patch layer).
    #[arg(long, default_value_t = 3)]
    depth: usize,
    /// ConvRFM iterations (iteration 0 is the plain convolutional kernel).
    #[arg(long, default_value_t = 5)]
    iterations: usize,
    /// Ridge values tried on validation (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = TrainParams::default().lambdas)]
    lambdas: Vec<f64>,
    /// Share of training images held out for validation.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Training images the AGOP is averaged over.
    #[arg(long, default_value_t = 100)]
    agop_images: usize,
    /// Kernel float type.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Kernel.
    #[arg(long, value_enum, default_value_t = KernelKind::Ntk)]
    kernel: KernelKind,
    /// Seed of the validation split and AGOP sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `standard` (validation) or `reference` (the authors' script, for comparison).
    #[arg(long, value_enum, default_value_t = Protocol::Standard)]
    protocol: Protocol,
    /// Deep ConvRFM layers: after each layer, its learned metric becomes a
    /// 3x3 conv layer of --filters filters and ConvRFM runs again on the
    /// feature maps with a kernel one layer shallower.
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Filters per Deep ConvRFM feature layer.
    #[arg(long, default_value_t = 64)]
    filters: usize,
}

impl ParamArgs {
    fn params(&self) -> TrainParams {
        TrainParams {
            depth: self.depth,
            iterations: self.iterations,
            lambdas: self.lambdas.clone(),
            val_fraction: self.val_fraction,
            agop_images: self.agop_images,
            precision: self.precision,
            kind: self.kernel,
            seed: self.seed,
            protocol: self.protocol,
            layers: self.layers,
            filters: self.filters,
        }
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(t) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("setting up the thread pool")?;
    }
    let progress = Progress { quiet: cli.quiet };
    match cli.command {
        Command::Train { data, params, out } => {
            let params = params.params().check()?;
            let (train, test) = load_data(&data)?;
            train_and_report(&params, &train, test.as_ref(), progress, Some(&out))
        }
        Command::Eval {
            model,
            blob,
            images,
            labels,
            limit,
        } => {
            // Load what is evaluated first: a bad model fails before any data is read.
            let model = model.map(|m| Model::load(&m)).transpose()?;
            let blob = blob
                .map(|b| {
                    std::fs::read(&b)
                        .with_context(|| format!("reading blob {}", b.display()))
                        .map(|bytes| (b, bytes))
                })
                .transpose()?;
            let set = match (images, labels) {
                (Some(i), Some(l)) => limit_set(data::load_idx_pair(&i, &l)?, limit, &i)?,
                _ => {
                    let (set, source) = data::fashion_mnist(Split::Test, limit)?;
                    println!("data: {source}");
                    set
                }
            };
            let t = Instant::now();
            let acc = match (model, blob) {
                (Some(m), _) => m.accuracy(&set, progress)?,
                (None, Some((b, bytes))) => {
                    let pred = export::blob_predict(&bytes, &set.images, progress)
                        .with_context(|| format!("blob {}", b.display()))?;
                    rfm::share_correct(pred.iter().map(|p| p.0), &set.labels)
                }
                (None, None) => bail!("give --model or --blob"),
            };
            println!(
                "accuracy {:.2} % on {} images ({:.1} s)",
                100.0 * acc,
                set.len(),
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Demo { out } => {
            let train = data::vendored_fashion_mnist(Split::Train);
            let test = data::vendored_fashion_mnist(Split::Test);
            println!(
                "demo: Fashion-MNIST subset shipped with convrfm: {} train, {} test images",
                train.len(),
                test.len()
            );
            let params = TrainParams::default().check()?;
            train_and_report(&params, &train, Some(&test), progress, out.as_deref())
        }
        Command::Export {
            model,
            out,
            max_flash,
            sweep,
            test_images,
            test_labels,
            test_limit,
            no_test,
            lambdas,
        } => {
            let path = model;
            let model = Model::load(&path)?;
            let test = if no_test {
                None
            } else {
                match (test_images, test_labels) {
                    (Some(i), Some(l)) => {
                        Some(limit_set(data::load_idx_pair(&i, &l)?, test_limit, &i)?)
                    }
                    _ => {
                        let (set, source) = data::fashion_mnist(Split::Test, test_limit)?;
                        println!("test data: {source}");
                        Some(set)
                    }
                }
            };
            let opts = export::ExportOptions {
                max_flash,
                lambdas,
                ..export::ExportOptions::default()
            };
            run_export(&model, &out, &opts, sweep, test.as_ref(), progress)
        }
        Command::Predict { blob, images } => {
            let bytes =
                std::fs::read(&blob).with_context(|| format!("reading blob {}", blob.display()))?;
            let core = convrfm_core::Model::from_bytes(&bytes)
                .map_err(|e| anyhow::anyhow!("blob {}: {e}", blob.display()))?;
            for path in &images {
                let set = data::load_idx_images(path)?;
                let pred = export::blob_predict(&bytes, &set, progress)
                    .with_context(|| format!("{}", path.display()))?;
                for (i, (class, scores)) in pred.iter().enumerate() {
                    let name = core.class_name(*class).unwrap_or("?");
                    println!("{}[{i}]: {class} {name}  scores {scores:?}", path.display());
                }
            }
            Ok(())
        }
        Command::Inspect {
            model,
            out,
            images,
            labels,
            samples,
            eigenvectors,
        } => {
            let path = model;
            let model = Model::load(&path)?;
            let set = match (images, labels) {
                (Some(i), Some(l)) => data::load_idx_pair(&i, &l)?,
                _ => model.training_data(),
            };
            let opts = InspectOptions {
                eigenvectors,
                ..InspectOptions::default()
            };
            if model.metric.is_scaled_identity() {
                println!(
                    "note: the model kept iteration 0 (M = I, the plain convolutional kernel): \
                     M and its eigenvectors show nothing learned"
                );
            }
            let samples = inspect::one_per_class(&set, samples);
            for file in inspect::inspect(&model, &samples, &opts, &out, progress)? {
                println!("wrote {}", file.display());
            }
            Ok(())
        }
        Command::Data {
            command: DataCommand::Gen { task, out },
        } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let [train_images, train_labels, test_images, test_labels] = synth_files(&out);
            for (split, images, labels) in [
                (Split::Train, &train_images, &train_labels),
                (Split::Test, &test_images, &test_labels),
            ] {
                let set = task.generate(split)?;
                data::save_idx_pair(&set, images, labels)?;
                let (c, h, w) = (set.images.channels, set.images.height, set.images.width);
                println!(
                    "{split}: {} images {c}x{h}x{w} ({}), {} classes -> {}",
                    set.len(),
                    set.images.pixel_type,
                    set.num_classes(),
                    images.display()
                );
            }
            println!("train on it with: convrfm train --data {}", out.display());
            Ok(())
        }
        Command::Experiment {
            task,
            params,
            out,
            no_deep,
        } => {
            let params = params.params();
            params.clone().check()?;
            let train = task.generate(Split::Train)?;
            let test = task.generate(Split::Test)?;
            println!(
                "experiment: {} train / {} test images {}x{}x{}, {} classes",
                train.len(),
                test.len(),
                train.images.channels,
                train.images.height,
                train.images.width,
                train.num_classes()
            );
            let t = Instant::now();
            let mut print = iteration_printer(params.protocol == Protocol::Reference);
            let cmp = experiment::compare(&params, !no_deep, &train, &test, progress, &mut print)?;
            println!("{cmp}");
            println!("total {:.1} s", t.elapsed().as_secs_f64());
            if let Some(dir) = out {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for (i, row) in cmp.rows.iter().enumerate() {
                    let name = ["cntk", "convrfm"]
                        .get(i)
                        .map_or(format!("deep-{}-layers", row.summary.layer), |n| {
                            n.to_string()
                        });
                    let path = dir.join(format!("{name}.convrfm"));
                    row.model.save(&path)?;
                    println!("{} model written to {}", row.method, path.display());
                }
            }
            Ok(())
        }
        Command::Bench {
            n,
            test,
            depth,
            agop_images,
            precision,
        } => convrfm_train::bench::run(n, test, depth, agop_images, precision, progress),
    }
}

fn run_export(
    model: &Model,
    out: &Path,
    opts: &export::ExportOptions,
    sweep: bool,
    test: Option<&LabelledImages>,
    progress: Progress,
) -> Result<()> {
    let max_flash = opts.max_flash;
    let t = Instant::now();
    let candidates = export::search(model, opts, progress)?;
    println!(
        "searched {} candidates (centres x rank x pixel bits) on a validation split of the model's {} training images in {:.1} s",
        candidates.len(),
        model.train_labels.len(),
        t.elapsed().as_secs_f64()
    );
    let describe = |r: &export::Realised| {
        let c = &r.candidate;
        let test_cols = r
            .test
            .as_ref()
            .map_or(String::from("      -        -        -"), |t| {
                format!(
                    "{:>7.2}  {:>7.2}  {:>7.2}",
                    100.0 * t.float_accuracy,
                    100.0 * t.int_accuracy,
                    100.0 * t.same_class
                )
            });
        format!(
            "{:>8}  {:>4}  {:>2}  {:>4}  {:>7.0e}  {:>6.2}  {test_cols}",
            r.blob.len(),
            c.m,
            c.rank,
            c.pixel_bits,
            c.lambda,
            100.0 * c.val_accuracy
        )
    };
    let header =
        "   bytes     m   r  bits   lambda   val_%  float_test_%  int_test_%  same_class_%";
    let chosen = export::best_under(&candidates, max_flash).with_context(|| {
        format!(
            "no candidate fits in {max_flash} bytes; the smallest needs {} bytes",
            candidates.iter().map(|c| c.bytes).min().unwrap_or(0)
        )
    })?;
    // The frontier point that is also the chosen one is built only once.
    let mut chosen_realised = None;
    if sweep {
        println!("all candidates (bytes, m, r, bits, lambda, validation %):");
        for c in &candidates {
            println!(
                "  {:>8}  {:>4}  {:>2}  {:>4}  {:>7.0e}  {:>6.2}",
                c.bytes,
                c.m,
                c.rank,
                c.pixel_bits,
                c.lambda,
                100.0 * c.val_accuracy
            );
        }
        println!("frontier (best validation accuracy within each budget):");
        println!("  budget  {header}");
        for budget in export::FRONTIER_BUDGETS {
            match export::best_under(&candidates, budget) {
                Some(c) => {
                    let r = export::realise(model, c, test, progress)?;
                    println!("{:>5}KiB  {}", budget >> 10, describe(&r));
                    if std::ptr::eq(c, chosen) {
                        chosen_realised = Some(r);
                    }
                }
                None => println!("{:>5}KiB  no candidate fits", budget >> 10),
            }
        }
    }
    let r = match chosen_realised {
        Some(r) => r,
        None => export::realise(model, chosen, test, progress)?,
    };
    println!("chosen for --max-flash {max_flash}:");
    println!("          {header}");
    println!("          {}", describe(&r));
    write_file(out, &r.blob)?;
    println!("blob written to {} ({} bytes)", out.display(), r.blob.len());
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    convrfm_train::atomic::write_atomic(path, |w| w.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
}

fn limit_set(set: LabelledImages, limit: Option<usize>, path: &Path) -> Result<LabelledImages> {
    match limit {
        Some(l) if l > set.len() => bail!(
            "{}: --limit {l}, but only {} images",
            path.display(),
            set.len()
        ),
        Some(l) => Ok(set.take(l)),
        None => Ok(set),
    }
}

fn load_data(args: &DataArgs) -> Result<(LabelledImages, Option<LabelledImages>)> {
    if let Some(dir) = &args.data {
        let [train_images, train_labels, test_images, test_labels] = synth_files(dir);
        let train = limit_set(
            data::load_idx_pair(&train_images, &train_labels)?,
            args.train_limit,
            &train_images,
        )?;
        let test = if test_images.exists() {
            let set = data::load_idx_pair(&test_images, &test_labels)?;
            Some(limit_set(set, args.test_limit, &test_images)?)
        } else {
            None
        };
        println!("data: {}", dir.display());
        return Ok((train, test));
    }
    let train = match (&args.train_images, &args.train_labels) {
        (Some(i), Some(l)) => limit_set(data::load_idx_pair(i, l)?, args.train_limit, i)?,
        _ => {
            let (set, source) = data::fashion_mnist(Split::Train, args.train_limit)?;
            println!("train data: {source}");
            set
        }
    };
    let test = match (&args.test_images, &args.test_labels) {
        (Some(i), Some(l)) => Some(limit_set(data::load_idx_pair(i, l)?, args.test_limit, i)?),
        _ if args.train_images.is_some() => None,
        _ => {
            let (set, source): (LabelledImages, DataSource) =
                data::fashion_mnist(Split::Test, args.test_limit)?;
            println!("test data: {source}");
            Some(set)
        }
    };
    Ok((train, test))
}

fn train_and_report(
    params: &rfm::CheckedParams,
    train: &LabelledImages,
    test: Option<&LabelledImages>,
    progress: Progress,
    out: Option<&Path>,
) -> Result<()> {
    let p = params.get();
    let reference = p.protocol == Protocol::Reference;
    let method = if p.layers > 1 {
        format!(
            "Deep ConvRFM ({} layers, {} filters each)",
            p.layers, p.filters
        )
    } else {
        "ConvRFM".to_string()
    };
    println!(
        "training {method}: {} images {}x{}x{} ({}), {} classes, depth {}, {} iterations, {} kernel, {} protocol, {} threads",
        train.len(),
        train.images.channels,
        train.images.height,
        train.images.width,
        train.images.pixel_type,
        train.num_classes(),
        p.depth,
        p.iterations,
        match p.precision {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        },
        if reference { "reference" } else { "standard" },
        rayon::current_num_threads()
    );
    let mut print = iteration_printer(reference);
    let t = Instant::now();
    let outcome = rfm::train(params, train, test, progress, &mut print)?;
    if outcome.layers.len() > 1 {
        println!(
            "per layer (lambda and iteration chosen on validation; test of the re-fitted model):"
        );
        println!("layer  {}", rfm::LayerSummary::TABLE_HEADER);
        for s in &outcome.layers {
            println!("{:>5}  {}", s.layer, s.table_row());
        }
    }
    if !reference {
        println!(
            "best iteration on validation: {} (lambda {:e}); re-fitted on all {} training images in {:.2} s",
            outcome.best_iteration,
            outcome.model.lambda,
            train.len(),
            outcome.refit_seconds
        );
    }
    if let Some(acc) = outcome.final_test_accuracy {
        println!("test accuracy of the saved model: {:.2} %", 100.0 * acc);
    }
    match peak_rss_mib() {
        Some(mib) => println!(
            "total {:.1} s, peak memory (RSS) {mib:.0} MiB",
            t.elapsed().as_secs_f64()
        ),
        None => println!("total {:.1} s", t.elapsed().as_secs_f64()),
    }
    if let Some(out) = out {
        outcome.model.save(out)?;
        println!("model written to {}", out.display());
    }
    Ok(())
}

/// Prints one line per iteration, with a header at each run's or Deep
/// ConvRFM layer's first iteration.
fn iteration_printer(reference: bool) -> impl FnMut(&IterationReport) {
    move |r: &IterationReport| {
        if r.iteration == 0 {
            if r.layer > 1 {
                println!("layer {} (Deep ConvRFM):", r.layer);
            }
            if reference {
                let cols: Vec<String> = r
                    .results
                    .iter()
                    .map(|l| format!("test@{:e}", l.lambda))
                    .collect();
                println!(
                    "iter  {}  Ktrain_s  Ktest_s  solve_s  AGOP_s  eigh_s",
                    cols.join("  ")
                );
            } else {
                println!(
                    "iter  lambda    val_%   test_%  Ktrain_s  Ktest_s  solve_s  AGOP_s  eigh_s"
                );
            }
        }
        let t = &r.times;
        let times = format!(
            "{:>8.2}  {:>7.2}  {:>7.2}  {:>6.2}  {:>6.3}",
            t.ktrain, t.ktest, t.solve, t.agop, t.eigh
        );
        let pct =
            |a: Option<f64>| a.map_or("   -  ".to_string(), |a| format!("{:>6.2}", 100.0 * a));
        if reference {
            let cols: Vec<String> = r
                .results
                .iter()
                .map(|l| format!("{:>10}", pct(l.test_accuracy)))
                .collect();
            println!("{:>4}  {}  {times}", r.iteration, cols.join("  "));
        } else {
            let c = &r.results[r.chosen];
            println!(
                "{:>4}  {:<8.0e}  {}   {}  {times}",
                r.iteration,
                c.lambda,
                pct(c.val_accuracy),
                pct(c.test_accuracy)
            );
        }
        for l in r.results.iter().filter(|l| l.jitter > 0.0) {
            println!(
                "      note: lambda {:e} needed a diagonal jitter of {:e}",
                l.lambda, l.jitter
            );
        }
    }
}

/// Lets a closed pipe end the process quietly, as for other Unix tools
/// (`convrfm predict ... | head`); Rust's runtime ignores SIGPIPE, which
/// turns the next `println!` into a panic.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
