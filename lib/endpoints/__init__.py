"""Endpoints: where a race's two calls go, checked before anything is sent.

`local` is the embedded llama.cpp model (lib.serving.embedded); `openai` is api.openai.com;
`compatible` is any OpenAI-compatible base URL (Ollama, vLLM, llama.cpp, LM Studio, a gateway);
`replay` plays a saved recording, possibly transformed (lib.replay).

This package's top level is only the `Endpoint` type: importing it starts nothing. Turning
settings into an Endpoint (which may start a server) is `lib.endpoints.resolve.resolve`.
"""

from lib.endpoints.endpoint import Endpoint, check_base_url

__all__ = ["Endpoint", "check_base_url"]
