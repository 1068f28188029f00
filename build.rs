//! Compiles `proto/` with protox (pure Rust), so building Tally needs no
//! `protoc` on the host.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Neither protox nor tonic-prost-build announces its inputs.
    println!("cargo:rerun-if-changed=proto");
    // `embed_migrations!` reads this folder at compile time; a new migration
    // must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    embed_migration_sql()?;

    let files = [
        "proto/tally/v1/common.proto",
        "proto/tally/v1/record.proto",
        "proto/tally/v1/transaction.proto",
        "proto/tally/v1/exception.proto",
        "proto/tally/v1/ingest_service.proto",
        "proto/tally/v1/transaction_service.proto",
        "proto/tally/v1/exception_service.proto",
        "proto/tally/v1/handoff.proto",
        "proto/tally/v1/handoff_trace.proto",
        "proto/tally/v1/handoff_service.proto",
        "proto/tally/v1/ledger_service.proto",
        "proto/tally/v1/report_service.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection serves this set; it must hold every file our services touch.
    std::fs::write(
        out.join("tally_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(fds)?;
    Ok(())
}

/// Every migration's up.sql by directory name, for running them statement
/// by statement on Citus (storage::citus): diesel keeps its copy private.
fn embed_migration_sql() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("migrations");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("up.sql").is_file())
        .collect();
    dirs.sort();
    let mut code = String::from("pub static MIGRATION_SQL: &[(&str, &str)] = &[\n");
    for d in dirs {
        let name = d
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("migration name")?;
        let up = d.join("up.sql");
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            up.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("migration_sql.rs"), code)?;
    Ok(())
}
