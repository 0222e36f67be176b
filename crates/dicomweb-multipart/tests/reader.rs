//! Reader behaviour on well-formed, lenient and hostile input.

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::{Part, fixed_chunks, read, read_chunks, split_at_points};
use dicomweb_multipart::{
    MAX_TRANSPORT_PADDING, MultipartError, MultipartReader, ReaderLimits,
    boundary_from_content_type,
};
use futures::executor::block_on;
use futures::{Stream, StreamExt, stream};

const TWO_PARTS: &[u8] = b"--b\r\nContent-Type: application/dicom\r\nX-Id: 1\r\n\r\nfirst body\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\nbody\r\n--b--\r\n";

fn two_parts() -> Vec<Part> {
    vec![
        Part::new(
            &[("Content-Type", "application/dicom"), ("X-Id", "1")],
            b"first body",
        ),
        Part::new(&[("Content-Type", "text/plain")], b"second\r\nbody"),
    ]
}

#[test]
fn reads_parts_headers_and_bodies() {
    assert_eq!(read(TWO_PARTS, "b").unwrap(), two_parts());
}

#[test]
fn every_split_point_and_every_pair_of_split_points_gives_the_same_parts() {
    for first in 0..=TWO_PARTS.len() {
        for second in first..=TWO_PARTS.len() {
            let chunks = split_at_points(TWO_PARTS, &[first, second]);
            assert_eq!(
                read_chunks(chunks, "b", ReaderLimits::default()).unwrap(),
                two_parts(),
                "split at {first} and {second}"
            );
        }
    }
}

#[test]
fn one_byte_chunks_give_the_same_parts() {
    let chunks = fixed_chunks(TWO_PARTS, 1);
    assert_eq!(
        read_chunks(chunks, "b", ReaderLimits::default()).unwrap(),
        two_parts()
    );
}

#[test]
fn preamble_and_epilogue_are_ignored() {
    let body =
        b"This is the preamble.\r\n--not-b\r\n--b\r\n\r\nbody\r\n--b--\r\nepilogue\r\n--b\r\n";
    assert_eq!(read(body, "b").unwrap(), vec![Part::new(&[], b"body")]);
}

#[test]
fn a_preamble_line_that_only_starts_with_the_boundary_is_not_a_delimiter() {
    let body = b"--bb\r\n--b\r\n\r\nbody\r\n--b--";
    assert_eq!(read(body, "b").unwrap(), vec![Part::new(&[], b"body")]);
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let body = b"--b\nContent-Type: a/b\n\nline1\nline2\n--b\n\nx\n--b--\n";
    assert_eq!(
        read(body, "b").unwrap(),
        vec![
            Part::new(&[("Content-Type", "a/b")], b"line1\nline2"),
            Part::new(&[], b"x"),
        ]
    );
}

#[test]
fn transport_padding_after_boundaries_is_ignored() {
    let body = b"--b \t \r\nA: 1\r\n\r\nx\r\n--b\t\r\n\r\ny\r\n--b-- \r\n";
    assert_eq!(
        read(body, "b").unwrap(),
        vec![Part::new(&[("A", "1")], b"x"), Part::new(&[], b"y")]
    );
}

#[test]
fn excessive_transport_padding_is_rejected() {
    let padding = " ".repeat(MAX_TRANSPORT_PADDING + 1);
    let body = format!("--b{padding}\r\n\r\nx\r\n--b--");
    let error = read(body.as_bytes(), "b").unwrap_err();
    assert!(
        matches!(error, MultipartError::MalformedHeader(_)),
        "{error}"
    );
    assert!(error.to_string().contains("spaces/tabs"), "{error}");
}

#[test]
fn folded_header_lines_and_case_insensitive_names() {
    let body =
        b"--b\r\ncontent-type: multipart/related;\r\n type=\"application/dicom\"\r\n\r\n\r\n--b--";
    let stream = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(body))]);
    let mut reader = MultipartReader::new(stream, "b");
    let headers = block_on(reader.next_part()).unwrap().unwrap();
    assert_eq!(
        headers.get("CONTENT-TYPE"),
        Some("multipart/related; type=\"application/dicom\"")
    );
    assert_eq!(headers.content_type(), headers.get("Content-Type"));
}

