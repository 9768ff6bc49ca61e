//! The classification loops, independent of the board: images come from
//! any [`embedded_io::Read`] and results go to any [`embedded_io::Write`],
//! so the same code runs over QEMU's semihosting files and UART
//! (`src/main.rs`) and over the UART, USB-CDC or socket of a real board
//! (every embedded-hal 1.0 era HAL implements these traits for its serial
//! ports; `boards/`).
//!
//! # Wire formats (`convrfm_core::wire`, `docs/boards.md`)
//!
//! - [`Classifier::run`], for files: images back to back, `c * H * W`
//!   bytes each (channel-major, then rows, then columns, 8-bit pixels),
//!   nothing else; a clean end of stream (a `read` returning 0 between two
//!   images) ends it.
//! - [`Classifier::serve`], for a serial link: one request byte at a time,
//!   `'?'` (the model's info) or `'C'` and an image, each answered at once,
//!   so the host knows the model and never overruns a UART without flow
//!   control.
//! - Out, both: one record per image, `wire::record_len(classes)` bytes:
//!   the class (1 byte), then every class score as an i64, little-endian.
//!   The host reference `firmware/host-check` and `convrfm serial --out`
//!   write the same bytes, so `cmp` compares them.

use convrfm_core::wire::{self, REPLY_UNKNOWN, REQUEST_CLASSIFY, REQUEST_INFO};
use convrfm_core::{Model, PredictError, Prediction};
use embedded_io::{Read, Write};

/// A free-running tick counter, read around each inference to measure its
/// cost. On a real Cortex-M3/M4/M7 the DWT cycle counter is the natural
/// implementation; QEMU's SysTick under `-icount` counts instructions
/// (`src/main.rs`). [`NoClock`] when nothing is measured.
pub trait Clock {
    /// Ticks since some fixed origin; must not wrap during one inference.
    fn ticks(&mut self) -> u64;
}

/// A clock that always reads 0, so [`Stats`] stay 0 and cost nothing.
pub struct NoClock;

impl Clock for NoClock {
    fn ticks(&mut self) -> u64 {
        0
    }
}

/// Why a [`Classifier`] could not be set up: buffers that do not match the
/// model (the same conditions `Model::predict_scores` checks, caught once
/// instead of on every image), or a model whose class does not fit the
/// output's class byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SetupError {
    /// Buffer sizes that do not match the model.
    Buffer(PredictError),
    /// More than `wire::MAX_RECORD_CLASSES` (256) classes: the class would
    /// not fit its output byte.
    TooManyClasses(usize),
}

/// Why [`Classifier::run`] stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error<R, W> {
    /// The image source failed.
    Read(R),
    /// The stream ended inside an image.
    TruncatedImage {
        /// Bytes of the image received.
        got: usize,
        /// Bytes of one image.
        expected: usize,
    },
    /// Inference failed (cannot happen once [`Classifier::new`] accepted
    /// the buffers, but the core reports it as a value, so it is passed on).
    Predict(PredictError),
    /// The result sink failed.
    Write(W),
}

/// Cost of the inferences of one [`Classifier::run`], in [`Clock`] ticks,
/// measured around `predict_scores` only (no I/O).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Images classified.
    pub images: u32,
    /// Ticks of all inferences together.
    pub total: u64,
    /// Fastest inference (0 if none ran).
    pub min: u64,
    /// Slowest inference.
    pub max: u64,
}

impl Stats {
    fn record(&mut self, ticks: u64) {
        self.min = if self.images == 0 {
            ticks
        } else {
            self.min.min(ticks)
        };
        self.max = self.max.max(ticks);
        self.total = self.total.saturating_add(ticks);
        self.images = self.images.saturating_add(1);
    }
}

/// A model and the buffers it classifies in. It borrows everything, so the
/// buffers can be `static` (RAM counted by the linker) and nothing is
/// allocated.
pub struct Classifier<'a> {
    model: Model<'a>,
    scratch: &'a mut [u8],
    image: &'a mut [u8],
    scores: &'a mut [i64],
}

impl<'a> Classifier<'a> {
    /// Checks the buffers against the model once, with the core's own
    /// check (`Model::check_buffers`), and that a class fits a record byte.
    pub fn new(
        model: Model<'a>,
        scratch: &'a mut [u8],
        image: &'a mut [u8],
        scores: &'a mut [i64],
    ) -> Result<Self, SetupError> {
        model
            .check_buffers(image.len(), scratch.len(), scores.len())
            .map_err(SetupError::Buffer)?;
        if model.classes() > wire::MAX_RECORD_CLASSES {
            return Err(SetupError::TooManyClasses(model.classes()));
        }
        Ok(Self {
            model,
            scratch,
            image,
            scores: &mut scores[..model.classes()],
        })
    }

