//! A 64 MiB part streams through with bounded memory.

use bytes::Bytes;
use dicomweb_multipart::MultipartReader;
use futures::executor::block_on;
use futures::stream;

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 1024; // 64 MiB

/// Deterministic body content, distinct per chunk; every other chunk ends with a delimiter
/// prefix so the carry-over path (held-back bytes joined with the next chunk) is exercised too.
fn body_chunk(index: usize) -> Bytes {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        (0..CHUNK)
            .map(|i| (i.wrapping_mul(31) % 251) as u8)
            .collect()
    });
    let mut chunk = pattern.clone();
    chunk[..8].copy_from_slice(&(index as u64).to_le_bytes());
    if index.is_multiple_of(2) {
        let tail = b"\r\n--bound";
        chunk[CHUNK - tail.len()..].copy_from_slice(tail);
    }
    Bytes::from(chunk)
}

#[test]
fn a_64_mib_body_streams_with_bounded_buffering() {
    let boundary = "boundary-0123456789";
    let opening = Bytes::from(format!(
        "--{boundary}\r\nContent-Type: application/dicom\r\n\r\n"
    ));
    let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let chunks = std::iter::once(opening)
        .chain((0..CHUNKS).map(body_chunk))
        .chain(std::iter::once(closing))
        .map(Ok::<_, std::io::Error>);
    let mut reader = MultipartReader::new(stream::iter(chunks), boundary);
    let delimiter_len = boundary.len() + 4;
    block_on(async {
        reader.next_part().await.unwrap().unwrap();
        // Expected bytes not yet matched, refilled chunk by chunk (compared with memcmp).
        let (mut expected, mut next_index) = (Vec::new(), 0);
        let (mut total, mut largest_chunk, mut largest_buffer) = (0, 0, 0);
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            largest_buffer = largest_buffer.max(reader.buffered_len() + chunk.len());
            largest_chunk = largest_chunk.max(chunk.len());
            total += chunk.len();
            while expected.len() < chunk.len() && next_index < CHUNKS {
                expected.extend_from_slice(&body_chunk(next_index));
                next_index += 1;
            }
            assert!(
                expected.starts_with(&chunk),
                "content differs at byte {total}"
            );
            expected.drain(..chunk.len());
        }
        assert_eq!(total, CHUNK * CHUNKS);
        assert!(expected.is_empty() && next_index == CHUNKS);
        assert!(
            largest_chunk <= CHUNK + delimiter_len,
            "largest chunk {largest_chunk}"
        );
        assert!(
            largest_buffer <= CHUNK + delimiter_len,
            "largest buffer {largest_buffer}"
        );
        assert!(reader.next_part().await.unwrap().is_none());
    });
}
