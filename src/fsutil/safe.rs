//! Reading and writing files a hostile neighbour may have replaced: bounded reads of regular files
//! only (a FIFO, a device or a socket is refused without blocking), paths confined to a root
//! folder, and writes, renames and deletes that never follow a symbolic link.
//!
//! Every error is an [`io::Error`] whose message names what was refused; none carries the content
//! of the file read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Whether the last component of a path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Followed (files a user names: a backbone, a data file, an actions file).
    Follow,
    /// Refused (`O_NOFOLLOW`): files inside a run that only the run's own code writes.
    Refuse,
}

/// The kind of a file that is not a regular file, for messages (`a FIFO`, `a character device`).
pub fn kind_name(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

fn refused(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn link_refused(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        refused("is a symbolic link, which is not followed here".into())
    } else {
        e
    }
}

/// Opens `path` for reading if it is a regular file. The open itself never blocks
/// (`O_NONBLOCK`: a FIFO without a writer, a tty), then `fstat` refuses anything but a regular
/// file; the descriptor returned is back in blocking mode.
pub fn open_regular(path: &Path, links: Links) -> io::Result<File> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(link_refused)?;
    regular_blocking(file)
}

/// `file` if it is a regular file, back in blocking mode.
fn regular_blocking(file: File) -> io::Result<File> {
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(refused(format!(
            "is {}, not a regular file; refused",
            kind_name(&ft)
        )));
    }
    set_blocking(&file)?;
    Ok(file)
}

fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` owns; no memory is passed.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads at most `limit` bytes from `file`: more is an error saying so. The bound is on the bytes
/// actually read, not on the size the file claims.
pub fn read_limited(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(refused(format!(
            "larger than the limit of {limit} bytes; refused"
        )));
    }
    Ok(bytes)
}

/// The content of the regular file `path`, at most `limit` bytes ([`open_regular`],
/// [`read_limited`]).
pub fn read_bounded(path: &Path, limit: u64, links: Links) -> io::Result<Vec<u8>> {
    read_limited(open_regular(path, links)?, limit)
}

/// Like [`read_bounded`], as UTF-8 text.
pub fn read_bounded_text(path: &Path, limit: u64, links: Links) -> io::Result<String> {
    String::from_utf8(read_bounded(path, limit, links)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// `path` with every link resolved, if it stays inside `root` (also resolved); else an error
/// naming the root. For the paths a run's files name.
pub fn confined(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let r = root.canonicalize()?;
    let p = path.canonicalize()?;
    if p.starts_with(&r) {
        Ok(p)
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("leads outside {}; refused", r.display()),
        ))
    }
}

/// Errors unless `path` (not followed) is a real folder: a symbolic link there is refused.
/// Creates it (and only it: the parent must exist) when missing.
pub fn real_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) => Err(refused(format!(
            "is {}, not a folder; refused (nothing is written through it)",
            kind_name(&m.file_type())
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => real_dir(path),
            r => r,
        },
        Err(e) => Err(e),
    }
}

/// Removes `path` without following a link: a symbolic link is removed itself (never what it
/// points to), a folder with its content (links inside are removed, not followed), a file
/// unlinked. Missing is not an error.
pub fn remove_nofollow(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` for appending (created mode 0600 when missing), refusing a symbolic link and
/// anything but a regular file, also without blocking on a FIFO.
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(link_refused)?;
    regular_blocking(file)
}

/// Creates a new file at `path` for writing: a leftover file or link of that name is removed
/// first (the link itself), and the create is exclusive, so it never writes through a link.
pub fn create_fresh(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Errors unless `path` (following links, as device nodes under /dev often are) is a character
/// device: a FIFO, socket or regular file named as a device is refused before it is opened.
pub fn check_char_device(path: &Path) -> io::Result<()> {
    let ft = fs::metadata(path)?.file_type();
    if ft.is_char_device() {
        Ok(())
    } else {
        Err(refused(format!(
            "is {}, not a character device; refused",
            kind_name(&ft)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn refuses_special_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo of a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_bounded(&fifo, 10, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = read_bounded(Path::new("/dev/zero"), 10, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        assert!(check_char_device(&fifo).is_err());
        assert!(check_char_device(Path::new("/dev/null")).is_ok());
    }

    #[test]
    fn bounds_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_bounded(&f, 10, Links::Refuse).unwrap().len(), 10);
        assert!(read_bounded(&f, 9, Links::Refuse)
            .unwrap_err()
            .to_string()
            .contains("limit of 9"));
        let l = dir.path().join("l");
        symlink(&f, &l).unwrap();
        assert!(read_bounded(&l, 10, Links::Follow).is_ok());
        assert!(read_bounded(&l, 10, Links::Refuse)
            .unwrap_err()
            .to_string()
            .contains("symbolic link"));
        let outside = tempfile::tempdir().unwrap();
        let o = outside.path().join("o");
        fs::write(&o, b"x").unwrap();
        let lo = dir.path().join("lo");
        symlink(&o, &lo).unwrap();
        assert!(confined(dir.path(), &l).is_ok());
        assert!(confined(dir.path(), &lo).is_err());
        // A link to a folder: removed itself, the folder it names keeps its files.
        let ld = dir.path().join("ld");
        symlink(outside.path(), &ld).unwrap();
        assert!(real_dir(&ld).is_err());
        remove_nofollow(&ld).unwrap();
        assert!(o.exists());
        // A planted link at a fresh file's name is replaced, not written through.
        symlink(&o, lo.with_extension("n")).unwrap();
        drop(create_fresh(&lo.with_extension("n")).unwrap());
        assert_eq!(fs::read(&o).unwrap(), b"x");
        assert!(open_append(&lo).is_err());
    }
}
