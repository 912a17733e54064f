//! Compiles the gRPC contract in `proto/ballast/v1/*.proto` with protox (pure Rust, so a
//! machine with only the Rust toolchain builds it: no system `protoc`) and hands the
//! descriptor set to tonic-prost-build for message and service code; the descriptor set is
//! also written out for the RPC fuzzer.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/ballast/v1/meta.proto",
        "proto/ballast/v1/cli.proto",
        "proto/ballast/v1/replica.proto",
    ];
    let fds = protox::compile(protos, ["proto"])?;
    // The descriptors themselves, for `ballast-bench fuzz-rpc`'s schema-aware requests.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("ballast_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    // compile_fds runs no protoc and prints no rerun hints: without these lines the
    // script would rerun after any change in the package.
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
