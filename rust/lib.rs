//! didcore's Rust core. `cube`, `encode` and `expected` are plain Rust (tested with `cargo test`);
//! `py_api` converts Python arguments and delegates; this file only declares the module.

pub mod cube;
pub mod encode;
pub mod error;
pub mod expected;
pub mod histogram;
pub mod parquet_decode;
mod py_api;
pub mod row_groups;

use pyo3::prelude::*;

#[pymodule]
mod _didcore {
    #[pymodule_export]
    use crate::py_api::{
        PyAggregator, PyKeyIndex, PyParquetDecoder, PyRowGroup, PyTextEncoder, bincount,
        expected_counts, state_table,
    };

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("build_profile", env!("DIDCORE_PROFILE"))?;
        m.add("N_STATES", crate::cube::N_STATES)?;
        m.add("MAX_MEASURES", crate::cube::MAX_MEASURES)?;
        m.add("BLANK", crate::cube::BLANK)?;
        m.add("UNRECOGNISED", crate::cube::UNRECOGNISED)?;
        m.add("OTHER_VALID", crate::cube::OTHER_VALID)?;
        Ok(())
    }
}