#[test]
fn parts_without_headers_and_empty_bodies_are_valid() {
    // No headers (blank line right away), empty body, and a delimiter right after the
    // boundary line (no blank line at all).
    let body = b"--b\r\n\r\n\r\n--b\r\n\r\nx\r\n--b\r\n--b\r\nA: 1\r\n\r\n\r\n--b--";
    assert_eq!(
        read(body, "b").unwrap(),
        vec![
            Part::new(&[], b""),
            Part::new(&[], b"x"),
            Part::new(&[], b""),
            Part::new(&[("A", "1")], b""),
        ]
    );
}

#[test]
fn a_delimiter_right_after_header_lines_ends_an_empty_part() {
    let body = b"--b\r\nA: 1\r\n--b--";
    assert_eq!(
        read(body, "b").unwrap(),
        vec![Part::new(&[("A", "1")], b"")]
    );
}

#[test]
fn boundary_text_not_at_a_line_start_or_with_other_text_after_it_is_body_data() {
    let content: &[u8] = b"a--b\r\nx --b--\r\n--bb\r\n--b-x\r\n--b \tz\r\n--b\rq";
    let mut body = b"--b\r\n\r\n".to_vec();
    body.extend_from_slice(content);
    body.extend_from_slice(b"\r\n--b--");
    assert_eq!(read(&body, "b").unwrap(), vec![Part::new(&[], content)]);
    for size in 1..8 {
        assert_eq!(
            read_chunks(fixed_chunks(&body, size), "b", ReaderLimits::default()).unwrap(),
            vec![Part::new(&[], content)],
            "chunk size {size}"
        );
    }
}

#[test]
fn delimiter_prefix_at_a_chunk_end_is_held_back_until_decided() {
    // "\r\n--" ends the first chunk twice: once a real delimiter follows, once not.
    for (second_chunk, expected_body) in [
        (&b"b--\r\n"[..], &b"data"[..]),
        (&b"xyz\r\n--b--"[..], &b"data\r\n--xyz"[..]),
    ] {
        let chunks = vec![
            Bytes::from_static(b"--b\r\n\r\ndata\r\n--"),
            Bytes::copy_from_slice(second_chunk),
        ];
        let stream = stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let mut reader = MultipartReader::new(stream, "b");
        block_on(async {
            reader.next_part().await.unwrap().unwrap();
            let first = reader.next_chunk().await.unwrap().unwrap();
            assert_eq!(
                &first[..],
                b"data",
                "only bytes that cannot start a delimiter are yielded"
            );
            assert_eq!(reader.buffered_len(), 4, "\"\\r\\n--\" is held back");
            let mut rest = first.to_vec();
            while let Some(chunk) = reader.next_chunk().await.unwrap() {
                rest.extend_from_slice(&chunk);
            }
            assert_eq!(rest, expected_body);
        });
    }
}

#[test]
fn body_chunks_are_zero_copy_slices_of_the_input() {
    let input = Bytes::from_static(b"--b\r\n\r\n0123456789\r\n--b--");
    let stream = stream::iter([Ok::<_, std::io::Error>(input.clone())]);
    let mut reader = MultipartReader::new(stream, "b");
    block_on(async {
        reader.next_part().await.unwrap();
        let chunk = reader.next_chunk().await.unwrap().unwrap();
        assert_eq!(&chunk[..], b"0123456789");
        assert_eq!(chunk.as_ptr(), input[7..].as_ptr());
    });
}

