"""The race: one prompt sent blocking and streamed at the same instant (`python -m lib.race`)."""

from lib.race.race import FRAME_S, PRESETS, Preset, Race, run_headless, summary_line

__all__ = ["FRAME_S", "PRESETS", "Preset", "Race", "run_headless", "summary_line"]
