//! Spooling of one received instance: bounded memory, preamble sanitised.
//!
//! An instance arrives as a stream of chunks. It is kept in memory while small and moved to a temporary file once
//! it grows past a threshold, so a 2 GiB instance never sits in memory. The DICOM header must be parsed before the
//! instance can be accepted (its UIDs decide the storage key and whether it is a duplicate), and parsing a stream
//! that is still arriving would tie the parser to the network; the spool decouples them.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The memory all spools of a process may hold at once, shared by its clones: a spool that would go past it
/// continues on disk, so that many concurrent uploads cannot exhaust memory (each is also bounded by the
/// per-instance limit). Bytes are counted from the moment a spool buffers them until the last clone of its
/// [`Spool::Memory`] bytes is dropped (a store may keep them a little past the spool, as the copy of a small
/// file in its catalogue commit).
#[derive(Debug, Clone)]
pub struct SpoolMemory(Arc<MemoryBudget>);

#[derive(Debug)]
struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl SpoolMemory {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SpoolMemory(Arc::new(MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        }))
    }

    /// The bytes it allows.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// The bytes held now by spools in memory.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    fn reserve(&self) -> Reservation {
        Reservation {
            memory: self.clone(),
            bytes: 0,
        }
    }
}

/// Bytes of a [`SpoolMemory`] taken by one spool; given back when dropped.
#[derive(Debug)]
struct Reservation {
    memory: SpoolMemory,
    bytes: usize,
}

impl Reservation {
    /// Takes more of the budget so that this spool holds `total` bytes; false (and nothing taken) when the
    /// budget does not have them.
    fn grow_to(&mut self, total: usize) -> bool {
        let more = total.saturating_sub(self.bytes);
        let budget = &self.memory.0;
        let taken = budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more)
                    .filter(|&after| after <= budget.limit)
            });
        if taken.is_ok() {
            self.bytes += more;
        }
        taken.is_ok()
    }

    /// `bytes`, holding this reservation until their last clone is dropped.
    fn hold(self, bytes: Bytes) -> Bytes {
        Bytes::from_owner(Held {
            bytes,
            _reservation: self,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.memory.0.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The owner of a memory spool's bytes, which gives its part of the budget back when the bytes are freed.
struct Held {
    bytes: Bytes,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads `body` into a [`Spool`], zeroing the preamble. A file that starts directly with "DICM" (no preamble) gets
/// a zero preamble added, so every stored file has the standard layout.
pub async fn spool<S, E>(
    body: S,
    spool_dir: &Path,
    memory_limit: usize,
    memory: &SpoolMemory,
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

    // In memory while it fits, both under the per-instance limit and within the budget all spools share.
    let mut reserved = memory.reserve();
    let mut overflow: Option<Bytes> = None;
    if reserved.grow_to(buffer.len()) {
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    let len = buffer.len() + chunk.len();
                    if len > memory_limit || !reserved.grow_to(len) {
                        overflow = Some(chunk);
                        break;
                    }
                    buffer.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(SpoolError::Body(e.to_string())),
                None => return Ok(Spool::Memory(reserved.hold(buffer.freeze()))),
            }
        }
    }

    // Too large, or the budget is spent: continue on disk.
    std::fs::create_dir_all(spool_dir)?;
    let temp = tempfile::Builder::new()
        .prefix("stow-")
        .suffix(".dcm")
        .tempfile_in(spool_dir)?;
    let mut file = tokio::fs::File::from_std(temp.reopen()?);
    let mut len = buffer.len() as u64;
    file.write_all(&buffer).await?;
    drop(buffer);
    if let Some(chunk) = overflow {
        len += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    // What this spool held in memory is on disk now: give it back to the others.
    drop(reserved);
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

    fn unlimited() -> SpoolMemory {
        SpoolMemory::new(usize::MAX)
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
        let spool = spool(chunks(input.clone(), 7), dir.path(), 1024, &unlimited())
            .await
            .unwrap();
        let out = read_all(&spool).await;
        assert_eq!(&out[..128], &[0u8; 128][..]);
        assert_eq!(&out[128..], &input[128..]);
    }

    #[tokio::test]
    async fn a_file_without_preamble_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(
            chunks(b"DICMxyz".to_vec(), 3),
            dir.path(),
            1024,
            &unlimited(),
        )
        .await
        .unwrap();
        assert_eq!(read_all(&spool).await, part10(0, b"xyz"));
    }

    #[tokio::test]
    async fn large_bodies_go_to_disk_with_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let input = part10(0, &body);
        let spool = spool(
            chunks(input.clone(), 4096),
            dir.path(),
            10_000,
            &unlimited(),
        )
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
        let err = spool(
            chunks(b"hello world".repeat(20), 5),
            dir.path(),
            1024,
            &unlimited(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SpoolError::NotDicom(_)), "{err}");
        let err = spool(chunks(Vec::new(), 5), dir.path(), 1024, &unlimited())
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::NotDicom(_)), "{err}");
    }

    #[tokio::test]
    async fn spools_past_the_shared_memory_budget_go_to_disk_and_give_it_back_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let memory = SpoolMemory::new(100_000);
        let input = part10(0, &[7u8; 60_000]);
        let first = spool(chunks(input.clone(), 4096), dir.path(), 1 << 20, &memory)
            .await
            .unwrap();
        assert!(matches!(first, Spool::Memory(_)));
        assert_eq!(memory.used(), input.len());
        // The second would take the budget past its limit: same bytes, on disk, nothing more held.
        let second = spool(chunks(input.clone(), 4096), dir.path(), 1 << 20, &memory)
            .await
            .unwrap();
        assert!(matches!(second, Spool::File { .. }));
        assert_eq!(read_all(&second).await, input);
        assert_eq!(memory.used(), input.len());
        // A clone of the bytes (a store's copy) keeps them counted until it is gone too.
        let Spool::Memory(bytes) = &first else {
            unreachable!()
        };
        let copy = bytes.slice(10..20);
        drop(first);
        assert_eq!(memory.used(), input.len());
        drop(copy);
        assert_eq!(memory.used(), 0);
        let third = spool(chunks(input.clone(), 4096), dir.path(), 1 << 20, &memory)
            .await
            .unwrap();
        assert!(matches!(third, Spool::Memory(_)));
        drop((second, third));
        assert_eq!(memory.used(), 0);
    }

    #[tokio::test]
    async fn a_failed_spool_gives_its_memory_back() {
        let dir = tempfile::tempdir().unwrap();
        let memory = SpoolMemory::new(1 << 20);
        let mut parts: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from(part10(0, &[1u8; 5000])))];
        parts.push(Err(std::io::Error::other("connection reset")));
        let err = spool(futures::stream::iter(parts), dir.path(), 1 << 20, &memory)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::Body(_)), "{err}");
        assert_eq!(memory.used(), 0);
    }
}
