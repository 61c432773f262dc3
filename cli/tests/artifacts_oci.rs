//! `wasmesh package` against real OCI tools: the layouts of the five
//! filters are reproducible, `skopeo` reads them, and a registry started on
//! loopback serves them back with the digest that goes into
//! `WasmPlugin.sha256`.
//!
//! The tools come from Debian's packages (`skopeo`, `docker-registry`),
//! installed by `scripts/test-tools.sh` (the test command runs it before the
//! tests). A missing tool fails the test with a message naming that script:
//! nothing is skipped and nothing is installed from here.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmesh::scenario::{default_wasm_dir, ensure_artifacts};
use wasmesh_cli::package::{build_image, package, LayoutImage, FILTERS};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wasmesh-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn has_tool(t: &str) -> bool {
    Command::new(t)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Fails the test, naming the script that installs it, when `tool` is missing.
fn require_tool(tool: &str) {
    assert!(
        has_tool(tool),
        "`{tool}` is required by this test and is not installed: run `bash scripts/test-tools.sh` \
         (the test command runs it before the tests)"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wasm_of(artifact: &str) -> PathBuf {
    default_wasm_dir().join(format!("{artifact}.wasm"))
}

#[test]
fn layouts_are_reproducible_and_skopeo_reads_them() {
    ensure_artifacts().expect("artifacts");
    require_tool("skopeo");
    let tmp = TempDir::new("oci-layout");
    for f in FILTERS {
        let wasm = wasm_of(f.artifact);
        let bytes = std::fs::read(&wasm).expect("wasm");
        let a = package(
            *f,
            Some(&wasm),
            Some(&tmp.0.join("a").join(f.artifact)),
            "0.1.0",
        )
        .expect("package");
        let b = package(
            *f,
            Some(&wasm),
            Some(&tmp.0.join("b").join(f.artifact)),
            "0.1.0",
        )
        .expect("package");
        // Same input, same bytes in every file of the layout.
        for rel in [
            "oci-layout".to_string(),
            "index.json".to_string(),
            format!("blobs/sha256/{}", a.image.digest_hex()),
        ] {
            assert_eq!(
                std::fs::read(a.out.join(&rel)).unwrap(),
                std::fs::read(b.out.join(&rel)).unwrap(),
                "{}: {rel} differs between two runs",
                f.artifact
            );
        }
        assert_eq!(a.image.digest(), b.image.digest());
        assert_eq!(
            a.image.digest(),
            build_image(f.artifact, &bytes, "0.1.0").unwrap().digest()
        );
        // Read back with Istio's extraction rules.
        let back = LayoutImage::open(&a.out, Some("0.1.0")).expect("layout");
        assert_eq!(back.digest(), a.image.digest());
        assert_eq!(back.plugin_wasm().expect("plugin.wasm"), bytes);

        // A real OCI tool agrees on the digest, the manifest and the layer.
        let dir = a.out.display().to_string();
        let inspect: serde_json::Value = serde_json::from_str(&run(
            Command::new("skopeo").args(["inspect", &format!("oci:{dir}:0.1.0")])
        ))
        .expect("skopeo inspect json");
        assert_eq!(inspect["Digest"], a.image.digest(), "{}", f.artifact);
        assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));
        let raw =
            run(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{dir}:0.1.0")]));
        assert_eq!(raw.as_bytes(), a.image.manifest.as_slice());
        let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            m["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(m["annotations"]["module.wasm.image/variant"], "compat");
        // skopeo can copy it (it verifies every blob against its digest).
        std::fs::create_dir_all(tmp.0.join("copy")).unwrap();
        run(Command::new("skopeo").args([
            "copy",
            "-q",
            &format!("oci:{dir}:0.1.0"),
            &format!("oci:{}:copy", tmp.0.join("copy").join(f.artifact).display()),
        ]));
        let copy = LayoutImage::open(&tmp.0.join("copy").join(f.artifact), Some("copy")).unwrap();
        assert_eq!(copy.digest(), a.image.digest());
    }
}

/// The registry process, stopped when dropped.
struct Registry {
    child: Child,
    addr: String,
    _dir: TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_registry() -> Registry {
    let dir = TempDir::new("registry");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.0.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.0.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let reg = Registry {
        child,
        addr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((status, _, _)) = http_get(&reg.addr, "/v2/", "*/*") {
            if status == 200 {
                return reg;
            }
        }
        assert!(
            Instant::now() < deadline,
            "registry did not come up on {}",
            reg.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Status, headers (lower-case names) and body of an HTTP response.
type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// A plain HTTP/1.1 GET on loopback.
fn http_get(addr: &str, path: &str, accept: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, buf[split + 4..].to_vec()))
}

#[test]
fn push_to_a_loopback_registry_and_pull_back() {
    ensure_artifacts().expect("artifacts");
    require_tool("skopeo");
    require_tool("docker-registry");
    let reg = start_registry();
    let tmp = TempDir::new("oci-push");
    for f in FILTERS {
        let wasm = wasm_of(f.artifact);
        let bytes = std::fs::read(&wasm).unwrap();
        let p = package(*f, Some(&wasm), Some(&tmp.0.join(f.artifact)), "0.1.0").unwrap();
        let remote = format!("{}/wasmesh/{}:0.1.0", reg.addr, f.crate_name);
        run(Command::new("skopeo").args([
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}:0.1.0", p.out.display()),
            &format!("docker://{remote}"),
        ]));
        // What Istio's fetcher sees: the registry's manifest and its digest.
        let (status, headers, body) = http_get(
            &reg.addr,
            &format!("/v2/wasmesh/{}/manifests/0.1.0", f.crate_name),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .expect("GET manifest");
        assert_eq!(status, 200);
        let served_digest = headers
            .iter()
            .find(|(k, _)| k == "docker-content-digest")
            .map(|(_, v)| v.clone());
        assert_eq!(served_digest.as_deref(), Some(p.image.digest().as_str()));
        assert_eq!(
            body, p.image.manifest,
            "the registry serves our manifest bytes"
        );
        assert_eq!(
            wasmesh_cli::package::sha256_hex(&body),
            p.image.digest_hex(),
            "WasmPlugin.sha256 is the digest Istio computes from the pulled manifest"
        );
        let inspect: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{remote}"),
        ])))
        .unwrap();
        assert_eq!(inspect["Digest"], p.image.digest());
        // Pull it back and take plugin.wasm out as Istio does.
        let pulled = tmp.0.join("pulled").join(f.artifact);
        std::fs::create_dir_all(&pulled).unwrap();
        run(Command::new("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{remote}"),
            &format!("oci:{}:0.1.0", pulled.display()),
        ]));
        let back = LayoutImage::open(&pulled, Some("0.1.0")).unwrap();
        assert_eq!(back.digest(), p.image.digest());
        assert_eq!(back.plugin_wasm().unwrap(), bytes);
    }
    // By digest too (a WasmPlugin url may pin `@sha256:...`).
    let p = LayoutImage::open(&tmp.0.join("rbac"), Some("0.1.0")).unwrap();
    let (status, _, body) = http_get(
        &reg.addr,
        &format!("/v2/wasmesh/rbac/manifests/{}", p.digest()),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, p.manifest);
    drop(reg);
}
