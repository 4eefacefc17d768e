//! The Python-facing functions and classes. Each one only converts arguments, releases the
//! interpreter (`py.detach`) for the real work, and maps [`CoreError`] to `didcore.errors`.
//!
//! Every entry point runs inside [`guard`] (and its work inside [`detached`]), so a panic is
//! never seen by Python as pyo3's `PanicException` (a `BaseException`): it becomes
//! `InternalError`, as it is a bug. Problems with the user's input found here are
//! [`CoreError`] variants that map to `InputError` subclasses, never panics.

// pyo3 extracts arguments by value; taking them by reference is not an option here.
#![allow(clippy::needless_pass_by_value)]

use std::any::Any;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::cube::{
    self, Accumulator, AgeColumn, Batch, Coded, Dims, N_STATES, SexColumn, Validity, Values,
};
use crate::encode::{Encoder, Strings};
use crate::error::CoreError;
use crate::expected;
use crate::parquet_decode::{
    BufferPool, ChunkSource, ColumnCursor, ColumnError, DecodeError, Decoder, Fetch, Kind,
};
use crate::row_groups::{Classes, Convert, Job, JobError, JobPool, Roles};

pyo3::import_exception!(didcore.errors, CorruptInputError);
pyo3::import_exception!(didcore.errors, InputError);
pyo3::import_exception!(didcore.errors, InternalError);
pyo3::import_exception!(didcore.errors, ParquetUnsupportedError);
pyo3::import_exception!(didcore.errors, PopulationError);
pyo3::import_exception!(didcore.errors, ZeroPopulationError);

/// The one mapping of the core's errors to `didcore.errors` exceptions: input problems are
/// `InputError` subclasses, bugs (shape errors, thread pools, panics) `InternalError`. The
/// messages that name a column name it as the extract does once
/// [`CoreError::naming_columns`] has been applied.
impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::ZeroPopulation {
                stratum,
                measure,
                observed,
            } => ZeroPopulationError::new_err((err.to_string(), stratum, measure, observed)),
            CoreError::BadPopulation { .. } => PopulationError::new_err(err.to_string()),
            CoreError::BadIndex {
                column,
                index,
                dict_len,
                batch,
                batch_row,
                row,
            } => {
                let entries = if dict_len == 1 { "entry" } else { "entries" };
                CorruptInputError::new_err(format!(
                    "column '{column}': row {row} (row {batch_row} of batch {batch}) points to \
                     entry {index} of its dictionary, which has {dict_len} {entries}: the file \
                     is corrupt (or the Arrow data was built without checks); write it out \
                     again from its source"
                ))
            }
            CoreError::BadOffsets { .. } => CorruptInputError::new_err(format!(
                "{err}: the Arrow data is corrupt (built without checks by its producer); \
                 rebuild it from its source"
            )),
            CoreError::InvalidArgument(_) => InputError::new_err(err.to_string()),
            CoreError::Parquet {
                column,
                unsupported,
                message,
            } => {
                let message = format!("column '{column}': {message}");
                if unsupported {
                    ParquetUnsupportedError::new_err(message)
                } else {
                    CorruptInputError::new_err(message)
                }
            }
            CoreError::Shape(_) | CoreError::ThreadPool(_) | CoreError::Panic(_) => {
                InternalError::new_err(err.to_string())
            }
        }
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Run an entry point's body, a panic in it becoming `InternalError`.
fn guard<T>(body: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(body))
        .unwrap_or_else(|panic| Err(CoreError::Panic(panic_message(panic.as_ref())).into()))
}

/// A private rayon pool of `n_threads` workers.
///
/// didcore never uses rayon's global pool: a process forked after a call inherits no
/// half-alive global pool, and `n_threads` is honoured per call.
fn build_pool(n_threads: usize) -> Result<rayon::ThreadPool, CoreError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .thread_name(|i| format!("didcore-{i}"))
        .build()
        .map_err(|e| CoreError::ThreadPool(e.to_string()))
}

/// Run `work` on `pool` with the interpreter released.
fn run_detached<T: Send>(
    py: Python<'_>,
    pool: &rayon::ThreadPool,
    work: impl FnOnce() -> Result<T, CoreError> + Send,
) -> PyResult<T> {
    detached(py, move || pool.install(work))
}

/// Run `work` with the interpreter released.
///
/// Any panic is caught here and becomes `InternalError`: a panic must never cross into Python.
fn detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, CoreError> + Send,
) -> PyResult<T> {
    detached_core(py, work).map_err(PyErr::from)
}

/// [`detached`], leaving the error a [`CoreError`] (a panic is [`CoreError::Panic`]).
fn detached_core<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, CoreError> + Send,
) -> Result<T, CoreError> {
    py.detach(move || {
        catch_unwind(AssertUnwindSafe(work))
            .unwrap_or_else(|panic| Err(CoreError::Panic(panic_message(panic.as_ref()))))
    })
}

fn default_threads(n_threads: Option<usize>) -> usize {
    n_threads
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<'_, T>, what: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{what}: array must be contiguous")))
}

/// A dictionary-encoded column from Python: `(indices int32, validity bitmap or None, offset)`.
#[derive(FromPyObject)]
pub struct CodedArg<'py>(
    PyReadonlyArray1<'py, i32>,
    Option<PyReadonlyArray1<'py, u8>>,
    usize,
);

