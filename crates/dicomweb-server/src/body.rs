//! Request bodies as the STOW handlers read them: a stalled body ends the request, and a body with a
//! `Content-Encoding` is decoded as it arrives, within bounds.
//!
//! [`RequestBody`] wraps actix's payload. It fails with [`BodyError`] when the body stalls (fewer than
//! [`MIN_PROGRESS_BYTES`] in `idle_timeout` of waiting for the client), or when its decoded size passes the
//! configured maximum or ratio (a decompression bomb); the handler then asks [`RequestBody::failure`] which
//! answer that is (408, 413), since the error itself reaches it as text through the multipart reader and the spool.
//!
//! Decoding runs on the HTTP worker, chunk by chunk: each step is bounded (at most 32 KiB of output, tens of
//! microseconds), and after 1 MiB of output without waiting for the network the task yields, so the worker keeps
//! serving other requests; a trip to the blocking pool per chunk would cost more than the decoding itself.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header::{CONTENT_ENCODING, HeaderMap};
use bytes::{Buf, Bytes};
use futures::Stream;
use tokio::time::{Instant, Sleep};

/// A waiting body must deliver this much within the idle timeout: one byte now and then does not keep a
/// connection (and its spool) alive. 16 KiB per 30 s is 550 bytes per second, far below any live upload.
pub const MIN_PROGRESS_BYTES: usize = 16 * 1024;

/// The ratio of decoded to encoded bytes is checked only past this much decoded, so that small, very
/// compressible instances are never refused.
const RATIO_GRACE_BYTES: u64 = 16 * 1024 * 1024;

/// The decoder is given back to the executor after this much output without the network making it wait, so
/// that one request decoding a large body does not hold the worker thread from the others.
const DECODED_PER_TURN: usize = 1024 * 1024;

/// Decoded output is handed on in pieces of about this size (flate2's write decoders produce at most 32 KiB
/// per call), which bounds both the memory and the CPU of one step.
const OUTPUT_PIECE: usize = 64 * 1024;

/// Limits on request bodies, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// How long the server waits for a body to make progress before ending the request with 408.
    pub idle_timeout: Duration,
    /// The most bytes an encoded (gzip, deflate) body may decode to.
    pub max_decoded: u64,
    /// The most decoded bytes per encoded byte, once past 16 MiB decoded; 0 turns the check off.
    pub max_ratio: u64,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            idle_timeout: Duration::from_secs(30),
            max_decoded: 4 << 30,
            max_ratio: 200,
        }
    }
}

/// A content coding of a request body that the server decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    /// zlib-wrapped deflate as RFC 9110 defines it; raw deflate streams, which some clients send, are accepted too.
    Deflate,
}

/// Why a `Content-Encoding` is refused (415).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodingError {
    #[error(
        "Content-Encoding \"{0}\" is not supported; send the body uncompressed or with gzip or deflate"
    )]
    Unsupported(String),
    #[error(
        "Content-Encoding \"{0}\" applies several codings; at most one of gzip or deflate is supported"
    )]
    Several(String),
    #[error("Content-Encoding is not readable text")]
    Unreadable,
}

/// The coding of a request body, from every `Content-Encoding` header it has. `identity` (which changes nothing) and
/// empty list elements are ignored; one of `gzip`, `x-gzip`, `deflate` is decoded; anything else, or several
/// codings, is refused.
pub fn content_coding(headers: &HeaderMap) -> Result<Coding, CodingError> {
    let mut codings = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| CodingError::Unreadable)?;
        codings.extend(
            text.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity")),
        );
    }
    let quoted = |list: &[&str]| shorten(&list.join(", "));
    match codings.as_slice() {
        [] => Ok(Coding::Identity),
        [one] if one.eq_ignore_ascii_case("gzip") || one.eq_ignore_ascii_case("x-gzip") => {
            Ok(Coding::Gzip)
        }
        [one] if one.eq_ignore_ascii_case("deflate") => Ok(Coding::Deflate),
        [_] => Err(CodingError::Unsupported(quoted(&codings))),
        _ => Err(CodingError::Several(quoted(&codings))),
    }
}

