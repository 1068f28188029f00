//! (in progress)
use std::process::ExitCode;
pub fn main(_a: &super::ImportArgs) -> ExitCode {
    ExitCode::FAILURE
}