/// A plain column: `(values, validity bitmap or None, offset)`; int32 for integers and for
/// dates (days since 1970-01-01).
#[derive(FromPyObject)]
pub struct ValuesArg<'py, T: numpy::Element>(
    PyReadonlyArray1<'py, T>,
    Option<PyReadonlyArray1<'py, u8>>,
    usize,
);

type IntsArg<'py> = ValuesArg<'py, i32>;
type DaysArg<'py> = ValuesArg<'py, i32>;

fn validity<'a>(
    bits: Option<&'a PyReadonlyArray1<'_, u8>>,
    offset: usize,
) -> PyResult<Validity<'a>> {
    Ok(Validity {
        bits: bits.map(|b| slice(b, "validity")).transpose()?,
        offset,
    })
}

impl CodedArg<'_> {
    fn view(&self) -> PyResult<Coded<'_>> {
        Ok(Coded {
            indices: slice(&self.0, "indices")?,
            validity: validity(self.1.as_ref(), self.2)?,
        })
    }
}

impl<T: numpy::Element> ValuesArg<'_, T> {
    fn view(&self) -> PyResult<Values<'_, T>> {
        Ok(Values {
            values: slice(&self.0, "values")?,
            validity: validity(self.1.as_ref(), self.2)?,
        })
    }
}

/// One classified batch, the whole argument of `Aggregator.add_batch`: the mirror of the
/// Python dataclass `didcore.classify.ClassifiedBatch`, whose docstring gives the meaning of
/// each field. pyo3's derive reads each field from the attribute of the same name, so the two
/// field lists must agree (a missing attribute is an `AttributeError` naming it). Exactly one
/// of `sex_coded` (with `sex_class`) and `sex_ints` is given, and either `age_years` or
/// `birth` with `test`.
#[derive(FromPyObject)]
pub struct ClassifiedBatch<'py> {
    n_rows: usize,
    provider: CodedArg<'py>,
    provider_ids: PyReadonlyArray1<'py, u32>,
    provider_null_id: u32,
    n_providers: usize,
    practice: CodedArg<'py>,
    practice_class: PyReadonlyArray1<'py, i32>,
    lsoa: CodedArg<'py>,
    lsoa_icb: PyReadonlyArray1<'py, i32>,
    lsoa_imd: PyReadonlyArray1<'py, i8>,
    sex_coded: Option<CodedArg<'py>>,
    sex_class: Option<PyReadonlyArray1<'py, i8>>,
    sex_ints: Option<IntsArg<'py>>,
    age_years: Option<IntsArg<'py>>,
    birth: Option<DaysArg<'py>>,
    test: Option<DaysArg<'py>>,
    modality: CodedArg<'py>,
    modality_ids: PyReadonlyArray1<'py, i16>,
    exam: Option<CodedArg<'py>>,
    exam_ids: PyReadonlyArray1<'py, i16>,
    measure_masks: PyReadonlyArray1<'py, u64>,
    n_exam: usize,
}

/// A [`ClassifiedBatch`] viewed as the core's [`Batch`], with the providers registered so far.
struct BatchView<'a> {
    batch: Batch<'a>,
    n_providers: usize,
}

impl ClassifiedBatch<'_> {
    fn view(&self) -> PyResult<BatchView<'_>> {
        let sex = match (&self.sex_coded, &self.sex_class, &self.sex_ints) {
            (Some(c), Some(cls), None) => SexColumn::Coded {
                column: c.view()?,
                class: slice(cls, "sex_class")?,
            },
            (None, None, Some(i)) => SexColumn::Ints(i.view()?),
            _ => {
                return Err(PyValueError::new_err(
                    "give either sex_coded with sex_class, or sex_ints",
                ));
            }
        };
        let age = match (&self.age_years, &self.birth, &self.test) {
            (Some(a), None, None) => AgeColumn::Years(a.view()?),
            (None, Some(b), Some(t)) => AgeColumn::Dates {
                birth: b.view()?,
                test: t.view()?,
            },
            _ => {
                return Err(PyValueError::new_err(
                    "give either age_years, or birth with test",
                ));
            }
        };
        let batch = Batch {
            n_rows: self.n_rows,
            provider: self.provider.view()?,
            provider_ids: slice(&self.provider_ids, "provider_ids")?,
            provider_null_id: self.provider_null_id,
            practice: self.practice.view()?,
            practice_class: slice(&self.practice_class, "practice_class")?,
            lsoa: self.lsoa.view()?,
            lsoa_icb: slice(&self.lsoa_icb, "lsoa_icb")?,
            lsoa_imd: slice(&self.lsoa_imd, "lsoa_imd")?,
            sex,
            age,
            modality: self.modality.view()?,
            modality_ids: slice(&self.modality_ids, "modality_ids")?,
            exam: self.exam.as_ref().map(CodedArg::view).transpose()?,
            exam_ids: slice(&self.exam_ids, "exam_ids")?,
            measure_masks: slice(&self.measure_masks, "measure_masks")?,
            n_exam: self.n_exam,
        };
        Ok(BatchView {
            batch,
            n_providers: self.n_providers,
        })
    }
}

