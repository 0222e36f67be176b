//! Any byte string must give `Ok` or `Err`, never a panic, an abort on allocation, or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dicomweb_instance::inspect(data);
});
