//! `manifests/envoy/envoy.yaml` under `wasmesh serve`: the bootstrap as it
//! is (only the demo upstreams' ports moved to free ones), real HTTP
//! requests with the demo tokens, the JWKS fetched from a real loopback
//! identity provider, and the metric labels extracted by the bootstrap's
//! `stats_tags` in `/stats/prometheus`.
//!
//! `WASMESH_BIN=path/to/wasmesh` runs it against another build (which must
//! have the `serve` subcommand: the test fails otherwise).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wasmesh::scenario::{default_wasm_dir, ensure_artifacts, workspace_root};

fn root() -> PathBuf {
    workspace_root().expect("workspace root")
}

fn wasmesh_bin() -> PathBuf {
    std::env::var_os("WASMESH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wasmesh")))
}

/// A backend's answer to (method, path, headers): status and JSON body.
type Answer = dyn Fn(&str, &str, &[(String, String)]) -> (u16, String) + Send + Sync;

/// An HTTP/1.1 server on a free loopback port answering every request with
/// `answer(method, path, headers)`; one thread per connection.
fn backend<F>(answer: F) -> u16
where
    F: Fn(&str, &str, &[(String, String)]) -> (u16, String) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let _ = serve_connection(conn, &*answer);
            });
        }
    });
    port
}

fn serve_connection(conn: TcpStream, answer: &Answer) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (status, text) = answer(&method, &path, &headers);
        write!(
            conn,
            "HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )?;
    }
}

/// The demo reviews service: echoes its version, the path and the headers
/// the gateway adds.
fn reviews(version: &'static str) -> u16 {
    backend(move |method, path, headers| {
        let h = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let echo = serde_json::json!({
            "service": format!("reviews-{version}"),
            "method": method,
            "path": path,
            "x-user": h("x-user"),
            "x-tenant": h("x-tenant"),
            "x-variant": h("x-variant"),
            "authorization": h("authorization"),
        });
        (200, echo.to_string())
    })
}

struct Response {
    status: u16,
    body: String,
}