/// Counts record batches into a cube. Used by `didcore.aggregate`; not a public API.
#[pyclass(module = "didcore._didcore", name = "Aggregator")]
pub struct PyAggregator {
    acc: Accumulator,
    pool: rayon::ThreadPool,
    /// The extract's column of each role (`provider_code`, ...), for error messages.
    names: HashMap<String, String>,
    /// Parquet row groups counted as they are decoded (`submit_row_group`), once one is.
    jobs: Option<Arc<JobPool>>,
    /// Ages past this are missing (None: no limit), for the ages a job converts.
    max_age: Option<i64>,
}

/// Which decoded column holds each role, as Python gives it: `(provider, practice, lsoa,
/// sex, modality, exam or None, age or None, date of birth or None, test date or None)`.
type RolesArg = (
    usize,
    usize,
    usize,
    usize,
    usize,
    Option<usize>,
    Option<usize>,
    Option<usize>,
    Option<usize>,
);

/// A finished row group as returned to Python: `(sequence number, rows counted, histograms
/// of the profiled columns, rows per financial year, (column, why) where it stopped or None,
/// (column, what is wrong) for a corrupt chunk or None, (rows, first value) of a floating
/// age column holding infinities or None)`.
type FinishedParts<'py> = (
    u64,
    usize,
    Vec<Bound<'py, PyArray1<u64>>>,
    Vec<u64>,
    Option<(usize, String)>,
    Option<(usize, String)>,
    Option<(u64, f64)>,
);

impl ClassifiedBatch<'_> {
    /// The batch's dictionary tables, owned (its rows are not used).
    fn classes(&self) -> PyResult<Classes> {
        let sex_class = self
            .sex_class
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("a row group's sex must be coded"))?;
        Ok(Classes {
            provider_ids: slice(&self.provider_ids, "provider_ids")?.to_vec(),
            provider_null_id: self.provider_null_id,
            n_providers: self.n_providers,
            practice_class: slice(&self.practice_class, "practice_class")?.to_vec(),
            lsoa_icb: slice(&self.lsoa_icb, "lsoa_icb")?.to_vec(),
            lsoa_imd: slice(&self.lsoa_imd, "lsoa_imd")?.to_vec(),
            sex_class: slice(sex_class, "sex_class")?.to_vec(),
            modality_ids: slice(&self.modality_ids, "modality_ids")?.to_vec(),
            exam_ids: slice(&self.exam_ids, "exam_ids")?.to_vec(),
            measure_masks: slice(&self.measure_masks, "measure_masks")?.to_vec(),
            n_exam: self.n_exam,
        })
    }
}

/// A row group's column chunks, their dictionaries read, taken from a `ParquetDecoder` to be
/// counted by `Aggregator.submit_row_group`. Not a public API.
#[pyclass(module = "didcore._didcore", name = "RowGroup", frozen)]
pub struct PyRowGroup {
    cursors: std::sync::Mutex<Option<(Vec<ColumnCursor>, usize)>>,
}

/// A chunk given to `ParquetDecoder.start`: its bytes, or the function that reads them
/// (`window` bytes at least at a time).
fn chunk_source(chunk: Bound<'_, PyAny>, window: usize) -> PyResult<ChunkSource> {
    if let Ok(bytes) = chunk.extract::<pyo3::pybacked::PyBackedBytes>() {
        return Ok(ChunkSource::Whole(bytes::Bytes::from_owner(bytes)));
    }
    if !chunk.is_callable() {
        return Err(PyTypeError::new_err(
            "a column chunk must be bytes, or a function that reads them",
        ));
    }
    let read: Py<PyAny> = chunk.unbind();
    let fetch: Fetch = Arc::new(move |offset, length| {
        // on a decoding thread, while the thread that asked for rows waits without the
        // interpreter
        Python::attach(|py| {
            let got = read.call1(py, (offset, length)).and_then(|b| {
                b.extract::<pyo3::pybacked::PyBackedBytes>(py)
                    .map_err(Into::into)
            });
            got.map(bytes::Bytes::from_owner)
                .map_err(|e| format!("reading the column chunk: {e}"))
        })
    });
    Ok(ChunkSource::Windowed(fetch, window))
}

#[pymethods]
impl PyAggregator {
    #[new]
    #[pyo3(signature = (n_icb, n_measure, max_age=None, n_threads=None, column_names=None))]
    fn new(
        n_icb: usize,
        n_measure: usize,
        max_age: Option<i64>,
        n_threads: Option<usize>,
        column_names: Option<HashMap<String, String>>,
    ) -> PyResult<Self> {
        guard(|| {
            let n_threads = default_threads(n_threads);
            let dims = Dims {
                n_icb,
                n_measure,
                // no upper limit: every age from 90 up is in the 90+ band
                max_age: max_age.unwrap_or(i64::MAX),
            };
            let acc = Accumulator::new(dims, n_threads)?;
            let pool = build_pool(n_threads)?;
            Ok(PyAggregator {
                acc,
                pool,
                names: column_names.unwrap_or_default(),
                jobs: None,
                max_age,
            })
        })
    }

    /// Rows counted so far.
    #[getter]
    fn rows(&self) -> PyResult<u64> {
        guard(|| Ok(self.acc.rows()))
    }

    /// Count one classified batch: a `didcore.classify.ClassifiedBatch` (see there for the
    /// meaning of each table).
    fn add_batch(&mut self, py: Python<'_>, batch: ClassifiedBatch<'_>) -> PyResult<()> {
        guard(|| {
            let batch = batch.view()?;
            let (acc, pool, names) = (&mut self.acc, &self.pool, &self.names);
            detached_core(py, || {
                pool.install(|| acc.add(&batch.batch, batch.n_providers))
            })
            .map_err(|e| e.naming_columns(names).into())
        })
    }

