//! `convrfm`: train, evaluate and benchmark convolutional Recursive Feature
//! Machines. Run `convrfm --help` for the commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use convrfm_train::data::{self, DataSource, LabelledImages, Split};
use convrfm_train::kernel::KernelKind;
use convrfm_train::model::Model;
use convrfm_train::progress::Progress;
use convrfm_train::rfm::{self, IterationReport, Precision, Protocol, TrainParams};

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
    /// Accuracy of a saved model on a labelled set.
    Eval {
        /// Model file written by `convrfm train`.
        #[arg(long)]
        model: PathBuf,
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
    /// Train on the Fashion-MNIST subset shipped with convrfm (2,000 train,
    /// 1,000 test; no download) and print each iteration.
    Demo {
        /// Also save the model here.
        #[arg(long)]
        out: Option<PathBuf>,
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

#[derive(Args)]
struct DataArgs {
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
        }
    }
}

fn main() -> ExitCode {
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
            images,
            labels,
            limit,
        } => {
            let model = Model::load(&model)?;
            let set = match (images, labels) {
                (Some(i), Some(l)) => limit_set(data::load_idx_pair(&i, &l)?, limit, &i)?,
                _ => {
                    let (set, source) = data::fashion_mnist(Split::Test, limit)?;
                    println!("data: {source}");
                    set
                }
            };
            let t = Instant::now();
            let acc = model.accuracy(&set, progress)?;
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
        Command::Bench {
            n,
            test,
            depth,
            agop_images,
            precision,
        } => convrfm_train::bench::run(n, test, depth, agop_images, precision, progress),
    }
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
    println!(
        "training ConvRFM: {} images {}x{}x{}, {} classes, depth {}, {} iterations, {} kernel, {} protocol, {} threads",
        train.len(),
        train.images.channels,
        train.images.height,
        train.images.width,
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
    let mut header_done = false;
    let mut print = |r: &IterationReport| {
        if !header_done {
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
            header_done = true;
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
    };
    let t = Instant::now();
    let outcome = rfm::train(params, train, test, progress, &mut print)?;
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

/// Peak resident memory of this process (Linux `VmHWM`), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
