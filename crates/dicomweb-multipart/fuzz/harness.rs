//! Reader robustness harness shared by the cargo-fuzz target (`fuzz_targets/reader.rs`) and the
//! proptest that CI runs (`tests/fuzz_harness.rs`).
//!
//! Input layout: byte 0 chooses the boundary, limits and whether bodies are read or skipped;
//! byte 1 seeds the chunk split; the rest is the multipart body. The harness asserts that the
//! reader neither panics nor loops, and that the outcome does not depend on the chunking.

use bytes::Bytes;
use dicomweb_multipart::{MultipartReader, ReaderLimits};
use futures::executor::block_on;

/// Boundaries the harness can choose; input generators render delimiters with them.
pub const BOUNDARIES: [&str; 3] = ["b", "boundary", "a'()+_,-./:=? z"];

/// The configuration byte selecting `BOUNDARIES[boundary_index]` and the given options.
#[allow(dead_code)]
pub fn config_byte(boundary_index: usize, small_limits: bool, skip_bodies: bool) -> u8 {
    (boundary_index % BOUNDARIES.len()) as u8
        | if small_limits { 0x10 } else { 0 }
        | if skip_bodies { 0x20 } else { 0 }
}

/// A part's header fields, in order.
pub type Fields = Vec<(String, String)>;

/// What a full read produced: each part's headers and body (empty when skipped), then the
/// error message if reading failed.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub parts: Vec<(Fields, Vec<u8>)>,
    pub error: Option<String>,
}

/// Runs the reader over `input` (layout above) as one chunk and as random chunks and asserts
/// both outcomes are identical and plausible. Panics (for the fuzzer) on any violation.
pub fn check_reader_on(input: &[u8]) {
    let [config, seed, body @ ..] = input else {
        return;
    };
    let boundary = BOUNDARIES[usize::from(*config & 0x0f) % BOUNDARIES.len()];
    let limits = if config & 0x10 != 0 {
        ReaderLimits {
            max_header_bytes: 24,
            max_parts: 3,
        }
    } else {
        ReaderLimits::default()
    };
    let skip_bodies = config & 0x20 != 0;
    let whole = read(
        vec![Bytes::copy_from_slice(body)],
        boundary,
        limits,
        skip_bodies,
    );
    let split = read(random_chunks(body, *seed), boundary, limits, skip_bodies);
    assert_eq!(whole, split, "the outcome depends on the chunking");
    let body_bytes: usize = whole.parts.iter().map(|(_, data)| data.len()).sum();
    assert!(body_bytes <= body.len(), "more body bytes than input bytes");
}

/// Splits `data` into chunks of pseudo-random lengths (xorshift seeded from `seed`), from
/// 1-byte chunks up to 64-byte ones.
pub fn random_chunks(data: &[u8], seed: u8) -> Vec<Bytes> {
    let mut state = u32::from(seed)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(0x7F4A_7C15);
    let max_len = usize::from(seed % 64) + 1;
    let mut chunks = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = (state as usize % max_len + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        chunks.push(Bytes::copy_from_slice(chunk));
        rest = tail;
    }
    chunks
}

fn read(chunks: Vec<Bytes>, boundary: &str, limits: ReaderLimits, skip_bodies: bool) -> Outcome {
    let input_len: usize = chunks.iter().map(Bytes::len).sum();
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let mut reader = MultipartReader::with_limits(stream, boundary, limits);
    let mut outcome = Outcome {
        parts: Vec::new(),
        error: None,
    };
    block_on(async {
        loop {
            // Every part consumes at least one delimiter, so this bounds the loop.
            assert!(
                outcome.parts.len() <= input_len,
                "more parts than input bytes"
            );
            match reader.next_part().await {
                Ok(None) => {
                    assert!(
                        matches!(reader.next_part().await, Ok(None)),
                        "end is not sticky"
                    );
                    return;
                }
                Ok(Some(headers)) => {
                    let fields = headers
                        .iter()
                        .map(|(name, value)| (name.to_owned(), value.to_owned()))
                        .collect();
                    let mut data = Vec::new();
                    if !skip_bodies {
                        loop {
                            match reader.next_chunk().await {
                                Ok(Some(chunk)) => {
                                    assert!(!chunk.is_empty(), "empty body chunk");
                                    data.extend_from_slice(&chunk);
                                    assert!(data.len() <= input_len, "body longer than input");
                                }
                                Ok(None) => break,
                                Err(error) => {
                                    outcome.parts.push((fields, data));
                                    outcome.error = Some(error.to_string());
                                    return;
                                }
                            }
                        }
                    }
                    outcome.parts.push((fields, data));
                }
                Err(error) => {
                    assert!(
                        reader.next_part().await.is_err(),
                        "reader not poisoned after error"
                    );
                    outcome.error = Some(error.to_string());
                    return;
                }
            }
        }
    });
    outcome
}
