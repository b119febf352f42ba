#![no_main]

use libfuzzer_sys::fuzz_target;

// See oidc_realm::fuzzing::role_mapping for the input format and the invariants checked.
fuzz_target!(|data: &[u8]| {
    let _ = oidc_realm::fuzzing::role_mapping(data);
});
