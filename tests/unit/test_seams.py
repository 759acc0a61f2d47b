"""Every private API of Mirascope, the openai SDK and httpx that we use is in lib/core/seams.py,
and each one is still where we reach for it: a release that moves one fails here, loudly,
instead of silently slowing decoding or breaking cancellation."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import httpx

from lib.core import seams

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("mirascope", "openai", "httpx", "httpcore")


def test_the_sdk_still_has_the_decode_hook_we_override():
    """lib.core.seams.OpenAIClient speeds decoding up by overriding a private SDK method; if an
    SDK release renames it, decoding silently falls back to the slow path: this fails first."""
    from openai import OpenAI

    from lib.core.seams import OpenAIClient

    assert callable(getattr(OpenAI, "_process_response_data", None))
    assert "_process_response_data" in vars(OpenAIClient)


def test_mirascope_still_has_the_provider_hooks_we_override():
    base = seams.BaseOpenAICompletionsProvider
    for name in ("_model_name", "_provider_model_name", "_model_feature_info"):
        assert callable(getattr(base, name, None)), f"Mirascope's provider lost {name}"
        assert name in vars(seams.Provider)
    module = importlib.import_module("mirascope.llm.providers.openai.completions._utils")
    assert callable(module.feature_info_for_openai_model)
    assert isinstance(module.CompletionsModelFeatureInfo(), module.CompletionsModelFeatureInfo)


def test_httpx_still_has_the_pool_seam_for_cancellation():
    transport = httpx.HTTPTransport()
    try:
        assert hasattr(transport._pool, "_network_backend"), "httpx moved the pool's backend"
        tracker = seams.SocketTracker()
        seams.use_network_backend(transport, tracker)
        assert transport._pool._network_backend is tracker
    finally:
        transport.close()


def private_uses(path: Path) -> list[str]:
    """`_name`s taken from the libraries: imports of private modules or names, and attribute
    reads of `_name` off anything (in a file that imports one of the libraries)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in LIBRARIES:
            if any(part.startswith("_") for part in node.module.split(".")) or \
                    any(a.name.startswith("_") for a in node.names):
                found.append(f"from {node.module} import …")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and \
                not node.attr.startswith("__") and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f".{node.attr}")
    return found


def test_private_apis_are_used_in_one_module_only():
    for path in sorted((ROOT / "lib").rglob("*.py")):
        if path.name == "seams.py":
            continue
        source = path.read_text(encoding="utf-8")
        if not any(f"import {lib}" in source or f"from {lib}" in source for lib in LIBRARIES):
            continue
        uses = [u for u in private_uses(path) if not u.startswith(".__")]
        own = {f".{n.name}" for n in ast.walk(ast.parse(source))
               if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign))
               and getattr(n, "name", "").startswith("_")}
        assert not [u for u in uses if u not in own], (path, uses)


def test_mirascope_still_has_what_the_reasoning_decoders_build_on():
    """lib.core.seams.Provider replaces Mirascope's `_call` and `_stream` (its Chat Completions
    decoders drop reasoning) and reuses its encoder, decoder and chunk processor."""
    import inspect

    from mirascope.llm.providers.openai.completions._utils import decode

    base = seams.BaseOpenAICompletionsProvider
    for name in ("_call", "_stream"):
        assert callable(getattr(base, name, None)), f"Mirascope's provider lost {name}"
        assert name in vars(seams.Provider)
        source = inspect.getsource(getattr(base, name))
        assert "_utils.encode_request" in source, f"{name} no longer encodes as we copy it"
    assert callable(seams.completions_utils.encode_request)
    assert callable(seams.completions_utils.decode_response)
    processor = decode._OpenAIChunkProcessor()
    assert callable(processor.process_chunk)
    assert hasattr(processor, "current_content_type")
    assert issubclass(seams.ReasoningChunkProcessor, decode._OpenAIChunkProcessor)


def test_a_chunk_is_stamped_with_its_arrival_kept_between_the_chunk_before_and_now():
    """SocketTracker.arrived_at: the newest connection's last arrival, never before what was
    already stamped (t0, the chunk before), never after the read; unknown (a system without
    stamps, a read the kernel did not stamp) is the reader's own clock."""

    class Stream:
        def __init__(self, arrived_at):
            self.arrived_at = arrived_at

    tracker = seams.SocketTracker()
    assert tracker.arrived_at(1.0, 5.0) == 5.0  # nothing connected yet
    tracker._streams.append(Stream(2.0))
    tracker._streams.append(Stream(None))
    assert tracker.arrived_at(1.0, 5.0) == 5.0  # the newest connection says nothing
    tracker._streams.append(Stream(3.0))
    assert tracker.arrived_at(1.0, 5.0) == 3.0
    assert tracker.arrived_at(4.0, 5.0) == 4.0
    assert tracker.arrived_at(1.0, 2.5) == 2.5
