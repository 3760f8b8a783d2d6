import subprocess
import sys

import pytest

from sarise.symmetry import open_split


def run(args, env, **kw):
    return subprocess.run(["sarise", *args], capture_output=True, text=True, env=env, **kw)


def test_help_lists_only_real_verbs(cli_env):
    out = run(["--help"], cli_env)
    assert out.returncode == 0
    verbs = {
        line.split()[1]
        for line in out.stdout.splitlines()
        if line.startswith("│ ") and len(line.split()) > 2
    }
    assert {"generate", "config"} <= verbs
    assert run(["--version"], cli_env).stdout.startswith("sarise ")


@pytest.mark.integration
def test_generate(tmp_path, cli_env):
    out = run(
        ["--log-level", "warning", "generate", str(tmp_path / "sym"), "--size", "64",
         "--per-group", "1", "--split", "val", "--preview", str(tmp_path / "p.png"), "--no-progress"],
        cli_env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert open_split(tmp_path / "sym" / "val.zarr").sizes["image"] == 17
    assert not (tmp_path / "sym" / "train.zarr").exists()
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_errors_are_one_line(tmp_path, cli_env):
    bad = tmp_path / "bad.yaml"
    bad.write_text("symmetry: {size: 64, cell_px: [10, 200]}\n")
    out = run(["generate", str(tmp_path / "x"), "--config", str(bad)], cli_env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"sarise: error: invalid config {bad}: symmetry: cell_px must satisfy "
        "2.0 <= low <= high <= 64.0, got [10.0, 200.0]"
    ]
    debug = run(["--debug", "generate", str(tmp_path / "x"), "--config", str(bad)], cli_env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    usage = run(["generate", "--split", "everything"], cli_env)
    assert usage.returncode == 2 and "must be one of train, val, test" in usage.stderr


def test_config_verb(tmp_path, cli_env):
    out = run(["config"], cli_env)
    assert out.returncode == 0 and "cell_resolution: 64" in out.stdout
    schema = run(["config", "--schema"], cli_env)
    assert schema.returncode == 0 and "$schema" in schema.stdout


def test_help_does_not_load_the_heavy_stack(cli_env):
    code = "import sys, sarise.cli; print(sorted(m for m in ('numba', 'scipy', 'zarr', 'torch') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env, check=True
    )
    assert out.stdout.strip() == "[]"


_WAIT_AT_TORCH_IMPORT = """
import os, sys
seen = []
class Watch:  # records OMP_WAIT_POLICY when torch is first imported (libgomp reads it then)
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
sys.meta_path.insert(0, Watch())
from sarise.cli import app
from typer.testing import CliRunner
out = CliRunner().invoke(app, ["train", sys.argv[1]])
print(seen, out.exit_code)
"""


def test_train_lets_torchs_threads_sleep_while_they_wait(tmp_path, cli_env):
    """`sarise train` sets OMP_WAIT_POLICY=PASSIVE before torch loads (its loaders get
    the cores torch's waiting threads would spin on); a value the user set is kept."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")  # train fails once torch is in (OUT is a file)
    env = {k: v for k, v in cli_env.items() if k != "OMP_WAIT_POLICY"}
    for user, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        if user:
            env["OMP_WAIT_POLICY"] = user
        out = subprocess.run([sys.executable, "-c", _WAIT_AT_TORCH_IMPORT, str(not_a_folder)],
                             capture_output=True, text=True, env=env, check=True)  # fmt: skip
        seen, code = out.stdout.split()[-2:]
        assert seen == f"['{expected}']" and code != "0", out.stdout


def test_sizes_and_patterns_are_refused_at_the_boundary(tmp_path, cli_env):
    huge_k = run(["search", str(tmp_path), "--id", "1", "--k", "1000000000"], cli_env)
    assert huge_k.returncode == 2 and "Invalid value for '--k'" in huge_k.stderr
    assert "Traceback" not in huge_k.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text('ingest: {channels: ["("]}\n')
    for args in (["config", str(bad)],
                 ["ingest", str(tmp_path / "store"), str(tmp_path), "--config", str(bad)]):  # fmt: skip
        out = run(args, cli_env)
        assert out.returncode == 1, out.stdout
        assert out.stderr.strip().splitlines() == [
            f"sarise: error: invalid config {bad}: ingest.channels: channels[0] = "
            "'(' is not a regular expression: missing ), unterminated subpattern at position 0"
        ]
    assert not (tmp_path / "store").exists()  # nothing left behind
