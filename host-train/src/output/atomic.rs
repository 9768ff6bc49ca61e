//! All-or-nothing file output: every file convrfm writes (models, IDX data)
//! goes through [`write_atomic`], so an error or a crash never leaves a
//! half-written file under the final name.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes `path` through `write`: the bytes go to a temporary file in the
/// same directory (so the final rename stays on one file system), which
/// is synced, renamed over `path`, and the directory synced. On an error,
/// or a panic inside `write`, the temporary file is removed (it is a
/// `tempfile::NamedTempFile` until it is persisted) and `path` is untouched.
///
/// A symlink at `path` is followed: its target is replaced and the link
/// stays. An existing file that is not a regular file (a device, a FIFO, a
/// socket) is refused, never replaced. A replaced file keeps its mode.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    write_target(path, Some(write))
}

/// Checks, before any heavy work, what [`write_atomic`] will check when it
/// writes `path`, by creating (and removing) its temporary file: a file
/// name in an existing, writable directory, not a directory or a special
/// file. Nothing is left behind.
pub fn check_writable(path: &Path) -> io::Result<()> {
    write_target(path, None::<fn(&mut dyn Write) -> io::Result<()>>)
}

/// [`write_atomic`], or with `write = None` only its checks and its
/// temporary file.
fn write_target(
    path: &Path,
    write: Option<impl FnOnce(&mut dyn Write) -> io::Result<()>>,
) -> io::Result<()> {
    let located = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {why}", path.display()),
        ))
    };
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(path) {
            Ok(t) => t,
            Err(_) => return refuse("a symlink to nothing; refusing to write through it"),
        },
        _ => path.to_path_buf(),
    };
    match fs::metadata(&target) {
        Ok(m) if m.is_dir() => return refuse("is a directory, not a file to write"),
        Ok(m) if !m.is_file() => {
            return refuse(
                "is not a regular file (a device, FIFO or socket); refusing to replace it",
            );
        }
        _ => {}
    }
    let Some(name) = target.file_name() else {
        return refuse("not a file path");
    };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    remove_stale_temps(dir, name);
    let mut prefix = temp_prefix(name);
    prefix.push(format!("{}.", std::process::id()));
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    builder.permissions(permissions_for(&target));
    let mut tmp = builder.tempfile_in(dir).map_err(located)?;
    let Some(write) = write else {
        return Ok(()); // dropping `tmp` removes it
    };
    {
        let mut writer = BufWriter::new(tmp.as_file_mut());
        write(&mut writer).map_err(located)?;
        writer.flush().map_err(located)?;
    }
    tmp.as_file().sync_all().map_err(located)?;
    tmp.persist(&target).map_err(|e| located(e.error))?;
    // The rename is durable once the directory is synced; not every file
    // system lets a directory be opened for that, so this is best effort.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes the directory `out` as a whole: `fill` writes its files into a
/// fresh temporary directory beside it, which then takes `out`'s place, so
/// an error (a full disk half-way, a bad argument found late) leaves `out`
/// as it was. An existing `out` is replaced only when it is empty or holds
/// nothing but files of the names `fill` wrote (a previous run's output);
/// anything else there is refused, never deleted.
pub fn replace_dir(
    out: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let located = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", out.display()));
    let refuse = |why: String| anyhow::anyhow!("{}: {why}", out.display());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = out.file_name() else {
        return Err(refuse("not a directory path".into()));
    };
    let mut prefix = temp_prefix(name);
    prefix.push(format!("{}.", std::process::id()));
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempdir_in(parent)
        .map_err(located)?;
    fill(tmp.path())?;
    let written: Vec<std::ffi::OsString> = fs::read_dir(tmp.path())
        .map_err(located)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(located)?;
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::rename(tmp.path(), out).map_err(located)?;
            // The directory is in place: nothing left to clean up.
            let _ = tmp.keep();
            return Ok(());
        }
        Err(e) => return Err(located(e).into()),
        Ok(m) if !m.is_dir() => return Err(refuse("exists and is not a directory".into())),
        Ok(_) => {}
    }
    let existing: Vec<std::ffi::OsString> = fs::read_dir(out)
        .map_err(located)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(located)?;
    if let Some(other) = existing.iter().find(|f| !written.contains(f)) {
        return Err(refuse(format!(
            "exists and holds {} (not written by this command); refusing to replace it",
            Path::new(other).display()
        )));
    }
    // Swap: the old directory moves aside, the new one takes its name, the
    // old one is removed.
    let aside = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".old")
        .tempdir_in(parent)
        .map_err(located)?;
    let aside_path = aside.path().join("old");
    fs::rename(out, &aside_path).map_err(located)?;
    if let Err(e) = fs::rename(tmp.path(), out) {
        let _ = fs::rename(&aside_path, out);
        return Err(located(e).into());
    }
    let _ = tmp.keep();
    drop(aside); // removes the old directory with it
    Ok(())
}

