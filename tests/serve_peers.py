"""Real peers for the `radz serve` tests: Orthanc (a PACS) and `radz serve` itself, each run as
its own process on loopback with its own ports and folders, stopped by pid.

Orthanc is the Debian package's /usr/sbin/Orthanc; DCMTK's echoscu/storescu are used directly
by the tests. Tests skip (with the reason) where these programs are not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ORTHANC = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
DCMTK = shutil.which("storescu") is not None and shutil.which("echoscu") is not None

ROUTE_RADIOGRAPHS_LUA = """
-- Route every radiograph that arrives (not the SRs that come back) to radz.
function OnStoredInstance(instanceId, tags, metadata, origin)
  local modality = tags['Modality']
  if (modality == 'CR' or modality == 'DX') and origin['RequestOrigin'] ~= 'Lua' then
    SendToModality(instanceId, 'radz')
  end
end
"""


def phantom_dicoms(folder: Path, n: int, seed: int, size: int = 96) -> list[str]:
    """n phantom radiographs (CR and DX of the three sites) written as DICOM files in folder."""
    from radz_train.data.dicom_out import write_case
    from radz_train.data.phantom import generate_cases

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_case(case, folder / f"{case.index:05d}.dcm")
        for case in generate_cases(n, seed=seed, sites=("site_a", "site_b", "site_c"), size=size)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


class Orthanc:
    """An Orthanc process with its own config, storage and ports; `radz` is a known modality."""

    def __init__(
        self,
        folder: Path,
        radz_port: int | None = None,
        route_radiographs: bool = False,
        ae_title: str = "ORTHANC",
        dicom_port: int | None = None,
    ) -> None:
        if ORTHANC is None:
            raise RuntimeError("Orthanc is not installed (apt install orthanc)")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ae_title = ae_title
        self.dicom_port, self.http_port = dicom_port or free_port(), free_port()
        config = {
            "Name": "radz-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomModalities": {},
            "Plugins": [],
            "SaveJobs": False,
            "StableAge": 1,
            "ConcurrentJobs": 4,
            "DicomScuTimeout": 30,
            "LimitJobs": 10000,
        }
        if radz_port is not None:
            config["DicomModalities"]["radz"] = ["RADZ", "127.0.0.1", radz_port]
        if route_radiographs:
            lua = self.folder / "route.lua"
            lua.write_text(ROUTE_RADIOGRAPHS_LUA)
            config["LuaScripts"] = [str(lua)]
        (self.folder / "orthanc.json").write_text(json.dumps(config, indent=2))
        self.log = (self.folder / "orthanc.log").open("wb")
        self.process = subprocess.Popen(
            [ORTHANC, str(self.folder / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for(self._up, 60, "Orthanc's REST API")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {self.process.returncode}: see {self.folder / 'orthanc.log'}")
        try:
            self.get("/system")
            return True
        except OSError:
            return False

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def post(self, path: str, payload) -> object:
        data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def instances(self, modality: str) -> list[str]:
        return self.post("/tools/find", {"Level": "Instance", "Query": {"Modality": modality}})

    def file(self, instance_id: str) -> bytes:
        return self.get(f"/instances/{instance_id}/file")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


class RadzServe:
    """`radz serve` as a separate process (so a test can SIGKILL it), ready when it says so."""

    def __init__(
        self,
        work_dir: Path,
        port: int | None = None,
        forward: str | None = None,
        extra: list[str] | None = None,
        env: dict | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.http_port = free_port()
        self.args = [
            sys.executable,
            "-m",
            "radz_engine.cli",
            "serve",
            "--work-dir",
            str(self.work_dir),
            "--port",
            str(self.port),
            "--http-port",
            str(self.http_port),
            "--threads",
            "1",
            "--research-use",  # the shipped bundle is research use (its model card)
        ]
        if forward:
            self.args += ["--forward", forward]
        self.args += list(extra or [])
        self.env = {**os.environ, **(env or {})}
        self.start()

    def start(self) -> None:
        self.log_path = self.work_dir / "serve.log"
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0  # a restart appends
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        wait_for(self._ready, 120, "radz serve to listen")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"radz serve exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
        return b"listening on" in self.log_path.read_bytes()[self._log_start :]

    def log_text(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def health(self) -> dict:
        """/healthz's JSON, whether it answered 200 (ok) or 503 (degraded); `http_status` added."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=10) as response:
                return {**json.loads(response.read()), "http_status": response.status}
        except urllib.error.HTTPError as error:
            with error:
                return {**json.loads(error.read()), "http_status": error.code}

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10) as response:
            return response.read().decode()

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a crash or the OOM killer."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.log.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        return self.process.returncode


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for 127.0.0.1 made by openssl, valid one day."""
    cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=radz-test", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def echoscu(port: int, called: str = "RADZ", calling: str = "ECHOSCU", extra: list[str] | None = None):
    return subprocess.run(
        ["echoscu", "-aet", calling, "-aec", called, *(extra or []), "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def storescu(
    port: int,
    files: list,
    called: str = "RADZ",
    calling: str = "STORESCU",
    extra: list[str] | None = None,
    timeout: float = 600,
):
    return subprocess.run(
        ["storescu", "-aet", calling, "-aec", called, *(extra or []), "127.0.0.1", str(port), *[str(f) for f in files]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
