//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use dicomweb_multipart::{MultipartError, MultipartReader, ReaderLimits};
use futures::executor::block_on;
use futures::stream;

/// One decoded part: header fields in order, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn new(headers: &[(&str, &str)], body: &[u8]) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }
}

/// Splits `data` after each of the (ascending, deduplicated by the caller) `points`.
pub fn split_at_points(data: &[u8], points: &[usize]) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for &point in points.iter().chain(std::iter::once(&data.len())) {
        let point = point.clamp(start, data.len());
        chunks.push(Bytes::copy_from_slice(&data[start..point]));
        start = point;
    }
    chunks
}

/// Splits `data` into chunks of `size` bytes (the last may be shorter).
pub fn fixed_chunks(data: &[u8], size: usize) -> Vec<Bytes> {
    data.chunks(size).map(Bytes::copy_from_slice).collect()
}

/// Reads every part and its whole body.
pub fn read_chunks(
    chunks: Vec<Bytes>,
    boundary: &str,
    limits: ReaderLimits,
) -> Result<Vec<Part>, MultipartError> {
    let stream = stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let mut reader = MultipartReader::with_limits(stream, boundary, limits);
    block_on(async {
        let mut parts = Vec::new();
        while let Some(headers) = reader.next_part().await? {
            let mut body = Vec::new();
            while let Some(chunk) = reader.next_chunk().await? {
                body.extend_from_slice(&chunk);
            }
            let headers = headers
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            parts.push(Part { headers, body });
        }
        Ok(parts)
    })
}

/// Reads a body given as one chunk with default limits.
pub fn read(data: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    read_chunks(
        vec![Bytes::copy_from_slice(data)],
        boundary,
        ReaderLimits::default(),
    )
}