/// A header value quoted in a message: at most 64 characters of it.
fn shorten(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// How a body failed, for the handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// No progress for the idle timeout (408).
    Stalled,
    /// Decodes to more than allowed (413).
    TooLarge,
    /// The client's stream broke, or its encoding is corrupt (400).
    Broken,
}

/// A failure of the request body, as the stream's error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BodyError {
    #[error(
        "the request body stalled: less than {MIN_PROGRESS_BYTES} bytes arrived in {} s",
        .0.as_secs_f64()
    )]
    Stalled(Duration),
    #[error("the request body decodes to more than {0} bytes")]
    TooLarge(u64),
    #[error("the request body decodes to more than {0} times its encoded size")]
    Ratio(u64),
    #[error("the request body's {coding} encoding is corrupt: {message}")]
    Corrupt {
        coding: &'static str,
        message: String,
    },
    #[error("{0}")]
    Payload(String),
}

impl BodyError {
    fn failure(&self) -> BodyFailure {
        match self {
            BodyError::Stalled(_) => BodyFailure::Stalled,
            BodyError::TooLarge(_) | BodyError::Ratio(_) => BodyFailure::TooLarge,
            BodyError::Corrupt { .. } | BodyError::Payload(_) => BodyFailure::Broken,
        }
    }
}

/// A request body read with an idle timeout and decoded. A `Stream` of its (decoded) bytes.
pub struct RequestBody<S> {
    raw: S,
    limits: BodyLimits,
    /// Fires when the body has been waited for too long; armed once per wait (when the client makes the server
    /// wait for a chunk), not per chunk.
    timer: Pin<Box<Sleep>>,
    /// When the current wait for the client began, if the server is waiting.
    waiting_since: Option<Instant>,
    /// Time spent waiting since the body last made [`MIN_PROGRESS_BYTES`] of progress.
    waited: Duration,
    /// Bytes received since then.
    progress: usize,
    decoder: Option<Decoder>,
    /// Encoded bytes received and not yet given to the decoder.
    input: Bytes,
    raw_total: u64,
    decoded_total: u64,
    since_yield: usize,
    raw_ended: bool,
    failure: Option<BodyError>,
}

impl<S, E> RequestBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(raw: S, coding: Coding, limits: BodyLimits) -> Self {
        RequestBody {
            raw,
            limits,
            timer: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            waiting_since: None,
            waited: Duration::ZERO,
            progress: 0,
            decoder: match coding {
                Coding::Identity => None,
                Coding::Gzip => Some(Decoder::Gzip(
                    flate2::write::MultiGzDecoder::new(Vec::new()),
                )),
                Coding::Deflate => Some(Decoder::Deflate(Inflate {
                    state: None,
                    first: None,
                    out: Vec::new(),
                    ended: false,
                })),
            },
            input: Bytes::new(),
            raw_total: 0,
            decoded_total: 0,
            since_yield: 0,
            raw_ended: false,
            failure: None,
        }
    }

    /// How the body failed, if it did.
    pub fn failure(&self) -> Option<BodyFailure> {
        self.failure.as_ref().map(BodyError::failure)
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Bytes, BodyError>>> {
        self.failure = Some(error.clone());
        Poll::Ready(Some(Err(error)))
    }

    /// The next raw chunk, with the idle timeout.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        match Pin::new(&mut self.raw).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(since) = self.waiting_since.take() {
                    self.waited += since.elapsed();
                }
                self.progress += chunk.len();
                if self.progress >= MIN_PROGRESS_BYTES {
                    self.progress = 0;
                    self.waited = Duration::ZERO;
                }
                self.raw_total += chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Payload(e.to_string())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                // Only time spent waiting for the client counts: not the time the handler spent elsewhere
                // (storing earlier parts, writing the spool) without asking for the body.
                if self.waiting_since.is_none() {
                    let now = Instant::now();
                    let left = self.limits.idle_timeout.saturating_sub(self.waited);
                    self.timer.as_mut().reset(now + left);
                    self.waiting_since = Some(now);
                }
                if self.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(BodyError::Stalled(self.limits.idle_timeout))));
                }
                Poll::Pending
            }
        }
    }

    /// Output the decoder holds, once there is enough of it (or `all`), counted against the limits.
    fn take_output(&mut self, all: bool) -> Result<Option<Bytes>, BodyError> {
        let Some(decoder) = &mut self.decoder else {
            return Ok(None);
        };
        let out = decoder.output();
        if out.is_empty() || (!all && out.len() < OUTPUT_PIECE) {
            return Ok(None);
        }
        let piece = Bytes::from(std::mem::take(out));
        self.decoded_total += piece.len() as u64;
        self.since_yield += piece.len();
        if self.decoded_total > self.limits.max_decoded {
            return Err(BodyError::TooLarge(self.limits.max_decoded));
        }
        if self.limits.max_ratio > 0
            && self.decoded_total > RATIO_GRACE_BYTES
            && self.decoded_total > self.raw_total.saturating_mul(self.limits.max_ratio)
        {
            return Err(BodyError::Ratio(self.limits.max_ratio));
        }
        Ok(Some(piece))
    }
}

