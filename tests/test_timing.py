"""Run figures: real-time factor and stalls are computed from what was measured."""

from __future__ import annotations

from engines.runtime.timing import RunStats


def test_underruns_count_chunks_that_arrive_after_the_audio_before_them_ran_out():
    # chunk 1 ready at 1.0 s and plays 2 s; chunk 2 ready at 2.5 s (in time), plays 1 s;
    # chunk 3 ready at 4.5 s although the audio ran out at 4.0 s: one stall, after which play resumes.
    stats = RunStats("kokoro", ttfa_s=1.0, total_s=5.0, audio_s=4.0, chunks=4,
                     ready_s=[1.0, 2.5, 4.5, 5.0], durations_s=[2.0, 1.0, 0.5, 0.5])  # fmt: skip
    assert stats.underruns == 1
    assert stats.rtf == 1.25
    assert stats.summary() == {"audio_s": 4.0, "total_s": 5.0, "ttfa_s": 1.0, "rtf": 1.25, "chunks": 4}


def test_no_audio_means_no_real_time_factor():
    assert RunStats("kokoro").rtf is None and RunStats("kokoro").underruns == 0
