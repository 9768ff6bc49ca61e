//! `convrfm`: train, evaluate, export and inspect convolutional Recursive
//! Feature Machines. Run `convrfm --help` for the commands.
//!
//! - `args`: the command line and its conversion into parameters.
//! - `load`: the one way every command loads labelled data.
//! - `output`: the tables and summaries the commands print.
//! - `predict`: `convrfm predict` on pictures and image files.
//! - `serial`: `convrfm serial`, images through a board.
//! - `show`: `convrfm data show`.

/// `println!` that returns a failed write to stdout (a full disk, a closed
/// file) as an error instead of panicking; a closed pipe still ends the
/// process quietly (SIGPIPE is restored in `main`).
macro_rules! say {
    ($($arg:tt)*) => {
        crate::output::say(format_args!($($arg)*))?
    };
}

mod args;
mod load;
mod output;
mod predict;
mod serial;
mod show;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use convrfm_train::bench::BenchParams;
use convrfm_train::data::{self, ImageDims, LabelledImages, Like, ResizeFilter, Source, Split};
use convrfm_train::export::c_source::{ExportFormat, c_identifier, c_paths, c_source};
use convrfm_train::export::cost::{BlobDims, Cpu};
use convrfm_train::export::{self, CheckedExportOptions, ExportOptions, run::blob_predict};
use convrfm_train::fit::readout::share_correct;
use convrfm_train::fit::{Model, Protocol, TrainParams, experiment, model_file};
use convrfm_train::inspect::{self, InspectOptions};
use convrfm_train::output::{Progress, check_writable, replace_dir, write_atomic};

use crate::args::{Cli, Command, DataArgs, DataCommand, FormatArgs, synth_files};
use crate::load::{DataSpec, labelled, source};
use crate::predict::predict;
use crate::serial::serial;
use crate::show::{Preview, show_data};

