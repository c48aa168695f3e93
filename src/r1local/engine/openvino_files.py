"""How OpenVINO GenAI reads a model: the optional package itself, a GGUF (converted once into the
model's cache folder) or an IR folder with its own tokenizer, and its errors in one sentence."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import config
from ..errors import EngineUnavailable
from .openvino_plan import OpenVINOPlan
from .template import ChatTemplate


def genai() -> Any:
    """openvino_genai, or a clear error naming the one command that installs it."""
    try:
        import openvino_genai
    except ImportError:
        raise EngineUnavailable(
            "The OpenVINO engine is not installed.", f"Install it with: {config.OPENVINO_EXTRA}"
        ) from None
    return openvino_genai


def available_devices() -> list[str]:
    """OpenVINO's own device list ("CPU", "GPU.0", "NPU"...)."""
    import openvino

    genai()
    return list(openvino.Core().available_devices)


class FolderVocab:
    """The tokenizer of an OpenVINO IR folder (openvino_tokenizer.xml / openvino_detokenizer.xml)."""

    def __init__(self, folder: Path) -> None:
        self.tokenizer = genai().Tokenizer(str(folder))
        self.eos = self.tokenizer.get_eos_token_id()

    def chat_template(self) -> ChatTemplate:
        tok = self.tokenizer
        return ChatTemplate(tok.chat_template or None, tok.get_bos_token(), tok.get_eos_token())

    def prompt_tokens(self, text: str) -> list[int]:
        encoded = self.tokenizer.encode(text, add_special_tokens=False)  # the template wrote the BOS
        return [int(t) for t in encoded.input_ids.data[0]]

    def is_eog(self, token: int) -> bool:
        return token == self.eos

    def decoder(self) -> Callable[[int], bytes]:
        """Token -> the bytes it adds: decode the whole answer and return what is new, holding
        back a character still incomplete (shown as U+FFFD) until its last token arrives."""
        ids: list[int] = []
        sent = [0]

        def piece(token: int) -> bytes:
            ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            if text.endswith("\ufffd"):
                return b""
            new, sent[0] = text[sent[0] :], len(text)
            return new.encode()

        return piece

    def close(self) -> None:
        self.tokenizer = None


def open_pipeline(ov: Any, path: Path, plan: OpenVINOPlan) -> Any:
    """The pipeline for a GGUF or an IR folder. A GGUF is converted to OpenVINO's format once, into
    the model's cache folder, and later loads read that (tiny model on two busy cores: 35 s to
    convert, 3 s to load converted). OpenVINO writes a converted model next to the file it read,
    so it reads the GGUF through a link placed in the cache folder."""
    props = plan.properties()
    source = path
    if path.is_file():
        converted = plan.cache_dir / "converted"
        if (converted / "openvino_model.xml").is_file():
            source = converted
        elif link := _link(path, converted):
            source, props["enable_save_ov_model"] = link, True
    try:
        if not plan.continuous_batching:
            return ov.LLMPipeline(str(source), plan.device, **props)
        scheduler = ov.SchedulerConfig()
        scheduler.num_kv_blocks = plan.kv_blocks()
        scheduler.max_num_seqs = plan.n_parallel
        scheduler.enable_prefix_caching = True
        return ov.ContinuousBatchingPipeline(str(source), scheduler, plan.device, props)
    finally:
        if source.name == path.name and source != path:
            source.unlink(missing_ok=True)  # the link, not the model


def _link(path: Path, folder: Path) -> Path | None:
    """A link to `path` inside `folder`; None where links cannot be made (the GGUF is then read each load)."""
    link = folder / path.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(path.resolve())
    except OSError:
        return None
    return link


def reason(error: Exception) -> str:
    """OpenVINO's message without the source file locations it is wrapped in."""
    lines = [re.sub(r"\s*at \S+:\d+:?$", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception from")]
    return lines[-1].rstrip(".") if lines else "unknown reason"


def folder_context(folder: Path) -> int:
    """The context an IR folder's model was trained for (its config.json)."""
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return int(cfg.get("max_position_embeddings") or config.DEFAULT_CTX)
    except (OSError, ValueError):
        return config.DEFAULT_CTX