/// `.NAME.`: the start of every temporary file of `NAME`, which is
/// followed by the writing process's id, a dot, a random part and `.tmp`.
fn temp_prefix(name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    prefix
}

/// Removes the temporary files of `name` left in `dir` by processes that
/// no longer run (a run killed before it could clean up). Best effort: a
/// file that cannot be read or removed is left alone.
fn remove_stale_temps(dir: &Path, name: &std::ffi::OsStr) {
    let prefix = temp_prefix(name);
    let Some(prefix) = prefix.to_str() else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix(prefix))
            .filter(|r| r.ends_with(".tmp"))
        else {
            continue;
        };
        let owner = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(|pid| !process_alive(pid)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists (on Linux, `/proc/PID`); elsewhere every
/// process is assumed alive, so nothing is removed.
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// The mode of the file being replaced, or, for a new file, read-write
/// for all less the umask (what `File::create` gives), instead of
/// tempfile's private 0600.
#[cfg(unix)]
fn permissions_for(path: &Path) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.permissions(),
        _ => std::fs::Permissions::from_mode(0o666),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing_and_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, |w| w.write_all(b"old")).unwrap();
        let err = write_atomic(&path, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
    }

    #[cfg(unix)]
    #[test]
    fn new_files_get_the_usual_mode_and_replaced_files_keep_theirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, |w| w.write_all(b"a")).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_ne!(mode, 0o600, "tempfile's private mode leaked");
        assert_eq!(mode & 0o600, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, |w| w.write_all(b"b")).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_special_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.bin");
        let link = dir.path().join("link.bin");
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, |w| w.write_all(b"new")).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
        let err = check_writable(Path::new("/dev/null"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = check_writable(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = check_writable(&dir.path().join("missing/out.bin")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        fs::remove_file(&real).unwrap();
        let err = check_writable(&link).unwrap_err().to_string();
        assert!(err.contains("symlink to nothing"), "{err}");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn temp_files_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.convrfm");
        // No process has pid u32::MAX on Linux (pid_max is at most 2^22).
        let dead = dir
            .path()
            .join(format!(".m.convrfm.{}.abc123.tmp", u32::MAX));
        let live = dir
            .path()
            .join(format!(".m.convrfm.{}.def456.tmp", std::process::id()));
        let other = dir.path().join(".other.1.x.tmp");
        for p in [&dead, &live, &other] {
            fs::write(p, b"partial").unwrap();
        }
        write_atomic(&path, |w| w.write_all(b"new")).unwrap();
        assert!(!dead.exists(), "a dead process's temp file stayed");
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn a_directory_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("set");
        let two = |tmp: &Path| -> anyhow::Result<()> {
            fs::write(tmp.join("a"), b"1")?;
            fs::write(tmp.join("b"), b"2")?;
            Ok(())
        };
        replace_dir(&out, two).unwrap();
        // A failure half-way leaves the previous output whole.
        let err = replace_dir(&out, |tmp| {
            fs::write(tmp.join("a"), b"new")?;
            anyhow::bail!("disk full")
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"));
        assert_eq!(fs::read(out.join("a")).unwrap(), b"1");
        // A previous run's output is replaced; anything else is refused.
        replace_dir(&out, |tmp| {
            fs::write(tmp.join("a"), b"3")?;
            fs::write(tmp.join("b"), b"4")?;
            Ok(())
        })
        .unwrap();
        assert_eq!(fs::read(out.join("a")).unwrap(), b"3");
        fs::write(out.join("mine.txt"), b"keep").unwrap();
        let err = replace_dir(&out, two).unwrap_err().to_string();
        assert!(err.contains("mine.txt"), "{err}");
        assert_eq!(fs::read(out.join("mine.txt")).unwrap(), b"keep");
        // Nothing temporary is left beside it.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn panic_in_the_writer_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let caught = std::panic::catch_unwind(|| {
            let _ = write_atomic(&path, |w| {
                w.write_all(b"partial")?;
                panic!("writer panicked")
            });
        });
        assert!(caught.is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