    /// The model being run.
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// Classifies images from `input` until it ends, writing one record per
    /// image to `output` (see the module doc), then flushes `output`.
    /// Each inference is timed with `clock`.
    ///
    /// On a serial link `input` never ends, so this never returns Ok; the
    /// sender should wait for each record before sending the next image
    /// if the link has no flow control.
    pub fn run<R: Read, W: Write>(
        &mut self,
        input: &mut R,
        output: &mut W,
        clock: &mut impl Clock,
    ) -> Result<Stats, Error<R::Error, W::Error>> {
        let mut stats = Stats::default();
        while self.read_image(input)? {
            let (prediction, _) = self.classify(clock, &mut stats)?;
            self.write_record(prediction, output)
                .map_err(Error::Write)?;
        }
        output.flush().map_err(Error::Write)?;
        Ok(stats)
    }

    /// Answers the requests of a serial link (module doc) until `input`
    /// ends or fails: `'?'` with the info (`wire::info_header` and the
    /// class names), `'C'` + image with the record, anything else with
    /// `'!'`. Each reply is flushed at once. After each inference and
    /// before its record goes out, `on_result` gets the prediction and its
    /// [`Clock`] ticks (to log them or show the class on an LED; the host
    /// waits for the record meanwhile, so nothing it sends can be lost).
    ///
    /// On a UART `input` never ends: this returns only with an error (a
    /// framing or overrun error of the link, say), after which the board
    /// can log it and call `serve` again.
    pub fn serve<R: Read, W: Write>(
        &mut self,
        input: &mut R,
        output: &mut W,
        clock: &mut impl Clock,
        mut on_result: impl FnMut(Prediction, u64),
    ) -> Result<Stats, Error<R::Error, W::Error>> {
        let mut stats = Stats::default();
        loop {
            let mut request = [0u8];
            if input.read(&mut request).map_err(Error::Read)? == 0 {
                return Ok(stats);
            }
            match request {
                [REQUEST_INFO] => {
                    output
                        .write_all(&wire::info_header(&self.model))
                        .and_then(|()| output.write_all(self.model.class_name_bytes()))
                        .map_err(Error::Write)?;
                }
                [REQUEST_CLASSIFY] => {
                    let expected = self.image.len();
                    if !self.read_image(input)? {
                        return Err(Error::TruncatedImage { got: 0, expected });
                    }
                    let (prediction, ticks) = self.classify(clock, &mut stats)?;
                    on_result(prediction, ticks);
                    self.write_record(prediction, output)
                        .map_err(Error::Write)?;
                }
                _ => output.write_all(&[REPLY_UNKNOWN]).map_err(Error::Write)?,
            }
            output.flush().map_err(Error::Write)?;
        }
    }

    /// Classifies the image buffer, timed by `clock` into `stats`.
    fn classify<R, W>(
        &mut self,
        clock: &mut impl Clock,
        stats: &mut Stats,
    ) -> Result<(Prediction, u64), Error<R, W>> {
        let start = clock.ticks();
        let prediction = self
            .model
            .predict_scores(self.image, self.scratch, self.scores)
            .map_err(Error::Predict)?;
        let ticks = clock.ticks().saturating_sub(start);
        stats.record(ticks);
        Ok((prediction, ticks))
    }

    /// Fills the image buffer; `Ok(false)` on a clean end of stream.
    fn read_image<R: Read, W>(&mut self, input: &mut R) -> Result<bool, Error<R::Error, W>> {
        let expected = self.image.len();
        let mut got = 0;
        while let Some(rest) = self.image.get_mut(got..).filter(|r| !r.is_empty()) {
            match input.read(rest).map_err(Error::Read)? {
                0 if got == 0 => return Ok(false),
                0 => return Err(Error::TruncatedImage { got, expected }),
                n => got += n,
            }
        }
        Ok(true)
    }

    fn write_record<W: Write>(&self, p: Prediction, output: &mut W) -> Result<(), W::Error> {
        // `new` rejected models with more than 256 classes.
        let class = u8::try_from(p.class).unwrap_or(u8::MAX);
        wire::write_record(class, self.scores, |bytes| output.write_all(bytes))
    }
}
