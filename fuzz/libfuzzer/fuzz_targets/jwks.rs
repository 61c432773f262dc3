#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    (wasmesh_fuzz::target("jwks").expect("target").run)(data);
});
