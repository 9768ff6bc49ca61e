//! An `embedded-io` reader over an `embedded-hal-nb` serial receiver, for
//! HALs whose UART receiver implements only the word-at-a-time `nb` trait
//! (stm32f4xx-hal 0.23's `Rx`, for one), so [`crate::app`] runs on them
//! unchanged.

use embedded_hal_nb::serial::Read as NbRead;

/// Wraps a receiver: `read` waits for one byte, then takes the bytes that
/// have already arrived, as `embedded_io::Read` asks.
pub struct NbReader<R>(pub R);

impl<R> embedded_io::ErrorType for NbReader<R>
where
    R: NbRead<u8>,
    R::Error: embedded_io::Error,
{
    type Error = R::Error;
}

impl<R> embedded_io::Read for NbReader<R>
where
    R: NbRead<u8>,
    R::Error: embedded_io::Error,
{
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, R::Error> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            let byte = if n == 0 {
                nb::block!(self.0.read())?
            } else {
                match self.0.read() {
                    Ok(byte) => byte,
                    Err(nb::Error::WouldBlock) => break,
                    Err(nb::Error::Other(e)) => return Err(e),
                }
            };
            *slot = byte;
            n += 1;
        }
        Ok(n)
    }
}
