//! Generates the gRPC code for proto/items.proto with the protoc that ships
//! inside `protoc-bin-vendored`: no system install needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/items.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto/items.proto");
    Ok(())
}
