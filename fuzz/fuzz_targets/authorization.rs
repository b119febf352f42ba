#![no_main]

use libfuzzer_sys::fuzz_target;

// See oidc_realm::fuzzing::authorization for the input format and the invariants checked.
fuzz_target!(|data: &[u8]| {
    let _ = oidc_realm::fuzzing::authorization(data);
});
