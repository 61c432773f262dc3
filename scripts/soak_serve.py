#!/usr/bin/env python3
"""Soak of `wasmesh serve` (run by `scripts/soak.sh --serve [MINUTES]`).

Starts `wasmesh demo --keep --no-tour` (the five-filter chain of
examples/demo/serve.yaml with its embedded identity provider and echo
upstreams) on loopback ports of its own, then sends a fixed mix of requests
at a moderate, paced rate for MINUTES minutes from a few keep-alive client
connections, and checks:

* every response has the status its kind must get (valid token 200, beta
  user routed, admin path allowed/denied by group, missing and tampered
  tokens 401, `x-chaos: abort` 503 from the fault filter, `/healthz` without
  a token 200); a connection error or any other status is an error;
* `wasmesh.wasm_failed_streams` stays 0 (no plugin trapped);
* the server's RSS is flat: sampled every SAMPLE seconds, it may not grow
  by more than RSS_SLACK_MIB between the first sample after warm-up (1 min)
  and the end.

Environment: SOAK_RPS (default 200 requests/s in total), SOAK_CLIENTS (8),
SOAK_SAMPLE (30 s), SOAK_RSS_SLACK_MIB (16), SOAK_CONFIG (default
examples/demo/serve.yaml), SOAK_BASE_PORT (18300).

Usage: soak_serve.py WASMESH_BINARY MINUTES
"""

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/host/wasmesh"
MINUTES = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
RPS = float(os.environ.get("SOAK_RPS", "200"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "8"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE", "30"))
RSS_SLACK = int(os.environ.get("SOAK_RSS_SLACK_MIB", "16")) << 20
CONFIG = os.environ.get("SOAK_CONFIG", "examples/demo/serve.yaml")
BASE = int(os.environ.get("SOAK_BASE_PORT", "18300"))
LISTEN, ADMIN, IDP, V1, V2 = BASE, BASE + 1, BASE + 2, BASE + 3, BASE + 4


def rewrite_config(src):
    text = open(src).read()
    text = re.sub(r"(?m)^listen: .*$", f"listen: 127.0.0.1:{LISTEN}", text)
    text = re.sub(r"(?m)^admin: .*$", f"admin: 127.0.0.1:{ADMIN}", text)
    text = re.sub(r"(?m)^access_log: .*$", "access_log: off", text)
    text = text.replace("127.0.0.1:18001", f"127.0.0.1:{V1}")
    text = text.replace("127.0.0.1:18002", f"127.0.0.1:{V2}")
    text = text.replace("127.0.0.1:18080", f"127.0.0.1:{IDP}")
    # Relative artifact paths and the like resolve against the original's directory.
    fd, path = tempfile.mkstemp(suffix=".yaml", dir=os.path.dirname(os.path.abspath(src)))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def get(port, path, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_port(port, proc, secs=120):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode} while starting")
        try:
            get(port, "/", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"nothing listening on 127.0.0.1:{port}")


def rss(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def stat(name):
    try:
        status, body = get(ADMIN, "/stats?format=json", timeout=5)
    except OSError:
        return None
    if status != 200:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    for s in doc.get("stats", []):
        if s.get("name") == name:
            return s.get("value")
    return None


def tamper(token):
    """Alice's token with `groups` changed to admin, signature kept."""
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["groups"] = ["admin"]
    p2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{h}.{p2}.{s}"


def main():
    config = rewrite_config(CONFIG)
    cmd = [BIN, "demo", "--keep", "--no-tour", "--config", config]
    if os.environ.get("WASMESH_WASM_DIR"):
        cmd += ["--wasm-dir", os.environ["WASMESH_WASM_DIR"]]
    # stderr to a file: a pipe nobody reads would fill and stall the server.
    err_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_file)
    errors_log = []
    try:
        wait_port(LISTEN, proc)
        wait_port(IDP, proc)
        tokens = {}
        for user in ("alice", "bob", "carol"):
            st, body = get(IDP, f"/token/{user}")
            if st != 200:
                sys.exit(f"no demo token for {user}: {st}")
            tokens[user] = body.decode().strip()
        bearer = lambda t: {"authorization": f"Bearer {t}"}
        # (name, path, headers, expected statuses), cycled through in order.
        kinds = [
            ("alice reads", "/reviews/1", bearer(tokens["alice"]), {200}),
            ("bob (beta) reads", "/reviews/2", bearer(tokens["bob"]), {200}),
            ("carol (admin) on /admin", "/admin/stats", bearer(tokens["carol"]), {200}),
            ("alice on /admin", "/admin/stats", bearer(tokens["alice"]), {403}),
            ("no token", "/reviews/1", {}, {401}),
            ("tampered token", "/admin/stats", bearer(tamper(tokens["alice"])), {401}),
            ("health without token", "/healthz", {}, {200}),
            ("alice reads", "/reviews/3?page=2", bearer(tokens["alice"]), {200}),
            ("x-beta header", "/reviews/4", dict(bearer(tokens["carol"]), **{"x-beta": "true"}), {200}),
            ("chaos abort", "/reviews/5", dict(bearer(tokens["alice"]), **{"x-chaos": "abort"}), {503}),
        ]
        counts = {k[0]: 0 for k in kinds}
        statuses = {}
        errors = [0]
        lock = threading.Lock()
        stop = threading.Event()
        interval = CLIENTS / RPS

        def client(idx):
            conn = None
            i = idx
            next_at = time.time()
            while not stop.is_set():
                name, path, headers, want = kinds[i % len(kinds)]
                i += CLIENTS
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", LISTEN, timeout=10)
                    conn.request("GET", path, headers=headers)
                    r = conn.getresponse()
                    r.read()
                    st = r.status
                    if r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as e:
                    st = None
                    if conn is not None:
                        conn.close()
                    conn = None
                    msg = f"{name}: {type(e).__name__}: {e}"
                with lock:
                    counts[name] += 1
                    statuses[st] = statuses.get(st, 0) + 1
                    if st not in want:
                        errors[0] += 1
                        if len(errors_log) < 20:
                            errors_log.append(msg if st is None else f"{name}: status {st}, expected {sorted(want)}")
                next_at += interval
                delay = next_at - time.time()
                if delay > 0:
                    stop.wait(delay)
                elif delay < -1:
                    next_at = time.time()  # fell behind: do not burst
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        start = time.time()
        for t in threads:
            t.start()
        samples = []
        end = start + MINUTES * 60
        print(f"soak serve: {MINUTES:g} min at {RPS:g} requests/s from {CLIENTS} connections, "
              f"sampling every {SAMPLE:g} s (pid {proc.pid})", flush=True)
        while True:
            now = time.time()
            if proc.poll() is not None:
                errors[0] += 1
                errors_log.append(f"the server exited with {proc.returncode}")
                break
            with lock:
                total = sum(counts.values())
                errs = errors[0]
            failed = stat("wasmesh.wasm_failed_streams")
            s = (now - start, total, errs, rss(proc.pid), failed)
            samples.append(s)
            print(f"  {s[0]:6.0f} s  {total:>8} requests  {errs} errors  rss {s[3] / 1048576:7.1f} MiB"
                  f"  wasm_failed_streams {failed}", flush=True)
            if now >= end:
                break
            time.sleep(min(SAMPLE, max(0.0, end - time.time())))
        stop.set()
        for t in threads:
            t.join(15)
        elapsed = time.time() - start
        total = sum(counts.values())
        print(f"soak serve: {total} requests in {elapsed:.0f} s ({total / elapsed:.0f}/s), "
              f"{errors[0]} errors, statuses {dict(sorted(statuses.items(), key=lambda kv: str(kv[0])))}")
        warm = next((s for s in samples if s[0] >= 60), samples[0])
        last = samples[-1]
        growth = last[3] - warm[3]
        print(f"rss after warm-up {warm[3] / 1048576:.1f} MiB at {warm[0]:.0f} s, "
              f"at the end {last[3] / 1048576:.1f} MiB ({growth / 1024:+.0f} KiB)")
        ok = True
        if errors[0]:
            ok = False
            print("errors:\n  " + "\n  ".join(errors_log))
        if last[4] not in (0, None):
            ok = False
            print(f"wasmesh.wasm_failed_streams is {last[4]}")
        if last[4] is None:
            ok = False
            print("could not read /stats from the admin listener")
        if growth >= RSS_SLACK:
            ok = False
            print(f"RSS grew by {growth / 1048576:.1f} MiB (bound {RSS_SLACK >> 20} MiB)")
        print("soak serve: PASS" if ok else "soak serve: FAIL")
        return 0 if ok else 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        err_file.seek(0)
        err = err_file.read().decode(errors="replace")
        if err.strip():
            tail = "\n".join(err.strip().splitlines()[-15:])
            print(f"server stderr (last lines):\n{tail}")
        os.unlink(config)


if __name__ == "__main__":
    sys.exit(main())
