"""A real containerd (CRI plugin) + runc, driven over CRI the way kubelet drives it.

The logs service reads the files that the container runtime writes under
``/var/log/pods``; the only way to know those files byte for byte (``P``/``F`` splits,
interleaved streams, non-monotonic timestamps, rotation) is to let the real runtime write
them. `ContainerdHarness` starts a private containerd in a fresh, short temp dir, imports
a locally built busybox image, and runs pods whose logs go to a directory the test owns.

Recipe (docs: test-recipes.md sections 5 and 7), containerd 1.6.20 + runc 1.1.5. Three
failures have to be fixed before anything runs, each fix is marked ``recipe fix #N``:

1. No registry can be reached, so no image can be pulled: a one-layer OCI archive is
   built here with the stdlib (tar + gzip + JSON, busybox-static as the rootfs) and
   imported with ``ctr -n k8s.io images import``; the pod's pause image must be local
   as well (``sandbox_image = "local/pause:1"``).
2. There is no CNI config (``failed to load cni during init``): pods use the host's
   network namespace (``NamespaceOption(network=NODE)``), and the sandbox config sets
   no ``hostname`` (runc: ``unable to set hostname without a private UTS namespace``).
3. ``runc create failed: ... can't get final child's PID from pipe: EOF``: the VM's
   capability bounding set lacks CAP_SYS_RESOURCE, so the sandbox's ``oom_score_adj``
   of -998 is refused; ``restrict_oom_score_adj = true`` fixes it.

Everything the harness creates lives under ``/tmp/kkctd-XXXX`` (short, because the gRPC
socket path must fit in ``sun_path``), except runc's state, which runc keeps in its
default ``/run/containerd/runc/k8s.io/<id>``: teardown removes exactly the ids this run
created. When containerd cannot run here, `ContainerdUnavailable` says why, so that
tests can ``pytest.skip(reason)``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "BUSYBOX_IMAGE",
    "PAUSE_IMAGE",
    "ContainerdHarness",
    "ContainerdUnavailable",
    "Pod",
    "wait_until",
]

BUSYBOX_IMAGE = "docker.io/local/bb:1"
"""The image containers run: busybox-static and its applet links, nothing else."""
PAUSE_IMAGE = "docker.io/local/pause:1"
"""The sandbox ("pause") image; ``sandbox_image = "local/pause:1"`` names it."""

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-system-packages"
BUSYBOX = Path("/bin/busybox")
RUN_DIR = Path("/run/containerd")
RUNC_STATE = RUN_DIR / "runc" / "k8s.io"
"""runc's default root for containerd's ``k8s.io`` namespace (not configurable per run
without departing from the verified recipe)."""
SHIM_SOCKETS = RUN_DIR / "s"
K8S_NAMESPACE = "k8s.io"
"""The containerd namespace the CRI plugin uses; images must be imported into it."""

_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  # recipe fix #1: nothing can be pulled, so the pause image is one we imported.
  sandbox_image = "local/pause:1"
  # recipe fix #3: no CAP_SYS_RESOURCE in the bounding set, so -998 would be refused.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
"""


class ContainerdUnavailable(RuntimeError):
    """containerd cannot run on this machine; ``str(exc)`` is the reason to skip with."""


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.01
) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises `TimeoutError` naming ``what`` once ``timeout`` seconds have passed. The short
    ``interval`` is only the polling period, never a guess at how long something takes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- image


