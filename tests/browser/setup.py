"""What the browser tests need on the machine, installed when missing, never skipped.

- Debian's `chromium` package (apt-get, as root): Playwright drives that executable, so
  no browser build is ever downloaded (`playwright install` is never run).
- The chat example (examples/chat) built with npm: `npm ci` when package-lock.json
  changed, `npm run build` when its sources did; both are remembered by hash, so a re-run
  costs nothing.
Each step fails with what is missing and how to get it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAT = ROOT / "examples" / "chat"
CHROMIUM_PACKAGE = "chromium"  # Debian's package; its executable is /usr/bin/chromium
Say = Callable[[str], None]


class SetupFailed(Exception):
    """A step cannot be done here; the message says what to install."""


def chromium(say: Say) -> str:
    """The chromium executable, installed with apt-get when missing."""
    found = shutil.which("chromium")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise SetupFailed(
            f"the browser tests need Debian's `{CHROMIUM_PACKAGE}` package: "
            f"run `apt-get install -y {CHROMIUM_PACKAGE}` as root"
        )
    say(f"==> apt-get install -y {CHROMIUM_PACKAGE} (the browser tests' headless browser)")
    quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}  # CI has no terminal
    for argv in ([apt, "update"], [apt, "install", "-y", CHROMIUM_PACKAGE]):
        _run(argv, ROOT, f"installing Debian's `{CHROMIUM_PACKAGE}` package", quiet)
    found = shutil.which("chromium")
    if found is None:
        raise SetupFailed(f"`apt-get install {CHROMIUM_PACKAGE}` left no `chromium` on PATH")
    return found


def chat_page(say: Say) -> Path:
    """examples/chat/dist, installed and built when its lockfile or sources changed."""
    npm = shutil.which("npm")
    if npm is None:
        raise SetupFailed(
            "the chat page needs Node.js and npm to build: apt-get install -y nodejs npm"
        )
    modules = CHAT / "node_modules"
    lock = _digest([CHAT / "package-lock.json"])
    if _stamp(modules) != lock:
        say("==> npm ci in examples/chat (its lockfile changed)")
        _run([npm, "ci", "--no-audit", "--no-fund"], CHAT, "npm ci in examples/chat")
        _write_stamp(modules, lock)
    dist = CHAT / "dist"
    sources = _digest([CHAT / "package-lock.json", *_sources()])
    if _stamp(dist) != sources:
        say("==> npm run build in examples/chat")
        _run([npm, "run", "build"], CHAT, "building examples/chat")
        _write_stamp(dist, sources)
    return dist


def _sources() -> list[Path]:
    files = [CHAT / "index.html", CHAT / "vite.config.js", CHAT / "package.json"]
    return files + sorted(p for p in (CHAT / "src").rglob("*") if p.is_file())


def _digest(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(CHAT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _stamp(folder: Path) -> str | None:
    stamp = folder / ".built-from"
    return stamp.read_text() if stamp.exists() else None


def _write_stamp(folder: Path, digest: str) -> None:
    (folder / ".built-from").write_text(digest)


def _run(argv: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise SetupFailed(
            f"{what} failed (`{' '.join(argv)}`, exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