    /// Count a Parquet row group on the pool, as it is decoded, and return at once: `row_group`
    /// from `ParquetDecoder.take_row_group`, `template` its dictionaries classified (a
    /// `ClassifiedBatch` of no rows, coded sex), `roles` (see [`RolesArg`]), `profiled` the
    /// columns whose rows are counted per dictionary index, `year_bounds` the financial
    /// years' first days (see `row_groups::Job::year_bounds`), `require` the first and last
    /// test date every row must have (a row group counted into one year's cube), `converts`
    /// how fixed-width columns become whole numbers (`(column, "float_age", 0)`: a floating
    /// age; `(column, "days", ticks a day)`: a timestamp with no time zone; any other column
    /// as it is). `wait_row_groups` gives its outcome under `seq`.
    #[pyo3(signature = (
        seq, row_group, template, roles, profiled, year_bounds, require=None, converts=Vec::new()
    ))]
    #[allow(clippy::too_many_arguments)]
    fn submit_row_group(
        &mut self,
        seq: u64,
        row_group: &Bound<'_, PyRowGroup>,
        template: ClassifiedBatch<'_>,
        roles: RolesArg,
        profiled: Vec<usize>,
        year_bounds: Vec<i32>,
        require: Option<(i32, i32)>,
        converts: Vec<(usize, String, i64)>,
    ) -> PyResult<()> {
        guard(|| {
            let (cursors, rows) = row_group
                .get()
                .cursors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .ok_or_else(|| PyValueError::new_err("this row group was counted already"))?;
            let (provider, practice, lsoa, sex, modality, exam, age, birth, test_date) = roles;
            let age = match (age, birth, test_date) {
                (Some(a), _, _) => Ok(a),
                (None, Some(b), Some(t)) => Err((b, t)),
                _ => {
                    return Err(PyValueError::new_err(
                        "give the age, or birth and test dates",
                    ));
                }
            };
            if cursors.len()
                <= [provider, practice, lsoa, sex, modality]
                    .into_iter()
                    .max()
                    .unwrap_or(0)
            {
                return Err(PyValueError::new_err(
                    "a role's column is not among the chunks",
                ));
            }
            let mut how = vec![Convert::Whole; cursors.len()];
            for (column, kind, ticks) in converts {
                let slot = how.get_mut(column).ok_or_else(|| {
                    PyValueError::new_err("a converted column is not among the chunks")
                })?;
                *slot = match kind.as_str() {
                    "float_age" => Convert::FloatAge,
                    "days" if ticks > 0 => Convert::Days(ticks),
                    _ => {
                        return Err(PyValueError::new_err(format!(
                            "unknown conversion {kind:?} ({ticks} ticks a day)"
                        )));
                    }
                };
            }
            let job = Job {
                cursors,
                rows,
                roles: Roles {
                    provider,
                    practice,
                    lsoa,
                    sex,
                    modality,
                    exam,
                    age,
                    test_date,
                },
                classes: template.classes()?,
                profiled,
                year_bounds,
                require,
                converts: how,
                max_age: self.max_age,
            };
            if self.jobs.is_none() {
                let pool = JobPool::new(self.acc.dims(), self.pool.current_num_threads())?;
                self.jobs = Some(Arc::new(pool));
            }
            let jobs = self
                .jobs
                .as_ref()
                .map(Arc::clone)
                .ok_or_else(|| PyValueError::new_err("no job pool"))?;
            jobs.spawn(&self.pool, seq, job);
            Ok(())
        })
    }

    /// Wait (the interpreter released) until at most `max_in_flight` row groups are being
    /// counted; those finished since the last call (see [`FinishedParts`]). A failure other
    /// than a corrupt chunk raises.
    fn wait_row_groups<'py>(
        &self,
        py: Python<'py>,
        max_in_flight: usize,
    ) -> PyResult<Vec<FinishedParts<'py>>> {
        guard(|| {
            let Some(jobs) = &self.jobs else {
                return Ok(Vec::new());
            };
            let finished = py.detach(|| jobs.wait(max_in_flight));
            let mut out = Vec::with_capacity(finished.len());
            for (seq, result) in finished {
                match result {
                    Ok(o) => {
                        let hist = o
                            .histograms
                            .into_iter()
                            .map(|h| PyArray1::from_vec(py, h))
                            .collect();
                        let (n, example) = o.unreadable;
                        let unreadable = example.filter(|_| n > 0).map(|v| (n, v));
                        out.push((seq, o.rows, hist, o.years, o.stopped, None, unreadable));
                    }
                    Err(JobError::Decode(ColumnError { column, error })) => {
                        out.push((
                            seq,
                            0,
                            Vec::new(),
                            Vec::new(),
                            None,
                            Some((column, error.to_string())),
                            None,
                        ));
                    }
                    Err(JobError::Count(err)) => {
                        return Err(err.naming_columns(&self.names).into());
                    }
                }
            }
            Ok(out)
        })
    }

    /// Merge the workers' counts: a dict of flat int64 arrays `cube`, `states` (the state
    /// code of each column of the histograms), `provider_states` (`[provider][column]`),
    /// `icb_states`, `provider_icb`, and `n_providers`, `rows`.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(|| self.finish_dict(py))
    }
}

