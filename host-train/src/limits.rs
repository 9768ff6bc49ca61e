//! What an input may make the trainer allocate, checked from the sizes a
//! file declares or a run implies, before the allocation: an error that
//! names the input, the size and the limit, never an abort.

use anyhow::{Result, bail};

/// Largest patch dimension `d = 9 c`: the metric and the AGOP are `d x d`
/// (128 MiB of f64 at this limit; Deep ConvRFM's 64-filter layers have 576).
pub const MAX_PATCH_DIM: usize = 4096;

/// This machine's memory (Linux `MemTotal`), or 1 TiB where it is unknown.
pub fn memory_bytes() -> u128 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u128>().ok()
    });
    total.map_or(1 << 40, |kib| kib * 1024)
}

/// Refuses `bytes` of `what` when they exceed this machine's memory.
pub fn ensure_fits(what: &str, bytes: u128) -> Result<()> {
    let limit = memory_bytes();
    if bytes > limit {
        bail!(
            "{what} would need {}, more than this machine's {} of memory",
            gib(bytes),
            gib(limit)
        );
    }
    Ok(())
}

fn gib(bytes: u128) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_beyond_memory_are_named_errors() {
        assert!(ensure_fits("a small thing", 1 << 20).is_ok());
        let msg = ensure_fits("the kernel matrix", u128::MAX)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("the kernel matrix would need"), "{msg}");
        assert!(memory_bytes() >= 1 << 20);
    }
}
