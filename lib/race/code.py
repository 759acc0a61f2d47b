"""A race lane as the Mirascope 2 code that makes the same call: "View code" on the race page.

The code registers a Chat Completions provider for the lane's base URL (Mirascope's own
`openai:completions` provider would cut a model name at its second slash and drop the
temperature and max_tokens of a model it does not know) and decorates a function with
`@llm.call`, called blocking or with `.stream()`, with the lane's parameters. Its key is never
in the code: it is read from the variable the endpoint's key comes from.
"""

from __future__ import annotations

from lib.core.thoughts import effort_value
from lib.core.trace import Mode, Request

KEY_VARIABLES = {"openai": "OPENAI_API_KEY"}
"""Where the code reads the lane's key (default STREAMRACE_API_KEY); never the key itself."""

ENDPOINT_NOTES = {
    "local": "the embedded model's llama-server (its port changes at each start of StreamRace)",
    "replay": "StreamRace's replay server (running while StreamRace is)",
}


def lane_code(request: Request, mode: Mode, prompt: str | None = None) -> str:
    """Runnable Python (Mirascope 2) making this lane's call: its endpoint, model, parameters,
    and `prompt` (default the request's own), blocking or streamed as the lane was."""
    params = request.params
    arguments = [f"temperature={params.temperature!r}", f"max_tokens={params.max_tokens!r}"]
    if params.seed is not None:
        arguments.append(f"seed={params.seed!r}")
    if params.stop:
        arguments.append(f"stop_sequences={list(params.stop)!r}")
    extras = []
    if params.repeat_penalty is not None:
        extras.append(f'extra_body={{"repeat_penalty": {params.repeat_penalty!r}}}')
    effort = effort_value(params.reasoning_effort)
    if effort is not None:
        extras.append(f"reasoning_effort={effort!r}")
    key_variable = KEY_VARIABLES.get(request.endpoint_kind, "STREAMRACE_API_KEY")
    note = ENDPOINT_NOTES.get(request.endpoint_kind)
    lines = [
        f'"""The {mode} lane of a StreamRace race, in Mirascope 2 (mirascope[openai]>=2.8)."""',
        "",
        *(["import functools"] if extras else []),
        "",
        "from mirascope import llm",
        "from mirascope.llm.providers.openai.completions.base_provider import (",
        "    BaseOpenAICompletionsProvider,",
        ")",
        "",
        "",
        "class Compatible(BaseOpenAICompletionsProvider):",
        '    """Chat Completions at an OpenAI-compatible URL, the model name sent whole."""',
        "",
        '    id = "compatible"',
        '    default_scope = "compatible/"',
        f'    api_key_env_var = "{key_variable}"  # the key is read from here, never written here',
        "    api_key_required = False",
        "",
        "    def _model_name(self, model_id: str) -> str:",
        '        return model_id.removeprefix("compatible/")',
        "",
        "",
        *([f"# {note}"] if note else []),
        f"provider = Compatible(base_url={request.base_url!r})",
    ]
    if extras:
        lines += [
            "# Not in Mirascope's params: the openai SDK sends them.",
            "create = provider.client.chat.completions.create",
            "provider.client.chat.completions.create = functools.partial(  # type: ignore",
            f"    create, {', '.join(extras)})",
        ]
    lines += [
        'llm.register_provider(provider, scope="compatible/")',
        "",
        "",
        f"@llm.call({'compatible/' + request.model!r}, {', '.join(arguments)})",
        "def answer(prompt: str) -> str:",
        "    return prompt",
        "",
        "",
        f"PROMPT = {prompt if prompt is not None else request.prompt!r}",
        "",
        'if __name__ == "__main__":',
    ]
    if mode == "blocking":
        lines += ["    response = answer(PROMPT)  # blocks until the whole answer is there",
                  "    print(response.text())"]
    else:
        lines += ["    stream = answer.stream(PROMPT)  # the request leaves now",
                  '    for text in stream.text_stream(sep=""):',
                  '        print(text, end="", flush=True)',
                  "    print()"]
    return "\n".join(lines) + "\n"