impl<S, E> Stream for RequestBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.failure.is_some() {
            return Poll::Ready(None);
        }
        if this.decoder.is_none() {
            return match this.poll_raw(cx) {
                Poll::Ready(Some(Err(e))) => this.fail(e),
                other => other,
            };
        }
        loop {
            if this.since_yield >= DECODED_PER_TURN {
                this.since_yield = 0;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !this.input.is_empty() {
                // One step: at most 32 KiB of output, whatever the input holds.
                let (step, produced) = match this.decoder.as_mut() {
                    Some(decoder) => {
                        let before = decoder.output().len();
                        let step = decoder.write(&this.input);
                        (step, decoder.output().len() > before)
                    }
                    None => (Ok(0), false),
                };
                match step {
                    Ok(0) if !produced => {
                        let coding = this.decoder.as_ref().map_or("", Decoder::name);
                        return this.fail(BodyError::Corrupt {
                            coding,
                            message: "data after the end of the compressed stream".into(),
                        });
                    }
                    Ok(used) => this.input.advance(used),
                    Err(e) => {
                        let coding = this.decoder.as_ref().map_or("", Decoder::name);
                        return this.fail(BodyError::Corrupt {
                            coding,
                            message: e.to_string(),
                        });
                    }
                }
                match this.take_output(false) {
                    Ok(Some(piece)) => return Poll::Ready(Some(Ok(piece))),
                    Ok(None) => continue,
                    Err(e) => return this.fail(e),
                }
            }
            if this.raw_ended {
                return match this.take_output(true) {
                    Ok(piece) => Poll::Ready(piece.map(Ok)),
                    Err(e) => this.fail(e),
                };
            }
            match this.poll_raw(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.input = chunk,
                Poll::Ready(Some(Err(e))) => return this.fail(e),
                Poll::Ready(None) => {
                    this.raw_ended = true;
                    let finished = this.decoder.as_mut().map(Decoder::finish);
                    if let Some(Err(e)) = finished {
                        let coding = this.decoder.as_ref().map_or("", Decoder::name);
                        return this.fail(BodyError::Corrupt {
                            coding,
                            message: e.to_string(),
                        });
                    }
                }
                Poll::Pending => {
                    // What is decoded so far goes on before waiting for more.
                    return match this.take_output(true) {
                        Ok(Some(piece)) => Poll::Ready(Some(Ok(piece))),
                        Ok(None) => Poll::Pending,
                        Err(e) => this.fail(e),
                    };
                }
            }
        }
    }
}

