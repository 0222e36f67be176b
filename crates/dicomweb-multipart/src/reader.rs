//! Streaming multipart reader.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use memchr::memmem;

use crate::{MultipartError, PartHeaders};

/// Most spaces/tabs accepted between a boundary and its line end. RFC 2046 sets no limit; ours
/// keeps the bytes held back while a delimiter line is incomplete bounded.
pub const MAX_TRANSPORT_PADDING: usize = 1024;

/// Resource limits of a [`MultipartReader`], protecting the server from hostile bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Largest header block of one part, counted from the first header byte up to and
    /// including the blank line that ends it. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Largest number of parts in one body. Default 10 000.
    pub max_parts: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_parts: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter; bytes are discarded.
    Preamble,
    /// Inside a part's header block.
    Headers,
    /// Inside a part's body.
    Body,
    /// The closing delimiter was seen; the epilogue is ignored.
    Done,
    /// An error was returned; the reader does not try to resynchronise.
    Failed,
}

/// Result of looking at the bytes that follow a `--boundary` candidate.
enum Tail {
    /// More bytes are needed to decide.
    NeedMore,
    /// Not a delimiter line (e.g. `--boundaryX`): the candidate is ordinary data.
    NotDelimiter,
    /// A delimiter line; `end` is the index just after its line ending.
    Delimiter { end: usize },
    /// The closing delimiter `--boundary--`; `end` is the index just after the second `--`.
    Close { end: usize },
}

/// Result of scanning the buffer in the preamble or a body.
enum Scan {
    /// Bytes that are certainly not part of a delimiter (split off the buffer).
    Data(Bytes),
    /// A delimiter was found and consumed from the buffer.
    Boundary { close: bool },
    /// Nothing can be decided without more input.
    NeedMore,
}

/// Reads a `multipart/related` (or any RFC 2046 multipart) body part by part from a stream of
/// byte chunks. It holds at most one input chunk plus either an incomplete header block
/// (bounded by [`ReaderLimits::max_header_bytes`]) or an incomplete delimiter line (boundary
/// plus at most [`MAX_TRANSPORT_PADDING`] bytes); a part body is never accumulated.
///
/// Call [`next_part`](Self::next_part) to get a part's headers, then
/// [`next_chunk`](Self::next_chunk) until it returns `Ok(None)` to stream the part's body.
/// Any chunking of the input gives the same parts; body chunks are slices of the input chunks
/// (no copy) except when a chunk ends with bytes that might start a delimiter.
///
/// Parsing is lenient where RFC 2046 senders commonly deviate: bare LF line endings, a first
/// delimiter without preceding line ending, transport padding after boundaries, folded
/// header lines, parts without headers, a delimiter directly after a part's header lines.
/// A `--boundary` that is not at the start of a line, or is followed by anything other than
/// `--`, spaces/tabs and a line ending, is body data.
///
/// After any error the reader is poisoned: further calls return
/// [`MultipartError::UnexpectedEof`] instead of trying to resynchronise.
pub struct MultipartReader<S> {
    stream: S,
    /// Set once the stream returned `None`; it is then never polled again.
    stream_ended: bool,
    limits: ReaderLimits,
    /// Unprocessed input: usually a slice of the latest input chunk (so data split off it is
    /// zero-copy), or a copy of carried-over bytes joined with the latest chunk.
    buffer: Bytes,
    state: State,
    /// `--boundary`.
    dash_boundary: Box<[u8]>,
    /// `\r\n--boundary`, the longest form of a delimiter, for hold-back decisions.
    crlf_dash_boundary: Box<[u8]>,
    /// Finds `\n--boundary`; the optional `\r` before it is checked separately.
    lf_dash_boundary_finder: memmem::Finder<'static>,
    /// True when the buffer start is logically at the start of a line, so that a
    /// delimiter may begin there without a preceding line ending (start of the stream, start
    /// of a body just after the blank line).
    at_line_start: bool,
    /// In `Headers`: buffer offset of the next header line to parse.
    header_line_start: usize,
    headers: PartHeaders,
    parts_seen: usize,
}

