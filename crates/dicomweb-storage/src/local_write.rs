//! Exclusive creation of a small file on local disk with no staging name: `O_TMPFILE`, then `linkat`.
//!
//! object_store's `LocalFileSystem` creates a file exclusively by writing a staging file `name#N` next to it,
//! hard-linking it to its name and unlinking the staging name: three directory updates per file, most of a
//! small store's time on the blocking pool. An unnamed file (`O_TMPFILE`) linked once it is complete gives
//! the same guarantees with one: nobody ever sees a partial file under the key, two creates of one key
//! cannot both succeed (`linkat` fails with `EEXIST`), and a crash before the link leaves nothing behind
//! (the kernel frees an unnamed file). File systems without `O_TMPFILE` (or a system without `/proc`) get
//! object_store's path.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use crate::{BlockingCreate, StorageError, validate_key};

/// Creates the file `target` holding `chunks`, failing with `AlreadyExists` if it exists. `Ok(None)` when
/// this file system (or system) cannot create unnamed files: the caller takes another way.
pub(crate) fn create_unnamed_then_link(target: &Path, chunks: &[Bytes]) -> io::Result<Option<u64>> {
    let Some(parent) = target.parent() else {
        return Ok(None);
    };
    let open = || {
        rustix::fs::openat(
            CWD,
            parent,
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
    };
    let descriptor = match open() {
        Ok(descriptor) => descriptor,
        Err(Errno::NOENT) => {
            std::fs::create_dir_all(parent)?;
            match open() {
                Ok(descriptor) => descriptor,
                Err(errno) => return unsupported_or(errno),
            }
        }
        Err(errno) => return unsupported_or(errno),
    };
    let mut file = File::from(descriptor);
    let mut length = 0u64;
    for chunk in chunks {
        file.write_all(chunk)?;
        length += chunk.len() as u64;
    }
    let unnamed = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(CWD, unnamed.as_str(), CWD, target, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => Ok(Some(length)),
        Err(Errno::EXIST) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
        Err(Errno::NOENT) if !Path::new("/proc/self/fd").exists() => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

/// Small creates under a local root as unnamed files, until the file system refuses them (then `Ok(None)`,
/// and the store's callers take object_store's way).
#[derive(Debug)]
pub(crate) struct UnnamedFileCreator {
    root: PathBuf,
    /// Names the store in the log line that says unnamed files are off.
    description: String,
    enabled: AtomicBool,
}

impl UnnamedFileCreator {
    pub(crate) fn new(root: PathBuf, description: String) -> UnnamedFileCreator {
        UnnamedFileCreator {
            root,
            description,
            enabled: AtomicBool::new(true),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// [`BlockingCreate::create_blocking`] of `chunks`.
    pub(crate) fn create_chunks(
        &self,
        key: &str,
        chunks: &[Bytes],
    ) -> Result<Option<u64>, StorageError> {
        validate_key(key)?;
        if !self.enabled() {
            return Ok(None);
        }
        match create_unnamed_then_link(&self.root.join(key), chunks) {
            Ok(Some(length)) => Ok(Some(length)),
            Ok(None) => {
                tracing::info!(
                    store = %self.description,
                    "this file system has no unnamed files (O_TMPFILE): small files are created through staging names"
                );
                self.enabled.store(false, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StorageError::AlreadyExists {
                    key: key.to_owned(),
                })
            }
            Err(e) => Err(StorageError::Other {
                message: format!("creating {key}: {e}"),
                source: Some(Box::new(e)),
            }),
        }
    }
}

impl BlockingCreate for UnnamedFileCreator {
    fn create_blocking(&self, key: &str, bytes: &Bytes) -> Result<Option<u64>, StorageError> {
        self.create_chunks(key, std::slice::from_ref(bytes))
    }
}

/// `Ok(None)` for the errors that say "no unnamed files here" (`EOPNOTSUPP`; `EISDIR` from kernels before
/// 3.11, which ignore the flag), the error itself otherwise.
fn unsupported_or(errno: Errno) -> io::Result<Option<u64>> {
    match errno {
        Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL => Ok(None),
        other => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_whole_under_its_name_once_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/c.dcm");
        let chunks = [Bytes::from_static(b"DICM"), Bytes::from(vec![7u8; 5000])];
        let Some(length) = create_unnamed_then_link(&target, &chunks).unwrap() else {
            // This file system has no O_TMPFILE: the caller's fallback is tested by the conformance suite.
            return;
        };
        assert_eq!(length, 5004);
        let stored = std::fs::read(&target).unwrap();
        assert_eq!(&stored[..4], b"DICM");
        assert_eq!(stored.len(), 5004);
        let again = create_unnamed_then_link(&target, &[Bytes::from_static(b"other")]);
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::read(&target).unwrap(),
            stored,
            "the first file stays"
        );
        let names: Vec<_> = std::fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["c.dcm"], "no staging name is left behind");
    }
}