def _is_static_elf(path: Path) -> bool:
    """Whether ``path`` is an ELF executable without a ``PT_INTERP`` (program interpreter).

    The image holds nothing but busybox, so a dynamically linked busybox (Debian's
    ``busybox`` rather than ``busybox-static``) would fail inside the container with a
    confusing "no such file or directory".
    """
    with path.open("rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only
            return False
        endian = "<" if header[5] == 1 else ">"
        (phoff,) = struct.unpack_from(endian + "Q", header, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    pt_interp = 3
    return all(
        struct.unpack_from(endian + "I", table, i * phentsize)[0] != pt_interp for i in range(phnum)
    )


def _busybox_layer(busybox: Path) -> bytes:
    """The uncompressed layer tar: ``/bin/busybox``, a symlink per applet, a few dirs."""
    applets = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buf = io.BytesIO()
    # Fixed mtimes and owners keep the layer digest stable from run to run.
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, kind: bytes, data: bytes = b"", mode: int = 0o755, link: str = ""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = kind, mode, 0, link
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for directory in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
            add(directory, tarfile.DIRTYPE, mode=0o1777 if directory == "tmp" else 0o755)
        # containerd's CRI plugin reads these to resolve the user and groups.
        add("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        add("etc/group", tarfile.REGTYPE, b"root:x:0:\n", 0o644)
        add("bin/busybox", tarfile.REGTYPE, busybox.read_bytes())
        for applet in sorted(set(applets) - {"busybox"}):
            add(f"bin/{applet}", tarfile.SYMTYPE, link="busybox", mode=0o777)
    return buf.getvalue()


def build_oci_archive(dest: Path, busybox: Path = BUSYBOX) -> None:
    """Write an OCI image-layout tar holding `BUSYBOX_IMAGE` and `PAUSE_IMAGE`.

    recipe fix #1: with no registry, images are built by hand. Both images share the one
    busybox layer; only their configs differ (the pause image's process just sleeps).
    Each manifest in ``index.json`` carries ``io.containerd.image.name``, which is the
    name ``ctr images import`` gives it.
    """
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer = _busybox_layer(busybox)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    layer_desc = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        **blob(gzip.compress(layer, compresslevel=1, mtime=0)),
    }
    index_manifests = []
    images = {
        BUSYBOX_IMAGE: {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        # Killed with SIGKILL by StopPodSandbox, so it needs no signal handling.
        PAUSE_IMAGE: {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/sleep", "2147483647"]},
    }
    for name, config in images.items():
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        config_desc = {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **blob(json.dumps(image_config).encode()),
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }
        index_manifests.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **blob(json.dumps(manifest).encode()),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": name},
            }
        )
    index = {"schemaVersion": 2, "manifests": index_manifests}
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
        **{f"blobs/sha256/{d.split(':', 1)[1]}": data for d, data in blobs.items()},
    }
    with tarfile.open(dest, "w") as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


# --------------------------------------------------------------------------- pods


@dataclass
class Pod:
    """A running pod sandbox and its containers, as `ContainerdHarness.run_pod` made it."""

    harness: ContainerdHarness
    namespace: str
    name: str
    uid: str
    sandbox_id: str
    log_directory: Path
    """``<log_root>/<namespace>_<name>_<uid>``, the pod's directory as kubelet names it."""
    container_ids: dict[str, str] = field(default_factory=dict)
    """Container name -> CRI container id."""
    rotated: dict[str, list[Path]] = field(default_factory=dict)
    """Container name -> files `rotate` renamed, oldest first."""
    removed: bool = False

    def log_path(self, container: str) -> Path:
        """The live log file, ``<log_directory>/<container>/0.log``."""
        return self.log_directory / container / "0.log"

    def log_files(self, container: str) -> list[Path]:
        """Every log file of ``container`` in write order: the rotated ones, then 0.log."""
        return [*self.rotated.get(container, []), self.log_path(container)]

    def state(self, container: str) -> tuple[int, int]:
        """``(ContainerState, exit_code)`` from ``ContainerStatus``."""
        api = self.harness.api
        status = self.harness.runtime.ContainerStatus(
            api.ContainerStatusRequest(container_id=self.container_ids[container]),
            timeout=10,
        ).status
        return status.state, status.exit_code

    def wait_exited(self, container: str, timeout: float = 20.0) -> int:
        """Poll ``ContainerStatus`` until the container has exited; return its exit code."""
        exited = self.harness.api.CONTAINER_EXITED
        state = wait_until(
            lambda: (s := self.state(container))[0] == exited and s,
            timeout,
            f"container {container!r} of pod {self.name!r} to exit",
        )
        return state[1]

    def rotate(self, container: str) -> Path:
        """Rotate the live log as kubelet does: rename, then ``ReopenContainerLog``.

        kubelet's ``containerLogManager`` renames ``0.log`` to ``0.log.<timestamp>`` and
        asks the runtime to reopen; lines written between the two calls land in the
        renamed file (containerd keeps writing to the open descriptor until the reopen).
        Returns the rotated file's path.
        """
        live = self.log_path(container)
        rotated = live.with_name(f"0.log.{time.strftime('%Y%m%d-%H%M%S')}")
        # Two rotations within a second would otherwise collide (kubelet waits longer).
        n = 0
        while rotated.exists():
            n += 1
            rotated = live.with_name(f"0.log.{time.strftime('%Y%m%d-%H%M%S')}.{n}")
        os.rename(live, rotated)
        self.harness.runtime.ReopenContainerLog(
            self.harness.api.ReopenContainerLogRequest(container_id=self.container_ids[container]),
            timeout=10,
        )
        self.rotated.setdefault(container, []).append(rotated)
        return rotated

    def stop(self, container: str, timeout: int = 10) -> int:
        """``StopContainer``: SIGTERM, SIGKILL after ``timeout`` s; return the exit code.

        The container's shell is PID 1 of its PID namespace, so SIGTERM only reaches it
        if it ``trap``s TERM: that is how a test tells a writer to finish.
        """
        self.harness.runtime.StopContainer(
            self.harness.api.StopContainerRequest(
                container_id=self.container_ids[container], timeout=timeout
            ),
            timeout=timeout + 30,
        )
        return self.wait_exited(container, timeout=10)

    def remove(self) -> None:
        """Stop and remove every container, then stop and remove the sandbox (kubelet order)."""
        if self.removed:
            return
        api, runtime = self.harness.api, self.harness.runtime
        for container_id in self.container_ids.values():
            runtime.StopContainer(
                api.StopContainerRequest(container_id=container_id, timeout=2), timeout=30
            )
            runtime.RemoveContainer(
                api.RemoveContainerRequest(container_id=container_id), timeout=30
            )
        runtime.StopPodSandbox(
            api.StopPodSandboxRequest(pod_sandbox_id=self.sandbox_id), timeout=30
        )
        runtime.RemovePodSandbox(
            api.RemovePodSandboxRequest(pod_sandbox_id=self.sandbox_id), timeout=30
        )
        self.removed = True


# --------------------------------------------------------------------------- harness


class ContainerdHarness:
    """A private containerd with the CRI plugin, for the duration of a ``with`` block.

    ``__enter__`` starts containerd (raising `ContainerdUnavailable` when this machine
    cannot run it), builds and imports the images once; `run_pod` then starts pods;
    ``__exit__`` removes the pods still around, stops containerd and every process it
    left, removes runc's state for this run's ids, unmounts leftovers and deletes the
    temp dir. ``timings`` records how long the start-up steps took (seconds).
    """

    def __init__(self, *, start_timeout: float = 20.0, install_missing: bool = True) -> None:
        self.start_timeout = start_timeout
        self.install_missing = install_missing
        self.tmp: Path | None = None
        self.socket: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.pods: list[Pod] = []
        self.ids: set[str] = set()
        """Every sandbox and container id this run created (runc state dir names)."""
        self.timings: dict[str, float] = {}
        self._created_run_dirs: list[Path] = []
        """Directories under /run/containerd this run created (removed if left empty)."""
        self.api: Any = None
        self.runtime: Any = None
        self._channel: Any = None
        self._log_file: io.BufferedWriter | None = None

    # -- context manager

    def __enter__(self) -> ContainerdHarness:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- start

    def _check_prerequisites(self) -> None:
        """Raise `ContainerdUnavailable` unless root, binaries and cri_api are present."""
        if os.geteuid() != 0:
            raise ContainerdUnavailable("containerd tests need root (CI runs them as root)")
        needed = ("containerd", "ctr", "runc", "containerd-shim-runc-v2")
        missing = [b for b in needed if shutil.which(b) is None]
        if not BUSYBOX.exists():
            missing.append(str(BUSYBOX))
        if missing and self.install_missing and INSTALL_SCRIPT.exists():
            # The project's script installs containerd, runc and busybox-static when
            # missing (CI starts from a clean machine); it is a no-op otherwise.
            result = subprocess.run(
                [str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
            )
            if result.returncode != 0:
                raise ContainerdUnavailable(
                    f"missing {', '.join(missing)} and {INSTALL_SCRIPT.name} failed "
                    f"(rc {result.returncode}): {result.stderr.strip()[-500:]}"
                )
            missing = [b for b in needed if shutil.which(b) is None]
            if not BUSYBOX.exists():
                missing.append(str(BUSYBOX))
        if missing:
            raise ContainerdUnavailable(
                f"missing {', '.join(missing)} (Debian: containerd runc busybox-static; "
                "scripts/install-system-packages installs them)"
            )
        if not _is_static_elf(BUSYBOX):
            raise ContainerdUnavailable(
                f"{BUSYBOX} is dynamically linked; the image needs busybox-static"
            )
        if "overlay" not in Path("/proc/filesystems").read_text():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
            if "overlay" not in Path("/proc/filesystems").read_text():
                raise ContainerdUnavailable("the kernel has no overlayfs (snapshotter)")
        try:
            import cri_api  # noqa: F401  (brings grpcio)
        except ImportError as exc:
            raise ContainerdUnavailable(
                f"Python package container-runtime-interface-api missing ({exc})"
            ) from exc

    def start(self) -> None:
        """Start containerd, wait for its CRI service, then build and import the images."""
        self._check_prerequisites()
        # runc (/run/containerd/runc) and the shims (/run/containerd/s) create these;
        # remember which did not exist so that teardown can remove them when empty.
        self._created_run_dirs = [
            d for d in (RUNC_STATE, RUNC_STATE.parent, SHIM_SOCKETS, RUN_DIR) if not d.exists()
        ]
        import grpc
        from cri_api.v1 import api_pb2, api_pb2_grpc

        self.api = api_pb2
        t0 = time.monotonic()
        # A short path: the gRPC socket (and the shims' sockets derived from it) must fit
        # in sun_path (108 bytes); pytest's tmp_path is far too long for that.
        self.tmp = Path(tempfile.mkdtemp(prefix="kkctd-", dir="/tmp"))
        self.socket = self.tmp / "containerd.sock"
        config = self.tmp / "config.toml"
        config.write_text(
            _CONFIG.format(root=self.tmp / "root", state=self.tmp / "state", socket=self.socket)
        )
        self._log_file = (self.tmp / "containerd.log").open("wb")
        self.process = subprocess.Popen(
            ["containerd", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in pytest should reach us, not containerd.
            start_new_session=True,
        )
        self._channel = grpc.insecure_channel(f"unix://{self.socket}")
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)
        self.wait_ready()
        self.timings["containerd_start"] = time.monotonic() - t0

        t1 = time.monotonic()
        archive = self.tmp / "images.tar"
        build_oci_archive(archive)
        self.timings["image_build"] = time.monotonic() - t1
        t2 = time.monotonic()
        self.ctr("images", "import", str(archive))
        archive.unlink()
        self.timings["image_import"] = time.monotonic() - t2

    def wait_ready(self) -> None:
        """Poll the CRI ``Status`` until the runtime is ready, or say why it never was.

        NetworkReady stays false (recipe fix #2: there is no CNI config); host-network
        pods do not need it, so only RuntimeReady counts.
        """
        import grpc

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ContainerdUnavailable(
                    f"containerd exited with rc {self.process.returncode}: {self.log_tail()}"
                )
            if self.socket is None or not self.socket.exists():
                return False
            try:
                status = self.runtime.Status(self.api.StatusRequest(), timeout=2).status
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    # The socket serves, but the CRI plugin did not load.
                    raise ContainerdUnavailable(
                        f"containerd's CRI plugin is not serving: {self.log_tail()}"
                    ) from exc
                return False
            return any(c.type == "RuntimeReady" and c.status for c in status.conditions)

        try:
            wait_until(ready, self.start_timeout, "containerd's CRI runtime to be ready", 0.05)
        except TimeoutError as exc:
            raise ContainerdUnavailable(f"{exc}: {self.log_tail()}") from exc

    def ctr(self, *args: str) -> str:
        """Run ``ctr`` against this containerd in the ``k8s.io`` namespace; return stdout."""
        assert self.socket is not None
        result = subprocess.run(
            ["ctr", "-a", str(self.socket), "-n", K8S_NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def log_tail(self, n: int = 15) -> str:
        """The last lines containerd logged, for error messages."""
        if self.tmp is None:
            return ""
        with contextlib.suppress(OSError):
            lines = (self.tmp / "containerd.log").read_text(errors="replace").splitlines()
            return " | ".join(lines[-n:])
        return ""

    # -- pods

    def run_pod(
        self,
        namespace: str,
        name: str,
        uid: str,
        containers: Mapping[str, str],
        log_root: Path,
    ) -> Pod:
        """Run a pod whose containers each run ``/bin/sh -c <command>``; return it started.

        Calls ``RunPodSandbox`` (``log_directory=<log_root>/<ns>_<name>_<uid>``, host
        network: recipe fix #2), then ``CreateContainer`` (``log_path=<container>/0.log``,
        relative to the sandbox's log directory as kubelet passes it) and
        ``StartContainer`` for each container, in the mapping's order.
        """
        api = self.api
        log_directory = Path(log_root) / f"{namespace}_{name}_{uid}"
        log_directory.mkdir(parents=True, exist_ok=True)
        metadata = api.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=0)
        sandbox_config = api.PodSandboxConfig(
            metadata=metadata,
            # recipe fix #2: no hostname (it needs a private UTS namespace).
            log_directory=str(log_directory),
            labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace},
            linux=api.LinuxPodSandboxConfig(
                security_context=api.LinuxSandboxSecurityContext(
                    namespace_options=api.NamespaceOption(
                        network=api.NODE, pid=api.CONTAINER, ipc=api.POD
                    )
                )
            ),
        )
        sandbox_id = self.runtime.RunPodSandbox(
            api.RunPodSandboxRequest(config=sandbox_config), timeout=60
        ).pod_sandbox_id
        self.ids.add(sandbox_id)
        pod = Pod(self, namespace, name, uid, sandbox_id, log_directory)
        self.pods.append(pod)
        for container, command in containers.items():
            config = api.ContainerConfig(
                metadata=api.ContainerMetadata(name=container, attempt=0),
                image=api.ImageSpec(image=BUSYBOX_IMAGE),
                command=["/bin/sh", "-c", command],
                log_path=f"{container}/0.log",
                linux=api.LinuxContainerConfig(
                    security_context=api.LinuxContainerSecurityContext(
                        namespace_options=api.NamespaceOption(
                            network=api.NODE, pid=api.CONTAINER, ipc=api.POD
                        )
                    )
                ),
            )
            container_id = self.runtime.CreateContainer(
                api.CreateContainerRequest(
                    pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
                ),
                timeout=60,
            ).container_id
            self.ids.add(container_id)
            pod.container_ids[container] = container_id
            self.runtime.StartContainer(
                api.StartContainerRequest(container_id=container_id), timeout=60
            )
        return pod

    # -- teardown

    def close(self) -> None:
        """Tear everything down; safe to call more than once and after a failed start."""
        errors: list[str] = []
        if self.process is not None and self.process.poll() is None:
            for pod in self.pods:
                try:
                    pod.remove()
                except Exception as exc:  # keep tearing down; report at the end
                    errors.append(f"removing pod {pod.name}: {exc}")
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        for sid in self.ids:
            # Normally containerd has deleted these already. After a crash, the
            # containers outlive containerd and their shims (a shim's SIGKILL does not
            # reach them): runc kills and deletes them. Only ids this run created,
            # since another run may share runc's default root.
            if (RUNC_STATE / sid).exists():
                subprocess.run(
                    ["runc", "--root", str(RUNC_STATE), "delete", "--force", sid],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
                shutil.rmtree(RUNC_STATE / sid, ignore_errors=True)
        if self.tmp is not None:
            self._kill_leftover_processes(self.tmp)
            self._unmount_under(self.tmp)
            for sid in self.ids:
                # A SIGKILLed shim leaves its socket behind; containerd 1.6 names it
                # /run/containerd/s/<sha256("<grpc address>/<namespace>/<shim id>")>.
                key = f"{self.tmp / 'containerd.sock'}/{K8S_NAMESPACE}/{sid}".encode()
                with contextlib.suppress(OSError):
                    (SHIM_SOCKETS / hashlib.sha256(key).hexdigest()).unlink()
        self.ids.clear()
        for directory in self._created_run_dirs:  # deepest first; rmdir only if empty
            with contextlib.suppress(OSError):
                directory.rmdir()
        self._created_run_dirs = []
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if errors:
            raise RuntimeError("containerd teardown: " + "; ".join(errors))

    @staticmethod
    def _kill_leftover_processes(tmp: Path) -> None:
        """SIGKILL, by PID, the shims this run's containerd left running.

        ``containerd-shim-runc-v2`` daemonizes, so stopping containerd does not stop it
        (its containers were already deleted with runc above); a shim of this run names
        this run's socket path, which is unique, on its command line.
        """
        marker = str(tmp).encode()
        own = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == own:
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    @staticmethod
    def _unmount_under(tmp: Path) -> None:
        """Lazily unmount every mount point under ``tmp``, deepest first."""
        prefix = str(tmp) + "/"
        points: list[str] = []
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].encode().decode("unicode_escape")
                if point.startswith(prefix):
                    points.append(point)
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def new_uid() -> str:
    """A pod UID like the API server's."""
    return str(uuid.uuid4())
