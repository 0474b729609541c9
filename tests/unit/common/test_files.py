"""tm_common.files.replace_file: a file another process reads is replaced whole or not at all."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from tm_common.files import SECRET_MODE, replace_file

BIG = 1 << 20


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_text_and_bytes_replace_the_file_and_leave_nothing_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    replace_file(path, '{"a": "é"}')
    assert path.read_text(encoding="utf-8") == '{"a": "é"}'
    replace_file(path, b"\x00\x01", sync=True)
    assert path.read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == []


def test_a_secret_replaces_a_world_readable_file_with_an_owner_only_one(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("old")
    path.chmod(0o644)
    replace_file(path, "new", mode=SECRET_MODE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "new"


def test_a_failed_replace_keeps_the_old_contents_and_removes_its_temporary_file(
        tmp_path: Path) -> None:
    blocked = tmp_path / "record.json"
    blocked.mkdir()   # a file cannot be renamed over a folder: the replace itself fails
    (blocked / "inside").write_text("kept")
    with pytest.raises(OSError):
        replace_file(blocked, "new")
    assert (blocked / "inside").read_text() == "kept"
    assert _leftovers(tmp_path) == []


def test_a_reader_never_sees_half_a_file_while_it_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "answer.json"
    versions = ("a" * BIG, "b" * BIG)
    replace_file(path, versions[0])
    torn: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            text = path.read_text()
            if text not in versions:
                torn.append(len(text))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(60):
            replace_file(path, versions[i % 2])
    finally:
        done.set()
        reader.join()
    assert torn == []


def test_two_writers_of_one_path_do_not_write_into_each_others_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            for _ in range(100):
                replace_file(path, text * 1000)
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(e)

    writers = [threading.Thread(target=write, args=(c,)) for c in "xy"]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors == []
    assert path.read_text() in ("x" * 1000, "y" * 1000)
    assert _leftovers(tmp_path) == []
