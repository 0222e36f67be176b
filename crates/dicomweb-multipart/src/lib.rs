//! Streaming `multipart/related` (RFC 2387, framing per RFC 2046 §5.1) reader and writer.
//!
//! The DICOMweb server uses it for STOW-RS request bodies ([`MultipartReader`]) and WADO-RS
//! responses ([`MultipartWriter`], [`encode_parts`]). This crate owns only the multipart
//! framing: boundaries, delimiters, part headers and resource limits. It must never depend on
//! DICOM crates nor on an HTTP framework; it sees a `Stream` of `Bytes` and nothing else.
//!
//! # Why hand-written
//! dicom-rs has no multipart codec, and the general crates (`actix-multipart`, `multer`) are
//! built for `multipart/form-data`: they require `Content-Disposition: form-data` semantics and
//! buffer differently. DICOMweb needs `multipart/related` with arbitrary part headers (or none)
//! and memory bounded independently of part size, since instances can be gigabytes.
//!
//! # Guarantees
//! * Any chunking of the input yields the same parts (1-byte chunks, boundaries split across
//!   chunks, ...).
//! * Memory is bounded: the reader holds one input chunk plus at most an incomplete delimiter
//!   line; body bytes are handed out as soon as they cannot be the start of a delimiter,
//!   as zero-copy slices of the input chunks whenever possible.
//! * Delimiters are found with `memchr::memmem`, not byte-by-byte.
//! * Hostile input yields a [`MultipartError`] whose message can be shown to the client;
//!   header size and part count are limited by [`ReaderLimits`].
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use futures::{executor::block_on, stream};
//! use dicomweb_multipart::{MultipartReader, MultipartWriter, boundary_from_content_type};
//!
//! // Writing: framing bytes around unchanged body bytes.
//! let mut writer = MultipartWriter::new();
//! let mut body = Vec::new();
//! body.extend_from_slice(&writer.part_header(&[("Content-Type", "application/dicom")]));
//! body.extend_from_slice(b"first instance");
//! body.extend_from_slice(&writer.part_header(&[]));
//! body.extend_from_slice(b"second");
//! body.extend_from_slice(&writer.finish());
//! let content_type = format!("multipart/related; type=\"application/dicom\"; boundary={}", writer.boundary());
//!
//! // Reading it back, in awkward 3-byte chunks.
//! let chunks: Vec<Result<Bytes, std::io::Error>> =
//!     body.chunks(3).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
//! let boundary = boundary_from_content_type(&content_type).unwrap();
//! let mut reader = MultipartReader::new(stream::iter(chunks), &boundary);
//! block_on(async {
//!     let headers = reader.next_part().await.unwrap().unwrap();
//!     assert_eq!(headers.content_type(), Some("application/dicom"));
//!     let mut data = Vec::new();
//!     while let Some(chunk) = reader.next_chunk().await.unwrap() {
//!         data.extend_from_slice(&chunk);
//!     }
//!     assert_eq!(data, b"first instance");
//!     // The second body is skipped without being buffered.
//!     assert!(reader.next_part().await.unwrap().unwrap().is_empty());
//!     assert!(reader.next_part().await.unwrap().is_none());
//! });
//! ```

mod boundary;
mod error;
mod headers;
mod reader;
mod writer;

pub use boundary::boundary_from_content_type;
pub use error::MultipartError;
pub use headers::PartHeaders;
pub use reader::{MAX_TRANSPORT_PADDING, MultipartReader, ReaderLimits};
pub use writer::{MultipartWriter, encode_parts};
