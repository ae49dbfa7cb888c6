"""The text model: a pretrained transformer fine-tuned on the text column (`Model`, kind "text")."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.common.errors import PipelineError
from pipeline.common.io import write_json
from pipeline.common.model import MODEL_FILE, Model, ModelGraph
from pipeline.text_model.config import TextModelConfig
from serving.schemas import Outputs, TextField, TextInput, TokenizerSpec
from serving.text_input import build_texts

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from pipeline.common.data import Split, Splits
    from pipeline.common.tracking import Run
    from pipeline.text_model.encoder import TextNet

log = logging.getLogger(__name__)
WHERE = "configs/text_model"
# Word counts of texts sent in one call: padding and truncation must not change any row's result.
LENGTHS = (1, 400, 2, 3, 60, 5, 8, 2000, 13, 21, 34)


class TextModel(Model):
    """Encoder + pooling + dropout + linear head, fine-tuned with Lightning."""

    kind = "text"
    config_class = TextModelConfig
    config: TextModelConfig
    tokenizer: Any  # a transformers fast tokenizer, set by `fit`
    net: TextNet
    facts: dict[str, float | int | str | bool | None]

    @classmethod
    def config_node(cls, cfg: DictConfig, name: str) -> Any:
        """`text_model` with the `trainer` group (the hardware) inside it."""
        from omegaconf import OmegaConf

        node = OmegaConf.to_container(cfg[name], resolve=True)
        assert isinstance(node, dict)  # configs/config.yaml always selects a trainer
        return {**node, "trainer": OmegaConf.to_container(cfg.trainer, resolve=True)}

    @property
    def regression(self) -> bool:
        return not self.profile.is_classification

    def skip_reason(self) -> str | None:
        if self.profile.features.text is None:
            return "the data has no text column (data config `text` is not set)"
        return None

    def check(self) -> None:
        from pipeline.text_model.encoder import POOLINGS, source_of

        config = self.config
        for key, allowed in (("pooling", POOLINGS), ("loss", ("mse", "huber"))):
            if (value := getattr(config, key)) not in allowed:
                raise PipelineError(
                    f"{key} '{value}' unknown", where=WHERE, fix=f"use one of {allowed}"
                )
        source_of(config.pretrained)  # is the packaged model installed?
        self.text_input()  # checks text_fields
        validations = config.max_steps // config.val_check_interval
        if config.max_steps > 0 and validations <= config.early_stopping_patience:
            raise PipelineError(
                f"early stopping (patience {config.early_stopping_patience}) can never fire in "
                f"{validations} validations",
                where=WHERE,
                fix="lower early_stopping_patience or val_check_interval, or raise max_steps",
            )

    def text_input(self) -> TextInput:
        """The input string's recipe: `text_fields` (numeric or categorical) before the text."""
        features = self.profile.features
        assert features.text is not None
        known = {n: TextField(name=n, type="number") for n in features.model_numeric}
        known.update({n: TextField(name=n, type="category") for n in features.categorical})
        for name in self.config.text_fields:
            if name not in known:
                raise PipelineError(
                    f"text_fields entry '{name}' is not a numeric or categorical input",
                    where=f"{WHERE}: text_fields",
                    fix=f"choose from {list(known)}",
                )
        return TextInput(text=features.text, fields=[known[n] for n in self.config.text_fields])

    def batches(self, split: Split, targets: bool = False) -> Any:
        """Token ids as the server makes them, with class indices or standardised `targets`."""
        from pipeline.text_model.encoder import backend_tokenizer, pad_of
        from pipeline.text_model.training import Batches

        backend = backend_tokenizer(self.tokenizer, self.config.max_length)
        ids = [e.ids for e in backend.encode_batch(build_texts(split.columns, self.text_input()))]
        y = np.zeros(len(split))
        if targets and self.regression:
            mean, scale = self.net.target_mean.item(), self.net.target_scale.item()
            y = ((split.y - mean) / scale).astype(np.float32)
        elif targets:
            y = split.y.astype(np.int64)
        return Batches(ids, y, **pad_of(self.tokenizer))

    def fit(self, data: Splits, run: Run | None) -> None:
        import lightning as L
        import safetensors.torch
        import torch

        from pipeline.text_model import training
        from pipeline.text_model.encoder import build

        config = self.config
        L.seed_everything(self.seed, workers=True, verbose=False)
        threads = config.num_threads or len(os.sched_getaffinity(0))
        torch.set_num_threads(threads)  # a fixed count: CPU results depend on it
        train = sample(data.train, config.train_rows, self.seed)
        val = sample(data.val, config.val_rows, self.seed)
        self.tokenizer, self.net = build(config, 1 if self.regression else self.profile.n_classes)
        if self.regression:
            self.net.target_mean.fill_(float(np.mean(train.y)))
            self.net.target_scale.fill_(float(np.std(train.y)) or 1.0)
        train_data, val_data = self.batches(train, targets=True), self.batches(val, targets=True)
        log.info(
            "training on %d texts, validating on %d, %d threads", len(train), len(val), threads
        )
        module = training.FineTune(self.net, self.regression, config)
        start = None
        if config.warm_start and config.resume_from is None:
            start = training.warm_start(module, train_data, val_data, config.eval_batch_size)
        trainer, checkpoint, resume = training.build_trainer(config, run.run_id if run else None)
        trainer.fit(
            module,
            train_data.loader(config.batch_size, shuffle=True),
            val_data.loader(config.eval_batch_size, shuffle=False),
            ckpt_path=resume,
        )
        state = {k: v.contiguous() for k, v in self.net.state_dict().items()}
        log.info(  # the DDP test checks that the ranks agree
            "rank %d/%d trained: %d optimizer steps, %d samples, weights sha256 %s",
            *(trainer.global_rank, trainer.world_size, trainer.global_step, module.samples_seen),
            hashlib.sha256(safetensors.torch.save(state)).hexdigest()[:16],
        )
        if not trainer.is_global_zero:
            raise SystemExit(0)  # rank 0 alone predicts, writes and tracks
        best: Any = checkpoint.best_model_score
        chosen = Path(checkpoint.best_model_path).name or "final weights"
        if start is not None and (best is None or start[0] <= float(best)):
            self.net.load_state_dict(start[1])
            best, chosen = start[0], "warm start"
        elif checkpoint.best_model_path:
            saved = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(saved["state_dict"])
        self.net.eval()
        self.facts = {
            "pooling": self.net.pooling,
            "train_rows": len(train),
            "steps": trainer.global_step,
            "best_val_loss": None if best is None else float(best),
            "best_checkpoint": chosen,
            "stopped_early": trainer.global_step < trainer.estimated_stepping_batches,
        }

    def predict(self, split: Split) -> np.ndarray:
        from pipeline.text_model.encoder import Served
        from pipeline.text_model.training import run_batches

        served = Served(self.net.eval(), self.regression)  # on the CPU after `fit`
        out = run_batches(served, self.batches(split), self.config.eval_batch_size)
        return out[:, 0] if self.regression else out

    def to_onnx(self, out_dir: Path) -> ModelGraph:
        from pipeline.text_model.encoder import Served, backend_tokenizer, export_graph, pad_of

        output = "value" if self.regression else "probabilities"
        served = Served(self.net.cpu().eval(), self.regression)
        export_graph(served, out_dir / MODEL_FILE, output, self.config.opset)
        tokenizer = out_dir / "tokenizer.json"
        backend_tokenizer(self.tokenizer, self.config.max_length).save(str(tokenizer))
        spec = TokenizerSpec(
            file=tokenizer.name,
            sha256=hashlib.sha256(tokenizer.read_bytes()).hexdigest(),
            max_length=self.config.max_length,
            **pad_of(self.tokenizer),
        )
        outputs = Outputs(**{output: output})
        return ModelGraph(MODEL_FILE, outputs, text_input=self.text_input(), tokenizer=spec)

    def edge_splits(self, data: Splits) -> dict[str, Split]:
        from pipeline.common.parity import edge_variants

        texts = [" ".join(["word"] * n) for n in LENGTHS]
        mixed = edge_variants(data, [(self.text_input().text, texts)])
        return {**super().edge_splits(data), "edge:text_lengths": mixed}

    def save(self, out_dir: Path) -> None:
        """`hf/` (save_pretrained, head, head.json; no pickle); the final graph's int8 copy."""
        from safetensors.torch import save_file

        from pipeline.text_model.encoder import INT8_FILE, quantize_int8

        native = out_dir / "hf"
        self.net.encoder.save_pretrained(native, safe_serialization=True)
        self.tokenizer.save_pretrained(native)
        state = self.net.state_dict()
        head = {k: v.cpu().contiguous() for k, v in state.items() if not k.startswith("encoder.")}
        save_file(head, str(native / "head.safetensors"))
        # Not safetensors metadata: its key order varies between runs, whose bytes must agree.
        meta = {"pooling": self.net.pooling, "max_length": self.config.max_length}
        write_json(native / "head.json", {**meta, "task": self.profile.task})
        if self.config.quantize:
            quantize_int8(out_dir / MODEL_FILE, out_dir / INT8_FILE)

    def log_model(self, run: Run, out_dir: Path) -> None:
        run.log_artifacts(out_dir / "hf", "native")

    def params(self) -> dict[str, float | int | str | bool | None]:
        return self.facts


def sample(split: Split, rows: int | None, seed: int) -> Split:
    """A seeded random subset of `rows` rows (the whole split when it is no larger)."""
    if rows is None or len(split) <= rows:
        return split
    return split.take(np.sort(np.random.default_rng(seed).choice(len(split), rows, replace=False)))
