#![no_main]
// The entry point and its properties: parley::fuzzing::meta_delivery.
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::meta_delivery(data));
