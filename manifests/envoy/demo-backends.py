#!/usr/bin/env python3
"""Demo upstreams for manifests/envoy/envoy.yaml (Python 3 standard library only).

Serves, on 127.0.0.1:
  8081, 8082, 8083  reviews-v1, reviews-v2, reviews-v3: every request gets a
                    JSON echo naming the version, the path and the headers the
                    gateway added (x-user, x-tenant, x-variant);
  8090              the demo identity provider: /.well-known/jwks.json from
                    manifests/envoy/demo-idp/ (the public key of the demo
                    tokens alice.jwt, bob.jwt, expired.jwt in that directory).

Ports can be moved: --v1 PORT --v2 PORT --v3 PORT --idp PORT. Stops on
Ctrl-C or SIGTERM.
"""

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
JWKS = os.path.join(HERE, "demo-idp", ".well-known", "jwks.json")
ECHOED = ("x-user", "x-tenant", "x-variant", "x-wasmesh-cluster", "x-request-id")


def backend(version):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self):
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            body = json.dumps({
                "service": "reviews-" + version,
                "method": self.command,
                "path": self.path,
                "headers": {h: self.headers[h] for h in ECHOED if self.headers.get(h) is not None},
            }).encode() + b"\n"
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer

        def log_message(self, *args):
            pass

    return Handler


class IdpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.split("?")[0] == "/.well-known/jwks.json":
            with open(JWKS, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("content-type", "application/json")
        else:
            body = b"not found\n"
            self.send_response(404)
            self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--v1", type=int, default=8081)
    p.add_argument("--v2", type=int, default=8082)
    p.add_argument("--v3", type=int, default=8083)
    p.add_argument("--idp", type=int, default=8090)
    a = p.parse_args()
    servers = [ThreadingHTTPServer(("127.0.0.1", a.v1), backend("v1")),
               ThreadingHTTPServer(("127.0.0.1", a.v2), backend("v2")),
               ThreadingHTTPServer(("127.0.0.1", a.v3), backend("v3")),
               ThreadingHTTPServer(("127.0.0.1", a.idp), IdpHandler)]
    for s in servers:
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("reviews-v1 :%d  reviews-v2 :%d  reviews-v3 :%d  idp :%d" % (a.v1, a.v2, a.v3, a.idp), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    for s in servers:
        s.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
