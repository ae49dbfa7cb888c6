"""`make bench` (bench/run_all.py): bounded benchmarks, `dvc repro` stage times, JSON + table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run_all

SCRIPTS = {
    "good": (
        "import json, pathlib\n"
        "out = pathlib.Path('bench/out'); out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'good.json').write_text(json.dumps("
        "{'summary': {'speedup_x': 6.25, 'rows': 5000000}, 'detail': {'a': 1}}))\n"
    ),
    "crash": "raise SystemExit('boom: no processed data')\n",
    "hang": "import time\ntime.sleep(60)\n",
    "silent": "print('forgot to write the JSON')\n",
}


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bench"
    directory.mkdir()
    for name, code in SCRIPTS.items():
        (directory / f"{name}.py").write_text(code)
    return directory


def test_the_registry_lists_every_stage_benchmark() -> None:
    assert list(run_all.BENCHMARKS) == [
        "etl_vs_pandas",
        "etl_out_of_core",
        "lightgbm_train",
        "lightning_vs_torch",
        "onnx_vs_native",
        "http_serving",
    ]
    assert all(60 <= limit <= 1800 for limit in run_all.BENCHMARKS.values())


def test_every_outcome_is_reported(bench_dir: Path) -> None:
    out = bench_dir / "out"
    out.mkdir()
    (out / "silent.json").write_text("{}")  # stale result from an earlier run
    results = run_all.run_all(
        ["good", "crash", "hang", "silent", "absent"],
        bench_dir=bench_dir,
        out_dir=out,
        timeouts={"hang": 1.5},
        dvc_root=None,
    )
    by_name = {b["name"]: b for b in results["benchmarks"]}
    assert {n: b["status"] for n, b in by_name.items()} == {
        "good": "ok",
        "crash": "failed",
        "hang": "timeout",
        "silent": "no output",
        "absent": "missing",
    }
    assert by_name["good"]["output"]["summary"]["speedup_x"] == 6.25
    assert "boom: no processed data" in by_name["crash"]["error"]
    assert 1.4 < by_name["hang"]["wall_s"] < 10  # killed at its limit, not after 60 s
    table = run_all.markdown(results)
    assert "| `good` | ok |" in table and "speedup_x: 6.25; rows: 5,000,000" in table
    assert "| `crash` | failed |" in table and "boom" in table
    assert "| `hang` | timeout |" in table and "killed after 2 s" in table
    assert "| `silent` | no output |" in table
    assert "| `absent` | missing |" in table and "absent.py not found" in table
    assert "Not measured in this run" in table


def test_machine_is_described() -> None:
    machine = run_all.machine_info()
    assert machine["cores"] >= 1 and machine["ram_gib"] > 0
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    assert machine["libraries"]["numpy"][0].isdigit()
    table = run_all.markdown(
        {"date": "today", "commit": "abc", "machine": machine, "benchmarks": [], "dvc": None}
    )
    for row in ("| CPU |", "| cores |", "| RAM |", "| OS |", "| Python |", "| libraries |"):
        assert row in table


def test_stage_times_from_dvc_output() -> None:
    lines = [
        (0.1, "Running stage 'etl':"),
        (0.2, "> python -m pipeline.etl"),
        (3.0, "Updating lock file 'dvc.lock'"),
        (3.1, ""),
        (3.2, "Stage 'generate' didn't change, skipping"),
        (3.3, "Running stage 'lightgbm':"),
        (9.3, "Updating lock file 'dvc.lock'"),
        (9.4, "Running stage 'report':"),
    ]
    assert run_all.stage_times(lines, finished=10.0) == {
        "etl": 2.9,
        "lightgbm": 6.0,
        "report": 0.6,
    }


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_dvc_repro_is_timed_per_stage_in_a_fresh_copy(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=project, check=True)
    (project / "dvc.yaml").write_text(
        "stages:\n"
        "  first:\n"
        "    cmd: python -c \"import time; time.sleep(0.4); open('a.txt', 'w').write('a')\"\n"
        "    outs: [a.txt]\n"
        "  second:\n"
        "    cmd: python -c \"open('b.txt', 'w').write(open('a.txt').read())\"\n"
        "    deps: [a.txt]\n"
        "    outs: [b.txt]\n"
    )
    (project / "notes.txt").write_text("untracked but not ignored: part of the snapshot\n")
    (project / "a.txt").write_text("stale output from an earlier run, not ignored by git\n")
    _git(project, "add", "dvc.yaml", ".dvc")
    _git(project, "commit", "-q", "-m", "pipeline")
    result = run_all.bench_dvc(project, timeout=120, keep=True)
    snapshot = Path(result["workdir"])
    assert (snapshot / "notes.txt").is_file()
    assert (snapshot / "a.txt").read_text() == "a"  # rebuilt, the stale copy was left behind
    shutil.rmtree(snapshot)
    repro = result["repro"]
    assert repro["status"] == "ok", repro.get("log_tail")
    assert list(repro["stages"]) == ["first", "second"]
    assert repro["stages"]["first"] >= 0.4
    assert repro["wall_s"] >= sum(repro["stages"].values())
    assert result["noop"]["status"] == "ok" and result["noop"]["ran_stages"] == []
    assert (project / "a.txt").read_text().startswith("stale")  # the checkout is untouched
    table = run_all.markdown(
        {
            "date": "d",
            "commit": "c",
            "machine": run_all.machine_info(),
            "benchmarks": [],
            "dvc": result,
        }
    )
    assert "| `first` |" in table and "| no-op `dvc repro` (nothing re-ran) |" in table


def test_outputs_are_written(tmp_path: Path) -> None:
    results = {
        "date": "d",
        "commit": "c",
        "machine": run_all.machine_info(),
        "benchmarks": [{"name": "x", "status": "missing", "error": "x.py not found"}],
        "dvc": None,
    }
    run_all.write_outputs(results, tmp_path / "out", tmp_path / "RESULTS.md")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["commit"] == "c"
    assert "| `x` | missing |" in (tmp_path / "RESULTS.md").read_text()


def test_profile_selection_edits_only_the_defaults_entry(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "config.yaml"
    config.write_text("defaults:\n  - data: demo\n  - profile: null   # tiny for tests\nseed: 1\n")
    run_all.select_profile(tmp_path, "tiny")
    assert (
        config.read_text()
        == "defaults:\n  - data: demo\n  - profile: tiny   # tiny for tests\nseed: 1\n"
    )


def test_headline_without_summary_skips_run_descriptions() -> None:
    result = {
        "status": "ok",
        "output": {
            "machine": {"cpus": 2},
            "python": "3.11",
            "lgbm": {"batch1_ms": 0.25, "speedup_x": 1.8},
        },
    }
    assert run_all.headline(result) == "lgbm.batch1_ms: 0.25; lgbm.speedup_x: 1.8"


def test_benchmarks_left_out_by_only_still_get_a_row() -> None:
    rows = run_all.not_selected(["http_serving"])
    assert [r["name"] for r in rows] == [n for n in run_all.BENCHMARKS if n != "http_serving"]
    assert all(r["status"] == "not run" for r in rows)
