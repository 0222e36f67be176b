//! Streaming multipart writer.

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use rand::Rng;

use crate::MultipartError;
use crate::boundary::validate_boundary;

/// Length of generated boundaries: 40 alphanumerics (~238 bits) make a collision with body
/// content practically impossible, so bodies need not be scanned.
const GENERATED_BOUNDARY_LEN: usize = 40;

/// Produces the framing bytes of a multipart body; the caller sends each part's body bytes
/// unchanged between [`part_header`](Self::part_header) calls, so bodies are never buffered.
///
/// A body must not contain `\r\n--<boundary>` nor start with `--<boundary>`; with the random
/// boundary of [`MultipartWriter::new`] this cannot happen by accident.
#[derive(Debug, Clone)]
pub struct MultipartWriter {
    boundary: String,
    parts_written: usize,
}

impl Default for MultipartWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl MultipartWriter {
    /// A writer with a random 40-character alphanumeric boundary.
    pub fn new() -> Self {
        let boundary = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(GENERATED_BOUNDARY_LEN)
            .map(char::from)
            .collect();
        Self {
            boundary,
            parts_written: 0,
        }
    }

    /// A writer with a caller-chosen boundary.
    ///
    /// # Errors
    /// [`MultipartError::InvalidBoundary`] if `boundary` breaks RFC 2046 (1..=70 characters of
    /// `0-9 A-Z a-z ' ( ) + _ , - . / : = ?` and space, not ending in a space).
    pub fn with_boundary(boundary: &str) -> Result<Self, MultipartError> {
        validate_boundary(boundary)?;
        Ok(Self {
            boundary: boundary.to_owned(),
            parts_written: 0,
        })
    }

    /// The boundary, for the `Content-Type` parameter. Quote it (`boundary="..."`) when it
    /// contains characters other than alphanumerics, `'`, `+`, `_`, `-` and `.`.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// Bytes that open the next part: the delimiter (`--b` for the first part, `\r\n--b`
    /// afterwards, the CRLF ending the previous body), the header lines and the blank line.
    ///
    /// CR and LF inside names or values are replaced by spaces so that no caller-supplied text
    /// can inject header lines or delimiters.
    pub fn part_header(&mut self, headers: &[(&str, &str)]) -> Bytes {
        let headers_len: usize = headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum();
        let mut out = BytesMut::with_capacity(self.boundary.len() + headers_len + 8);
        if self.parts_written > 0 {
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(self.boundary.as_bytes());
        out.put_slice(b"\r\n");
        for (name, value) in headers {
            put_without_line_breaks(&mut out, name);
            out.put_slice(b": ");
            put_without_line_breaks(&mut out, value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        self.parts_written += 1;
        out.freeze()
    }

    /// The closing delimiter: `\r\n--b--\r\n`, or `--b--\r\n` if no part was written.
    pub fn finish(&mut self) -> Bytes {
        let leading_crlf: &[u8] = if self.parts_written > 0 { b"\r\n" } else { b"" };
        Bytes::from([leading_crlf, b"--", self.boundary.as_bytes(), b"--\r\n"].concat())
    }
}

fn put_without_line_breaks(out: &mut BytesMut, text: &str) {
    for &byte in text.as_bytes() {
        out.put_u8(if byte == b'\r' || byte == b'\n' {
            b' '
        } else {
            byte
        });
    }
}

/// Encodes a stream of parts, each `(headers, body stream)`, into one multipart body stream
/// framed by `writer`, without buffering bodies: every body chunk is passed through as is.
///
/// The first error from `parts` or from a body is forwarded and ends the stream (no closing
/// delimiter is written, so a reader sees a truncated body rather than a short valid one).
///
/// ```
/// use bytes::Bytes;
/// use futures::{StreamExt, executor::block_on, stream};
/// use dicomweb_multipart::{MultipartWriter, encode_parts};
///
/// let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))]);
/// let parts = stream::iter([Ok((vec![("Content-Type".to_owned(), "text/plain".to_owned())], body))]);
/// let writer = MultipartWriter::with_boundary("b").unwrap();
/// let chunks: Vec<_> = block_on(encode_parts(writer, parts).collect());
/// let encoded: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
/// assert_eq!(encoded, b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n");
/// ```
pub fn encode_parts<P, B, E>(
    writer: MultipartWriter,
    parts: P,
) -> impl Stream<Item = Result<Bytes, E>> + Send
where
    P: Stream<Item = Result<(Vec<(String, String)>, B), E>> + Send + Unpin + 'static,
    B: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Send + 'static,
{
    struct Encoder<P, B> {
        writer: MultipartWriter,
        parts: P,
        current_body: Option<B>,
        finished: bool,
    }
    let encoder: Encoder<P, B> = Encoder {
        writer,
        parts,
        current_body: None,
        finished: false,
    };
    futures::stream::unfold(encoder, |mut encoder| async move {
        if encoder.finished {
            return None;
        }
        while let Some(body) = encoder.current_body.as_mut() {
            match body.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => return Some((Ok(chunk), encoder)),
                Some(Err(error)) => {
                    encoder.finished = true;
                    return Some((Err(error), encoder));
                }
                None => encoder.current_body = None,
            }
        }
        let item = match encoder.parts.next().await {
            Some(Ok((headers, body))) => {
                let header_refs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                let framing = encoder.writer.part_header(&header_refs);
                encoder.current_body = Some(body);
                Ok(framing)
            }
            Some(Err(error)) => {
                encoder.finished = true;
                Err(error)
            }
            None => {
                encoder.finished = true;
                Ok(encoder.writer.finish())
            }
        };
        Some((item, encoder))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_bytes_follow_rfc_2046() {
        let mut writer = MultipartWriter::with_boundary("b").unwrap();
        assert_eq!(
            &writer.part_header(&[("Content-Type", "application/dicom")])[..],
            b"--b\r\nContent-Type: application/dicom\r\n\r\n"
        );
        assert_eq!(&writer.part_header(&[])[..], b"\r\n--b\r\n\r\n");
        assert_eq!(&writer.finish()[..], b"\r\n--b--\r\n");
        assert_eq!(
            &MultipartWriter::with_boundary("b").unwrap().finish()[..],
            b"--b--\r\n"
        );
    }

    #[test]
    fn header_injection_is_neutralised() {
        let mut writer = MultipartWriter::with_boundary("b").unwrap();
        assert_eq!(
            &writer.part_header(&[("X\r\nY", "v\r\n\r\n--b--")])[..],
            b"--b\r\nX  Y: v    --b--\r\n\r\n"
        );
    }

    #[test]
    fn generated_boundaries_are_valid_long_and_distinct() {
        let first = MultipartWriter::new();
        let second = MultipartWriter::new();
        assert_eq!(first.boundary().len(), GENERATED_BOUNDARY_LEN);
        assert!(first.boundary().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(validate_boundary(first.boundary()).is_ok());
        assert_ne!(first.boundary(), second.boundary());
    }

    #[test]
    fn with_boundary_rejects_invalid_boundaries() {
        assert!(matches!(
            MultipartWriter::with_boundary("a\r\nb"),
            Err(MultipartError::InvalidBoundary(_))
        ));
        assert!(MultipartWriter::with_boundary("").is_err());
    }
}
