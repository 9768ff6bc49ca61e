//! The host side of a serial link to a board that runs a blob: the board's
//! info, then one image out and one record back at a time, each within a
//! deadline. The bytes are `convrfm_core::wire`'s, parsed with its checked
//! parsers, so a board that sends garbage gets an error that says what
//! was wrong, never a panic or a silent misreading.
//!
//! [`Link`] is any byte stream with a read timeout: a serial port in
//! `convrfm serial`, a socket pair in the tests.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use convrfm_core::wire::{INFO_HEADER_LEN, Info, REQUEST_CLASSIFY, REQUEST_INFO, Record};

/// A byte stream to a board whose reads give up after a timeout.
pub trait Link: Read + Write {
    /// Makes the next reads wait at most `timeout` for a byte.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
    /// Drops bytes received but not read (a boot banner, a reply nobody
    /// waited for), so the next read is the answer to the next request.
    fn discard_input(&mut self) -> io::Result<()>;
}

impl Link for Box<dyn serialport::SerialPort> {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_timeout(timeout).map_err(io::Error::from)
    }

    fn discard_input(&mut self) -> io::Result<()> {
        self.clear(serialport::ClearBuffer::Input)
            .map_err(io::Error::from)
    }
}

#[cfg(unix)]
impl Link for std::os::unix::net::UnixStream {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, Some(timeout))
    }

    fn discard_input(&mut self) -> io::Result<()> {
        self.set_nonblocking(true)?;
        let mut sink = [0u8; 256];
        let drained = loop {
            match self.read(&mut sink) {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.set_nonblocking(false)?;
        drained
    }
}

/// One classified image, as the board reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The predicted class.
    pub class: usize,
    /// Integer scores, in class order (times the info's `alpha_scale`:
    /// the model's scores).
    pub scores: Vec<i64>,
    /// The record's bytes as received (for `--out`: they compare with the
    /// host reference byte for byte).
    pub record: Vec<u8>,
}

/// A board that answered the info request.
pub struct Board<L: Link> {
    link: L,
    info: Info,
    class_names: Vec<String>,
    timeout: Duration,
}

impl<L: Link> Board<L> {
    /// Asks the board at the other end of `link` for its model; `timeout`
    /// bounds this and every later reply.
    pub fn connect(mut link: L, timeout: Duration) -> Result<Self> {
        ensure!(!timeout.is_zero(), "the timeout must be above 0");
        link.discard_input()
            .context("discarding old input from the board")?;
        link.write_all(&[REQUEST_INFO])
            .and_then(|()| link.flush())
            .context("sending the info request")?;
        let deadline = Instant::now() + timeout;
        let mut header = [0u8; INFO_HEADER_LEN];
        read_within(&mut link, &mut header, deadline).with_context(|| {
            format!(
                "no info from the board within {} s: is it running a convrfm firmware, and \
                 is this its port and baud rate? (a board left waiting in the middle of an \
                 image by an interrupted run needs a reset)",
                timeout.as_secs_f64()
            )
        })?;
        let info = Info::parse(&header).context("the board's info reply")?;
        let mut names = vec![0u8; info.names_len];
        read_within(&mut link, &mut names, deadline).context("the board's class names")?;
        let class_names = info
            .names(&names)
            .context("the board's class names")?
            .map(str::to_owned)
            .collect();
        Ok(Self {
            link,
            info,
            class_names,
            timeout,
        })
    }

    /// The model the board runs.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Its class names, in class order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Sends one image (`c * H * W` bytes) and waits for its record.
    pub fn classify(&mut self, image: &[u8]) -> Result<Reply> {
        let expected = self.info.image_len();
        if image.len() != expected {
            bail!(
                "an image of {} bytes; the board's model takes {expected}",
                image.len()
            );
        }
        self.link
            .write_all(&[REQUEST_CLASSIFY])
            .and_then(|()| self.link.write_all(image))
            .and_then(|()| self.link.flush())
            .context("sending the image")?;
        let mut record = vec![0u8; self.info.record_len()];
        let deadline = Instant::now() + self.timeout;
        read_within(&mut self.link, &mut record, deadline).with_context(|| {
            format!(
                "no result from the board within {} s (raise --timeout for a slow board)",
                self.timeout.as_secs_f64()
            )
        })?;
        let parsed = Record::parse(&record, self.info.classes).context("the board's record")?;
        Ok(Reply {
            class: parsed.class(),
            scores: parsed.scores().collect(),
            record,
        })
    }
}