#[test]
fn unread_bodies_are_skipped_by_next_part() {
    let stream = stream::iter(
        fixed_chunks(TWO_PARTS, 3)
            .into_iter()
            .map(Ok::<_, std::io::Error>),
    );
    let mut reader = MultipartReader::new(stream, "b");
    block_on(async {
        let first = reader.next_part().await.unwrap().unwrap();
        assert_eq!(first.get("x-id"), Some("1"));
        // Read only part of the first body.
        assert!(reader.next_chunk().await.unwrap().is_some());
        let second = reader.next_part().await.unwrap().unwrap();
        assert_eq!(second.content_type(), Some("text/plain"));
        assert!(reader.next_part().await.unwrap().is_none());
        assert!(reader.next_chunk().await.unwrap().is_none());
    });
}

#[test]
fn missing_closing_delimiter_is_unexpected_eof_at_every_truncation_point() {
    // Everything up to "--b--" is needed; the final CRLF is optional.
    let complete = TWO_PARTS.len() - 2;
    let first_delimiter_line = b"--b\r\n".len();
    for cut in 0..complete {
        let error = read(&TWO_PARTS[..cut], "b").unwrap_err();
        if cut < first_delimiter_line {
            assert!(
                matches!(error, MultipartError::NoInitialBoundary),
                "cut {cut}: {error}"
            );
        } else {
            assert!(
                matches!(error, MultipartError::UnexpectedEof),
                "cut {cut}: {error}"
            );
        }
    }
    assert_eq!(read(&TWO_PARTS[..complete], "b").unwrap(), two_parts());
}

#[test]
fn empty_body_and_preamble_only_have_no_initial_boundary() {
    for body in [
        &b""[..],
        b"just a preamble\r\n",
        b"-",
        b"\r\n--c\r\n\r\nx\r\n--c--",
    ] {
        let error = read(body, "b").unwrap_err();
        assert!(
            matches!(error, MultipartError::NoInitialBoundary),
            "{body:?}: {error}"
        );
    }
    assert_eq!(
        read(b"", "b").unwrap_err().to_string(),
        "multipart body does not contain the boundary delimiter announced in Content-Type \
         (expected a line \"--<boundary>\")"
    );
}

#[test]
fn a_closing_delimiter_alone_is_an_empty_multipart() {
    assert_eq!(read(b"--b--\r\n", "b").unwrap(), vec![]);
}

