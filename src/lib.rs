//! recordbridge: files clinical chat into the patient record as FHIR R4.
//!
//! See `ARCHITECTURE.md` (shared) for the pipeline. The decision core
//! ([`identify`], [`decide`], [`record`]) is pure; sources, the ledger and
//! sinks are the I/O shell.

pub mod adapt;
pub mod backoff;
pub mod config;
pub mod decide;
pub mod event;
pub mod identify;
pub mod ledger;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod review;
pub mod sink;
pub mod source;
pub mod wardgen;