/// One request on its own connection (`connection: close`).
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to wasmesh serve");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: api.example.com\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("content-length: 2\r\n\r\n{}");
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response { status, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn token(name: &str) -> String {
    let path = root().join(format!("manifests/envoy/demo-idp/{name}.jwt"));
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn the_envoy_bootstrap_runs_under_wasmesh_serve() {
    let bin = wasmesh_bin();
    let help = Command::new(&bin)
        .args(["serve", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        help.status.success(),
        "{} has no working `serve` subcommand (`serve --help` failed), so \
         manifests/envoy/envoy.yaml cannot be run:\n{}",
        bin.display(),
        String::from_utf8_lossy(&help.stderr)
    );
    ensure_artifacts().expect("artifacts");

    let jwks =
        std::fs::read_to_string(root().join("manifests/envoy/demo-idp/.well-known/jwks.json"))
            .unwrap();
    let idp = backend(move |_, path, _| {
        if path == "/.well-known/jwks.json" {
            (200, jwks.clone())
        } else {
            (404, "{}".into())
        }
    });
    let (v1, v2, v3) = (reviews("v1"), reviews("v2"), reviews("v3"));

    // The bootstrap as written, with the demo ports moved to free ones.
    let text = std::fs::read_to_string(root().join("manifests/envoy/envoy.yaml")).unwrap();
    let mut moved = text.clone();
    for (from, to) in [(8081, v1), (8082, v2), (8083, v3), (8090, idp)] {
        let before = moved.clone();
        moved = moved
            .replace(
                &format!("port_value: {from}}}"),
                &format!("port_value: {to}}}"),
            )
            .replace(&format!("127.0.0.1:{from}/"), &format!("127.0.0.1:{to}/"));
        assert_ne!(before, moved, "port {from} is not in envoy.yaml any more");
    }
    let dir = std::env::temp_dir().join(format!("wasmesh-envoy-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, &moved).unwrap();

    // From the repository root, like `envoy -c manifests/envoy/envoy.yaml`
    // (the code filenames are relative to it).
    let mut child = Command::new(&bin)
        .current_dir(root())
        .arg("serve")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--wasm-dir")
        .arg(default_wasm_dir())
        .args(["--access-log", "off", "--workers", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // serve logs to stderr, the "listening on" line included; the access log is off.
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(line.clone());
            }
            log2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let started = Instant::now();
    let line = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(l) => l,
        Err(_) => {
            drop(server);
            panic!(
                "wasmesh serve did not start within {:?}:\n{}",
                started.elapsed(),
                log.lock().unwrap()
            );
        }
    };
    let addrs: Vec<&str> = line
        .split("http://")
        .skip(1)
        .map(|s| s.split([' ', ',', ')']).next().unwrap())
        .collect();
    let (api, admin) = (addrs[0].to_string(), addrs[1].to_string());

    // The config dump has no warnings: the bootstrap is inside what serve reads.
    let dump = request(&admin, "GET", "/config_dump", &[]);
    assert_eq!(dump.status, 200);
    let dump: serde_json::Value = serde_json::from_str(&dump.body).expect("config_dump is JSON");
    // (A build elsewhere than `target/` may make serve take the modules from
    // --wasm-dir, with a warning; nothing else may be ignored.)
    let warnings: Vec<String> = dump["warnings"]
        .as_array()
        .expect("config_dump.warnings")
        .iter()
        .map(|w| w.as_str().unwrap_or_default().to_string())
        .filter(|w| !w.contains("does not exist here; using"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");

    let alice = format!("Bearer {}", token("alice"));
    let bob = format!("Bearer {}", token("bob"));

    let r = request(&api, "GET", "/api/reviews/1", &[]);
    assert_eq!((r.status, r.body.as_str()), (401, "Jwt is missing"));
    let expired = format!("Bearer {}", token("expired"));
    let r = request(
        &api,
        "GET",
        "/api/reviews/1",
        &[("authorization", &expired)],
    );
    assert_eq!((r.status, r.body.as_str()), (401, "Jwt is expired"));

    // alice: a reader on the 90/10 canary, always the same version.
    let r = request(&api, "GET", "/api/reviews/1", &[("authorization", &alice)]);
    assert_eq!(r.status, 200, "{}", r.body);
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let version = echo["service"].as_str().unwrap().to_string();
    assert!(version == "reviews-v1" || version == "reviews-v2", "{echo}");
    assert_eq!(echo["x-user"], "alice");
    assert_eq!(echo["x-tenant"], "acme");
    assert_eq!(echo["authorization"], "", "the token is not forwarded");
    for _ in 0..3 {
        let r = request(
            &api,
            "GET",
            "/api/reviews/2",
            &[
                ("authorization", &alice),
                ("x-wasmesh-cluster", "reviews-v3"),
            ],
        );
        let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            echo["service"],
            version.as_str(),
            "sticky, not client-chosen"
        );
    }
    let r = request(&api, "POST", "/api/reviews", &[("authorization", &alice)]);
    assert_eq!((r.status, r.body.as_str()), (403, "RBAC: access denied"));

    // bob: writer and beta tester -> reviews-v3.
    let r = request(&api, "GET", "/api/reviews/1", &[("authorization", &bob)]);
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!((r.status, &echo["service"]), (200, &"reviews-v3".into()));
    assert_eq!(echo["x-variant"], "beta");
    let r = request(&api, "POST", "/api/reviews", &[("authorization", &bob)]);
    assert_eq!(r.status, 200, "{}", r.body);

    let r = request(&api, "GET", "/admin", &[("authorization", &bob)]);
    assert_eq!(r.status, 403);
    let r = request(&api, "GET", "/v1/anything", &[]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (410, "API v1 is retired; use /api")
    );
    let r = request(&api, "GET", "/healthz", &[]);
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!((r.status, &echo["service"]), (200, &"reviews-v1".into()));
    let r = request(
        &api,
        "GET",
        "/api/reviews/1",
        &[
            ("authorization", &alice),
            ("x-envoy-fault-abort-request", "503"),
        ],
    );
    assert_eq!((r.status, r.body.as_str()), (503, "fault filter abort"));

    // The labels come out of the stat names through the bootstrap's stats_tags.
    let r = request(&admin, "GET", "/stats/prometheus", &[]);
    assert_eq!(r.status, 200);
    let line = |prefix: &str| {
        r.body
            .lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    };
    let ok = format!(
        "api_requests_total{{code=\"200\",method=\"GET\",route=\"/api/reviews/{{id}}\",tenant=\"acme\",upstream=\"{version}\"}} "
    );
    let found = line(&ok).unwrap_or_else(|| panic!("no {ok} in:\n{}", r.body));
    let count: u64 = found.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(count, 4, "{found}");
    assert!(
        line("api_requests_total{code=\"401\",method=\"GET\"").is_some(),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("istio_requests_total{") && r.body.contains("reporter=\"destination\""),
        "{}",
        r.body
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `manifests/envoy/demo-backends.py`, the upstreams the Envoy walkthrough
/// starts next to `envoy.yaml`: run with `python3` on free ports (the test
/// fails if python3 is missing: `scripts/test-tools.sh` installs it), it
/// answers as its docstring says — each reviews version echoes its name, the
/// path and the gateway's headers; the IdP serves the demo JWKS.
#[test]
fn demo_backends_py_serves_the_demo_upstreams() {
    let ports: Vec<u16> = (0..4)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port")
        })
        .collect();
    let mut child = Command::new("python3")
        .arg(root().join("manifests/envoy/demo-backends.py"))
        .args(["--v1", &ports[0].to_string(), "--v2", &ports[1].to_string()])
        .args([
            "--v3",
            &ports[2].to_string(),
            "--idp",
            &ports[3].to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python3 is required (bash scripts/test-tools.sh installs it): {e}")
        });
    // It prints one line once every server is listening: wait for that.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .expect("demo-backends.py output");
    let result = std::panic::catch_unwind(|| {
        assert!(first.starts_with("reviews-v1 :"), "{first:?}");
        for (port, version) in [(ports[0], "v1"), (ports[1], "v2"), (ports[2], "v3")] {
            let r = request(
                &format!("127.0.0.1:{port}"),
                "GET",
                "/reviews/1",
                &[("x-user", "alice"), ("x-variant", "beta")],
            );
            assert_eq!(r.status, 200);
            let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
            assert_eq!(v["service"], format!("reviews-{version}"));
            assert_eq!(v["path"], "/reviews/1");
            assert_eq!(v["headers"]["x-user"], "alice");
            assert_eq!(v["headers"]["x-variant"], "beta");
        }
        let r = request(
            &format!("127.0.0.1:{}", ports[3]),
            "GET",
            "/.well-known/jwks.json",
            &[],
        );
        assert_eq!(r.status, 200);
        let served: serde_json::Value = serde_json::from_str(&r.body).expect("jwks json");
        let file: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root().join("manifests/envoy/demo-idp/.well-known/jwks.json"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(served, file);
        let r = request(&format!("127.0.0.1:{}", ports[3]), "GET", "/other", &[]);
        assert_eq!(r.status, 404);
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