/// The decoders, pushed one input slice at a time; each `write` produces at most about 32 KiB of output, so a
/// step is bounded however compressible the input.
enum Decoder {
    /// flate2's multi-member gzip decoder (a gzip file may hold several members, RFC 1952); it checks each
    /// member's CRC and length.
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Deflate(Inflate),
}

/// zlib or raw deflate on flate2's low-level inflater, told apart by the first two bytes.
struct Inflate {
    state: Option<flate2::Decompress>,
    /// The first byte, held back while it is alone.
    first: Option<u8>,
    out: Vec<u8>,
    ended: bool,
}

/// Output space given to one step of the inflater.
const INFLATE_STEP: usize = 32 * 1024;

impl Inflate {
    fn write(&mut self, input: &[u8]) -> std::io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        if self.state.is_none() {
            // The first two bytes tell zlib from raw deflate: a zlib header has compression method 8, a window
            // of at most 32 KiB and a check value making them a multiple of 31 (a raw stream rarely does).
            let (first, second) = match (self.first, input) {
                (None, [only]) => {
                    self.first = Some(*only);
                    return Ok(1);
                }
                (None, [first, second, ..]) => (*first, *second),
                (Some(first), [second, ..]) => (first, *second),
                (_, []) => return Ok(0),
            };
            let zlib = first & 0x0f == 8
                && first >> 4 <= 7
                && (u16::from(first) << 8 | u16::from(second)) % 31 == 0;
            let mut state = flate2::Decompress::new(zlib);
            if let Some(first) = self.first.take() {
                // The byte held back goes in first (half a header: no output).
                self.out.reserve(INFLATE_STEP);
                state
                    .decompress_vec(&[first], &mut self.out, flate2::FlushDecompress::None)
                    .map_err(std::io::Error::other)?;
            }
            self.state = Some(state);
        }
        let Some(state) = self.state.as_mut() else {
            return Ok(0);
        };
        self.out.reserve(INFLATE_STEP);
        let before = state.total_in();
        let status = state
            .decompress_vec(input, &mut self.out, flate2::FlushDecompress::None)
            .map_err(std::io::Error::other)?;
        if status == flate2::Status::StreamEnd {
            self.ended = true;
        }
        Ok((state.total_in() - before) as usize)
    }

    /// Drains what the inflater still holds; the stream must have ended.
    fn finish(&mut self) -> std::io::Result<()> {
        while !self.ended {
            let Some(state) = self.state.as_mut() else {
                break;
            };
            self.out.reserve(INFLATE_STEP);
            let before = state.total_out();
            let status = state
                .decompress_vec(&[], &mut self.out, flate2::FlushDecompress::Finish)
                .map_err(std::io::Error::other)?;
            self.ended = status == flate2::Status::StreamEnd;
            if state.total_out() == before {
                break;
            }
        }
        if self.ended {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the compressed stream is cut short",
            ))
        }
    }
}

