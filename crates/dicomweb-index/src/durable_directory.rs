//! A tantivy [`Directory`] on local disk that makes a commit durable with two rounds of flushes
//! instead of one flush per file.
//!
//! Why: `MmapDirectory` fsyncs every file it writes when the file is finished, and tantivy's
//! `ManagedDirectory` rewrites (and fsyncs) `.managed.json` for every new file. A commit of one
//! small segment thus cost 18 fdatasyncs, about 34 ms on this project's machines: the whole
//! price of storing one instance per request. Here the files of a commit are only written when
//! finished; durability is established once, just before `meta.json` (the commit point: the
//! only file that makes segments part of the index) is replaced:
//!
//! 1. every file finished since the last commit, the new `meta.json` (under a temporary name)
//!    and the directory are flushed *concurrently*, from one thread each, so that the file
//!    system batches them into a few journal commits;
//! 2. the temporary file is renamed to `meta.json` and the directory flushed again.
//!
//! The invariant tantivy needs holds: when `meta.json` names a segment, the segment's files are
//! on disk. `.managed.json` (tantivy's list of the files it may garbage-collect) is replaced
//! atomically but made durable only with the next commit; after a power loss it may be an older
//! list (which only leaves files that nothing references on disk) or, on file systems that do
//! not order data before renames, unreadable, which [`repair_managed_list`] handles at open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, TerminatingWrite,
    WatchCallback, WatchHandle, WritePtr,
};

/// The commit point of a tantivy index.
const META_FILE: &str = "meta.json";
/// tantivy's list of managed files.
const MANAGED_FILE: &str = ".managed.json";

/// See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct DurableDirectory {
    inner: MmapDirectory,
    root: PathBuf,
    /// Files finished or replaced since the last commit point, not yet flushed.
    unflushed: Arc<Mutex<Unflushed>>,
}

#[derive(Debug, Default)]
struct Unflushed {
    /// Files written once (segment files).
    written: Vec<File>,
    /// The current version of each file replaced by `atomic_write` (earlier versions are gone).
    replaced: HashMap<PathBuf, File>,
}

impl DurableDirectory {
    pub(crate) fn open(root: &Path) -> io::Result<DurableDirectory> {
        let inner = MmapDirectory::open(root).map_err(io::Error::other)?;
        Ok(DurableDirectory {
            inner,
            root: root.to_path_buf(),
            unflushed: Arc::default(),
        })
    }

    fn unflushed(&self) -> std::sync::MutexGuard<'_, Unflushed> {
        match self.unflushed.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn flush_directory(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }

    /// Flushes the unflushed files, `extra` and the directory, concurrently. On failure the
    /// files stay unflushed, so that the next commit point flushes them again.
    fn flush_all(&self, extra: &File) -> io::Result<()> {
        let Unflushed { written, replaced } = std::mem::take(&mut *self.unflushed());
        let directory = File::open(&self.root)?;
        let result = std::thread::scope(|scope| {
            let flushes: Vec<_> = written
                .iter()
                .chain(replaced.values())
                .chain([extra, &directory])
                .map(|file| scope.spawn(move || file.sync_data()))
                .collect();
            let mut outcome = Ok(());
            for flush in flushes {
                let result = flush
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a flush thread panicked")));
                if outcome.is_ok() {
                    outcome = result;
                }
            }
            outcome
        });
        if result.is_err() {
            let mut unflushed = self.unflushed();
            unflushed.written.extend(written);
            for (path, file) in replaced {
                unflushed.replaced.entry(path).or_insert(file);
            }
        }
        result
    }
}

/// The writer of one file: flushed to the OS when finished, to disk at the next commit point.
struct DeferredFlushWriter {
    file: File,
    directory: DurableDirectory,
}

impl Write for DeferredFlushWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl TerminatingWrite for DeferredFlushWriter {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        self.file.flush()?;
        let file = self.file.try_clone()?;
        self.directory.unflushed().written.push(file);
        Ok(())
    }
}

impl Directory for DurableDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.root.join(path))
            .map_err(|error| {
                if error.kind() == io::ErrorKind::AlreadyExists {
                    OpenWriteError::FileAlreadyExists(path.to_path_buf())
                } else {
                    OpenWriteError::wrap_io_error(error, path.to_path_buf())
                }
            })?;
        Ok(BufWriter::new(Box::new(DeferredFlushWriter {
            file,
            directory: self.clone(),
        })))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let target = self.root.join(path);
        let mut temporary = tempfile::Builder::new()
            .prefix(".atomic-write")
            .tempfile_in(&self.root)?;
        temporary.write_all(data)?;
        temporary.flush()?;
        if path == Path::new(META_FILE) {
            // The commit point: everything it may reference, and its own content, first.
            self.flush_all(temporary.as_file())?;
            temporary.persist(&target).map_err(|e| e.error)?;
            self.flush_directory()
        } else {
            let file = temporary.as_file().try_clone()?;
            temporary.persist(&target).map_err(|e| e.error)?;
            self.unflushed().replaced.insert(path.to_path_buf(), file);
            Ok(())
        }
    }

    fn sync_directory(&self) -> io::Result<()> {
        // Deferred: the next commit point flushes the directory before `meta.json` is replaced.
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}

