//! Lets `cargo test` binaries that link libpython find it at run time (pyenv-style shared
//! CPython installs are not on the loader path); wheels built by maturin are unaffected.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!(
        "cargo:rustc-env=DIDCORE_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_default()
    );
}