#[test]
fn oversized_header_block_is_rejected() {
    let limits = ReaderLimits {
        max_header_bytes: 32,
        ..ReaderLimits::default()
    };
    // 30 bytes of header line + 2 bytes blank line = 32: at the limit, accepted.
    let at_limit = format!("--b\r\nX: {}\r\n\r\nx\r\n--b--", "v".repeat(25));
    let parts = read_chunks(fixed_chunks(at_limit.as_bytes(), 5), "b", limits).unwrap();
    assert_eq!(parts.len(), 1);
    let over_limit = format!("--b\r\nX: {}\r\n\r\nx\r\n--b--", "v".repeat(26));
    let error = read_chunks(fixed_chunks(over_limit.as_bytes(), 5), "b", limits).unwrap_err();
    assert!(
        matches!(error, MultipartError::HeaderTooLarge { limit: 32 }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "multipart part header block is larger than 32 bytes"
    );
}

#[test]
fn a_delimiter_line_is_not_counted_in_the_header_limit() {
    // Found by the fuzz harness: the closing delimiter after a header line crosses the limit;
    // it must be recognised whatever the chunking, not reported as an oversized header block.
    let limits = ReaderLimits {
        max_header_bytes: 16,
        ..ReaderLimits::default()
    };
    let body = b"--boundary\r\nA: 0123456789\r\n--boundary--";
    for size in [1, 3, body.len()] {
        assert_eq!(
            read_chunks(fixed_chunks(body, size), "boundary", limits).unwrap(),
            vec![Part::new(&[("A", "0123456789")], b"")],
            "chunk size {size}"
        );
    }
}

#[test]
fn endless_header_block_fails_while_accumulating() {
    // The header block never ends: the reader must fail after ~limit bytes, not wait forever.
    let header_lines = stream::repeat(Bytes::from_static(b"X-Pad: yyyy\r\n"));
    let input = stream::iter([Bytes::from_static(b"--b\r\n")])
        .chain(header_lines)
        .map(Ok::<_, std::io::Error>);
    let mut reader = MultipartReader::new(input, "b");
    let error = block_on(reader.next_part()).unwrap_err();
    assert!(
        matches!(error, MultipartError::HeaderTooLarge { limit: 16384 }),
        "{error}"
    );
    assert!(reader.buffered_len() <= 16384 + 13);
}

#[test]
fn garbage_header_lines_are_malformed() {
    for body in [
        &b"--b\r\nthis is not a header\r\n\r\nx\r\n--b--"[..],
        b"--b\r\n\x00\x01\x02\r\n\r\n--b--",
        b"--b\r\n folded-without-field\r\n\r\n--b--",
        b"--b\r\nBad Name: x\r\n\r\n--b--",
    ] {
        let error = read(body, "b").unwrap_err();
        assert!(
            matches!(error, MultipartError::MalformedHeader(_)),
            "{body:?}: {error}"
        );
        assert!(error.to_string().contains("part 1"), "{error}");
    }
}

#[test]
fn too_many_parts_are_rejected() {
    let limits = ReaderLimits {
        max_parts: 2,
        ..ReaderLimits::default()
    };
    let two = b"--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b--";
    assert_eq!(
        read_chunks(vec![Bytes::from_static(two)], "b", limits)
            .unwrap()
            .len(),
        2
    );
    let three = b"--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b\r\n\r\n3\r\n--b--";
    let error = read_chunks(vec![Bytes::from_static(three)], "b", limits).unwrap_err();
    assert!(
        matches!(error, MultipartError::TooManyParts { limit: 2 }),
        "{error}"
    );
}

#[test]
fn quoted_boundary_with_special_characters() {
    let content_type = r#"multipart/related; type="application/dicom"; boundary="'()+_,-./:=? x""#;
    let boundary = boundary_from_content_type(content_type).unwrap();
    assert_eq!(boundary, "'()+_,-./:=? x");
    let body = format!(
        "--{boundary}\r\nContent-Type: application/dicom\r\n\r\n--{boundary}x\r\n--{boundary}--\r\n"
    );
    for size in [1, 2, 7, body.len()] {
        assert_eq!(
            read_chunks(
                fixed_chunks(body.as_bytes(), size),
                &boundary,
                ReaderLimits::default()
            )
            .unwrap(),
            vec![Part::new(
                &[("Content-Type", "application/dicom")],
                format!("--{boundary}x").as_bytes()
            )]
        );
    }
}

/// A stream that yields its chunks, then an error.
struct FailingStream(Vec<Bytes>);

impl Stream for FailingStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(Some(if self.0.is_empty() {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "peer reset",
            ))
        } else {
            Ok(self.0.remove(0))
        }))
    }
}

#[test]
fn source_errors_are_forwarded_and_poison_the_reader() {
    let mut reader = MultipartReader::new(
        FailingStream(vec![Bytes::from_static(b"--b\r\n\r\npartial")]),
        "b",
    );
    block_on(async {
        reader.next_part().await.unwrap().unwrap();
        assert_eq!(&reader.next_chunk().await.unwrap().unwrap()[..], b"partial");
        let error = reader.next_chunk().await.unwrap_err();
        assert!(matches!(error, MultipartError::Source(_)), "{error}");
        assert_eq!(
            error.to_string(),
            "reading the multipart body failed: peer reset"
        );
        assert!(std::error::Error::source(&error).is_some());
        assert!(reader.next_part().await.is_err());
        assert!(reader.next_chunk().await.is_err());
    });
}

#[test]
fn reader_future_is_send_for_send_streams() {
    fn assert_send<T: Send>(_: &T) {}
    let stream = stream::iter([Ok::<_, std::io::Error>(Bytes::new())]);
    let mut reader = MultipartReader::new(stream, "b");
    assert_send(&reader.next_part());
}