/// Moves an unreadable `.managed.json` aside, so that the index opens (see the module
/// documentation for how it can happen). tantivy then starts a new list: files of the old one
/// that no commit references are left on disk instead of being removed.
pub(crate) fn repair_managed_list(root: &Path) -> io::Result<()> {
    let path = root.join(MANAGED_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if serde_json::from_slice::<Vec<PathBuf>>(&bytes).is_ok() {
        return Ok(());
    }
    let aside = root.join(format!("{MANAGED_FILE}.unreadable"));
    tracing::warn!(
        path = %path.display(),
        "the index's list of managed files is unreadable (interrupted write); moving it aside"
    );
    std::fs::rename(&path, &aside)?;
    File::open(root)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::{STORED, STRING, Schema};
    use tantivy::{Index, IndexWriter, TantivyDocument, Term};

    fn schema() -> (Schema, tantivy::schema::Field) {
        let mut builder = Schema::builder();
        let id = builder.add_text_field("id", STRING | STORED);
        (builder.build(), id)
    }

    fn open(dir: &Path) -> Index {
        let (schema, _) = schema();
        let directory = DurableDirectory::open(dir).unwrap();
        Index::open_or_create(directory, schema).unwrap()
    }

    /// Adds one document and commits.
    fn commit_one(writer: &mut IndexWriter, id: tantivy::schema::Field, text: &str) {
        let mut doc = TantivyDocument::new();
        doc.add_text(id, text);
        writer.add_document(doc).unwrap();
        writer.commit().unwrap();
    }

    fn writer(index: &Index) -> IndexWriter {
        index.writer_with_num_threads(1, 15_000_000).unwrap()
    }

    #[test]
    fn the_commit_point_flushes_every_file_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let directory = DurableDirectory::open(dir.path()).unwrap();
        let mut file = directory.open_write(Path::new("a.segment")).unwrap();
        file.write_all(b"segment data").unwrap();
        file.terminate().unwrap();
        directory
            .atomic_write(Path::new(MANAGED_FILE), b"[\"a.segment\"]")
            .unwrap();
        directory
            .atomic_write(Path::new(MANAGED_FILE), b"[\"a.segment\",\"meta.json\"]")
            .unwrap();
        {
            let unflushed = directory.unflushed();
            assert_eq!(unflushed.written.len(), 1);
            assert_eq!(unflushed.replaced.len(), 1, "only the current list");
        }
        directory.atomic_write(Path::new(META_FILE), b"{}").unwrap();
        let unflushed = directory.unflushed();
        assert!(unflushed.written.is_empty() && unflushed.replaced.is_empty());
        assert_eq!(std::fs::read(dir.path().join(META_FILE)).unwrap(), b"{}");
        assert_eq!(
            std::fs::read(dir.path().join("a.segment")).unwrap(),
            b"segment data"
        );
    }

    #[test]
    fn commits_deletes_and_merges_reopen_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (_, id) = schema();
        {
            let index = open(dir.path());
            let mut writer = writer(&index);
            for round in 0..12 {
                commit_one(&mut writer, id, &format!("doc-{round}"));
            }
            writer.delete_term(Term::from_field_text(id, "doc-0"));
            writer.commit().unwrap();
            writer.wait_merging_threads().unwrap();
        }
        let index = open(dir.path());
        assert_eq!(index.reader().unwrap().searcher().num_docs(), 11);
    }

    #[test]
    fn an_unreadable_managed_list_is_moved_aside_and_the_index_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (_, id) = schema();
        commit_one(&mut writer(&open(dir.path())), id, "kept");
        // What a power loss can leave on a file system that does not order data before renames.
        std::fs::write(dir.path().join(MANAGED_FILE), b"").unwrap();
        repair_managed_list(dir.path()).unwrap();
        assert!(dir.path().join(".managed.json.unreadable").exists());
        let index = open(dir.path());
        assert_eq!(index.reader().unwrap().searcher().num_docs(), 1);
        // Writing goes on, with a new list; a readable list is left alone.
        commit_one(&mut writer(&index), id, "added");
        std::fs::remove_file(dir.path().join(".managed.json.unreadable")).unwrap();
        repair_managed_list(dir.path()).unwrap();
        assert!(dir.path().join(MANAGED_FILE).exists());
        assert!(!dir.path().join(".managed.json.unreadable").exists());
        assert_eq!(open(dir.path()).reader().unwrap().searcher().num_docs(), 2);
    }
}