impl PyAggregator {
    fn finish_dict<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Some(jobs) = self.jobs.take() {
            let acc = &mut self.acc;
            py.detach(|| {
                // their outcomes are Python's to have collected; any left are dropped here
                jobs.wait(0);
                jobs.absorb_into(acc);
            });
        }
        let acc = &mut self.acc;
        let total = run_detached(py, &self.pool, || Ok(acc.finish()))?;
        let out = PyDict::new(py);
        let as_i64 = |v: Vec<u64>| v.into_iter().map(|x| x as i64).collect::<Vec<i64>>();
        out.set_item("cube", PyArray1::from_vec(py, as_i64(total.cube)))?;
        let states: Vec<i64> = total.states.iter().map(|&s| s as i64).collect();
        out.set_item("states", PyArray1::from_vec(py, states))?;
        out.set_item(
            "provider_states",
            PyArray1::from_vec(py, as_i64(total.provider_states)),
        )?;
        out.set_item(
            "icb_states",
            PyArray1::from_vec(py, as_i64(total.icb_states)),
        )?;
        out.set_item(
            "provider_icb",
            PyArray1::from_vec(py, as_i64(total.provider_icb)),
        )?;
        out.set_item("n_providers", total.n_providers)?;
        out.set_item("rows", self.acc.rows())?;
        Ok(out)
    }
}

/// An Arrow `string` array from Python: `(offsets, data, validity bitmap or None, bit offset)`,
/// with the `len + 1` int32 offsets already advanced to the array's offset.
#[derive(FromPyObject)]
pub struct StringsArg<'py>(
    PyReadonlyArray1<'py, i32>,
    PyReadonlyArray1<'py, u8>,
    Option<PyReadonlyArray1<'py, u8>>,
    usize,
);

impl StringsArg<'_> {
    fn view(&self) -> PyResult<Strings<'_>> {
        Ok(Strings {
            offsets: slice(&self.0, "offsets")?,
            data: slice(&self.1, "data")?,
            validity: validity(self.2.as_ref(), self.3)?,
        })
    }
}

/// One plain text column's dictionary across batches (see `rust/encode.rs`). Used by
/// `didcore.aggregate`; not a public API.
#[pyclass(module = "didcore._didcore", name = "TextEncoder")]
pub struct PyTextEncoder {
    encoder: Encoder,
}

#[pymethods]
impl PyTextEncoder {
    #[new]
    fn new() -> PyResult<Self> {
        guard(|| {
            Ok(PyTextEncoder {
                encoder: Encoder::new(),
            })
        })
    }

    fn __len__(&self) -> PyResult<usize> {
        guard(|| Ok(self.encoder.len()))
    }

    /// int32 dictionary index of each value, growing the dictionary with new values.
    fn encode<'py>(
        mut slf: PyRefMut<'py, Self>,
        strings: StringsArg<'py>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        guard(|| {
            let py = slf.py();
            let view = strings.view()?;
            let encoder = &mut slf.encoder;
            let ids = detached(py, || encoder.encode(&view))?;
            Ok(PyArray1::from_vec(py, ids))
        })
    }

    /// The dictionary: `(offsets int32, data uint8, index of the null entry or None)`.
    fn dictionary<'py>(&self, py: Python<'py>) -> PyResult<DictionaryParts<'py>> {
        guard(|| {
            let (offsets, data, null) = self.encoder.dictionary();
            Ok((
                PyArray1::from_slice(py, offsets),
                PyArray1::from_slice(py, data),
                null,
            ))
        })
    }
}

/// A hash index of text keys, built once, that finds where values are among them: Arrow's
/// `index_in` for the classifier's look-ups of a dictionary's codes in the lookups (the
/// value set is hashed once a run, not once a call). Used by `didcore.classify`; not a public
/// API.
#[pyclass(module = "didcore._didcore", name = "KeyIndex")]
pub struct PyKeyIndex {
    keys: Encoder,
}

#[pymethods]
impl PyKeyIndex {
    /// Index `keys` (an Arrow string array's buffers); a repeated key keeps its first place.
    #[new]
    fn new(py: Python<'_>, keys: StringsArg<'_>) -> PyResult<Self> {
        guard(|| {
            let view = keys.view()?;
            let mut encoder = Encoder::new();
            let ids = detached(py, || encoder.encode(&view))?;
            // Positions must be the keys' own: with a repeated key (or a null) the encoder's
            // ids would not be, so such key lists are refused (the classifier dedupes them).
            if ids.iter().enumerate().any(|(i, &id)| id as usize != i) {
                return Err(CoreError::Shape("keys must be distinct and not null".into()).into());
            }
            Ok(PyKeyIndex { keys: encoder })
        })
    }

    fn __len__(&self) -> PyResult<usize> {
        guard(|| Ok(self.keys.len()))
    }

