"""One run per output folder: the folder is made, checked for writing and locked before a run
does any work, and left as it was found when the run fails before writing anything."""
from __future__ import annotations

import pytest

import minivae.io.lock as lock
from minivae.io.lock import LOCK_NAME, FolderInUseError, make_folder, run_folder


def test_a_held_folder_is_refused_with_the_holder_named(tmp_path):
    with run_folder(tmp_path / "run") as folder:
        assert (folder / LOCK_NAME).read_text().strip().isdigit()  # the holder's process id
        # flock locks belong to an open file, so a second opening conflicts even in-process
        with pytest.raises(FolderInUseError, match=f"process \\d+\\) is writing into {folder}"):
            with run_folder(folder):
                pass
        (folder / "result").write_text("kept")
    assert sorted(p.name for p in folder.iterdir()) == ["result"]  # the lock file is gone
    with run_folder(folder):  # and the folder is free again
        pass


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path):
    (tmp_path / LOCK_NAME).write_text("12345\n")  # nobody holds a lock on it
    with run_folder(tmp_path) as folder:
        assert (folder / LOCK_NAME).read_text().strip() != "12345"
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_failed_run_leaves_no_folder_it_made(tmp_path):
    with pytest.raises(RuntimeError, match="the data are missing"):
        with run_folder(tmp_path / "runs" / "a" / "b"):
            raise RuntimeError("the data are missing")
    assert list(tmp_path.iterdir()) == []
    # a folder that was there stays, and so does what a failed run wrote into a new one
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path):
            raise RuntimeError
    assert tmp_path.is_dir()
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path / "new") as folder:
            (folder / "checkpoint.npz").write_bytes(b"epoch 1")
            raise RuntimeError
    assert (tmp_path / "new" / "checkpoint.npz").is_file()


def test_a_file_cannot_be_the_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    for path, message in ((tmp_path / "file", "it is a file"),
                          (tmp_path / "file" / "a" / "b", "it lies under the file")):
        with pytest.raises(NotADirectoryError, match=message) as error:
            make_folder(path)
        assert error.value.filename == str(path)
        with pytest.raises(NotADirectoryError, match=message):
            with run_folder(path):
                pytest.fail("the body ran")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_folder_that_cannot_be_written_to_is_refused_before_the_body(tmp_path, monkeypatch):
    """Checked by creating a file there (read-only folders, read-only file systems; as root,
    permissions do not bind, so the failure is simulated)."""
    def refused(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(lock.tempfile, "TemporaryFile", refused)
    with pytest.raises(PermissionError):
        with run_folder(tmp_path / "run"):
            pytest.fail("the body ran")
    assert list(tmp_path.iterdir()) == []
