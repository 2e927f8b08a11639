"""Every numeric setting is read one way (`engines.settings`): unset, blank or bad gives the default;
out-of-range values go to the nearest bound."""

import pytest

from engines.settings import env_int, env_number


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 20.0), ("", 20.0), ("  ", 20.0), ("abc", 20.0), ("nan", 20.0), ("inf", 20.0), ("5", 5.0), ("-3", 0.0),
     ("99999", 100.0), (" 7.5 ", 7.5)],
)  # fmt: skip
def test_a_number_setting_falls_back_to_its_default_and_stays_in_bounds(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("SOME_SETTING", raising=False)
    else:
        monkeypatch.setenv("SOME_SETTING", raw)
    assert env_number("SOME_SETTING", 20.0, minimum=0.0, maximum=100.0) == expected


def test_a_whole_number_setting_cuts_a_fraction_and_may_default_to_none(monkeypatch):
    monkeypatch.setenv("SOME_SETTING", "2.9")
    assert env_int("SOME_SETTING", None) == 2
    monkeypatch.setenv("SOME_SETTING", "many")
    assert env_int("SOME_SETTING", None) is None


def test_the_app_settings_use_it(monkeypatch):
    from engines.qwen_batcher import batch_wait_s
    from engines.reference import upload_limit_bytes
    from engines.work_queue import env_max_waiting
    from service.limits import rate_from_env

    for name, value in (
        ("API_RATE_PER_MIN", "-4"),
        ("BATCH_WAIT_MS", "1e9"),
        ("MAX_UPLOAD_MB", "0"),
        ("MAX_WAITING", "x"),
    ):
        monkeypatch.setenv(name, value)
    assert rate_from_env() == 0  # negative: the lower bound, the limit off
    assert batch_wait_s() == 60.0  # at most a minute
    assert upload_limit_bytes() == 50 * 2**20  # 0 MB is no limit worth having: the default
    assert env_max_waiting() is None  # bad: the computed default bound
