"""The browser tests' set-up says what to install when it cannot install it itself."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.browser import setup


def test_without_chromium_or_root_it_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(setup.SetupFailed, match=r"Debian's `chromium` package: run `apt-get"):
        setup.chromium(print)


def test_a_failed_install_says_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/bin/false" if name == "apt-get" else None)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(setup.SetupFailed, match=r"installing Debian's `chromium` package failed"):
        setup.chromium(lambda line: None)
