//! A class shown on one LED, for boards without a display: `class + 1`
//! short blinks, so class 0 is one blink and nobody mistakes "off" for a
//! class. Any `embedded-hal` 1.0 `OutputPin` and `DelayNs` will do.

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;

/// Milliseconds the LED stays on per blink.
pub const ON_MS: u32 = 120;
/// Milliseconds it stays off between blinks.
pub const OFF_MS: u32 = 180;

/// Blinks `class + 1` times (at most 256), then leaves the LED off.
/// Takes `(class + 1) * 300` ms; errors of the pin are passed on.
pub fn blink_class<P: OutputPin>(
    led: &mut P,
    delay: &mut impl DelayNs,
    class: u16,
) -> Result<(), P::Error> {
    for _ in 0..=class.min(255) {
        led.set_high()?;
        delay.delay_ms(ON_MS);
        led.set_low()?;
        delay.delay_ms(OFF_MS);
    }
    Ok(())
}