/// The IDX files `convrfm data convert` writes.
const CONVERTED_IMAGES: &str = "images.idx.gz";
const CONVERTED_LABELS: &str = "labels.idx.gz";
use crate::output::{
    IterationPrinter, REALISED_HEADER, describe_build, describe_realised, selection_note,
    train_and_report,
};

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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if t > 4 * cores {
            bail!(
                "--threads {t}: at most 4 x the {cores} cores of this machine ({}); \
                 more threads only add contention",
                4 * cores
            );
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("setting up the thread pool")?;
    }
    let progress = Progress { quiet: cli.quiet };
    match cli.command {
        Command::Train { data, params, out } => {
            let params = TrainParams {
                resize: data.format.resize_filter.unwrap_or_default(),
                ..params.params()
            }
            .check()?;
            check_writable(&out)?;
            let (train, test) = load_data(&data, params.get().seed, progress)?;
            train_and_report(&params, &train, test.as_ref(), progress, Some(&out))
        }
        Command::Eval {
            model,
            blob,
            images,
            labels,
            limit,
            format,
        } => {
            // Load what is evaluated first: a bad model fails before any data is read.
            let model = model.map(|m| Model::load(&m)).transpose()?;
            let blob_bytes = blob
                .map(|b| read_blob(&b).map(|bytes| (b, bytes)))
                .transpose()?;
            let blob = blob_bytes
                .as_ref()
                .map(|(b, bytes)| parse_blob(b, bytes))
                .transpose()?;
            let blob_names = blob.as_ref().map(blob_class_names);
            let like = match (&model, &blob, &blob_names) {
                (Some(m), _, _) => Some(like_model(m)),
                (None, Some(core), Some(names)) => Some(like_blob(core, names)),
                _ => None,
            };
            let set = labelled(
                DataSpec {
                    source: source(&images, &labels)?,
                    split: Split::Test,
                    limit,
                    limit_flag: "--limit",
                    what: "data",
                    read: &format.read_options(),
                    like,
                },
                progress,
            )?;
            let t = Instant::now();
            let acc = match (model, blob) {
                (Some(m), _) => {
                    set.ensure_labels_below(m.classes(), "the model")?;
                    m.accuracy(&set, progress)?
                }
                (None, Some(core)) => {
                    set.ensure_labels_below(core.classes(), "the blob")?;
                    let pred = blob_predict(&core, &set.images, progress)?;
                    share_correct(pred.iter().map(|p| p.0), &set.labels)
                }
                (None, None) => bail!("give --model or --blob"),
            };
            say!(
                "accuracy {:.2} % on {} images ({:.1} s)",
                100.0 * acc,
                set.len(),
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Demo { out } => {
            out.as_deref().map(check_writable).transpose()?;
            let train = data::vendored_fashion_mnist(Split::Train);
            let test = data::vendored_fashion_mnist(Split::Test);
            say!(
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
            out_format,
            max_flash,
            max_instructions,
            cpu,
            sweep,
            test_images,
            test_labels,
            test_limit,
            no_test,
            lambdas,
            fit_images,
            fit_labels,
            fit_limit,
            label_weights,
            readout,
            teacher_cache,
            ranks,
            pixel_bits,
            learn,
            format,
        } => {
            let opts = ExportOptions {
                max_flash,
                max_instructions,
                cpu,
                lambdas,
                label_weights,
                ranks,
                pixel_bits,
                learn: learn.options(),
                readout,
                ..ExportOptions::default()
            }
            .check()?;
            if fit_limit == Some(0) {
                bail!(
                    "--fit-limit 0: at least 10 fit images are needed (leave the flag out for all)"
                );
            }
            let out_path = out.clone();
            let out = ExportOutput::new(&out, out_format)?;
            let model = Model::load(&model)?;
            // What the blob cannot hold fails here, before any data are read.
            export::check_exportable(&model)?;
            export::feasible_ranks(&model, opts.get())?;
            let teacher_cache = opts.distils().then(|| {
                teacher_cache.unwrap_or_else(|| {
                    let mut p = out_path.into_os_string();
                    p.push(".teacher");
                    PathBuf::from(p)
                })
            });
            teacher_cache.as_deref().map(check_writable).transpose()?;
            let fit_source = source(&fit_images, &fit_labels)?;
            let fit = fit_set(
                &model,
                fit_source,
                fit_limit,
                &format,
                teacher_cache.as_deref(),
                progress,
            )?;
            let test_source = source(&test_images, &test_labels)?;
            let test = (!no_test)
                .then(|| {
                    labelled(
                        DataSpec {
                            source: test_source,
                            split: Split::Test,
                            limit: test_limit,
                            limit_flag: "--test-limit",
                            what: "test data",
                            read: &format.read_options(),
                            like: Some(like_model(&model)),
                        },
                        progress,
                    )
                })
                .transpose()?;
            run_export(&model, &fit, &out, &opts, sweep, test.as_ref(), progress)
        }
        Command::Serial(args) => serial(&args, progress),
        Command::Cost { blob, cpu } => {
            let bytes = read_blob(&blob)?;
            let core = parse_blob(&blob, &bytes)?;
            let dims = BlobDims::of(&core);
            match cpu {
                Some(cpu) => say!("{:.0}", dims.instructions(cpu)),
                None => {
                    for cpu in Cpu::ALL {
                        let n = dims.instructions(cpu);
                        say!(
                            "{}: {:.1} M instructions per inference (predicted; {:.0} ms at 80 MHz, one cycle per instruction)",
                            cpu.name(),
                            n / 1e6,
                            n / 80e3
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Predict {
            blob,
            model,
            inputs,
            json,
            channels_last,
        } => predict(
            blob.as_deref(),
            model.as_deref(),
            &inputs,
            json,
            channels_last,
            progress,
        ),
        Command::Inspect {
            model,
            out,
            images,
            labels,
            samples,
            eigenvectors,
            format,
        } => {
            let path = model;
            let model = Model::load(&path)?;
            let set = match source(&images, &labels)? {
                Some(src) => labelled(
                    DataSpec {
                        source: Some(src),
                        split: Split::Train,
                        limit: None,
                        limit_flag: "",
                        what: "images",
                        read: &format.read_options(),
                        like: Some(like_model(&model)),
                    },
                    progress,
                )?,
                None => model.training_data().clone(),
            };
            let opts = InspectOptions {
                eigenvectors,
                ..InspectOptions::default()
            };
            if model.metric.is_scaled_identity() {
                say!(
                    "note: the model kept iteration 0 (M = I, the plain convolutional kernel): \
                     M and its eigenvectors show nothing learned"
                );
            }
            let samples = inspect::one_per_class(&set, samples);
            for file in inspect::inspect(&model, &samples, &opts, &out, progress)? {
                say!("wrote {}", file.display());
            }
            Ok(())
        }
        Command::Data {
            command:
                DataCommand::Show {
                    path,
                    labels,
                    preview,
                    png,
                    per_class,
                    format,
                },
        } => show_data(
            &path,
            labels.as_deref(),
            Preview {
                text: preview,
                png: png.as_deref(),
                per_class,
            },
            &format,
            progress,
        ),
        Command::Data {
            command:
                DataCommand::Convert {
                    path,
                    labels,
                    out,
                    format,
                },
        } => {
            let set = labelled(
                DataSpec {
                    source: Some(Source::detect(&path, labels.as_deref())?),
                    split: Split::Train,
                    limit: None,
                    limit_flag: "",
                    what: "data",
                    read: &format.read_options(),
                    like: None,
                },
                progress,
            )?;
            replace_dir(&out, |tmp| {
                data::save_idx_pair(
                    &set,
                    &tmp.join(CONVERTED_IMAGES),
                    &tmp.join(CONVERTED_LABELS),
                )?;
                data::write_class_names(&tmp.join(data::CLASS_NAMES_FILE), &set.class_names)
            })
            .with_context(|| format!("writing {}", out.display()))?;
            say!(
                "wrote {} images {} and {} labels to {} ({CONVERTED_IMAGES}, {CONVERTED_LABELS}, {})",
                set.len(),
                set.images.dims,
                set.len(),
                out.display(),
                data::CLASS_NAMES_FILE
            );
            say!(
                "train on it with: convrfm train --train-images {} --train-labels {}",
                out.join(CONVERTED_IMAGES).display(),
                out.join(CONVERTED_LABELS).display()
            );
            Ok(())
        }
        Command::Data {
            command: DataCommand::Gen { task, out },
        } => {
            // Both sets are generated (every argument checked) before
            // anything is written; the directory is then written whole.
            let train = task.generate(Split::Train, progress)?;
            let test = task.generate(Split::Test, progress)?;
            replace_dir(&out, |tmp| {
                let [train_images, train_labels, test_images, test_labels] = synth_files(tmp);
                data::save_idx_pair(&train, &train_images, &train_labels)?;
                data::save_idx_pair(&test, &test_images, &test_labels)
            })
            .with_context(|| format!("writing {}", out.display()))?;
            let [train_images, _, test_images, _] = synth_files(&out);
            for (split, set, images) in [
                (Split::Train, &train, &train_images),
                (Split::Test, &test, &test_images),
            ] {
                say!(
                    "{split}: {} images {} ({}), {} classes -> {}",
                    set.len(),
                    set.images.dims,
                    set.images.pixel_type,
                    set.num_classes(),
                    images.display()
                );
            }
            say!("train on it with: convrfm train --data {}", out.display());
            Ok(())
        }
        Command::Experiment {
            task,
            params,
            out,
            no_deep,
        } => {
            let params = params.params().check()?;
            if let Some(dir) = &out {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                check_writable(&dir.join("cntk.convrfm"))?;
            }
            let train = task.generate(Split::Train, progress)?;
            let test = task.generate(Split::Test, progress)?;
            say!(
                "experiment: {} train / {} test images {}, {} classes",
                train.len(),
                test.len(),
                train.images.dims,
                train.num_classes()
            );
            if params.get().protocol != Protocol::Reference {
                say!("{}", selection_note(params.get().selection, train.len()));
            }
            let t = Instant::now();
            let mut printer = IterationPrinter::new(params.get().protocol == Protocol::Reference);
            let cmp = experiment::compare(&params, !no_deep, &train, &test, progress, &mut |r| {
                printer.print(r)
            })?;
            printer.finish()?;
            say!("{cmp}");
            say!("total {:.1} s", t.elapsed().as_secs_f64());
            if let Some(dir) = out {
                for (i, row) in cmp.rows.iter().enumerate() {
                    let name = ["cntk", "convrfm"]
                        .get(i)
                        .map_or(format!("deep-{}-layers", row.summary.layer), |n| {
                            n.to_string()
                        });
                    let path = dir.join(format!("{name}.convrfm"));
                    row.model.save(&path)?;
                    say!("{} model written to {}", row.method, path.display());
                }
            }
            Ok(())
        }
        Command::Bench {
            n,
            test,
            patch,
            depth,
            precision,
        } => {
            let params = BenchParams {
                n,
                test,
                patch,
                depth,
                precision,
            }
            .check()?;
            let report = convrfm_train::bench::run(&params, progress)?;
            say!("{}", report.to_string().trim_end());
            Ok(())
        }
    }
}

/// The fit set of `export`: the images given, else all Fashion-MNIST
/// training images for a Fashion-MNIST model when Debian's package is
/// installed, else the model's own; with the model's scores on them
/// (cached in `teacher_cache`) when distilling.
fn fit_set(
    model: &Model,
    given: Option<Source>,
    limit: Option<usize>,
    format: &FormatArgs,
    teacher_cache: Option<&Path>,
    progress: Progress,
) -> Result<export::FitSet> {
    let fashion_like = model
        .class_names()
        .iter()
        .map(String::as_str)
        .eq(data::FASHION_MNIST_CLASSES)
        && model.dims()
            == ImageDims {
                channels: 1,
                height: 28,
                width: 28,
            }
        && model.pixel_type() == data::PixelType::U8;
    let set = match given {
        Some(src) => labelled(
            DataSpec {
                source: Some(src),
                split: Split::Train,
                limit,
                limit_flag: "--fit-limit",
                what: "fit data",
                read: &format.read_options(),
                like: Some(like_model(model)),
            },
            progress,
        )?,
        None => match fashion_like
            .then(|| data::fashion_mnist(Split::Train, limit))
            .transpose()?
        {
            Some((set, source @ data::DataSource::Debian { .. })) => {
                say!("fit data: {source}: {} images", set.len());
                set
            }
            _ => {
                let own = model.training_data();
                let n = limit.map_or(own.len(), |l| l.min(own.len()));
                say!("fit data: the model's {n} training images");
                own.take(n)
            }
        },
    };
    let fit = export::FitSet::new(model, set)?;
    let Some(cache) = teacher_cache else {
        return Ok(fit);
    };
    let t = Instant::now();
    let (scores, source) =
        export::teacher::teacher_scores(model, fit.data(), Some(cache), progress)?;
    say!(
        "teacher scores on the {} fit images: {source} ({:.1} s)",
        fit.len(),
        t.elapsed().as_secs_f64()
    );
    fit.with_teacher(scores)
}

fn run_export(
    model: &Model,
    fit: &export::FitSet,
    out: &ExportOutput,
    opts: &CheckedExportOptions,
    sweep: bool,
    test: Option<&LabelledImages>,
    progress: Progress,
) -> Result<()> {
    let max_flash = opts.get().max_flash;
    let t = Instant::now();
    let candidates = export::search(model, fit, opts, progress)?;
    say!(
        "searched {} candidates (centres x rank x pixel bits) on a validation split of {} of the {} fit images in {:.1} s",
        candidates.len(),
        fit.len().min(export::SEARCH_IMAGES),
        fit.len(),
        t.elapsed().as_secs_f64()
    );
    let limit = opts.get().max_instructions;
    let chosen = export::best_under(&candidates, max_flash, limit).with_context(|| {
        format!(
            "no candidate fits in {max_flash} bytes{}; the smallest needs {} bytes",
            limit.map_or(String::new(), |i| format!(" and {i} instructions")),
            candidates.iter().map(|c| c.bytes).min().unwrap_or(0)
        )
    })?;
    // The frontier point that is also the chosen one is built only once.
    let mut chosen_realised = None;
    if sweep {
        say!(
            "all candidates (bytes, m, r, bits, lambda, label weight, validation %, M instructions \
             per inference on a {}):",
            opts.get().cpu.name()
        );
        for c in &candidates {
            say!(
                "  {:>8}  {:>4}  {:>2}  {:>4}  {:>7.0e}  {:>4.2}  {:>6.2}  {:>7.1}",
                c.bytes,
                c.m,
                c.rank,
                c.pixel_bits,
                c.lambda,
                c.label_weight,
                100.0 * c.val_accuracy,
                c.instructions as f64 / 1e6
            );
        }
        say!(
            "frontier (best validation accuracy within each budget{}; insns_M: predicted on a {}):",
            limit.map_or(String::new(), |i| format!(" and {i} instructions")),
            opts.get().cpu.name()
        );
        say!("  budget  {REALISED_HEADER}");
        for budget in export::FRONTIER_BUDGETS {
            match export::best_under(&candidates, budget, limit) {
                Some(c) => {
                    let r = export::realise(model, fit, c, opts, test, progress)?;
                    say!("{:>5}KiB  {}", budget >> 10, describe_realised(&r));
                    for line in describe_build(&r) {
                        say!("          {line}");
                    }
                    if std::ptr::eq(c, chosen) {
                        chosen_realised = Some(r);
                    }
                }
                None => say!("{:>5}KiB  no candidate fits", budget >> 10),
            }
        }
    }
    let r = match chosen_realised {
        Some(r) => r,
        None => export::realise(model, fit, chosen, opts, test, progress)?,
    };
    say!("chosen for --max-flash {max_flash}:");
    say!("          {REALISED_HEADER}");
    say!("          {}", describe_realised(&r));
    for line in describe_build(&r) {
        say!("          {line}");
    }
    out.write(&r.blob)
}

/// Where `export` writes, checked before any work: the blob file, or
/// `NAME.h` and `NAME.c`.
enum ExportOutput {
    Blob(PathBuf),
    C {
        header: PathBuf,
        source: PathBuf,
        stem: String,
    },
}

impl ExportOutput {
    fn new(out: &Path, format: ExportFormat) -> Result<Self> {
        Ok(match format {
            ExportFormat::Blob => {
                check_writable(out)?;
                Self::Blob(out.to_path_buf())
            }
            ExportFormat::C => {
                let (header, source, stem) = c_paths(out);
                c_identifier(&stem).with_context(|| format!("--out {}", out.display()))?;
                check_writable(&header)?;
                check_writable(&source)?;
                Self::C {
                    header,
                    source,
                    stem,
                }
            }
        })
    }

    /// Writes `blob`: both C files or neither.
    fn write(&self, blob: &[u8]) -> Result<()> {
        match self {
            Self::Blob(path) => {
                write_file(path, blob)?;
                say!("blob written to {} ({} bytes)", path.display(), blob.len());
            }
            Self::C {
                header,
                source,
                stem,
            } => {
                let header_name = header
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                let c = c_source(blob, stem, &header_name)?;
                write_file(source, c.source.as_bytes())?;
                if let Err(e) = write_file(header, c.header.as_bytes()) {
                    // Neither file, rather than a source without its header.
                    let _ = std::fs::remove_file(source);
                    return Err(e);
                }
                say!(
                    "blob ({} bytes) written as C: {} and {} (identifiers {}_*)",
                    blob.len(),
                    header.display(),
                    source.display(),
                    c.ident
                );
            }
        }
        Ok(())
    }
}

/// A blob file's bytes; a model file given instead gets a hint.
fn read_blob(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading blob {}", path.display()))?;
    if bytes.starts_with(model_file::MAGIC) {
        bail!(
            "{} is a model file made by `convrfm train`, not a blob: give it with --model \
             (or make a blob with `convrfm export`)",
            path.display()
        );
    }
    Ok(bytes)
}

/// The blob in `bytes` (read from `path`), validated once by the core.
fn parse_blob<'b>(path: &Path, bytes: &'b [u8]) -> Result<convrfm_core::Model<'b>> {
    convrfm_core::Model::from_bytes(bytes).with_context(|| format!("blob {}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
}

/// The training set and, if there is one, the test set of `train`;
/// `seed` draws a `--test-fraction` hold-out.
fn load_data(
    args: &DataArgs,
    seed: u64,
    progress: Progress,
) -> Result<(LabelledImages, Option<LabelledImages>)> {
    let read = args.format.read_options();
    if let Some(dir) = &args.data {
        let [train_images, train_labels, test_images, test_labels] = synth_files(dir);
        let spec = |images: &Path, labels: &Path, split, limit, limit_flag| DataSpec {
            source: Some(Source::Idx {
                images: images.to_path_buf(),
                labels: labels.to_path_buf(),
            }),
            split,
            limit,
            limit_flag,
            what: if split == Split::Train {
                "train data"
            } else {
                "test data"
            },
            read: &read,
            like: None,
        };
        let train = labelled(
            spec(
                &train_images,
                &train_labels,
                Split::Train,
                args.train_limit,
                "--train-limit",
            ),
            progress,
        )?
        .with_class_count(args.classes)
        .with_context(|| train_labels.display().to_string())?;
        let test = test_images
            .exists()
            .then(|| {
                labelled(
                    spec(
                        &test_images,
                        &test_labels,
                        Split::Test,
                        args.test_limit,
                        "--test-limit",
                    ),
                    progress,
                )
            })
            .transpose()?;
        match test {
            Some(_) => say!("data: {}", dir.display()),
            None => say!("data: {} (no test-* files: no test set)", dir.display()),
        }
        return Ok((train, test));
    }
    let folder = |dir: &PathBuf, flag: &str| -> Result<Source> {
        ensure!(dir.is_dir(), "{flag} {}: not a folder", dir.display());
        Ok(Source::Folder(dir.clone()))
    };
    let train_source = match &args.train_dir {
        Some(dir) => Some(folder(dir, "--train-dir")?),
        None => source(&args.train_images, &args.train_labels)?,
    };
    let own_train = train_source.is_some();
    let train = labelled(
        DataSpec {
            source: train_source.clone(),
            split: Split::Train,
            limit: args.train_limit,
            limit_flag: "--train-limit",
            what: "train data",
            read: &read,
            like: None,
        },
        progress,
    )?;
    // Fashion-MNIST and picture folders name their classes; only counts
    // inferred from labels are checked.
    let train = match &train_source {
        Some(Source::Folder(_)) if args.classes.is_some() => {
            bail!("--classes: a picture folder's classes are its class folders")
        }
        Some(Source::Folder(_)) => train,
        Some(src) => train
            .with_class_count(args.classes)
            .with_context(|| src.labels_path().display().to_string())?,
        None if args.classes.is_some() => {
            bail!("--classes states the class count of your own label files; Fashion-MNIST has 10")
        }
        None => train,
    };
    let test_source = match &args.test_dir {
        Some(dir) => Some(folder(dir, "--test-dir")?),
        None => source(&args.test_images, &args.test_labels)?,
    };
    let load_test = |src: Option<Source>| {
        labelled(
            DataSpec {
                source: src,
                split: Split::Test,
                limit: args.test_limit,
                limit_flag: "--test-limit",
                what: "test data",
                read: &read,
                like: Some(Like {
                    dims: train.images.dims,
                    class_names: &train.class_names,
                    filter: args.format.resize_filter.unwrap_or_default(),
                    what: "the training set",
                }),
            },
            progress,
        )
    };
    match (test_source, args.test_fraction) {
        (Some(_), Some(_)) => bail!(
            "--test-fraction holds test images out of the training set, but a test set is given too"
        ),
        (Some(src), None) => {
            let test = load_test(Some(src))?;
            Ok((train, Some(test)))
        }
        (None, Some(f)) => {
            ensure!(
                f > 0.0 && f < 1.0,
                "--test-fraction {f}: a share between 0 and 1 (exclusive)"
            );
            let (kept, held) = data::stratified_split(&train.labels, f, seed);
            ensure!(
                !held.is_empty(),
                "--test-fraction {f}: no class has two images to hold one out"
            );
            say!(
                "test data: {} of the {} training images held out (stratified, --test-fraction {f}, seed {seed})",
                held.len(),
                train.len()
            );
            Ok((train.select(&kept), Some(train.select(&held))))
        }
        // Own training files without test files: no test set (Fashion-MNIST's
        // would not match them).
        (None, None) if own_train => Ok((train, None)),
        (None, None) => {
            let test = load_test(None)?;
            Ok((train, Some(test)))
        }
    }
}

/// What data read for `model` must fit.
fn like_model(model: &Model) -> Like<'_> {
    Like {
        dims: model.dims(),
        class_names: model.class_names(),
        filter: model.resize,
        what: "the model",
    }
}

/// A blob's class names, owned (for [`like_blob`]).
fn blob_class_names(core: &convrfm_core::Model<'_>) -> Vec<String> {
    core.class_names().map(str::to_owned).collect()
}

/// What data read for a blob must fit.
fn like_blob<'a>(core: &convrfm_core::Model<'_>, class_names: &'a [String]) -> Like<'a> {
    Like {
        dims: ImageDims::of(&core.shape()),
        class_names,
        filter: ResizeFilter::from_core(core.resize_filter()),
        what: "the blob",
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
