#![no_main]
// The entry point and its properties: parley::fuzzing::woocommerce_webhook.
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::woocommerce_webhook(data));
