//! `include/secc.h` is what cbindgen generates from the crate now (run with SECC_BLESS=1 to
//! rewrite it after changing the API).
#![allow(clippy::unwrap_used)] // tests fail loudly by design
use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let mut got = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .unwrap()
        .write(&mut got);
    let path = dir.join("include/secc.h");
    if std::env::var_os("SECC_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read(&path).unwrap_or_default();
    assert!(
        got == want,
        "runtime/capi/include/secc.h is out of date: run `SECC_BLESS=1 cargo test -p secc-capi --test header` and review the diff"
    );
    // the functions applications are written against, exactly as named
    let text = String::from_utf8(got).unwrap();
    for f in [
        "const char *secc_last_error(void);",
        "SeccStatus secc_model_load(const char *path, SeccModel **out);",
        "void secc_model_free(SeccModel *m);",
        "size_t secc_model_input_count(const SeccModel *m);",
        "size_t secc_model_output_count(const SeccModel *m);",
        "const char *secc_model_input_name(const SeccModel *m, size_t i);",
        "const char *secc_model_output_name(const SeccModel *m, size_t i);",
        "size_t secc_model_input_rank(const SeccModel *m, size_t i);",
        "SeccStatus secc_model_input_shape(const SeccModel *m, size_t i, int64_t *dims);",
        "SeccStatus secc_session_new(const SeccModel *m, size_t threads, SeccSession **out);",
        "void secc_session_free(SeccSession *s);",
        "SeccStatus secc_session_run(SeccSession *s, const SeccTensor *inputs, size_t n_inputs);",
        "SeccStatus secc_session_output(const SeccSession *s, size_t i, SeccTensor *out);",
        "typedef struct SeccModel SeccModel;",
        "typedef struct SeccSession SeccSession;",
        "typedef int32_t SeccStatus;",
        "#define SECC_OK 0",
    ] {
        assert!(text.contains(f), "secc.h lacks `{f}`");
    }
}