impl Decoder {
    fn name(&self) -> &'static str {
        match self {
            Decoder::Gzip(_) => "gzip",
            Decoder::Deflate(_) => "deflate",
        }
    }

    fn write(&mut self, input: &[u8]) -> std::io::Result<usize> {
        match self {
            Decoder::Gzip(d) => d.write(input),
            Decoder::Deflate(d) => d.write(input),
        }
    }

    /// Ends the stream: the output still inside the decoder moves to [`Decoder::output`]; a stream cut short or
    /// with a wrong checksum is an error. Bounded: all input was consumed already, and what the decoder still
    /// holds is at most its window.
    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Deflate(d) => d.finish(),
        }
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => &mut d.out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use futures::StreamExt;
    use proptest::prelude::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                CONTENT_ENCODING,
                HeaderValue::from_bytes(value).expect("a valid header value"),
            );
        }
        map
    }

    fn limits() -> BodyLimits {
        BodyLimits {
            idle_timeout: Duration::from_millis(200),
            ..BodyLimits::default()
        }
    }

    /// `data` in chunks of `size`, as a client might send it.
    fn chunked(
        data: &[u8],
        size: usize,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + use<> {
        let chunks: Vec<_> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(chunks)
    }

    async fn read_all<S, E>(
        mut body: RequestBody<S>,
    ) -> (Result<Vec<u8>, BodyError>, RequestBody<S>)
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(e) => return (Err(e), body),
            }
        }
        (Ok(out), body)
    }

    fn sample() -> Vec<u8> {
        (0..300_000u32).map(|i| (i % 7 + i / 1000) as u8).collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn content_encoding_names_one_supported_coding_or_is_refused() {
        assert_eq!(content_coding(&headers(&[])), Ok(Coding::Identity));
        assert_eq!(
            content_coding(&headers(&[b"identity"])),
            Ok(Coding::Identity)
        );
        assert_eq!(content_coding(&headers(&[b"GZIP"])), Ok(Coding::Gzip));
        assert_eq!(content_coding(&headers(&[b" x-gzip "])), Ok(Coding::Gzip));
        assert_eq!(
            content_coding(&headers(&[b"identity, deflate"])),
            Ok(Coding::Deflate)
        );
        assert_eq!(
            content_coding(&headers(&[b"br"])),
            Err(CodingError::Unsupported("br".into()))
        );
        assert_eq!(
            content_coding(&headers(&[b"gzip", b"br"])),
            Err(CodingError::Several("gzip, br".into()))
        );
        assert_eq!(
            content_coding(&headers(&[b"gzip\xff"])),
            Err(CodingError::Unreadable)
        );
        let long = CodingError::Unsupported(shorten(&"z".repeat(1000))).to_string();
        assert!(long.len() < 200, "{long}");
    }

    proptest! {
        /// Whatever the client sends as Content-Encoding, the answer is a decoder or a refusal, never a panic; a
        /// refusal quotes what was refused, briefly.
        #[test]
        fn any_content_encoding_gives_a_decoder_or_a_refusal(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4),
            text in "[ -~]{0,80}",
        ) {
            let mut map = HeaderMap::new();
            for value in values.iter().map(Vec::as_slice).chain([text.as_bytes()]) {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    map.append(HeaderName::from_static("content-encoding"), value);
                }
            }
            match content_coding(&map) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.to_string().len() < 400),
            }
        }
    }

    #[tokio::test]
    async fn gzip_and_both_deflate_flavours_decode_to_the_original_bytes_in_any_chunking() {
        let data = sample();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&data).unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        raw.write_all(&data).unwrap();
        // Two gzip members one after the other are one file (RFC 1952).
        let (first, second) = data.split_at(1000);
        let members = [gzip(first), gzip(second)].concat();
        for (coding, encoded) in [
            (Coding::Gzip, gzip(&data)),
            (Coding::Gzip, members),
            (Coding::Deflate, zlib.finish().unwrap()),
            (Coding::Deflate, raw.finish().unwrap()),
        ] {
            for size in [1, 7, 4096, usize::MAX] {
                let size = size.min(encoded.len());
                let body = RequestBody::new(chunked(&encoded, size), coding, limits());
                let (decoded, body) = read_all(body).await;
                assert!(decoded.unwrap() == data, "{coding:?} in chunks of {size}");
                assert_eq!(body.failure(), None);
            }
        }
    }

    #[tokio::test]
    async fn a_corrupt_or_cut_short_stream_is_a_broken_body() {
        let encoded = gzip(&sample());
        let cut = &encoded[..encoded.len() - 5];
        let mut flipped = encoded.clone();
        let last = flipped.len() - 6;
        flipped[last] ^= 0xff; // inside the CRC
        let mut trailing = encoded.clone();
        trailing.extend_from_slice(b"not gzip");
        for input in [cut, &flipped[..], &trailing[..], b"not gzip at all"] {
            let body = RequestBody::new(chunked(input, 1000), Coding::Gzip, limits());
            let (decoded, body) = read_all(body).await;
            assert!(
                matches!(decoded, Err(BodyError::Corrupt { .. })),
                "{decoded:?}"
            );
            assert_eq!(body.failure(), Some(BodyFailure::Broken));
        }
        let zlib_cut = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&sample()).unwrap();
            let all = e.finish().unwrap();
            all[..all.len() / 2].to_vec()
        };
        let body = RequestBody::new(chunked(&zlib_cut, 1000), Coding::Deflate, limits());
        assert!(matches!(
            read_all(body).await.0,
            Err(BodyError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn a_bomb_stops_at_the_ratio_or_the_size_limit_holding_little_memory() {
        // 256 MiB of zeros in about 256 KiB.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        for (limits, expected) in [
            (BodyLimits::default(), BodyError::Ratio(200)),
            (
                BodyLimits {
                    max_decoded: 32 << 20,
                    max_ratio: 0,
                    ..BodyLimits::default()
                },
                BodyError::TooLarge(32 << 20),
            ),
        ] {
            let mut body = RequestBody::new(chunked(&bomb, 64 * 1024), Coding::Gzip, limits);
            let mut decoded = 0u64;
            let error = loop {
                match body.next().await {
                    Some(Ok(piece)) => {
                        assert!(piece.len() <= 2 * OUTPUT_PIECE, "{}", piece.len());
                        decoded += piece.len() as u64;
                    }
                    Some(Err(e)) => break e,
                    None => panic!("the bomb was decoded whole"),
                }
            };
            assert_eq!(error.to_string(), expected.to_string());
            assert!(decoded <= 33 << 20, "{decoded}");
            assert_eq!(body.failure(), Some(BodyFailure::TooLarge));
        }
    }

    type Chunks = futures::channel::mpsc::UnboundedReceiver<Result<Bytes, std::io::Error>>;

    /// A body whose chunks come from a channel, so that a test decides when (and whether) they arrive.
    fn channel_body() -> (
        futures::channel::mpsc::UnboundedSender<Result<Bytes, std::io::Error>>,
        RequestBody<Chunks>,
    ) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        (tx, RequestBody::new(rx, Coding::Identity, limits()))
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_fails_as_stalled_after_the_idle_timeout() {
        let (tx, mut body) = channel_body();
        tx.unbounded_send(Ok(Bytes::from_static(b"start"))).unwrap();
        assert_eq!(body.next().await.unwrap().unwrap(), "start");
        let started = Instant::now();
        let error = body.next().await.unwrap().unwrap_err();
        assert!(matches!(error, BodyError::Stalled(_)), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(190));
        assert_eq!(body.failure(), Some(BodyFailure::Stalled));
        assert!(body.next().await.is_none(), "a failed body ends");
        drop(tx);
    }

    #[tokio::test]
    async fn a_trickle_is_stalled_but_steady_progress_and_time_spent_elsewhere_are_not() {
        // A byte every 50 ms never makes 16 KiB of progress: cut after 200 ms of waiting in all.
        let (tx, mut body) = channel_body();
        let trickle = tokio::spawn(async move {
            while tx.unbounded_send(Ok(Bytes::from_static(b"x"))).is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let started = Instant::now();
        let error = loop {
            match body.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => break e,
                None => panic!("the trickle ended"),
            }
        };
        assert!(matches!(error, BodyError::Stalled(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(body);
        trickle.await.unwrap();

        // 16 KiB every 150 ms, and a consumer that spends 300 ms elsewhere between reads: never stalled.
        let (tx, mut body) = channel_body();
        let steady = tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                tx.unbounded_send(Ok(Bytes::from(vec![1u8; MIN_PROGRESS_BYTES])))
                    .unwrap();
            }
        });
        let mut received = 0;
        while let Some(chunk) = body.next().await {
            received += chunk.unwrap().len();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(received, 6 * MIN_PROGRESS_BYTES);
        steady.await.unwrap();
    }
}
