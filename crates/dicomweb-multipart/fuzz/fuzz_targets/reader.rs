//! Feeds arbitrary bytes, split into arbitrary chunks, to `MultipartReader` (see `../harness.rs`).
//! Run with `cargo +nightly fuzz run reader` from `crates/dicomweb-multipart`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::check_reader_on(data));
