"""Fakes at the network edge only (see openai_server.py)."""

from tests.fakes.openai_server import (
    FaultyOpenAIServer,
    ServerStats,
    answer_text,
    sample_id,
    spawn_server_process,
)

__all__ = ["FaultyOpenAIServer", "ServerStats", "answer_text", "sample_id", "spawn_server_process"]
