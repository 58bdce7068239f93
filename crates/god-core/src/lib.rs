//! god's model and planner, without I/O: [`model`] holds the desired and observed state of the
//! broker and the containers (the same types on both sides), [`plan`] diffs them into a
//! [`plan::Plan`], renders it and saves it. The `god` crate reads the inputs and the live
//! systems into these types and executes the plans; this crate has no dependency that could do
//! I/O, so "the planner does no I/O" is checked by the compiler.

pub mod model;
pub mod plan;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

#[cfg(test)]
mod tests {
    /// Crates that do I/O: the model and the planner must never depend on one.
    const IO_CRATES: [&str; 7] = [
        "tokio", "reqwest", "lapin", "amqprs", "bollard", "hyper", "axum",
    ];

    #[test]
    fn the_crate_depends_on_nothing_that_does_io() {
        let manifest: toml::Table = include_str!("../Cargo.toml").parse().unwrap();
        let dependencies = manifest["dependencies"].as_table().unwrap();
        for name in dependencies.keys() {
            assert!(
                !IO_CRATES.contains(&name.as_str()),
                "god-core must stay free of I/O, but depends on {name}"
            );
        }
        assert!(dependencies.contains_key("serde"), "the manifest was read");
    }
}
