"""The state file: atomic saves, a corrupt file moved aside, one run at a time."""

from __future__ import annotations

import json
import threading

import pytest

from state_store import StateBusyError, StateStore, account_state, empty_state


def test_missing_state_file_is_an_empty_state(tmp_path):
    assert StateStore(str(tmp_path / "state.json")).load() == empty_state()


def test_saved_state_loads_back_and_leaves_no_temp_file(tmp_path):
    store = StateStore(str(tmp_path / "state.json"))
    state = empty_state()
    account_state(state, "a")["crawl_after"] = "cursor-1"
    store.save(state)
    assert store.load()["accounts"]["a"]["crawl_after"] == "cursor-1"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"version": 99, "accounts": {}}', b"\xff\xfe\x00binary", b""],
)
def test_corrupt_state_is_moved_aside_and_the_run_starts_fresh(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    assert StateStore(str(path)).load() == empty_state()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.json.corrupt-")]
    assert len(aside) == 1
    assert aside[0].read_bytes() == content
    assert not path.exists()


def test_a_failed_save_keeps_the_previous_state(tmp_path, monkeypatch):
    store = StateStore(str(tmp_path / "state.json"))
    store.save({**empty_state(), "accounts": {"a": {}}})

    def broken_dump(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError):
        store.save(empty_state())
    monkeypatch.undo()
    assert store.load()["accounts"] == {"a": {}}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state.json"]


def test_a_second_run_on_the_same_state_gives_up_with_a_clear_message(tmp_path):
    path = str(tmp_path / "state.json")
    holding, release = threading.Event(), threading.Event()

    def first_run() -> None:
        with StateStore(path).locked():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=first_run)
    thread.start()
    holding.wait(5)
    try:
        with (
            pytest.raises(StateBusyError, match="another run is using"),
            StateStore(path).locked(wait_s=0.3),
        ):
            pass
    finally:
        release.set()
        thread.join()
    with StateStore(path).locked(wait_s=0.3):
        pass
