//! Keeps the checked-in generated code in `src/pb/` in sync with `proto/`.
//!
//! The test compiles `proto/` with `protox` (pure Rust, no `protoc`), runs
//! `tonic-prost-build` into a temporary directory and compares the result with
//! `src/pb/<package>.rs`. To regenerate after changing `proto/` (or after
//! upgrading prost/tonic), run:
//!
//! ```sh
//! TEST_ETCD_REGENERATE=1 cargo test --test codegen
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Proto files to compile, relative to `proto/` (the include root).
const PROTOS: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
    "grpc/health/v1/health.proto",
];

/// Environment variable that switches the test from "check" to "write".
const REGENERATE_VAR: &str = "TEST_ETCD_REGENERATE";

/// A fresh, unique scratch directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("test-etcd-codegen-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("create scratch dir");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The descriptor set the JSON gateway reads at run time, next to the generated code.
const DESCRIPTOR: &str = "descriptor.bin";

/// Runs the code generator and returns `file name -> contents`, and the encoded descriptor
/// set (without source info: the gateway needs names and types only).
fn generate(proto_root: &Path) -> (BTreeMap<String, String>, Vec<u8>) {
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| proto_root.join(p)).collect();
    let fds = protox::compile(&files, [proto_root]).unwrap_or_else(|e| panic!("protox: {e:?}"));
    let mut bare = fds.clone();
    for file in &mut bare.file {
        file.source_code_info = None;
    }
    let descriptor = prost::Message::encode_to_vec(&bare);

    let out = ScratchDir::new();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // No `connect()` helpers: they would tie the generated code to tonic's transport.
        .build_transport(false)
        .emit_rerun_if_changed(false)
        // A stored pair's key and value are shared, not copied, into every answer that
        // returns them (a range, a watch event, a prev_kv).
        .bytes(".mvccpb.KeyValue")
        // prost's codec with call buffers sized for etcd's small messages (`src/pb/codec.rs`).
        .codec_path("crate::pb::codec::SmallBuffers")
        .out_dir(&out.0)
        .compile_fds(fds)
        .expect("tonic-prost-build");

    let mut generated = BTreeMap::new();
    for entry in fs::read_dir(&out.0).expect("read scratch dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).expect("read generated file");
        generated.insert(name, text);
    }
    (generated, descriptor)
}

/// Line endings may be converted by git on checkout; compare without them.
fn normalize(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// 1-based number of the first line where the two texts differ.
fn first_difference(current: &str, fresh: &str) -> usize {
    let mut old_lines = current.lines();
    let mut new_lines = fresh.lines();
    let mut line = 1;
    loop {
        match (old_lines.next(), new_lines.next()) {
            (None, None) => return line,
            (old, new) if old != new => return line,
            _ => line += 1,
        }
    }
}

#[test]
fn generated_code_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pb_dir = root.join("src").join("pb");
    let (generated, descriptor) = generate(&root.join("proto"));

    let expected_names = [
        "authpb.rs",
        "etcdserverpb.rs",
        "grpc.health.v1.rs",
        "mvccpb.rs",
        "v3electionpb.rs",
        "v3lockpb.rs",
    ];
    let names: Vec<&str> = generated.keys().map(String::as_str).collect();
    assert_eq!(names, expected_names, "unexpected set of generated files");

    if std::env::var_os(REGENERATE_VAR).is_some_and(|v| !v.is_empty()) {
        fs::create_dir_all(&pb_dir).expect("create src/pb");
        for (name, text) in &generated {
            fs::write(pb_dir.join(name), text).expect("write generated file");
        }
        fs::write(pb_dir.join(DESCRIPTOR), &descriptor).expect("write descriptor set");
        eprintln!(
            "codegen: wrote {} files into {}",
            generated.len(),
            pb_dir.display()
        );
        return;
    }

    let mut stale = Vec::new();
    for (name, text) in &generated {
        let path = pb_dir.join(name);
        match fs::read_to_string(&path) {
            Ok(current) if normalize(&current) == normalize(text) => {}
            Ok(current) => stale.push(format!(
                "src/pb/{name} differs (first at line {})",
                first_difference(&normalize(&current), &normalize(text))
            )),
            Err(e) => stale.push(format!("src/pb/{name} cannot be read: {e}")),
        }
    }
    match fs::read(pb_dir.join(DESCRIPTOR)) {
        Ok(current) if current == descriptor => {}
        Ok(_) => stale.push(format!("src/pb/{DESCRIPTOR} differs")),
        Err(e) => stale.push(format!("src/pb/{DESCRIPTOR} cannot be read: {e}")),
    }
    assert!(
        stale.is_empty(),
        "generated code in src/pb/ is out of date with proto/:\n  {}\n\
         Rerun with {REGENERATE_VAR}=1 to regenerate:\n  \
         {REGENERATE_VAR}=1 cargo test --test codegen",
        stale.join("\n  ")
    );
}