    /// The position of each value among the keys, -1 where absent or null (int32).
    fn find<'py>(
        &self,
        py: Python<'py>,
        strings: StringsArg<'py>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        guard(|| {
            let view = strings.view()?;
            let keys = &self.keys;
            let found = detached(py, || keys.find(&view))?;
            Ok(PyArray1::from_vec(py, found))
        })
    }

    /// The position of each value normalised as the classifier does (trimmed, ASCII
    /// upper-cased) among the keys: -1 where absent, -2 where null or blank (int32); `None`
    /// when a value begins or ends with a non-ASCII character after trimming (then
    /// normalise with Arrow and call `find`).
    fn find_normalised<'py>(
        &self,
        py: Python<'py>,
        strings: StringsArg<'py>,
    ) -> PyResult<Option<Bound<'py, PyArray1<i32>>>> {
        guard(|| {
            let view = strings.view()?;
            let keys = &self.keys;
            let found = detached(py, || keys.find_normalised(&view))?;
            Ok(found.map(|f| PyArray1::from_vec(py, f)))
        })
    }
}

/// Rows per dictionary index of a coded column (`indices`, its validity bitmap or None and
/// bit offset), `size` bins, and the null rows: `(int64 bins, nulls)`. Used by
/// `didcore.profile`; not a public API.
#[pyfunction]
#[pyo3(signature = (indices, validity, offset, size))]
pub fn bincount<'py>(
    py: Python<'py>,
    indices: PyReadonlyArray1<'py, i32>,
    validity: Option<PyReadonlyArray1<'py, u8>>,
    offset: usize,
    size: usize,
) -> PyResult<(Bound<'py, PyArray1<i64>>, u64)> {
    guard(|| {
        let idx = slice(&indices, "indices")?;
        let valid = self::validity(validity.as_ref(), offset)?;
        let (bins, nulls) = detached(py, || crate::histogram::bincount(idx, valid, size))?;
        let bins: Vec<i64> = bins.into_iter().map(|b| b as i64).collect();
        Ok((PyArray1::from_vec(py, bins), nulls))
    })
}

/// A dictionary's `(offsets, data, null entry)` as returned to Python.
type DictionaryParts<'py> = (
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<u8>>,
    Option<i32>,
);

/// The decoded row states: a dict of int8 arrays of `N_STATES` values, one per field of
/// [`cube::RowState`], by name: `source` (how the ICB was found: 0 GP practice, 1 other valid
/// practice, 2 LSOA, 3 unknown), `outcome` (0-3 the exclusion reason in precedence order, 4
/// no measure, 5 included), and the flags `no_practice`, `no_lsoa`, `missing_imd`,
/// `missing_sex`, `missing_age` (0 or 1).
#[pyfunction]
pub fn state_table(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    guard(|| state_table_dict(py))
}

/// One field of a [`cube::RowState`] as a number.
type StateField = fn(&cube::RowState) -> i8;

fn state_table_dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let states: Vec<cube::RowState> = (0..N_STATES).map(cube::decode_state).collect();
    let fields: [(&str, StateField); 7] = [
        ("source", |s| s.source as i8),
        ("outcome", |s| s.outcome as i8),
        ("no_practice", |s| i8::from(s.no_practice)),
        ("no_lsoa", |s| i8::from(s.no_lsoa)),
        ("missing_imd", |s| i8::from(s.missing_imd)),
        ("missing_sex", |s| i8::from(s.missing_sex)),
        ("missing_age", |s| i8::from(s.missing_age)),
    ];
    let out = PyDict::new(py);
    for (name, field) in fields {
        let column: Vec<i8> = states.iter().map(field).collect();
        out.set_item(name, PyArray1::from_vec(py, column))?;
    }
    Ok(out)
}

/// Two float64 arrays returned together.
type F64Pair<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// Expected counts for indirect standardisation (see `rust/expected.rs` for the formulas).
///
/// `observed` is float64 `(n_units * n_strata * n_measure,)` flattened `[unit][stratum][measure]`,
/// `population` `(n_units * n_strata,)`, `groups` int64 `(n_units,)`. Returns flat
/// `(observed, expected)` of `n_groups * n_measure`.
#[pyfunction]
#[pyo3(signature = (observed, population, groups, n_strata, n_measure, n_groups, n_threads=None))]
pub fn expected_counts<'py>(
    py: Python<'py>,
    observed: PyReadonlyArray1<'py, f64>,
    population: PyReadonlyArray1<'py, f64>,
    groups: PyReadonlyArray1<'py, i64>,
    n_strata: usize,
    n_measure: usize,
    n_groups: usize,
    n_threads: Option<usize>,
) -> PyResult<F64Pair<'py>> {
    guard(|| {
        expected_counts_body(
            py,
            &observed,
            &population,
            &groups,
            (n_strata, n_measure, n_groups),
            n_threads,
        )
    })
}

