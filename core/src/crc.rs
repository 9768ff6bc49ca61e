//! CRC-32 (IEEE 802.3, the zlib / PNG / Ethernet one) for the blob trailer.
//!
//! Reflected, polynomial `0xEDB88320`, initial value and final XOR
//! `0xFFFFFFFF`; the check value of `b"123456789"` is `0xCBF43926`. A
//! 1 KiB table built at compile time keeps it one load and two XORs per
//! byte without a dependency. The CRC guards against corrupt flash and
//! truncated copies, not against an attacker: it is not a signature.

/// The 256-entry lookup table, computed at compile time.
const TABLE: [u32; 256] = build_table();

#[allow(clippy::arithmetic_side_effects)] // loop counters bounded by 256 and 8
const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n: u32 = 0;
    while n < 256 {
        let mut c = n;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        // `n < 256` is the loop condition, so the index is in bounds.
        #[allow(clippy::indexing_slicing)]
        {
            table[n as usize] = c;
        }
        n += 1;
    }
    table
}

/// Running CRC-32 state, for data that arrives in pieces.
///
/// `Crc32::new().update(a).update(b).finish() == crc32(a ++ b)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// Fresh state (nothing hashed yet).
    pub const fn new() -> Self {
        Self(0xFFFF_FFFF)
    }

    /// Feeds `data`.
    #[must_use]
    pub fn update(self, data: &[u8]) -> Self {
        let mut c = self.0;
        for &b in data {
            // The index is a `u8`, the table has 256 entries.
            let entry = TABLE.get(usize::from((c as u8) ^ b)).copied().unwrap_or(0);
            c = entry ^ (c >> 8);
        }
        Self(c)
    }

    /// The CRC of everything fed so far.
    pub const fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

/// CRC-32 of `data` in one call.
pub fn crc32(data: &[u8]) -> u32 {
    Crc32::new().update(data).finish()
}

// Tests: an overflow panics the test, which is the failure we want.
#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // zlib's crc32(b"The quick brown fox jumps over the lazy dog")
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data = b"convolutional recursive feature machine";
        for split in 0..=data.len() {
            let (a, b) = data.split_at(split);
            assert_eq!(Crc32::new().update(a).update(b).finish(), crc32(data));
        }
    }
}
