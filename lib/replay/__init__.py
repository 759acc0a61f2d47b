"""Record and replay: logged runs played back at their recorded offsets (`python -m lib.replay`).

A `Recording` (its file format and its table: lib.storage) is a logged run's chunk timeline.
whatif: transforms and synthetic profiles, pure functions to a playback Script, named by the
model a client asks for (`Spec`); preview: those timelines as Traces; server: the replay
server, in this process or in one of its own.
"""

from lib.replay.preview import preview, summary_rows, timeline_trace
from lib.replay.server import ReplayServer, ensure_server, served_names, stop_server
from lib.replay.whatif import (
                               Profile,
                               Spec,
                               Transform,
                               add_first_chunk_latency,
                               add_jitter,
                               add_stall,
                               answer_tokens,
                               builtin_pieces,
                               cap_tokens_per_s,
                               describe_run,
                               label,
                               lookup,
                               parse_model,
                               play,
                               scale_time_per_token,
                               synthesize,
)
from lib.storage.recording import (
                               SYNTHETIC,
                               Recording,
                               check_name,
                               check_timeline,
                               dumps,
                               from_dict,
                               from_rows,
                               loads,
                               to_dict,
)
from lib.storage.recordings import Recordings

__all__ = [
    "SYNTHETIC", "Profile", "Recording", "Recordings", "ReplayServer", "Spec", "Transform",
    "add_first_chunk_latency", "add_jitter", "add_stall", "answer_tokens", "builtin_pieces",
    "cap_tokens_per_s", "check_name", "check_timeline", "describe_run", "dumps",
    "ensure_server", "from_dict", "from_rows", "label", "loads", "lookup", "parse_model", "play",
    "preview", "scale_time_per_token", "served_names", "stop_server", "summary_rows",
    "synthesize", "timeline_trace", "to_dict",
]
