"""The race: one prompt sent by 2 to 4 lanes at the same instant (`python -m lib.race`); by
default blocking and streamed to one endpoint."""

from lib.race.lanes import (
    MAX_LANES,
    MIN_LANES,
    Lane,
    LaneSpec,
    default_lanes,
    lane_label,
    parse_spec,
    resolve_lanes,
)
from lib.race.race import (
    FRAME_S,
    PRESETS,
    Preset,
    Race,
    ranking_lines,
    run_headless,
    spread_line,
    summary_line,
)

__all__ = ["FRAME_S", "MAX_LANES", "MIN_LANES", "PRESETS", "Lane", "LaneSpec", "Preset", "Race",
           "default_lanes", "lane_label", "parse_spec", "ranking_lines", "resolve_lanes",
           "run_headless", "spread_line", "summary_line"]
