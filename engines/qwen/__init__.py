"""Qwen3-TTS 12Hz: the engines (`engine`: presets and cloning; `design`: a voice described in words),
batching across visitors (`batcher`), the runaway guard (`runaway`) and the quiet import of
`qwen_tts` (`tts_import`)."""