fn expected_counts_body<'py>(
    py: Python<'py>,
    observed: &PyReadonlyArray1<'py, f64>,
    population: &PyReadonlyArray1<'py, f64>,
    groups: &PyReadonlyArray1<'py, i64>,
    (n_strata, n_measure, n_groups): (usize, usize, usize),
    n_threads: Option<usize>,
) -> PyResult<F64Pair<'py>> {
    let o = slice(observed, "observed")?;
    let p = slice(population, "population")?;
    let g_raw = slice(groups, "groups")?;
    if let Some(&bad) = g_raw.iter().find(|&&g| g < 0) {
        return Err(InternalError::new_err(format!(
            "group index {bad} is negative"
        )));
    }
    let g: Vec<usize> = g_raw.iter().map(|&x| x as usize).collect();
    let pool = build_pool(default_threads(n_threads).min(4))?;
    let r = run_detached(py, &pool, || {
        expected::expected_counts(o, p, &g, n_strata, n_measure, n_groups)
    })?;
    Ok((
        PyArray1::from_vec(py, r.observed),
        PyArray1::from_vec(py, r.expected),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42), "unknown panic");
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {})); // keep the test's output quiet
        let caught = guard(|| -> PyResult<()> { panic!("index out of bounds") });
        std::panic::set_hook(previous);
        assert!(caught.is_err());
        assert!(guard(|| Ok(7)).is_ok_and(|v| v == 7));
    }

    #[test]
    fn input_problems_are_not_panics_or_shape_errors() {
        let err = CoreError::BadIndex {
            column: "lsoa11".into(),
            index: -1,
            dict_len: 3,
            batch: 2,
            batch_row: 5,
            row: 105,
        };
        assert!(err.to_string().contains("row 105 (row 5 of batch 2)"));
        assert!(!matches!(err, CoreError::Shape(_) | CoreError::Panic(_)));
    }
}

/// Decodes the needed column chunks of a run's Parquet files (see `rust/parquet_decode`):
/// Python reads each chunk's bytes and hands them over; columns come back as plain arrays.
/// Used by `didcore.parquet_native`; not a public API.
#[pyclass(module = "didcore._didcore", name = "ParquetDecoder")]
pub struct PyParquetDecoder {
    /// Behind a mutex only because a Python class must be `Sync` and the crate's codecs are
    /// not; `&mut self` methods already serialise every use.
    decoder: std::sync::Mutex<Decoder>,
    pool: rayon::ThreadPool,
}

/// A decoded column's buffer lent to Python as a read-only array's memory: given back to the
/// decoder's pool when the array (and whatever Arrow buffer wraps it) is freed.
#[pyclass(module = "didcore._didcore", frozen)]
struct PooledBytes {
    data: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl Drop for PooledBytes {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.data));
    }
}

/// `data` as a read-only `uint8` array whose memory goes back to `pool` once freed.
#[allow(unsafe_code)] // the crate's one unsafe block: see the SAFETY note
fn pooled_array<'py>(
    py: Python<'py>,
    data: Vec<u8>,
    pool: &Arc<BufferPool>,
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let holder = Bound::new(
        py,
        PooledBytes {
            data,
            pool: Arc::clone(pool),
        },
    )?;
    let view = numpy::ndarray::ArrayView1::from(&holder.get().data[..]);
    // SAFETY: the array's memory is `holder`'s buffer, which the array keeps alive as its
    // base and which nothing changes while it lives (the class is frozen, the array is made
    // read-only below). Unsafe because it pays: fresh buffers for each batch were a fifth of
    // the decoding's CPU (see `parquet_decode::pool`).
    let array = unsafe { PyArray1::borrow_from_array(&view, holder.clone().into_any()) };
    array.call_method1("setflags", (false,))?;
    Ok(array)
}

/// One chunk's plan as returned to Python: `(start, length, why not or None, dictionary-encoded
/// throughout: 2 by the footer, 1 presumed, 0 not (`parquet_decode::Coding`), null rows or
/// None, (smallest, largest) integer or None)`.
type ChunkParts = (
    u64,
    u64,
    Option<String>,
    u8,
    Option<u64>,
    Option<(i64, i64)>,
);

/// A row group's plan as returned to Python: `(rows, [chunk])`.
type RowGroupParts = (u64, Vec<ChunkParts>);

/// One decoded column as returned to Python: `(values as bytes, validity bitmap or None)`.
type ColumnParts<'py> = (Bound<'py, PyArray1<u8>>, Option<Bound<'py, PyArray1<u8>>>);

impl PyParquetDecoder {
    fn decoder(&mut self) -> &mut Decoder {
        // a panic while it was held is already an error; the decoder is then restarted by
        // the next `open`
        self.decoder
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run `work` on the decoder, on its rayon pool with the interpreter released; a column's
    /// error named as [`PyParquetDecoder::column_error`] names it.
    fn on_pool<T: Send>(
        &mut self,
        py: Python<'_>,
        work: impl FnOnce(&mut Decoder) -> Result<T, ColumnError> + Send,
    ) -> PyResult<T> {
        let pool = &self.pool;
        let decoder = self
            .decoder
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = detached_core(py, || Ok(pool.install(|| work(decoder))))?;
        result.map_err(|e| self.column_error(e).into())
    }

    fn column_error(&mut self, err: ColumnError) -> CoreError {
        let column = self
            .decoder()
            .columns()
            .get(err.column)
            .map_or_else(String::new, |(name, _)| name.clone());
        let (unsupported, message) = match err.error {
            DecodeError::Unsupported(m) => (true, m),
            DecodeError::Corrupt(m) => (false, m),
        };
        CoreError::Parquet {
            column,
            unsupported,
            message,
        }
    }
}

#[pymethods]
impl PyParquetDecoder {
    /// `names`: the needed columns; `widths`: 0 to read a column as text (ids into the run's
    /// dictionary), 4 or 8 as fixed-width values of that many bytes.
    #[new]
    #[pyo3(signature = (names, widths, n_threads=None))]
    fn new(names: Vec<String>, widths: Vec<usize>, n_threads: Option<usize>) -> PyResult<Self> {
        guard(|| {
            if names.len() != widths.len() {
                return Err(CoreError::Shape("one width a column".into()).into());
            }
            let columns = names
                .into_iter()
                .zip(widths)
                .map(|(n, w)| (n, if w == 0 { Kind::Text } else { Kind::Fixed(w) }))
                .collect();
            Ok(PyParquetDecoder {
                decoder: std::sync::Mutex::new(Decoder::new(columns)),
                pool: build_pool(default_threads(n_threads))?,
            })
        })
    }

