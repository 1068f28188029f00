//! Code generated from `proto/` by build.rs.
#![allow(clippy::all, missing_docs)]

pub mod tally {
    pub mod v1 {
        tonic::include_proto!("tally.v1");
    }
}

/// Every file our services use (google.rpc and google.protobuf included),
/// for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tally_descriptor.bin"));
