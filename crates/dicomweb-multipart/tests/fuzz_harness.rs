//! Runs the cargo-fuzz harness (`fuzz/harness.rs`) over generated hostile inputs, so CI (on
//! stable, without libFuzzer) checks the same properties: no panic, no hang, and the outcome
//! independent of the chunking.

#[path = "../fuzz/harness.rs"]
mod harness;

use proptest::prelude::*;

/// Tokens that make multipart structure likely to appear in random input.
fn token(boundary: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let dash_boundary = format!("--{boundary}");
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..8),
        2 => Just(b"\r\n".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(b"-".to_vec()),
        1 => Just(b" ".to_vec()),
        1 => Just(b"\t".to_vec()),
        1 => Just(b":".to_vec()),
        1 => Just(b"Content-Type: application/dicom".to_vec()),
        1 => Just(boundary.as_bytes().to_vec()),
        3 => Just(dash_boundary.clone().into_bytes()),
        1 => Just(format!("{dash_boundary}--").into_bytes()),
        1 => (0..dash_boundary.len()).prop_map(move |len| dash_boundary.as_bytes()[..len].to_vec()),
    ]
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    (
        0..harness::BOUNDARIES.len(),
        any::<bool>(),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_flat_map(|(boundary_index, small_limits, skip_bodies, seed)| {
            let config = harness::config_byte(boundary_index, small_limits, skip_bodies);
            proptest::collection::vec(token(harness::BOUNDARIES[boundary_index]), 0..60)
                .prop_map(move |tokens| [vec![config, seed], tokens.concat()].concat())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn reader_survives_structured_garbage(input in input()) {
        harness::check_reader_on(&input);
    }

    #[test]
    fn reader_survives_random_bytes(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        harness::check_reader_on(&input);
    }
}

#[test]
fn harness_detects_a_chunking_dependent_reader_outcome() {
    // Sanity check that the harness compares something: a valid body decodes to one part.
    let mut input = vec![harness::config_byte(0, false, false), 7];
    input.extend_from_slice(b"--b\r\nA: 1\r\n\r\nxyz\r\n--b--");
    harness::check_reader_on(&input);
    assert_eq!(harness::random_chunks(b"abcdef", 0).concat(), b"abcdef");
}
