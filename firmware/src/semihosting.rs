//! Semihosting glue for QEMU: host files as `embedded-io` streams, the
//! command line, and exit codes. Each call traps into QEMU (`bkpt 0xab`),
//! so none of this works on a board without a debugger attached.

use cortex_m_semihosting::{nr, syscall, syscall1};

/// A failed semihosting call (the host's errno is not fetched: the test
/// script only needs to know that it failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostError;

impl embedded_io::Error for HostError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

/// An open host file, closed on drop.
pub struct HostFile(usize);

impl HostFile {
    /// Opens `path` for binary reading.
    pub fn open_read(path: &str) -> Result<Self, HostError> {
        Self::open(path, nr::open::R_BINARY)
    }

    /// Creates or truncates `path` for binary writing.
    pub fn create(path: &str) -> Result<Self, HostError> {
        Self::open(path, nr::open::W_TRUNC_BINARY)
    }

    // Not inlined: its name buffer would otherwise stay in the caller's
    // frame, under the whole classification loop, and count against the
    // stack high-water mark.
    #[inline(never)]
    fn open(path: &str, mode: usize) -> Result<Self, HostError> {
        // SYS_OPEN wants a NUL-terminated name and its length without the NUL.
        let mut name = [0u8; 256];
        let bytes = path.as_bytes();
        if bytes.len() >= name.len() {
            return Err(HostError);
        }
        name[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: the block holds a valid NUL-terminated buffer, a mode and
        // the name's length, as SYS_OPEN requires; `name` outlives the call.
        let fd = unsafe { syscall!(OPEN, name.as_ptr(), mode, bytes.len()) } as isize;
        if fd < 0 {
            Err(HostError)
        } else {
            Ok(Self(fd as usize))
        }
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        // SAFETY: a handle SYS_OPEN returned, closed once. CLOSE takes an
        // argument block, hence `syscall!` and not `syscall1!`.
        unsafe { syscall!(CLOSE, self.0) };
    }
}

impl embedded_io::ErrorType for HostFile {
    type Error = HostError;
}

impl embedded_io::Read for HostFile {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HostError> {
        // SAFETY: the host writes at most `buf.len()` bytes into `buf`.
        let not_read = unsafe { syscall!(READ, self.0, buf.as_mut_ptr(), buf.len()) };
        // SYS_READ returns the number of bytes *not* read (all of them at EOF).
        buf.len().checked_sub(not_read).ok_or(HostError)
    }
}

impl embedded_io::Write for HostFile {
    fn write(&mut self, buf: &[u8]) -> Result<usize, HostError> {
        // SAFETY: the host reads `buf.len()` bytes from `buf`.
        let not_written = unsafe { syscall!(WRITE, self.0, buf.as_ptr(), buf.len()) };
        // SYS_WRITE returns the number of bytes *not* written.
        match buf.len().checked_sub(not_written) {
            Some(0) if !buf.is_empty() => Err(HostError),
            Some(n) => Ok(n),
            None => Err(HostError),
        }
    }

    fn flush(&mut self) -> Result<(), HostError> {
        Ok(())
    }
}

/// The command line QEMU was given (`-semihosting-config ...,arg=ELF,arg=...`),
/// copied into `buf`: `"ELF arg1 arg2"`; `None` if it does not fit `buf`
/// (or is not UTF-8).
pub fn cmdline(buf: &mut [u8]) -> Option<&str> {
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: the host writes at most block[1] bytes into `buf` and the
    // length it wrote into block[1]. The block goes in as a raw pointer:
    // through `&block` the compiler may assume block[1] is unchanged.
    let r = unsafe { syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
    if r != 0 {
        return None;
    }
    buf.get(..block[1])
        .and_then(|b| core::str::from_utf8(b).ok())
}

/// Ends the QEMU run: exit status 0 if `success`, else 1.
pub fn exit(success: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without QEMU or a debugger to exit to.
    loop {
        cortex_m::asm::wfi();
    }
}
