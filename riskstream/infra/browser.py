"""Headless Chromium from Debian, driven over the Chrome DevTools Protocol, to check a page.

The program is Debian's ``chromium-headless-shell`` at the version and sha256 pinned in
``core/resources/tools.toml`` (with ``chromium-common``, pinned likewise), fetched the way
Prometheus is (:mod:`riskstream.infra.prometheus`): ``apt-get download`` into
``<paths.cache_dir>/tools``, verified, unpacked with ``dpkg-deb -x``; nothing is installed
system-wide. The shared libraries it needs that the machine lacks are the packages ``apt-get
install --simulate`` would add (apt checks them against the signed package indexes); they are
unpacked beside it and found through ``LD_LIBRARY_PATH``.

:func:`check_page` opens a file in the browser over ``--remote-debugging-pipe`` (DevTools JSON
messages on file descriptors 3 and 4, no network port), collects console errors and uncaught
exceptions, counts what every plotly plot drew, and takes a full-page PNG screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import ServiceError, ToolError
from riskstream.infra.prometheus import DebianTool, pinned_tool, run_step, verify_deb

SHELL, COMMON = "chromium", "chromium-common"
"""Entries of tools.toml: the headless shell and the resources it shares with Chromium."""
APT_TIMEOUT_S = 600
READY_FILE = "ready.json"
CDP_TIMEOUT_S = 60.0
RENDER_TIMEOUT_MS = 30_000
WINDOW = (1280, 900)
MAX_SCREENSHOT_HEIGHT = 16_000
SETTLE_S = 0.5
PIPE_FD_FLOOR = 10
INST_LINE = re.compile(r"^Inst (\S+) \((\S+) ")

PLOTS_JS = """
(async () => {
  const deadline = Date.now() + %(timeout)d;
  const holders = () => Array.from(document.querySelectorAll('div.plot'));
  const drawn = (h) => { const p = h.querySelector('.js-plotly-plot'); return p && p._fullLayout; };
  while (Date.now() < deadline && !holders().every(drawn)) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 200)));
  return {
    noData: document.querySelectorAll('p.no-data').length,
    plots: holders().map((h) => {
      const p = h.querySelector('.js-plotly-plot');
      const full = (p && p._fullData) || [];
      const points = full.reduce((n, t) => n + (Number.isFinite(t._length) ? t._length : 0), 0);
      const marks = p ? p.querySelectorAll(
        '.scatterlayer .trace path.js-line, .scatterlayer .point, .barlayer .point path'
      ).length : 0;
      return { panel: h.dataset.panel, traces: full.length, points: points, marks: marks };
    }),
  };
})()
"""


@dataclass(frozen=True)
class Chromium:
    """The unpacked headless shell and the environment it runs in."""

    program: Path
    library_path: str

    def env(self) -> dict[str, str]:
        """The process environment: ours plus the unpacked libraries."""
        inherited = os.environ.get("LD_LIBRARY_PATH", "")
        joined = ":".join(p for p in (self.library_path, inherited) if p)
        return {**os.environ, "LD_LIBRARY_PATH": joined}


def missing_packages(simulated: str) -> list[tuple[str, str]]:
    """``(package, version)`` of each ``Inst`` line of ``apt-get install --simulate``'s output.

    >>> missing_packages("Inst libogg0 (1.3.5-3 Debian:12.15/oldstable [amd64])\\nConf x (1)")
    [('libogg0', '1.3.5-3')]
    """
    found = (INST_LINE.match(line) for line in simulated.splitlines())
    return [(m.group(1), m.group(2)) for m in found if m]


def _library_dirs(root: Path) -> list[Path]:
    dirs = {p.parent for p in root.rglob("*.so*") if p.is_file() and "chromium" not in p.parts}
    return sorted(dirs)


def fetch_chromium(settings: Settings) -> Chromium:
    """The verified, unpacked headless shell with the libraries it needs, fetched on first use.

    The pinned ``.deb`` files are kept in the cache and re-verified on every call."""
    shell, common = pinned_tool(SHELL), pinned_tool(COMMON)
    if common.version != shell.version:
        raise ToolError(
            f"tools.toml: [{COMMON}] {common.version} must match [{SHELL}] {shell.version}"
        )
    home = settings.paths.cache / "tools" / f"{shell.package}-{shell.version}"
    root = home / "root"
    ready = home / READY_FILE
    if not ready.is_file():
        _fetch(shell, common, home)
    for tool in (shell, common):
        verify_deb(tool, home / tool.deb_name)
    manifest = json.loads(ready.read_text("utf-8"))
    library_path = ":".join(str(root / d) for d in manifest["library_dirs"])
    browser = Chromium(root / shell.binary, library_path)
    if not browser.program.is_file():
        raise ToolError(f"{home} holds no {shell.binary}; delete {home} to fetch it again")
    return browser


def _fetch(shell: DebianTool, common: DebianTool, home: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ToolError(
            f"fetching {shell.package} {shell.version} needs apt-get and dpkg-deb "
            "(a Debian machine)"
        )
    home.mkdir(parents=True, exist_ok=True)
    pin = f"{shell.package}={shell.version}"
    hint = "(if apt cannot locate it, run `apt-get update` once)"
    simulated = run_step(
        ["apt-get", "install", "--simulate", "--no-install-recommends", pin],
        home,
        f"resolving the libraries of {pin} {hint}",
    )
    wanted = {name: version for name, version in missing_packages(simulated)}
    wanted |= {shell.package: shell.version, common.package: common.version}
    with tempfile.TemporaryDirectory(prefix="riskstream-apt-", dir=home) as tmp:
        run_step(
            ["apt-get", "download", *(f"{n}={v}" for n, v in sorted(wanted.items()))],
            Path(tmp),
            f"downloading {pin} and {len(wanted) - 1} package(s) it needs {hint}",
        )
        debs = sorted(Path(tmp).glob("*.deb"))
        for tool in (shell, common):
            fetched = Path(tmp) / tool.deb_name
            if not fetched.is_file():
                raise ToolError(f"apt-get download did not produce {tool.deb_name} in {tmp}")
            verify_deb(tool, fetched)
        staging = home / "root.partial"
        shutil.rmtree(staging, ignore_errors=True)
        for deb in debs:
            run_step(["dpkg-deb", "-x", str(deb), str(staging)], home, f"unpacking {deb.name}")
        for tool in (shell, common):
            (Path(tmp) / tool.deb_name).replace(home / tool.deb_name)
    shutil.rmtree(home / "root", ignore_errors=True)
    staging.replace(home / "root")
    dirs = [str(d.relative_to(home / "root")) for d in _library_dirs(home / "root")]
    libraries = ":".join(str(home / "root" / d) for d in dirs)
    unresolved = _unresolved(home / "root" / shell.binary, libraries)
    if unresolved:
        raise ToolError(
            f"{shell.package} {shell.version} still lacks shared libraries after the fetch: "
            f"{', '.join(unresolved)}"
        )
    manifest = {"packages": wanted, "library_dirs": dirs}
    (home / READY_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True), "utf-8")


def _unresolved(program: Path, library_path: str) -> list[str]:
    env = {**os.environ, "LD_LIBRARY_PATH": library_path}
    try:
        out = subprocess.run(
            ["ldd", str(program)], capture_output=True, text=True, env=env, check=False
        ).stdout
    except OSError:
        return []  # no ldd: the browser's own start says what is missing
    return [line.split()[0] for line in out.splitlines() if "not found" in line]


class DevTools:
    """A Chromium process and its DevTools connection over ``--remote-debugging-pipe``.

    Commands go to the browser's fd 3 and answers come from its fd 4, as NUL-terminated JSON;
    events are kept in :attr:`events` in arrival order."""

    def __init__(self, browser: Chromium, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # in the child, before exec: the pipe ends on fds 3 and 4
            # first above any fd they might land on (3 and 4 may be taken, even by these ends)
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, PIPE_FD_FLOOR)
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, PIPE_FD_FLOOR)
            os.dup2(high_r, 3)  # inheritable: dup2 clears close-on-exec
            os.dup2(high_w, 4)

        width, height = WINDOW
        self.log = profile / "chromium.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(browser.program),
                    "--no-sandbox",
                    "--disable-gpu",
                    "--remote-debugging-pipe",
                    f"--user-data-dir={profile / 'user-data'}",
                    "--no-first-run",
                    "--hide-scrollbars",
                    f"--window-size={width},{height}",
                    "about:blank",
                ],
                env=browser.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=wire,  # noqa: PLW1509 (only dup2, no locks)
                close_fds=False,
            )
        os.close(to_child_r)
        os.close(from_child_w)
        self.events: list[dict[str, Any]] = []
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._answers.put({"closed": True})
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    self._answers.put(message)
                else:
                    self.events.append(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; :class:`ServiceError` on an error answer."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + CDP_TIMEOUT_S
        while True:
            try:
                answer = self._answers.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise ServiceError(
                    f"Chromium did not answer {method} in {CDP_TIMEOUT_S:.0f} s"
                ) from None
            if answer.get("closed"):
                raise ServiceError(f"Chromium closed its DevTools pipe during {method}")
            if answer.get("id") != self._next_id:
                continue
            if "error" in answer:
                raise ServiceError(f"Chromium refused {method}: {answer['error']}")
            result: dict[str, Any] = answer.get("result", {})
            return result

    def wait_event(
        self, method: str, after: int = 0, timeout_s: float = CDP_TIMEOUT_S
    ) -> dict[str, Any]:
        """The first event ``method`` among :attr:`events` from index ``after`` (waits for it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.events[after:]:
                if event.get("method") == method:
                    return event
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise ServiceError(f"Chromium sent no {method} within {timeout_s:.0f} s")

    def close(self) -> None:
        """Close the browser (politely, then by its pid) and the pipe."""
        if self.process.poll() is None:
            with contextlib.suppress(ServiceError, OSError):
                self.call("Browser.close")
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass(frozen=True)
class PageCheck:
    """What :func:`check_page` saw."""

    console_errors: list[str]
    plots: list[dict[str, Any]]
    """Per ``div.plot``: panel, traces, points (plotly's counts) and marks (SVG marks drawn)."""
    no_data: int
    """``p.no-data`` paragraphs: panels that said they have no data."""
    screenshot: Path
    png: bytes = field(repr=False)

    @property
    def empty_plots(self) -> list[str]:
        """Panels whose plot drew nothing."""
        return [str(p["panel"]) for p in self.plots if p["points"] <= 0 or p["marks"] <= 0]

    @property
    def ok(self) -> bool:
        """No console error and every plot drew something."""
        return not self.console_errors and not self.empty_plots and bool(self.plots)


def _errors(events: list[dict[str, Any]], session: str) -> list[str]:
    found = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            found.append(
                "console: " + " ".join(str(a.get("value", a.get("description"))) for a in args)
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            found.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
    return found


def check_page(
    settings: Settings,
    page: Path,
    screenshot: Path,
    fetch: Callable[[Settings], Chromium] = fetch_chromium,
    render_timeout_ms: int = RENDER_TIMEOUT_MS,
) -> PageCheck:
    """Open ``page`` in headless Chromium, wait (at most ``render_timeout_ms``) until its plots
    are drawn, and report console errors, what each plot drew, and a full-page screenshot
    (written to ``screenshot``)."""
    browser = fetch(settings)
    with tempfile.TemporaryDirectory(prefix="riskstream-chromium-") as tmp:
        tools = DevTools(browser, Path(tmp))
        try:
            target = tools.call("Target.createTarget", url="about:blank")["targetId"]
            session = tools.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log"):
                tools.call(f"{domain}.enable", session)
            seen_before = len(tools.events)
            tools.call("Page.navigate", session, url=page.resolve().as_uri())
            tools.wait_event("Page.loadEventFired", after=seen_before)
            value = tools.call(
                "Runtime.evaluate",
                session,
                expression=PLOTS_JS % {"timeout": render_timeout_ms},
                awaitPromise=True,
                returnByValue=True,
            )
            if "exceptionDetails" in value:
                raise ServiceError(
                    f"the plot check failed in the page: {value['exceptionDetails']}"
                )
            seen = value["result"]["value"]
            size = tools.call("Page.getLayoutMetrics", session)["cssContentSize"]
            height = min(int(size["height"]) + 1, MAX_SCREENSHOT_HEIGHT)
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=WINDOW[0],
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            time.sleep(SETTLE_S)
            png = base64.b64decode(
                tools.call("Page.captureScreenshot", session, format="png")["data"]
            )
            errors = _errors(tools.events, session)
        finally:
            tools.close()
    screenshot.write_bytes(png)
    return PageCheck(errors, list(seen["plots"]), int(seen["noData"]), screenshot, png)
