"""Inputs that must never reach outside their place: node ids, and pasted commands."""

import json
import shlex
import subprocess

import pytest
import zarr

from sarise.errors import SariseError
from sarise.project import ProjectionTree
from sarise.viewer.app import _command


@pytest.fixture
def tree(tmp_path):
    run = tmp_path / "run"
    zarr.open_group(run / "features.zarr", mode="w")
    (run / "projections" / "root").mkdir(parents=True)
    (run / "projections" / "root" / "node.json").write_text(
        json.dumps({"id": "root", "parent": None})
    )
    return ProjectionTree(run)


@pytest.mark.parametrize("node", ["../../victim", "..", "/tmp", "root/../..", "a b", "", "x" * 65])
def test_node_ids_that_are_paths_are_refused(tree, tmp_path, node):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "node.json").write_text("{}")
    with pytest.raises(SariseError, match="invalid projection node id"):
        tree.remove(node)
    with pytest.raises(SariseError, match="invalid projection node id"):
        tree.info(node)
    assert (victim / "node.json").exists() and tree.ids() == ["root"]


def test_the_reproduce_command_is_shell_quoted(tmp_path):
    marker = tmp_path / "pwned"
    query = f'material == "a" and path matches "$(touch {marker})" or grower == \'x\''
    info = {"parent": "root", "selection": {"query": query}, "how": {"method": "refit"}}
    run = tmp_path / "my run"
    cmd = _command(run, info)
    words = shlex.split(cmd)
    assert words == ["sarise", "explore", "select", str(run), "root", "--query", query, "--refit"]
    # pasted into a shell, the query is one argument and nothing in it runs
    out = subprocess.run(["bash", "-c", "printf '%s\\n' " + cmd.removeprefix("sarise ")],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert query in out.stdout.splitlines() and not marker.exists()
    polygon = {"parent": "n1", "selection": {"polygon": [[0, 1], [2, 3.5], [4, 0]]},
               "how": {"method": "refine"}}  # fmt: skip
    assert shlex.split(_command(run, polygon))[-2:] == ["--polygon", "0,1;2,3.5;4,0"]
    assert shlex.split(_command(run, {"parent": None})) == ["sarise", "project", str(run)]
