"""The running app's Gradio API, driven by gradio_client like any API user."""

from __future__ import annotations

import pytest
import soundfile as sf
from gradio_client import Client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def _duration(path: str) -> float:
    info = sf.info(path)
    return info.frames / info.samplerate


def test_synthesize_endpoint_audio_grows_with_the_text(client):
    short_path, short_info = client.predict(
        "Rice is often served in round bowls.", "jm_kumo", 1.0, "Auto", api_name="/synthesize"
    )
    long_text = (
        "Rice is often served in round bowls. The juice of lemons makes fine punch. Four hours of steady work faced us."
    )
    long_path, long_info = client.predict(long_text, "jm_kumo", 1.0, "Auto", api_name="/synthesize")
    assert _duration(long_path) > 2.2 * _duration(short_path)
    assert abs(_duration(long_path) - long_info["audio_s"]) < 0.05
    assert long_info["ttfa_s"] <= long_info["total_s"] and long_info["chunks"] >= 2


def test_streaming_endpoint_delivers_audio(client):
    job = client.submit(
        "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.",
        "jm_kumo",
        "",
        1.0,
        "Auto",
        api_name="/stream",
    )
    job.result(timeout=120)
    outputs = job.outputs()
    streamed = [o[0] for o in outputs if isinstance(o[0], str)]
    assert streamed, outputs
    final = outputs[-1]
    assert "Finished" in final[3] and "time to first audio" in final[3]
    assert _duration(final[4]) > 3.0


def test_bad_input_gives_a_clear_error_and_the_next_request_works(client):
    with pytest.raises(Exception, match="Please enter some text"):
        client.predict("   ", "jm_kumo", 1.0, "Auto", api_name="/synthesize")
    with pytest.raises(Exception, match="needs the model hub"):
        client.predict("Hello.", "af_heart", 1.0, "Auto", api_name="/synthesize")
    path, _ = client.predict("Still working.", "jm_kumo", 1.0, "Auto", api_name="/synthesize")
    assert _duration(path) > 0.5


def test_compare_endpoint_returns_both_clips_and_the_metrics(client):
    a_path, b_path, summary = client.predict(
        "Rice is often served in round bowls.", "kokoro:jm_kumo", "kokoro:jf_alpha", api_name="/compare"
    )
    assert summary["a"]["system"] == "kokoro:jm_kumo" and summary["b"]["system"] == "kokoro:jf_alpha"
    for path, slot in ((a_path, summary["a"]), (b_path, summary["b"])):
        assert slot["error"] is None and abs(_duration(path) - slot["duration_s"]) < 0.1
        assert slot["wer"] is not None and 1.0 <= slot["mos"] <= 5.0
        assert set(slot) >= {"ttfa_s", "total_s", "rtf", "duration_s", "lufs", "wer", "transcript", "similarity", "mos"}


def test_compare_endpoint_reports_a_bad_slot_in_one_sentence(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Unknown engine 'piper'"):
        client.predict("Hello there.", "piper:amy", "kokoro:jm_kumo", api_name="/compare")


def test_a_saved_voice_keeps_its_clip_so_compare_scores_likeness_to_it(client, tmp_path):
    from gradio_client import handle_file
    from test_qwen import wav_bytes

    reference = tmp_path / "me.wav"
    reference.write_bytes(wav_bytes(2.5))
    token = client.predict(api_name="/owner_token")  # saved voices belong to an owner
    client.predict(handle_file(str(reference)), "", True, "API voice", owner_token=token, api_name="/qwen_save_voice")
    _, b_path, summary = client.predict(
        "Hello there.", "kokoro:jm_kumo", "qwen-clone:api-voice", owner_token=token, api_name="/compare"
    )
    assert summary["b"]["error"] is None and summary["b"]["system"] == "qwen-clone:api-voice"
    assert -1.0 <= summary["b"]["similarity"] <= 1.0 and summary["a"]["similarity"] is None
    client.predict("api-voice", owner_token=token, api_name="/qwen_delete_voice")