    /// Parse a file's footer (its bytes before the last eight): one entry a row group.
    fn open(&mut self, py: Python<'_>, footer: &[u8]) -> PyResult<Vec<RowGroupParts>> {
        guard(|| {
            let decoder = self.decoder();
            let plan = detached_core(py, || {
                decoder
                    .open(footer)
                    .map(|layout| {
                        layout
                            .row_groups
                            .iter()
                            .map(|rg| {
                                let chunks = rg
                                    .chunks
                                    .iter()
                                    .map(|c| {
                                        let why = c.unsupported.clone();
                                        (
                                            c.start,
                                            c.len,
                                            why,
                                            c.dictionary_only as u8,
                                            c.nulls,
                                            c.range,
                                        )
                                    })
                                    .collect();
                                (rg.num_rows, chunks)
                            })
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| CoreError::Parquet {
                        column: String::new(),
                        unsupported: matches!(e, DecodeError::Unsupported(_)),
                        message: format!("the footer: {e}"),
                    })
            })?;
            Ok(plan)
        })
    }

    /// Start row group `row_group` of the open file with its needed chunks' bytes: `bytes`
    /// objects, decoded where they are (immutable, so held without the interpreter and
    /// without a copy: copying each row group's chunks was 2.5% of a run's CPU and a second
    /// row group's worth of memory; a `bytearray` is copied), or for a chunk too big to read
    /// whole, a function `read(offset, length) -> bytes` giving its bytes from `offset`
    /// (counted from the chunk's start), called as its pages are decoded, `window` bytes at
    /// least at a time.
    #[pyo3(signature = (row_group, chunks, window=4 << 20))]
    fn start(
        &mut self,
        py: Python<'_>,
        row_group: usize,
        chunks: Vec<Bound<'_, PyAny>>,
        window: usize,
    ) -> PyResult<()> {
        guard(|| {
            let owned = chunks
                .into_iter()
                .map(|c| chunk_source(c, window))
                .collect::<PyResult<Vec<_>>>()?;
            let decoder = self.decoder();
            let result = detached_core(py, || Ok(decoder.start(row_group, owned)))?;
            result.map_err(|e| self.column_error(e).into())
        })
    }

    /// Decode up to `max_rows` more rows of the row group, the columns in parallel: `None` at
    /// its end, else `(rows, [(values, validity or None)])`, values as little-endian bytes
    /// (`i32` run ids for text columns).
    fn next<'py>(
        &mut self,
        py: Python<'py>,
        max_rows: usize,
    ) -> PyResult<Option<(usize, Vec<ColumnParts<'py>>)>> {
        guard(|| {
            let n = self.on_pool(py, |decoder| decoder.next(max_rows))?;
            if n == 0 {
                return Ok(None);
            }
            let decoder = self.decoder();
            let pool = Arc::clone(decoder.pool());
            let mut columns = Vec::new();
            for out in decoder.take() {
                let validity = if out.nulls > 0 {
                    Some(pooled_array(py, out.validity, &pool)?)
                } else {
                    pool.give(out.validity);
                    None
                };
                columns.push((pooled_array(py, out.values, &pool)?, validity));
            }
            Ok(Some((n, columns)))
        })
    }

    /// Read the dictionary pages of the started row group's chunks (the columns in parallel,
    /// the interpreter released), so that `dictionary` gives them before any row is decoded.
    fn load_dictionaries(&mut self, py: Python<'_>) -> PyResult<()> {
        guard(|| self.on_pool(py, Decoder::load_dictionaries))
    }

    /// The started row group's chunks, taken out to be counted (`Aggregator.submit_row_group`)
    /// while the decoder goes on to the next row group.
    fn take_row_group(&mut self) -> PyResult<PyRowGroup> {
        guard(|| {
            let decoder = self.decoder();
            let rows = usize::try_from(decoder.rows_left()).unwrap_or(usize::MAX);
            let cursors = decoder.take_cursors();
            Ok(PyRowGroup {
                cursors: std::sync::Mutex::new(Some((cursors, rows))),
            })
        })
    }

    /// Entries in the row group's dictionary of text column `column`.
    fn dictionary_len(&mut self, column: usize) -> PyResult<usize> {
        guard(|| {
            Ok(self
                .decoder()
                .dictionary(column)
                .map_or(0, |(offsets, _)| offsets.len().saturating_sub(1)))
        })
    }

    /// The row group's dictionary of text column `column`: `(offsets int32, data uint8,
    /// None)` (its values, as the rows' indices of the last batch point into them).
    fn dictionary<'py>(
        &mut self,
        py: Python<'py>,
        column: usize,
    ) -> PyResult<DictionaryParts<'py>> {
        guard(|| {
            let (offsets, data) = self
                .decoder()
                .dictionary(column)
                .ok_or_else(|| CoreError::Shape(format!("column {column} is not text")))?;
            Ok((
                PyArray1::from_slice(py, offsets),
                PyArray1::from_slice(py, data),
                None,
            ))
        })
    }
}
