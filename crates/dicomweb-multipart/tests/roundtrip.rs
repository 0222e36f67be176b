//! Property: whatever the writer encodes, the reader decodes back, under any chunking.

mod common;

use bytes::Bytes;
use common::{Part, read_chunks, split_at_points};
use dicomweb_multipart::{MultipartWriter, ReaderLimits, encode_parts};
use futures::executor::block_on;
use futures::{StreamExt, stream};
use proptest::prelude::*;

/// Pieces of part bodies, many of them close to (but not) a delimiter.
#[derive(Debug, Clone)]
enum Fragment {
    Raw(Vec<u8>),
    Crlf,
    Lf,
    Cr,
    Dashes,
    /// `--` + a prefix of the boundary.
    DashBoundaryPrefix(usize),
    /// `\r\n--` + a prefix of the boundary.
    DelimiterPrefix(usize),
    /// `--boundary` (a delimiter only at a line start, which the filter excludes).
    DashBoundary,
    /// `\r\n--boundary` followed by text that makes it ordinary data.
    NotQuiteDelimiter(&'static str),
}

fn render(fragments: &[Fragment], boundary: &str) -> Vec<u8> {
    let boundary = boundary.as_bytes();
    let mut out = Vec::new();
    for fragment in fragments {
        match fragment {
            Fragment::Raw(bytes) => out.extend_from_slice(bytes),
            Fragment::Crlf => out.extend_from_slice(b"\r\n"),
            Fragment::Lf => out.push(b'\n'),
            Fragment::Cr => out.push(b'\r'),
            Fragment::Dashes => out.extend_from_slice(b"--"),
            Fragment::DashBoundaryPrefix(len) => {
                out.extend_from_slice(b"--");
                out.extend_from_slice(&boundary[..len % (boundary.len() + 1)]);
            }
            Fragment::DelimiterPrefix(len) => {
                out.extend_from_slice(b"\r\n--");
                out.extend_from_slice(&boundary[..len % (boundary.len() + 1)]);
            }
            Fragment::DashBoundary => {
                out.extend_from_slice(b"--");
                out.extend_from_slice(boundary);
            }
            Fragment::NotQuiteDelimiter(after) => {
                out.extend_from_slice(b"\r\n--");
                out.extend_from_slice(boundary);
                out.extend_from_slice(after.as_bytes());
            }
        }
    }
    out
}

/// True if `body`, once framed by the writer, would contain a delimiter of its own (RFC 2046
/// forbids that; the writer's random boundaries make it impossible in practice).
fn contains_delimiter(body: &[u8], boundary: &str) -> bool {
    let dash_boundary = [b"--", boundary.as_bytes()].concat();
    (0..body.len()).any(|start| {
        let at_line_start = start == 0 || body[start - 1] == b'\n';
        if !at_line_start || !body[start..].starts_with(&dash_boundary) {
            return false;
        }
        let tail = &body[start + dash_boundary.len()..];
        let padding = tail
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        let after_padding = &tail[padding..];
        tail.starts_with(b"--")
            // The writer appends "\r\n" after the body, which would end the delimiter line.
            || after_padding.is_empty()
            || after_padding.starts_with(b"\n")
            || after_padding.starts_with(b"\r\n")
    })
}

fn fragment() -> impl Strategy<Value = Fragment> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Fragment::Raw),
        1 => Just(Fragment::Crlf),
        1 => Just(Fragment::Lf),
        1 => Just(Fragment::Cr),
        1 => Just(Fragment::Dashes),
        1 => any::<usize>().prop_map(Fragment::DashBoundaryPrefix),
        2 => any::<usize>().prop_map(Fragment::DelimiterPrefix),
        1 => Just(Fragment::DashBoundary),
        2 => prop_oneof![Just("x"), Just("-x"), Just(" x"), Just("\tx\r\n"), Just("\rx"), Just("b")]
            .prop_map(Fragment::NotQuiteDelimiter),
    ]
}

fn boundary() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("b".to_owned()),
        Just(MultipartWriter::new().boundary().to_owned()),
        "[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        ("[A-Za-z][A-Za-z0-9-]{0,15}", "([!-~]([ -~]{0,20}[!-~])?)?"),
        0..4,
    )
}