/// Fills `buf` from `link` before `deadline`.
fn read_within<L: Link>(link: &mut L, buf: &mut [u8], deadline: Instant) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{got} of {} bytes received", buf.len());
        }
        link.set_read_timeout(left)?;
        match link.read(&mut buf[got..]) {
            Ok(0) => bail!("the link closed after {got} of {} bytes", buf.len()),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                bail!("{got} of {} bytes received", buf.len())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading from the board"),
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::thread;

    use convrfm_core::Model;
    use convrfm_core::wire::{REPLY_UNKNOWN, info_header, write_record};

    use super::*;

    const BLOB: &[u8] = include_bytes!("../../firmware/blobs/fashion-mnist-m0.blob");

    /// A device that speaks the protocol with the core, as the firmware's
    /// `Classifier::serve` does, until the host hangs up; `corrupt` turns
    /// the first record's class byte into 200.
    fn device(mut s: UnixStream, corrupt: bool) {
        let model = Model::from_bytes(BLOB).unwrap();
        let mut scratch = vec![0u8; model.scratch_len()];
        let mut scores = vec![0i64; model.classes()];
        let mut image = vec![0u8; model.shape().pixels()];
        let mut request = [0u8];
        while s.read_exact(&mut request).is_ok() {
            match request[0] {
                REQUEST_INFO => {
                    s.write_all(&info_header(&model)).unwrap();
                    s.write_all(model.class_name_bytes()).unwrap();
                }
                REQUEST_CLASSIFY => {
                    s.read_exact(&mut image).unwrap();
                    let p = model
                        .predict_scores(&image, &mut scratch, &mut scores)
                        .unwrap();
                    let class = if corrupt { 200 } else { p.class as u8 };
                    write_record(class, &scores, |b| s.write_all(b)).unwrap();
                }
                _ => s.write_all(&[REPLY_UNKNOWN]).unwrap(),
            }
        }
    }

    #[test]
    fn classifies_as_the_core_does() {
        let (host, dev) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || device(dev, false));
        let mut board = Board::connect(host, Duration::from_secs(10)).unwrap();
        assert_eq!(board.info().image_len(), 784);
        assert_eq!(board.class_names()[9], "Ankle boot");
        let model = Model::from_bytes(BLOB).unwrap();
        let mut scratch = vec![0u8; model.scratch_len()];
        let mut scores = vec![0i64; 10];
        for seed in 0..3u32 {
            let image: Vec<u8> = (0..784u32)
                .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
                .collect();
            let reply = board.classify(&image).unwrap();
            let p = model
                .predict_scores(&image, &mut scratch, &mut scores)
                .unwrap();
            assert_eq!(reply.class, usize::from(p.class));
            assert_eq!(reply.scores, scores);
            assert_eq!(reply.record.len(), 81);
        }
        let e = board.classify(&[0u8; 10]).unwrap_err().to_string();
        assert!(e.contains("10 bytes; the board's model takes 784"), "{e}");
        drop(board);
        t.join().unwrap();
    }

    #[test]
    fn a_silent_or_lying_board_is_an_error() {
        // Nobody answers: the timeout names the likely causes.
        let (host, _dev) = UnixStream::pair().unwrap();
        let e = Board::connect(host, Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("no info from the board within 0.1 s"));
        // A class byte outside the model's classes is refused by name.
        let (host, dev) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || device(dev, true));
        let mut board = Board::connect(host, Duration::from_secs(10)).unwrap();
        let e = board.classify(&[0u8; 784]).unwrap_err();
        assert!(
            format!("{e:#}").contains("class 200 of a model with 10 classes"),
            "{e:#}"
        );
        drop(board);
        t.join().unwrap();
        // A device that speaks something else: bad magic.
        let (host, mut dev) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || {
            let mut r = [0u8];
            dev.read_exact(&mut r).unwrap();
            dev.write_all(&[b'x'; INFO_HEADER_LEN]).unwrap();
        });
        let e = Board::connect(host, Duration::from_secs(10)).err().unwrap();
        assert!(format!("{e:#}").contains("does not start with \"CRFM\""));
        t.join().unwrap();
    }
}
