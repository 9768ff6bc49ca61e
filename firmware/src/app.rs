//! The classification loop, independent of the board: images come from any
//! [`embedded_io::Read`] and results go to any [`embedded_io::Write`], so the
//! same code runs over QEMU's semihosting files (`src/main.rs`) and over a
//! UART, USB-CDC or socket of a real board (every embedded-hal 1.0 era HAL
//! implements these traits for its serial ports).
//!
//! # Wire format
//!
//! - In: images back to back, `c * H * W` bytes each (channel-major, then
//!   rows, then columns, 8-bit pixels), nothing else. A clean end of stream
//!   (a `read` returning 0 between two images) ends [`Classifier::run`].
//! - Out: one record per image, [`record_len`] bytes: the class (1 byte),
//!   then every class score as an i64, little-endian. The host reference
//!   `firmware/host-check` writes the same bytes, so `cmp` compares them.

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

/// Bytes of one output record for a model with `classes` classes: the
/// class byte and `classes` i64 scores.
pub const fn record_len(classes: usize) -> usize {
    1 + 8 * classes
}

/// Why a [`Classifier`] could not be set up: buffers that do not match the
/// model (the same conditions `Model::predict_scores` checks, caught once
/// instead of on every image), or a model whose class does not fit the
/// output's class byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// Buffer sizes that do not match the model.
    Buffer(PredictError),
    /// More than 256 classes: the class would not fit its output byte.
    TooManyClasses(usize),
}

/// Why [`Classifier::run`] stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        if model.classes() > 256 {
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
            let start = clock.ticks();
            let prediction = self
                .model
                .predict_scores(self.image, self.scratch, self.scores)
                .map_err(Error::Predict)?;
            stats.record(clock.ticks().saturating_sub(start));
            self.write_record(prediction, output)
                .map_err(Error::Write)?;
        }
        output.flush().map_err(Error::Write)?;
        Ok(stats)
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
        output.write_all(&[class])?;
        for score in self.scores.iter() {
            output.write_all(&score.to_le_bytes())?;
        }
        Ok(())
    }
}
