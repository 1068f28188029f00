pub mod proto;
pub mod domain;
pub mod embedded_pg;
pub mod error;
pub mod storage;
