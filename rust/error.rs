//! The one error type of the Rust core. It knows nothing of Python: `py_api` maps each variant
//! to an exception class of `didcore.errors`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// Inputs whose shapes or tables disagree: a bug in the caller (the Python layer), never
    /// the user's data, which is classified before it reaches Rust.
    #[error("internal shape error: {0}")]
    Shape(String),
    /// Observed tests in a stratum whose total population is zero (SPEC section 3).
    #[error(
        "stratum {stratum} has {observed} observed tests for measure {measure} but zero population"
    )]
    ZeroPopulation {
        stratum: usize,
        measure: usize,
        observed: f64,
    },
    /// A population that is negative or not a number.
    #[error(
        "population of unit {unit}, stratum {stratum} is {value}: populations must be finite and non-negative"
    )]
    BadPopulation {
        unit: usize,
        stratum: usize,
        value: f64,
    },
    /// The worker thread pool could not be built.
    #[error("could not start worker threads: {0}")]
    ThreadPool(String),
}
