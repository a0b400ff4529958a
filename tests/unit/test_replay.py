"""Replay settings are derived from the live ones and never share an output, id or state with them;
timestamps parse from epoch ms and ISO-8601 with errors that name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings, load_settings, with_overrides
from core.errors import ConfigError
from riskstream.cli import main as cli_main
from riskstream.replay import (
    INPUT_ROLES,
    OUTPUT_ROLES,
    check_name,
    default_name,
    iso,
    parse_timestamp,
    replay_settings,
    replay_topic,
    written_roles,
)

T = 1_795_860_000_000  # 2026-11-28T10:00:00Z


@pytest.fixture
def live(tmp_path: Path) -> Settings:
    settings = load_settings(environ={})
    return with_overrides(
        settings,
        paths={"run_dir": str(tmp_path)},
        checkpoint={"restore_from": "/somewhere/chk-7", "allow_non_restored_state": True},
    )


def test_outputs_ids_and_state_are_the_replays_own(live: Settings) -> None:
    replay = replay_settings(live, "incident-42", T, T + 3_600_000)
    live_topics = {spec.name for spec in live.kafka.topics.values()}
    for role in OUTPUT_ROLES:
        assert replay.kafka.topic(role) == f"{live.kafka.topic(role)}.replay-incident-42"
        assert replay.kafka.topic(role) not in live_topics
        assert replay.kafka.partitions(role) == live.kafka.partitions(role)
    for role in INPUT_ROLES:
        assert replay.kafka.topic(role) == live.kafka.topic(role)
    assert replay.scoring.group_id == "riskstream-scoring-replay-incident-42"
    assert replay.scoring.transactional_id_prefix == "riskstream-scoring-replay-incident-42"
    assert replay.scoring.group_id != live.scoring.group_id
    assert replay.scoring.transactional_id_prefix != live.scoring.transactional_id_prefix
    assert replay.checkpoint_dir == live.paths.run / "replay" / "incident-42" / "checkpoints"
    assert replay.checkpoint_dir != live.checkpoint_dir
    # fresh state: never the live job's savepoint or checkpoints
    assert replay.checkpoint.restore_from == ""
    assert not replay.checkpoint.allow_non_restored_state
    assert replay.flink.local_rest_port == 0
    assert replay.features.start_timestamp_ms == T
    assert replay.features.stop_timestamp_ms == T + 3_600_000
    assert replay.scoring.source_name.endswith("-replay-incident-42")
    # the rest of the job is the live job's
    assert replay.scoring.registry_dir == live.scoring.registry_dir
    assert replay.features.allowed_lateness_ms == live.features.allowed_lateness_ms
    assert live.features.start_timestamp_ms == 0 and live.features.stop_timestamp_ms == 0


def test_an_explicit_checkpoint_dir_is_not_reused(live: Settings) -> None:
    own = with_overrides(live, checkpoint={"dir": str(live.paths.run / "ckpt")})
    replay = replay_settings(own, "x", T)
    assert replay.checkpoint_dir == live.paths.run / "replay" / "x" / "checkpoints"
    assert replay.features.stop_timestamp_ms == 0


def test_two_replays_do_not_share_outputs(live: Settings) -> None:
    a, b = replay_settings(live, "a", T), replay_settings(live, "b", T)
    assert {a.kafka.topic(r) for r in OUTPUT_ROLES}.isdisjoint(
        {b.kafka.topic(r) for r in OUTPUT_ROLES}
    )
    assert a.scoring.transactional_id_prefix != b.scoring.transactional_id_prefix


def test_a_name_that_would_collide_with_a_live_topic_is_refused(live: Settings) -> None:
    topics = dict(live.kafka.topics)
    decisions = topics["decisions"]
    # a live topic that happens to be named like the replay's
    topics["skeleton_out"] = type(decisions)(name=replay_topic(decisions.name, "x"), partitions=1)
    clashing = with_overrides(live, kafka={"topics": topics})
    with pytest.raises(ConfigError, match="would share with the live job its decisions topic"):
        replay_settings(clashing, "x", T)


def test_written_roles_follow_the_scoring_settings(live: Settings) -> None:
    assert written_roles(live) == (
        "decisions",
        "predictions",
        "alerts",
        "guardrail_alerts",
        "dead_letter",
        "analytics",
        "late_events",
    )
    more = with_overrides(
        live, scoring={"write_features": True, "analytics": False}, guardrails={"enabled": False}
    )
    assert written_roles(more) == ("decisions", "predictions", "alerts", "dead_letter", "features")


@pytest.mark.parametrize(
    "text",
    [
        "1795860000000",
        "2026-11-28T10:00:00Z",
        "2026-11-28T10:00:00+00:00",
        "2026-11-28T11:00:00+01:00",
        "2026-11-28T10:00:00.000Z",
        " 2026-11-28T10:00:00Z ",
    ],
)
def test_timestamps_parse_to_epoch_ms(text: str) -> None:
    assert parse_timestamp(text, "--from-timestamp") == T


def test_iso_and_default_name() -> None:
    assert parse_timestamp("2026-11-28T10:00:00.250Z", "--to-timestamp") == T + 250
    assert iso(T + 250) == "2026-11-28T10:00:00.250Z"
    assert default_name(T + 250) == "20261128-100000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "expected epoch milliseconds .* or ISO-8601 UTC"),
        ("2026-11-28T10:00:00", "has no time zone; add Z for UTC"),
        ("2026-11-28", "has no time zone"),
        ("1795860000", "looks like epoch seconds"),
        ("-5", "expected epoch milliseconds"),
        ("9999999999999", "after 2100"),
        ("", "expected epoch milliseconds"),
    ],
)
def test_bad_timestamps_name_the_flag(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^--to-timestamp: .*{message}"):
        parse_timestamp(text, "--to-timestamp")


def test_the_range_must_not_be_empty(live: Settings) -> None:
    with pytest.raises(ConfigError, match=r"--to-timestamp \(2026-11-28T10:00:00.000Z\) must be"):
        replay_settings(live, "x", T, T)


@pytest.mark.parametrize("name", ["-x", "a b", "a.b", "a_b", "", "x" * 64])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^--name: expected"):
        check_name(name)


def test_the_cli_reports_a_bad_timestamp_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = cli_main(["replay", "--from-timestamp", "2026-13-01T00:00:00Z"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("riskstream: error: --from-timestamp: expected epoch milliseconds")
    assert "Traceback" not in err
