"""The running app's `/batch` endpoint and the Output settings of `/synthesize`, through gradio_client."""

from __future__ import annotations

import json
import zipfile

import pytest
import soundfile as sf
from gradio_client import Client, handle_file

from engines import audio

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_batch_endpoint_returns_a_zip_with_the_clips_and_the_manifest(client, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("text,engine,voice\nThe sun is out.,,\nNo such voice.,,zz_nobody\nWe sat down.,,\n", "utf-8")
    archive, table = client.predict(
        handle_file(str(rows)), "kokoro", "jm_kumo", "mp3", "-16", False, True, False, True, api_name="/batch"
    )
    with zipfile.ZipFile(archive) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        assert sorted(bundle.namelist()) == ["001-the-sun-is-out.mp3", "003-we-sat-down.mp3", "manifest.json"]
        bundle.extractall(tmp_path / "out")
    assert (manifest["rendered"], manifest["failed"]) == (2, 1)
    assert "zz_nobody" in manifest["items"][1]["error"]
    assert [row[-1] != "" for row in table["data"]] == [False, True, False]  # the error column
    assert [row[4] for row in table["data"]] == ["Auto"] * 3  # no language column: Auto
    for name in ("001-the-sun-is-out.mp3", "003-we-sat-down.mp3"):
        data, rate = sf.read(tmp_path / "out" / name)
        assert rate == 24_000 and abs(audio.integrated_loudness(data, rate) - -16) <= 0.5


def test_synthesize_endpoint_takes_the_output_settings_and_the_old_call_still_works(client):
    path, info = client.predict("Rice is often served in round bowls.", "jm_kumo", 1.0, "Auto", "flac", "-23",
                                api_name="/synthesize")  # fmt: skip
    data, rate = sf.read(path)
    assert path.endswith(".flac") and rate == 24_000 and abs(audio.integrated_loudness(data, rate) - -23) <= 0.5
    assert info["notes"] == []
    plain, _ = client.predict("Rice is often served in round bowls.", "jm_kumo", 1.0, "Auto", api_name="/synthesize")
    assert plain.endswith(".wav")
    with pytest.raises(Exception, match="loudness target must be between"):
        client.predict("Hello.", "jm_kumo", 1.0, "Auto", "wav", "-80", api_name="/synthesize")
