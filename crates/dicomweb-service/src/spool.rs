//! Spooling of one received instance: bounded memory, preamble sanitised.
//!
//! An instance arrives as a stream of chunks. It is kept in memory while small and moved to a temporary file once
//! it grows past a threshold, so a 2 GiB instance never sits in memory. The DICOM header must be parsed before the
//! instance can be accepted (its UIDs decide the storage key and whether it is a duplicate), and parsing a stream
//! that is still arriving would tie the parser to the network; the spool decouples them.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

/// Length of the Part 10 preamble that precedes the "DICM" magic.
const PREAMBLE_LEN: usize = 128;
const MAGIC: &[u8; 4] = b"DICM";

/// Why a body could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The client's stream failed (malformed multipart, disconnect): the request is broken.
    #[error("{0}")]
    Body(String),
    /// The bytes are not a DICOM Part 10 file (no "DICM" magic where it belongs).
    #[error("not a DICOM Part 10 file: {0}")]
    NotDicom(String),
    /// Local disk failed while spooling.
    #[error("spooling failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A received instance, preamble already replaced by zeros.
#[derive(Debug)]
pub enum Spool {
    /// Small instances stay in memory.
    Memory(Bytes),
    /// Larger ones live in an anonymous temporary file (removed when dropped).
    File {
        file: tempfile::NamedTempFile,
        len: u64,
    },
}

impl Spool {
    /// Size of the spooled file in bytes.
    #[allow(clippy::len_without_is_empty)] // a spool is never empty: an empty body is rejected as not DICOM
    pub fn len(&self) -> u64 {
        match self {
            Spool::Memory(bytes) => bytes.len() as u64,
            Spool::File { len, .. } => *len,
        }
    }

    /// A blocking reader from byte 0, for the parser (run it on a blocking thread).
    pub fn reader(&self) -> std::io::Result<Box<dyn Read + Send>> {
        match self {
            Spool::Memory(bytes) => Ok(Box::new(Cursor::new(bytes.clone()))),
            Spool::File { file, .. } => {
                let mut handle = file.reopen()?;
                handle.seek(SeekFrom::Start(0))?;
                Ok(Box::new(std::io::BufReader::with_capacity(
                    256 * 1024,
                    handle,
                )))
            }
        }
    }

    /// The spooled bytes as a stream of chunks, for uploading to blob storage. Can be called more than once (an
    /// upload that must be retried reads the spool again). On Unix the stream stays readable even if the spool is
    /// dropped first.
    pub fn stream(
        &self,
    ) -> std::io::Result<futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>> {
        match self {
            Spool::Memory(bytes) => {
                let bytes = bytes.clone();
                Ok(futures::stream::once(async move { Ok(bytes) }).boxed())
            }
            Spool::File { file, .. } => {
                let handle = tokio::fs::File::from_std(file.reopen()?);
                Ok(tokio_util::io::ReaderStream::with_capacity(handle, 1024 * 1024).boxed())
            }
        }
    }
}

/// Reads `body` into a [`Spool`], zeroing the preamble. A file that starts directly with "DICM" (no preamble) gets
/// a zero preamble added, so every stored file has the standard layout.
pub async fn spool<S, E>(
    body: S,
    spool_dir: &Path,
    memory_limit: usize,
) -> Result<Spool, SpoolError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut body = body;
    let mut head = BytesMut::new();
    // Accumulate enough bytes to decide where the magic is.
    while head.len() < PREAMBLE_LEN + MAGIC.len() {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(SpoolError::Body(e.to_string())),
            None => break,
        }
    }
    let mut buffer = if head.get(PREAMBLE_LEN..PREAMBLE_LEN + MAGIC.len()) == Some(MAGIC.as_slice())
    {
        head[..PREAMBLE_LEN].fill(0);
        head
    } else if head.starts_with(MAGIC) {
        let mut normalized = BytesMut::with_capacity(head.len() + PREAMBLE_LEN);
        normalized.resize(PREAMBLE_LEN, 0);
        normalized.extend_from_slice(&head);
        normalized
    } else if head.is_empty() {
        return Err(SpoolError::NotDicom("the part is empty".into()));
    } else {
        return Err(SpoolError::NotDicom(
            "no \"DICM\" magic at byte 128 (or at byte 0)".into(),
        ));
    };

    // In memory while it fits.
    loop {
        if buffer.len() > memory_limit {
            break;
        }
        match body.next().await {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(SpoolError::Body(e.to_string())),
            None => return Ok(Spool::Memory(buffer.freeze())),
        }
    }

    // Too large: continue on disk.
    std::fs::create_dir_all(spool_dir)?;
    let temp = tempfile::Builder::new()
        .prefix("stow-")
        .suffix(".dcm")
        .tempfile_in(spool_dir)?;
    let mut file = tokio::fs::File::from_std(temp.reopen()?);
    let mut len = buffer.len() as u64;
    file.write_all(&buffer).await?;
    drop(buffer);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| SpoolError::Body(e.to_string()))?;
        len += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(Spool::File { file: temp, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        data: Vec<u8>,
        size: usize,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        let parts: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(parts)
    }

    fn part10(preamble_byte: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![preamble_byte; 128];
        v.extend_from_slice(b"DICM");
        v.extend_from_slice(body);
        v
    }

    async fn read_all(spool: &Spool) -> Vec<u8> {
        let mut out = Vec::new();
        spool.reader().unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn preamble_is_replaced_by_zeros_and_the_rest_kept_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let input = part10(0xAB, b"rest of the file");
        let spool = spool(chunks(input.clone(), 7), dir.path(), 1024)
            .await
            .unwrap();
        let out = read_all(&spool).await;
        assert_eq!(&out[..128], &[0u8; 128][..]);
        assert_eq!(&out[128..], &input[128..]);
    }

    #[tokio::test]
    async fn a_file_without_preamble_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(chunks(b"DICMxyz".to_vec(), 3), dir.path(), 1024)
            .await
            .unwrap();
        assert_eq!(read_all(&spool).await, part10(0, b"xyz"));
    }

    #[tokio::test]
    async fn large_bodies_go_to_disk_with_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let input = part10(0, &body);
        let spool = spool(chunks(input.clone(), 4096), dir.path(), 10_000)
            .await
            .unwrap();
        assert!(matches!(spool, Spool::File { .. }));
        assert_eq!(spool.len(), input.len() as u64);
        assert_eq!(read_all(&spool).await, input);
        let mut streamed = Vec::new();
        let mut stream = spool.stream().unwrap();
        while let Some(chunk) = stream.next().await {
            streamed.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(streamed, input);
    }

    #[tokio::test]
    async fn bytes_that_are_not_dicom_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let err = spool(chunks(b"hello world".repeat(20), 5), dir.path(), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::NotDicom(_)), "{err}");
        let err = spool(chunks(Vec::new(), 5), dir.path(), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::NotDicom(_)), "{err}");
    }
}
