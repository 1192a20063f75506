"""Atomic and resumable writing: what a killed writer leaves behind is never mistaken for whole data."""
import os
import stat

import pytest

from benchmark import io


def test_atomic_path_leaves_no_file_when_the_block_fails(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    target = tmp_path / "a" / "b.json"
    io.write_json(target, {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert io.read_json(target) == {"x": 1}


def test_read_jsonl_drops_a_torn_last_line_and_truncate_repairs_it(tmp_path):
    path = tmp_path / "log.jsonl"
    io.append_jsonl(path, [{"i": 0}, {"i": 1}])
    with open(path, "a") as f:
        f.write('{"i": 2')  # a writer killed mid-line
    assert io.read_jsonl(path) == [{"i": 0}, {"i": 1}]
    io.truncate_torn_tail(path)
    io.append_jsonl(path, [{"i": 2}])
    assert io.read_jsonl(path) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_write_csv_is_the_results_format(tmp_path):
    import pandas as pd

    path = tmp_path / "t.csv"
    io.write_csv(path, pd.DataFrame({"task": ["a", "b"], "mean": [1 / 3, 2.0], "n": [3, 4]}, index=[7, 8]))
    assert path.read_text() == "task,mean,n\na,0.333333,3\nb,2,4\n"  # no index, 6 significant digits


def test_write_table_puts_the_markdown_beside_the_csv(tmp_path):
    import pandas as pd

    path = tmp_path / "new" / "t.csv"  # a folder that does not exist yet
    io.write_table(path, pd.DataFrame({"a": [1]}), "| a |\n")
    assert path.read_text() == "a\n1\n" and (tmp_path / "new" / "t.md").read_text() == "| a |\n"
