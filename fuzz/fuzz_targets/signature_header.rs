#![no_main]
// The entry point and its properties: parley::fuzzing::signature_header.
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::signature_header(data));
