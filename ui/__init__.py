"""Gradio tabs of the app, one module per engine family, plus what they share."""