/// Boundary, parts (headers, body fragments) and chunk split points.
fn case() -> impl Strategy<Value = (String, Vec<Part>, Vec<usize>)> {
    (
        boundary(),
        proptest::collection::vec(
            (headers(), proptest::collection::vec(fragment(), 0..12)),
            0..5,
        ),
        proptest::collection::vec(any::<usize>(), 0..30),
    )
        .prop_map(|(boundary, parts, splits)| {
            let parts: Vec<Part> = parts
                .into_iter()
                .map(|(headers, fragments)| Part {
                    headers,
                    body: render(&fragments, &boundary),
                })
                .collect();
            (boundary, parts, splits)
        })
        .prop_filter("a body contains the delimiter", |(boundary, parts, _)| {
            parts
                .iter()
                .all(|part| !contains_delimiter(&part.body, boundary))
        })
}

fn encode(writer: &mut MultipartWriter, parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let headers: Vec<(&str, &str)> = part
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        out.extend_from_slice(&writer.part_header(&headers));
        out.extend_from_slice(&part.body);
    }
    out.extend_from_slice(&writer.finish());
    out
}

proptest! {
    #[test]
    fn writer_output_reads_back_under_any_chunking((boundary, parts, splits) in case()) {
        let encoded = encode(&mut MultipartWriter::with_boundary(&boundary).unwrap(), &parts);
        let mut points: Vec<usize> = splits.iter().map(|s| s % (encoded.len() + 1)).collect();
        points.sort_unstable();
        let chunks = split_at_points(&encoded, &points);
        prop_assert_eq!(read_chunks(chunks, &boundary, ReaderLimits::default()).unwrap(), parts.clone());
        let one_byte = encoded.chunks(1).map(Bytes::copy_from_slice).collect();
        prop_assert_eq!(read_chunks(one_byte, &boundary, ReaderLimits::default()).unwrap(), parts);
    }

    #[test]
    fn encode_parts_streams_the_same_bytes_as_the_writer((boundary, parts, splits) in case()) {
        let expected = encode(&mut MultipartWriter::with_boundary(&boundary).unwrap(), &parts);
        // Each body is itself split into chunks to check they are passed through in order.
        let stream_parts: Vec<Result<_, std::io::Error>> = parts
            .iter()
            .map(|part| {
                let mut points: Vec<usize> = splits.iter().map(|s| s % (part.body.len() + 1)).collect();
                points.sort_unstable();
                let body = split_at_points(&part.body, &points).into_iter().map(Ok);
                Ok((part.headers.clone(), stream::iter(body)))
            })
            .collect();
        let writer = MultipartWriter::with_boundary(&boundary).unwrap();
        let chunks: Vec<Bytes> = block_on(encode_parts(writer, stream::iter(stream_parts)).collect::<Vec<_>>())
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert!(chunks.iter().all(|chunk| !chunk.is_empty()));
        prop_assert_eq!(chunks.concat(), expected);
    }
}

#[test]
fn the_delimiter_filter_recognises_delimiters() {
    assert!(contains_delimiter(b"--b", "b"));
    assert!(contains_delimiter(b"x\n--b \r\ny", "b"));
    assert!(contains_delimiter(b"x\r\n--b--y", "b"));
    assert!(!contains_delimiter(b"x--b\r\n", "b"));
    assert!(!contains_delimiter(b"x\r\n--bx", "b"));
    assert!(!contains_delimiter(b"x\r\n--b \r", "b"));
}

#[test]
fn encode_parts_forwards_the_first_error_and_stops() {
    let failing_body = stream::iter([
        Ok(Bytes::from_static(b"abc")),
        Err(std::io::Error::other("disk failed")),
        Ok(Bytes::from_static(b"never")),
    ]);
    let parts = stream::iter([Ok((Vec::new(), failing_body))]);
    let writer = MultipartWriter::with_boundary("b").unwrap();
    let items = block_on(encode_parts(writer, parts).collect::<Vec<_>>());
    assert_eq!(
        items.len(),
        3,
        "header, body chunk, error, then nothing (no closing delimiter)"
    );
    assert_eq!(&items[0].as_ref().unwrap()[..], b"--b\r\n\r\n");
    assert_eq!(&items[1].as_ref().unwrap()[..], b"abc");
    assert_eq!(items[2].as_ref().unwrap_err().to_string(), "disk failed");
}

#[test]
fn encode_parts_of_nothing_is_only_the_closing_delimiter() {
    let parts = stream::iter(Vec::<
        Result<
            (
                Vec<(String, String)>,
                stream::Empty<Result<Bytes, std::io::Error>>,
            ),
            _,
        >,
    >::new());
    let writer = MultipartWriter::with_boundary("b").unwrap();
    let items: Vec<_> = block_on(encode_parts(writer, parts).collect::<Vec<_>>());
    assert_eq!(items.len(), 1);
    assert_eq!(&items[0].as_ref().unwrap()[..], b"--b--\r\n");
}
