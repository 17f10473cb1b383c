"""Staged, atomic configuration writes: hidden temp names, mode kept, backups, bind mounts."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from pathlib import Path

import pytest

from registrator.proxy_config import files


def test_stage_uses_a_hidden_name_no_proxy_loads(tmp_path: Path) -> None:
    """Neither HAProxy's directory mode (*.cfg, hidden skipped) nor Traefik's (.yml/.yaml/.toml,
    hidden not skipped) would load the candidate."""
    for name in ("haproxy.cfg", "dynamic.yml"):
        tmp = files.stage(tmp_path / name, b"x")
        assert tmp.parent == tmp_path
        assert re.fullmatch(rf"\.{re.escape(name)}\.tmp-[0-9a-f]{{8}}", tmp.name)
        assert tmp.suffix not in (".cfg", ".yml", ".yaml", ".toml")
        files.discard(tmp)
    assert list(tmp_path.iterdir()) == []


def test_commit_replaces_keeps_mode_and_backups(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_bytes(b"v0")
    path.chmod(0o640)
    for i in range(1, 6):
        method = files.commit(files.stage(path, f"v{i}".encode()), path, backups=3)
        assert method == "rename"
    assert path.read_bytes() == b"v5"
    assert path.stat().st_mode & 0o777 == 0o640
    backups = {p.name: p.read_bytes() for p in tmp_path.iterdir() if ".bak." in p.name}
    assert backups == {
        ".haproxy.cfg.bak.1": b"v4",
        ".haproxy.cfg.bak.2": b"v3",
        ".haproxy.cfg.bak.3": b"v2",
    }
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_new_file_gets_0644_and_parent_dirs(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "dynamic.yml"
    files.write_file(path, b"http: {}\n")
    assert path.read_bytes() == b"http: {}\n"
    assert path.stat().st_mode & 0o777 == 0o644


def test_rename_refused_falls_back_to_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EBUSY from rename (a single-file bind mount) -> same inode, new bytes."""
    path = tmp_path / "haproxy.cfg"
    path.write_bytes(b"old contents that are longer")
    inode = path.stat().st_ino

    def busy(src: object, dst: object) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    tmp = files.stage(path, b"new")
    monkeypatch.setattr(files.os, "replace", busy)
    assert files.commit(tmp, path, backups=0) == "in_place"
    assert path.read_bytes() == b"new"
    assert path.stat().st_ino == inode
    assert not tmp.exists()


def test_real_single_file_bind_mount(tmp_path: Path) -> None:
    """The kernel refuses rename() over a bind-mounted file; the writer still updates it, and
    the view through the mount (what a container sees) changes too."""
    source, target = tmp_path / "host.cfg", tmp_path / "mounted.cfg"
    source.write_bytes(b"v1")
    target.write_bytes(b"")
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "--bind", str(source), str(target)], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("cannot bind-mount here (needs root and mount privileges)")
    try:
        assert files.write_file(target, b"v2") == "in_place"
        assert target.read_bytes() == b"v2"
        assert source.read_bytes() == b"v2"
    finally:
        subprocess.run(["umount", str(target)], check=False)


def test_other_errors_propagate_and_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.cfg"

    def denied(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    tmp = files.stage(path, b"x")
    monkeypatch.setattr(files.os, "replace", denied)
    with pytest.raises(OSError, match="No space"):
        files.commit(tmp, path)
    assert list(tmp_path.iterdir()) == []