impl<S, E> MultipartReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    /// A reader with [`ReaderLimits::default`].
    ///
    /// `boundary` is the value of the `boundary` parameter (see
    /// [`crate::boundary_from_content_type`]); it is not validated here, so that a reader can
    /// be built for any boundary a peer actually uses.
    pub fn new(stream: S, boundary: &str) -> Self {
        Self::with_limits(stream, boundary, ReaderLimits::default())
    }

    /// A reader with explicit limits.
    pub fn with_limits(stream: S, boundary: &str, limits: ReaderLimits) -> Self {
        let dash_boundary: Vec<u8> = [b"--", boundary.as_bytes()].concat();
        let crlf_dash_boundary: Vec<u8> = [b"\r\n", dash_boundary.as_slice()].concat();
        let lf_dash_boundary_finder =
            memmem::Finder::new(crlf_dash_boundary.get(1..).unwrap_or_default()).into_owned();
        Self {
            stream,
            stream_ended: false,
            limits,
            buffer: Bytes::new(),
            state: State::Preamble,
            dash_boundary: dash_boundary.into(),
            crlf_dash_boundary: crlf_dash_boundary.into(),
            lf_dash_boundary_finder,
            at_line_start: true,
            header_line_start: 0,
            headers: PartHeaders::default(),
            parts_seen: 0,
        }
    }

    /// Advances to the next part and returns its headers; `Ok(None)` after the closing delimiter.
    ///
    /// If the previous part's body was not fully read, the rest of it is skipped (read and
    /// dropped, never buffered).
    ///
    /// # Errors
    /// [`MultipartError::NoInitialBoundary`] if the stream holds no delimiter,
    /// [`MultipartError::UnexpectedEof`] if it ends before the closing delimiter,
    /// [`MultipartError::HeaderTooLarge`], [`MultipartError::MalformedHeader`],
    /// [`MultipartError::TooManyParts`], or [`MultipartError::Source`] from the stream.
    pub async fn next_part(&mut self) -> Result<Option<PartHeaders>, MultipartError> {
        let result = self.advance_to_next_part().await;
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// The next chunk of the current part's body; `Ok(None)` at the end of the part, and
    /// also when there is no current part (before the first [`next_part`](Self::next_part)
    /// or after the end). Returned chunks are never empty.
    ///
    /// # Errors
    /// [`MultipartError::UnexpectedEof`] if the stream ends inside the body, or
    /// [`MultipartError::Source`] from the stream.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        let result = self.read_body_chunk().await;
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Number of input bytes currently held by the reader (for tests and metrics): at most
    /// one input chunk plus the bytes of an incomplete delimiter line.
    pub fn buffered_len(&self) -> usize {
        self.buffer.len()
    }

    async fn advance_to_next_part(&mut self) -> Result<Option<PartHeaders>, MultipartError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Failed => return Err(MultipartError::UnexpectedEof),
                State::Preamble | State::Body => match self.scan()? {
                    Scan::Data(_discarded) => {}
                    Scan::Boundary { close } => self.after_delimiter(close)?,
                    Scan::NeedMore => {
                        if !self.fill().await? {
                            return Err(if self.state == State::Preamble {
                                MultipartError::NoInitialBoundary
                            } else {
                                MultipartError::UnexpectedEof
                            });
                        }
                    }
                },
                State::Headers => {
                    if let Some(headers) = self.parse_headers()? {
                        return Ok(Some(headers));
                    }
                    if !self.fill().await? {
                        return Err(MultipartError::UnexpectedEof);
                    }
                }
            }
        }
    }

    async fn read_body_chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        loop {
            match self.state {
                State::Failed => return Err(MultipartError::UnexpectedEof),
                State::Body => {}
                _ => return Ok(None),
            }
            match self.scan()? {
                Scan::Data(data) => return Ok(Some(data)),
                Scan::Boundary { close } => {
                    self.after_delimiter(close)?;
                    return Ok(None);
                }
                Scan::NeedMore => {
                    if !self.fill().await? {
                        return Err(MultipartError::UnexpectedEof);
                    }
                }
            }
        }
    }

    /// State change after a delimiter was consumed.
    fn after_delimiter(&mut self, close: bool) -> Result<(), MultipartError> {
        if close {
            self.state = State::Done;
            // The epilogue is ignored; release the memory now.
            self.buffer = Bytes::new();
            return Ok(());
        }
        self.parts_seen += 1;
        if self.parts_seen > self.limits.max_parts {
            return Err(MultipartError::TooManyParts {
                limit: self.limits.max_parts,
            });
        }
        self.state = State::Headers;
        self.header_line_start = 0;
        self.headers = PartHeaders::default();
        Ok(())
    }

    /// Appends the next non-empty input chunk to the buffer. Returns false at end of stream.
    async fn fill(&mut self) -> Result<bool, MultipartError> {
        while !self.stream_ended {
            match self.stream.next().await {
                None => self.stream_ended = true,
                Some(Err(error)) => return Err(MultipartError::Source(Box::new(error))),
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    if self.buffer.is_empty() {
                        // Usual case: keep the chunk itself, body slices of it are zero-copy.
                        self.buffer = chunk;
                    } else {
                        // Carried-over bytes (an incomplete delimiter or header block) must be
                        // contiguous with the new chunk; this copy is the rare path.
                        let mut joined = BytesMut::with_capacity(self.buffer.len() + chunk.len());
                        joined.extend_from_slice(&self.buffer);
                        joined.extend_from_slice(&chunk);
                        self.buffer = joined.freeze();
                    }
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Classifies the bytes after a `--boundary` that ends at `position`.
    fn tail_at(&self, position: usize) -> Result<Tail, MultipartError> {
        let rest = self.buffer.get(position..).unwrap_or_default();
        let Some(&first) = rest.first() else {
            return Ok(Tail::NeedMore);
        };
        if first == b'-' {
            return Ok(match rest.get(1) {
                None => Tail::NeedMore,
                Some(b'-') => Tail::Close { end: position + 2 },
                Some(_) => Tail::NotDelimiter,
            });
        }
        let padding = rest
            .iter()
            .take(MAX_TRANSPORT_PADDING + 1)
            .take_while(|&&byte| byte == b' ' || byte == b'\t')
            .count();
        if padding > MAX_TRANSPORT_PADDING {
            return Err(MultipartError::MalformedHeader(format!(
                "more than {MAX_TRANSPORT_PADDING} spaces/tabs follow a boundary delimiter"
            )));
        }
        Ok(match (rest.get(padding), rest.get(padding + 1)) {
            (None, _) | (Some(b'\r'), None) => Tail::NeedMore,
            (Some(b'\n'), _) => Tail::Delimiter {
                end: position + padding + 1,
            },
            (Some(b'\r'), Some(b'\n')) => Tail::Delimiter {
                end: position + padding + 2,
            },
            _ => Tail::NotDelimiter,
        })
    }

    /// Finds the next delimiter in the preamble or a body, splitting off the data before it.
    fn scan(&mut self) -> Result<Scan, MultipartError> {
        let dash_len = self.dash_boundary.len();
        if self.at_line_start {
            if self.buffer.len() < dash_len && self.dash_boundary.starts_with(&self.buffer) {
                return Ok(Scan::NeedMore);
            }
            if self.buffer.starts_with(&self.dash_boundary) {
                match self.tail_at(dash_len)? {
                    Tail::NeedMore => return Ok(Scan::NeedMore),
                    Tail::Delimiter { end } => return Ok(self.consume_delimiter(end, false)),
                    Tail::Close { end } => return Ok(self.consume_delimiter(end, true)),
                    Tail::NotDelimiter => {}
                }
            }
            self.at_line_start = false;
        }
        let mut search_from = 0;
        loop {
            let found = self
                .lf_dash_boundary_finder
                .find(self.buffer.get(search_from..).unwrap_or_default());
            let Some(relative) = found else {
                let keep_from = self.hold_back_start();
                return Ok(if keep_from == 0 {
                    Scan::NeedMore
                } else {
                    Scan::Data(self.buffer.split_to(keep_from))
                });
            };
            let lf_at = search_from + relative;
            // The CR of a CRLF before the boundary belongs to the delimiter, not to the data.
            let data_end = match lf_at.checked_sub(1) {
                Some(cr_at) if self.buffer.get(cr_at) == Some(&b'\r') => cr_at,
                _ => lf_at,
            };
            match (self.tail_at(lf_at + 1 + dash_len)?, data_end) {
                (Tail::NotDelimiter, _) => search_from = lf_at + 1,
                // Hand out the data first; the delimiter (or its prefix) stays buffered.
                (_, 1..) => return Ok(Scan::Data(self.buffer.split_to(data_end))),
                (Tail::NeedMore, _) => return Ok(Scan::NeedMore),
                (Tail::Delimiter { end }, _) => return Ok(self.consume_delimiter(end, false)),
                (Tail::Close { end }, _) => return Ok(self.consume_delimiter(end, true)),
            }
        }
    }

    fn consume_delimiter(&mut self, end: usize, close: bool) -> Scan {
        self.buffer.advance(end.min(self.buffer.len()));
        self.at_line_start = false;
        Scan::Boundary { close }
    }

    /// Start of the longest buffer suffix that could be the beginning of a delimiter
    /// (`\r\n--boundary` or `\n--boundary`); the buffer length if there is none.
    fn hold_back_start(&self) -> usize {
        let window_start = self
            .buffer
            .len()
            .saturating_sub(self.crlf_dash_boundary.len() - 1);
        let window = self.buffer.get(window_start..).unwrap_or_default();
        let lf_dash_boundary = self.crlf_dash_boundary.get(1..).unwrap_or_default();
        memchr::memchr2_iter(b'\r', b'\n', window)
            .find(|&offset| {
                let suffix = window.get(offset..).unwrap_or_default();
                self.crlf_dash_boundary.starts_with(suffix) || lf_dash_boundary.starts_with(suffix)
            })
            .map_or(self.buffer.len(), |offset| window_start + offset)
    }

    /// Parses header lines from the buffer. `Ok(None)` means more input is needed.
    fn parse_headers(&mut self) -> Result<Option<PartHeaders>, MultipartError> {
        let limit = self.limits.max_header_bytes;
        loop {
            let line_start = self.header_line_start;
            let rest = self.buffer.get(line_start..).unwrap_or_default();
            if rest.starts_with(&self.dash_boundary) {
                // Lenient: a delimiter where a header line or the blank line was expected
                // ends a part that has an empty body.
                match self.tail_at(line_start + self.dash_boundary.len())? {
                    Tail::NeedMore => return Ok(None),
                    Tail::Delimiter { .. } | Tail::Close { .. } => {
                        self.buffer.advance(line_start);
                        return Ok(Some(self.start_body()));
                    }
                    Tail::NotDelimiter => {}
                }
            }
            let Some(line_len) = memchr::memchr(b'\n', rest) else {
                // The block is incomplete; fail as soon as it is certain to exceed the limit.
                // A delimiter line is not part of the block, so a line that may still become
                // one is waited for (it is shorter than the delimiter, hence bounded).
                if self.buffer.len() > limit && !self.dash_boundary.starts_with(rest) {
                    return Err(MultipartError::HeaderTooLarge { limit });
                }
                return Ok(None);
            };
            let next_line_start = line_start + line_len + 1;
            if next_line_start > limit {
                return Err(MultipartError::HeaderTooLarge { limit });
            }
            let line = rest.get(..line_len).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                self.buffer.advance(next_line_start);
                return Ok(Some(self.start_body()));
            }
            self.headers.push_line(line, self.parts_seen)?;
            self.header_line_start = next_line_start;
        }
    }

    fn start_body(&mut self) -> PartHeaders {
        self.state = State::Body;
        // The body follows a line ending, so a delimiter may start at its first byte.
        self.at_line_start = true;
        self.header_line_start = 0;
        std::mem::take(&mut self.headers)
    }
}

impl<S> std::fmt::Debug for MultipartReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultipartReader")
            .field("state", &self.state)
            .field("buffered", &self.buffer.len())
            .field("parts_seen", &self.parts_seen)
            .finish_non_exhaustive()
    }
}
