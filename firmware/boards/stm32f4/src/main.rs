//! convrfm on a Nucleo-F401RE (STM32F401RE, Cortex-M4F at 84 MHz).
//!
//! - Images in, records out: USART2 at 115200 baud on PA2/PA3, which the
//!   Nucleo's ST-LINK bridges to a USB virtual COM port on the host, where
//!   `convrfm serial --port /dev/ttyACM0` drives it (`convrfm_core::wire`'s
//!   protocol, answered by `Classifier::serve`).
//! - The class on the user LED LD2 (PA5): class + 1 blinks.
//! - Logs over RTT with defmt: the model at start-up, then per image its
//!   class and the CPU cycles of the inference from the DWT cycle counter.
//!
//! `cargo run --release` builds, flashes and shows the log (probe-rs);
//! docs/boards.md has the whole path from a trained model.
#![no_std]
#![no_main]

use convrfm_core::Model;
use convrfm_firmware::app::Clock;
use convrfm_firmware::led::blink_class;
use convrfm_firmware::model::{self, Buffers};
use convrfm_firmware::nb_serial::NbReader;
use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;
use stm32f4xx_hal::dwt::DwtExt;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::Config;

/// Core clock: the STM32F401's maximum, from the internal oscillator (the
/// Nucleo's 8 MHz HSE comes from the ST-LINK and is not fitted on every
/// board revision).
const SYSCLK_MHZ: u32 = 84;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns `static mut` locals of the entry function into safe
    // `&'static mut` references: the buffers live in .bss, counted by the
    // linker against RAM.
    static mut BUFFERS: Buffers = Buffers::new();

    let (Some(dp), Some(cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take()) else {
        defmt::panic!("peripherals already taken");
    };
    let mut rcc = dp.RCC.freeze(Config::hsi().sysclk(SYSCLK_MHZ.MHz()));
    // Enables the trace unit and the cycle counter that `Cycles` reads.
    let dwt = cp.DWT.constrain(cp.DCB, &rcc.clocks);
    let mut delay = dwt.delay();

    let gpioa = dp.GPIOA.split(&mut rcc);
    let mut led = gpioa.pa5.into_push_pull_output();
    let serial = match dp
        .USART2
        .serial((gpioa.pa2, gpioa.pa3), 115_200.bps(), &mut rcc)
    {
        Ok(serial) => serial,
        Err(_) => defmt::panic!("USART2 rejected 115200 baud at {} MHz", SYSCLK_MHZ),
    };
    let (mut tx, rx) = serial.split();
    let mut rx = NbReader(rx);

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

    let mut clock = Cycles::default();
    loop {
        defmt::info!("waiting for `convrfm serial` on USART2 (ST-LINK virtual COM port)");
        let result = classifier.serve(&mut rx, &mut tx, &mut clock, |p, cycles| {
            defmt::info!(
                "class {} ({=str}), score {}, {} cycles = {} ms",
                p.class,
                model.class_name(usize::from(p.class)).unwrap_or("?"),
                p.score,
                cycles,
                cycles / u64::from(SYSCLK_MHZ * 1000)
            );
            // The pin cannot fail (Infallible on this HAL).
            let _ = blink_class(&mut led, &mut delay, p.class);
        });
        // A UART error (overrun, framing, noise): log it and serve again.
        if let Err(e) = result {
            defmt::warn!("serial link: {}", defmt::Debug2Format(&e));
        }
    }
}

/// The DWT cycle counter (32 bits, wrapping every 51 s at 84 MHz) extended
/// to 64 bits by accumulating the wrapping difference at each read: exact
/// as long as two reads are less than one wrap apart, which holds within an
/// inference.
#[derive(Default)]
struct Cycles {
    last: u32,
    total: u64,
}

impl Clock for Cycles {
    fn ticks(&mut self) -> u64 {
        let now = DWT::cycle_count();
        self.total = self
            .total
            .wrapping_add(u64::from(now.wrapping_sub(self.last)));
        self.last = now;
        self.total
    }
}
