"""Kokoro-82M: the engine (`engine`), its two back-ends (`backends`), its voice catalogue
(`voices`) and its rendering inside a sentence (`windows`)."""
