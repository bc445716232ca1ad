//! Go template parser and executor: any text, parsed and run against fixed data.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        prism_engine::fuzzing::gotemplate(text);
    }
});
