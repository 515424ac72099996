//! Bytes -> ONNX importer -> the full pass pipeline (verified after every pass) -> the code
//! generation plan for CPU and CUDA. No LLVM code is emitted. Errors are fine; a panic, an
//! abort, a hang or a graph that fails verification right after import is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut g) = secc_onnx::import_bytes(data, None, &Default::default()) else {
        return;
    };
    if let Err(e) = g.verify() {
        panic!("an imported graph does not verify: {e}");
    }
    let mut pm = secc_passes::PassManager::new(secc_passes::pipeline::default_pipeline());
    if pm.run(&mut g, |_, _| {}).is_err() {
        return;
    }
    let _ = secc_codegen::plan::build(&g, true);
    let _ = secc_codegen::plan::build(&g, false);
});
