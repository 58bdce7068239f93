//! CLI transcripts: the offline commands as a user sees them, in tests/cmd/*.trycmd (each run in
//! its `.in` directory when it has one), and every `console` example of the README, run from the
//! repository's root. Regenerate after an intended change with `TRYCMD=overwrite cargo test --test cmd`
//! and review the diff.

#[test]
fn transcripts() {
    trycmd::TestCases::new()
        .register_bin("god", std::path::PathBuf::from(env!("CARGO_BIN_EXE_god")))
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .case("tests/cmd/*.trycmd")
        .case("README.md");
}
