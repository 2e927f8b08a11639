"""The Gradio page: one module per tab (`*_tab.py`) or panel (`*_panel.py`), and what they share (the player,
streaming, Stop, output files, the visitor's owner token and session)."""
