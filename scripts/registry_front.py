#!/usr/bin/env python3
"""The schema registry's front door on 127.0.0.1:8081 (CONTRACT: "schema registry http://127.0.0.1:8081").

Apicurio Registry serves the Confluent API under /apis/ccompat/v7, not at its root, so a Confluent client
given http://127.0.0.1:8081 (confluent-kafka's SchemaRegistryClient, a consumer decoding the topics) asked
it for /schemas/ids/1 and got 404. This forwards every request to Apicurio on an internal port, with the
Confluent API's root paths (/subjects, /schemas, /config, /compatibility, /mode, /contexts) moved under
/apis/ccompat/v7; every other path (including /apis/...) passes as it is. Standard library only; one
thread per connection; the registry is asked at start-up, not per record.

usage: registry_front.py LISTEN_PORT UPSTREAM_PORT
"""

import http.client
import http.server
import sys

CCOMPAT = "/apis/ccompat/v7"
CONFLUENT_ROOTS = {"subjects", "schemas", "config", "compatibility", "mode", "contexts"}
# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's own, never forwarded.
HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


def upstream_path(path: str) -> str:
    first = path.split("?", 1)[0].split("/")
    return CCOMPAT + path if len(first) > 1 and first[1] in CONFLUENT_ROOTS else path


class Front(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream_port = 0

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def forward(self):
        body = self.body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP | {"content-length", "host"}}
        headers["Host"] = f"127.0.0.1:{self.upstream_port}"
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            conn.request(self.command, upstream_path(self.path), body=body if body else None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, reason, resp_headers = resp.status, resp.reason, resp.getheaders()
        except OSError as e:
            data = f'{{"error_code": 50300, "message": "schema registry unavailable: {type(e).__name__}"}}'.encode()
            status, reason, resp_headers = 503, "Service Unavailable", [("Content-Type", "application/json")]
        finally:
            conn.close()
        self.send_response(status, reason)
        for k, v in resp_headers:
            if k.lower() not in HOP | {"content-length"}:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = forward


def main():
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    Front.upstream_port = upstream
    server = http.server.ThreadingHTTPServer(("127.0.0.1", listen), Front)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
