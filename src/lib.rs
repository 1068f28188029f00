//! Tally: one canonical transaction per order, assembled from what the
//! storefront, processor, warehouse, ERP and bank each submit, matched at
//! the transaction level so gaps surface as exceptions, not as month-end
//! surprises.
//!
//! Layout: `api` adapts gRPC (validate, call a use case, map the result);
//! `app` holds the use cases and owns transactions; `domain` is pure (money,
//! records, merging, matching); `storage` owns every SQL statement; `server`
//! wires the services together.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod embedded_pg;
pub mod error;
pub mod import;
pub mod proto;
pub mod server;
pub mod sim;
pub mod storage;
pub mod telemetry;
