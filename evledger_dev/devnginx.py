"""Debian's nginx serving a tiles root for tests and benchmarks, on 127.0.0.1 on a free port,
with the configuration docs/tiles.md gives operators (its `location` blocks are LOCATIONS,
word for word; a test holds the document to it). Not used by the service.

    with Nginx(tiles_root) as nginx:
        nginx.url + "/tiles/acme/checkpoint"
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

# What an operator adds to a server block, with `root` the folder that holds the tiles root
# under the name `tiles` (docs/tiles.md). Headers as `evledger serve` sends them.
LOCATIONS = r"""
    location /tiles/ {
        location ~ "/\." { return 404; }
        location ~ "/checkpoint$" {
            default_type "text/plain; charset=utf-8";
            add_header Cache-Control "public, max-age=5";
        }
        location ~ "/tile/entries/.*\.p/[0-9]+$" {
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=60";
            gzip on;
            gzip_types application/octet-stream;
        }
        location ~ "\.p/[0-9]+$" {
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=60";
        }
        location ~ "/tile/entries/" {
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=31536000, immutable";
            gzip on;
            gzip_types application/octet-stream;
        }
        location ~ "/tile/" {
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }
    }
"""

_CONFIG = """
daemon off;
{user}
worker_processes {workers};
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    types {{ }}
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    sendfile on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {www};
{locations}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, tiles_root: str | os.PathLike, workers: int = 1):
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx is not installed (Debian: apt-get install nginx-light)")
        self.run_dir = Path(tempfile.mkdtemp(prefix="evledger-nginx-"))
        www = self.run_dir / "www"
        www.mkdir()
        (www / "tiles").symlink_to(Path(tiles_root).resolve())
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = self.run_dir / "nginx.conf"
        # As root (CI), the workers would drop to "nobody" and find the tests' 0700 folders
        # closed: they keep the caller's user, as they do when nginx is started by anyone else.
        user = "user root;" if os.geteuid() == 0 else ""
        config.write_text(_CONFIG.format(user=user, workers=workers, run=self.run_dir, port=self.port, www=www,
                                         locations=LOCATIONS))
        self.process = subprocess.Popen([binary, "-c", str(config), "-p", str(self.run_dir), "-e",
                                         str(self.run_dir / "error.log")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited at start: {self.process.stderr.read().decode(errors='replace')}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (404 for /)
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("nginx did not answer within 15 s") from None
                time.sleep(0.05)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
