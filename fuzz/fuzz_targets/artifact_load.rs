//! Bytes -> `secc_artifact::Artifact::parse` (header, manifest checksum, JSON manifest,
//! reference validation, section bounds and checksums) -> `secc_runtime::Model::check`
//! (the runtime's load checks: target, code section, weight ranges; nothing mapped or run). Each input is tried as given and
//! again with its manifest checksum made right, so mutations of the manifest get past the
//! CRC to the JSON reader and the validation behind it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secc_artifact::Artifact;

/// Header: magic (8), format version, manifest length, manifest CRC-32, reserved (4 each).
const HEADER_LEN: usize = 24;

fn check(bytes: Vec<u8>) {
    let _ = secc_runtime::Model::check(bytes.clone());
    if let Ok(a) = Artifact::parse(bytes) {
        assert!(
            a.manifest.validate().is_ok(),
            "parse accepted an invalid manifest"
        );
        for s in &a.manifest.sections {
            assert!(
                a.section(&s.kind).is_some(),
                "declared section {} missing",
                s.kind
            );
        }
        let m = &a.manifest;
        // the memory plan of any validated manifest must not panic, whatever the binding
        for v in [1, 3, u64::MAX] {
            let _ = m.memory_plan(&vec![v; m.symbols.len()]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data.to_vec());
    if data.len() < HEADER_LEN {
        return;
    }
    let mlen = u32::from_le_bytes([data[12], data[13], data[14], data[15]]) as usize;
    let Some(manifest) = data.get(HEADER_LEN..HEADER_LEN.saturating_add(mlen)) else {
        return;
    };
    let mut fixed = data.to_vec();
    fixed[16..20].copy_from_slice(&crc32fast::hash(manifest).to_le_bytes());
    check(fixed);
});
