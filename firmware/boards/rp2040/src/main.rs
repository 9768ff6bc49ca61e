//! convrfm on a Raspberry Pi Pico (RP2040, Cortex-M0+ at 125 MHz).
//!
//! - Images in, records out: UART0 at 115200 baud on GP0 (TX) / GP1 (RX),
//!   to a USB-serial adapter (or a debug probe's UART bridge) on the host,
//!   where `convrfm serial --port /dev/ttyACM0` drives it
//!   (`convrfm_core::wire`'s protocol, answered by `Classifier::serve`).
//! - The class on the on-board LED (GP25): class + 1 blinks.
//! - Logs over RTT with defmt: the model at start-up, then per image its
//!   class and the inference time in microseconds from the RP2040's 1 MHz
//!   timer (the Cortex-M0+ has no DWT cycle counter).
//!
//! `cargo run --release` builds, flashes and shows the log (probe-rs);
//! docs/boards.md has the whole path from a trained model.
#![no_std]
#![no_main]

use convrfm_core::Model;
use convrfm_firmware::app::Clock;
use convrfm_firmware::led::blink_class;
use convrfm_firmware::model::{self, Buffers};
use defmt_rtt as _;
use panic_probe as _;
use rp2040_hal as hal;
use rp2040_hal::clocks::Clock as _;
use rp2040_hal::fugit::RateExtU32;
use rp2040_hal::uart::{DataBits, StopBits, UartConfig, UartPeripheral};

/// The second-stage bootloader for the Pico's W25Q080 flash, placed first
/// in flash by memory.x.
#[unsafe(link_section = ".boot2")]
#[unsafe(no_mangle)]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XTAL_HZ: u32 = 12_000_000;

#[hal::entry]
fn main() -> ! {
    // The entry macro turns `static mut` locals into safe `&'static mut`
    // references: the buffers live in .bss, counted by the linker.
    static mut BUFFERS: Buffers = Buffers::new();

    let Some(mut pac) = hal::pac::Peripherals::take() else {
        defmt::panic!("peripherals already taken");
    };
    let mut watchdog = hal::Watchdog::new(pac.WATCHDOG);
    let Ok(clocks) = hal::clocks::init_clocks_and_plls(
        XTAL_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    ) else {
        defmt::panic!("the clocks did not start (crystal, PLLs)");
    };
    defmt::info!("system clock {} MHz", clocks.system_clock.freq().to_MHz());
    let sio = hal::Sio::new(pac.SIO);
    let pins = hal::gpio::Pins::new(
        pac.IO_BANK0,
        pac.PADS_BANK0,
        sio.gpio_bank0,
        &mut pac.RESETS,
    );
    let mut led = pins.gpio25.into_push_pull_output();
    // 1 MHz, 64 bits: the inference clock, and the LED's delay.
    let timer = hal::Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);
    let mut delay = timer;

    let uart_pins = (
        pins.gpio0.into_function::<hal::gpio::FunctionUart>(),
        pins.gpio1.into_function::<hal::gpio::FunctionUart>(),
    );
    let config = UartConfig::new(115_200.Hz(), DataBits::Eight, None, StopBits::One);
    let Ok(uart) = UartPeripheral::new(pac.UART0, uart_pins, &mut pac.RESETS)
        .enable(config, clocks.peripheral_clock.freq())
    else {
        defmt::panic!("UART0 rejected 115200 baud");
    };
    let (mut rx, mut tx) = uart.split();

    // Validated once (CRC and every field); build.rs checked these very
    // bytes, so a failure means corrupt flash.
    let model = match Model::from_bytes(model::BLOB) {
        Ok(model) => model,
        Err(e) => defmt::panic!("the embedded blob is invalid: {}", e),
    };
    model::log_model(&model);
    let mut classifier = match BUFFERS.classifier(model) {
        Ok(c) => c,
        Err(e) => defmt::panic!("buffers: {}", e),
    };

    let mut clock = Micros(timer);
    loop {
        defmt::info!("waiting for `convrfm serial` on UART0 (GP0 TX, GP1 RX)");
        let result = classifier.serve(&mut rx, &mut tx, &mut clock, |p, micros| {
            defmt::info!(
                "class {} ({=str}), score {}, {} us",
                p.class,
                model.class_name(usize::from(p.class)).unwrap_or("?"),
                p.score,
                micros
            );
            // The pin cannot fail (Infallible on this HAL).
            let _ = blink_class(&mut led, &mut delay, p.class);
        });
        // A UART error (overrun, framing, parity, break): log it, serve again.
        if let Err(e) = result {
            defmt::warn!("serial link: {}", defmt::Debug2Format(&e));
        }
    }
}

/// The RP2040's free-running 64-bit microsecond timer.
struct Micros(hal::Timer);

impl Clock for Micros {
    fn ticks(&mut self) -> u64 {
        self.0.get_counter().ticks()
    }
}
