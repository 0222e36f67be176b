//! Reading a local file as a stream in large chunks.
//!
//! object_store's `LocalFileSystem` streams a file in 8 KiB chunks, each read on tokio's blocking pool: a
//! 240 MiB instance is some 30,000 trips to the pool, which caps a retrieve at a few hundred MiB/s. Its
//! `get` hands over the open file (`GetResultPayload::File`), so this module reads that file itself, in
//! chunks of [`LOCAL_READ_CHUNK`], with the same errors for a short file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::StorageError;

/// Bytes read from a local file per trip to the blocking pool: large enough that the trips cost little
/// beside the copy, small enough that a retrieve holds little memory (one chunk being sent, one read).
pub(crate) const LOCAL_READ_CHUNK: usize = 512 * 1024;

/// `range` of the open `file` at `path` as a stream of chunks of at most `chunk` bytes. A file shorter than
/// the range ends the stream with an error, never with silently missing bytes.
pub(crate) fn file_stream(
    file: File,
    path: PathBuf,
    range: Range<u64>,
    chunk: usize,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let state = (Some(file), path, range.start, range.end);
    futures::stream::try_unfold(state, move |(file, path, position, end)| async move {
        let Some(file) = file else {
            return Ok(None);
        };
        if position >= end {
            return Ok(None);
        }
        let (file, path, bytes) = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let result = read_chunk(&mut file, position, end, chunk);
            result
                .map(|bytes| (file, path.clone(), bytes))
                .map_err(|e| (path, e))
        })
        .await
        .map_err(|e| StorageError::other(format!("reading a local file: {e}")))?
        .map_err(|(path, e)| StorageError::other(format!("reading {}: {e}", path.display())))?;
        let next = position + bytes.len() as u64;
        Ok(Some((bytes, (Some(file), path, next, end))))
    })
    .boxed()
}

fn read_chunk(file: &mut File, position: u64, end: u64, chunk: usize) -> std::io::Result<Bytes> {
    let wanted = usize::try_from((end - position).min(chunk as u64)).unwrap_or(chunk);
    file.seek(SeekFrom::Start(position))?;
    let mut buffer = Vec::with_capacity(wanted);
    let read = file.take(wanted as u64).read_to_end(&mut buffer)?;
    if read < wanted {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "the file ends at {} bytes, before {end}",
                position + read as u64
            ),
        ));
    }
    Ok(Bytes::from(buffer))
}

/// The first `size` bytes of the file at `path` (the blob `key`), as `get_range(key, 0..size)`:
/// [`StorageError::NotFound`] when missing, an error when shorter.
pub(crate) fn read_whole(
    path: &std::path::Path,
    key: &str,
    size: u64,
) -> Result<Bytes, StorageError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::NotFound {
                key: key.to_owned(),
            });
        }
        Err(e) => return Err(StorageError::other(format!("opening {key:?}: {e}"))),
    };
    let chunk = usize::try_from(size).map_err(|_| {
        StorageError::other(format!("{size} bytes of {key:?} do not fit in memory"))
    })?;
    read_chunk(&mut file, 0, size, chunk)
        .map_err(|e| StorageError::other(format!("range 0..{size} of {key:?} cannot be read: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(
        stream: BoxStream<'static, Result<Bytes, StorageError>>,
    ) -> Result<Vec<Bytes>, StorageError> {
        futures::TryStreamExt::try_collect(stream).await
    }

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn a_range_is_read_in_chunks_of_the_given_size() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, path) = file_with(&data);
        let chunks = collect(file_stream(
            File::open(&path).unwrap(),
            path,
            100..9_100,
            4096,
        ))
        .await
        .unwrap();
        let lengths: Vec<usize> = chunks.iter().map(Bytes::len).collect();
        assert_eq!(lengths, [4096, 4096, 808]);
        assert_eq!(chunks.concat(), data[100..9_100]);
    }

    #[tokio::test]
    async fn an_empty_range_is_an_empty_stream() {
        let (_dir, path) = file_with(b"abc");
        let chunks = collect(file_stream(File::open(&path).unwrap(), path, 3..3, 4096))
            .await
            .unwrap();
        assert!(chunks.is_empty());
    }

    #[tokio::test]
    async fn a_file_shorter_than_the_range_ends_in_an_error() {
        // The file shrank after its length was read (or was damaged): never a silently short body.
        let (_dir, path) = file_with(&[1u8; 5000]);
        let result = collect(file_stream(File::open(&path).unwrap(), path, 0..9000, 4096)).await;
        assert!(result.is_err(), "{result:?}");
    }
}
